"""The guest's egress forwarder: a process forked by the agent at boot (before the worker, so it
carries no heavy imports, and before the host saves the VM, so every warm restore has it).

It opens the egress virtio-serial port (protocol.EGRESS_CHANNEL_NAME) as root, drops for good to
the code's uid (no capabilities, no_new_privs, not dumpable), listens on 127.0.0.1:3128 and
carries every accepted connection over its own multiplexed stream (sandbox/egress/mux.py frames)
to the host, whose egress proxy decides. One thread does it all (sandbox/egress/muxloop.py): no
thread per connection, no hand-off between threads. The VM still has no network interface:
only `lo`, brought up by init.sh.

Idle, it costs nothing: it blocks in poll(), and reads the port only while a stream exists.
When the host end of the port is not connected (a VM restored without it), a new connection
gets a 502 at once instead of hanging.
"""
from __future__ import annotations

import os

from sandbox import protocol
from sandbox.egress import forwarder, muxloop
from sandbox.guest.channel import find_port
from sandbox.guest.shared import USER_ID, libc, log

PORT_WAIT_S = 5.0
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4


def _drop_privileges(uid: int = USER_ID) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)   # every capability goes with the uid change
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def serve(port_path: str) -> None:
    fd = os.open(port_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    listener = forwarder.bind_listener(forwarder.DEFAULT_LISTEN)
    if os.getuid() == 0:
        _drop_privileges()
    log("egress forwarder up on 127.0.0.1:3128")
    muxloop.Loop(listener, fd).run()


def start() -> int | None:
    """Fork the forwarder (PID 1 calls this at boot); its pid, or None when the VM has no
    egress port (a domain made without it)."""
    try:
        port_path = find_port(PORT_WAIT_S, protocol.EGRESS_CHANNEL_NAME)
    except RuntimeError as exc:
        log(f"no egress forwarder: {exc}")
        return None
    pid = os.fork()
    if pid:
        return pid
    try:
        serve(port_path)
    except BaseException as exc:  # noqa: BLE001
        log(f"egress forwarder failed: {exc!r}")
    finally:
        os._exit(0)
