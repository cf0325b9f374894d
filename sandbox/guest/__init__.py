"""The guest agent, copied into the guest image as the package `sandbox.guest` (stdlib only).

agent.py (the entry point, PID 1) starts supervisor.py, which forks the worker (worker.py);
both speak to the host through channel.py and share state through shared.py; procfs.py reads
/proc. See agent.py for how the two processes divide the work.
"""
