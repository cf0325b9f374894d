"""Stepwell guest agent: PID 1 of the sandbox VM after switch_root (stdlib only).

The entry point: init.sh runs this file from the copy of the package in the guest image
(/opt/stepwell/sandbox/guest/agent.py). The jobs live in channel.py, worker.py,
supervisor.py, procfs.py and shared.py beside it; this note is how they fit together.

Two processes share the one virtio-serial channel to the host (length-prefixed frames,
protocol.py), under a lock, so that a request costs one process and no hand-off:

- the *worker*, forked at boot, drops for good to uid 65534 (keeping only CAP_SYS_BOOT, so a
  reboot or power-off from inside ends the VM; no_new_privs; RLIMIT_NPROC), then imports numpy,
  pandas and matplotlib (Agg) once as that uid and freezes that heap for the cyclic GC, all
  before the host saves the VM for its warm pool. It then owns the channel: it reads a
  request, answers "accepted", runs the code (harness.run) and sends the result itself (worker.py). Under TCG every guest
  instruction costs about ten host ones, and a hand-off between two processes cost more than
  the rest of a hello world together, so the request path stays inside this one process.
- the *supervisor* (PID 1, root) is the safety net and does what needs root. It answers for
  the worker when the worker dies (`os._exit`, a segfault, the OOM killer) with the exit status
  and the output so far; it answers "partial" (the host asks at a timeout, before the kill)
  while the code runs; it drains the output pipes while the code prints a lot; it mixes host
  entropy into the kernel pool and forces a CRNG reseed, and drops caches before a save
  (supervisor.py).

The channel lock (flock on RESULT_DIR/channel.lock): the worker holds it whenever it may read
the channel (idle, and while answering) and gives it up only while user code runs, with
Shared.busy set. The supervisor reads the channel only while it holds the lock and busy is set,
which is exactly while the code runs and no answer can have left: then the only frame the host
can send is "partial". So each frame has one reader.

User output never reaches the channel as frames: fds 1 and 2 of the worker are pipes. Whoever
holds the lock drains them into a shared buffer (Shared) with caps; the worker finishes the
drain and ships the text *inside* the JSON result, so nothing the code prints can forge a
result. (The code runs in the worker, which holds the channel: it can answer its own request
with anything it likes, as it can with `result`; the VM is single-use and the host checks
every frame. It cannot reach root's operations or outlive the VM.)

Requests that carry host entropy (the warm-ups after every restore, a cold VM's only request)
make the supervisor reseed the kernel CRNG and the worker reseed Python's and numpy's
generators, so every restored clone has its own RNG state. When the host end of the channel
goes away while the agent is armed, the VM powers itself off (restored domains outlive the
host process that restored them).

A third process, forked first, is the egress forwarder (egress.py): 127.0.0.1:3128 inside the
guest, each connection carried over the second virtio-serial port to the host's egress proxy.
"""
from __future__ import annotations

import sys

sys.path.insert(0, "/opt/stepwell")  # the package copy; python3 -I adds no script directory

import os  # noqa: E402
import signal  # noqa: E402

from sandbox.guest import egress  # noqa: E402
from sandbox.guest.channel import find_port  # noqa: E402
from sandbox.guest.shared import RESULT_DIR, USER_ID, WORKDIR, log, poweroff  # noqa: E402
from sandbox.guest.supervisor import Supervisor  # noqa: E402


def main() -> None:
    if os.getpid() == 1:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        os.makedirs(RESULT_DIR, exist_ok=True)
        try:
            os.sethostname("sandbox") if hasattr(os, "sethostname") else None
        except OSError:
            pass
    try:
        os.chown(WORKDIR, USER_ID, USER_ID)
    except OSError as exc:
        log(f"chown {WORKDIR}: {exc}")
    try:
        port = find_port()
        if os.getpid() == 1:
            egress.start()   # before the worker: a small process, forked without pandas
        sup = Supervisor(port)
        log("supervisor up")
        sup.serve()
    except BaseException as exc:  # noqa: BLE001
        log(f"agent failed: {exc!r}")
        if os.getpid() == 1:
            poweroff()
        raise


if __name__ == "__main__":
    main()
