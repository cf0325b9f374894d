"""Governance: the tamper-evident audit log and instance-wide policies (issue 12).

The engine, designer, runtimes and sandbox service report here through `governance.actions`;
this app never imports their views or actions.
"""
