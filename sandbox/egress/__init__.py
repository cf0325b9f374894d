"""Outbound connections from workflows: one policy for the HTTP-call step and the code egress proxy.

`decide(allowed_hosts, host, port, private_networks)` matches the name against the workflow's
allow-list, resolves it once on the host, checks every address, and returns a `Decision` whose
`addresses` are the only ones a caller may connect to (`open_connection` does that).
Standard library only: the sandbox package imports no Django.
"""
from sandbox.egress.policy import (  # noqa: F401 - the package's interface
    PRIVATE_NETWORKS_ENV, Decision, EntryError, decide, listed, open_connection, parse_entry,
    parse_networks, private_networks_from_env,
)
