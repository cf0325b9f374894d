"""The guest's egress forwarder: a process forked by the agent at boot (before the worker, so it
carries no heavy imports, and before the host saves the VM, so every warm restore has it).

It opens the egress virtio-serial port (protocol.EGRESS_CHANNEL_NAME) as root, drops for good to
the code's uid (no capabilities, no_new_privs, not dumpable), listens on 127.0.0.1:3128 and
relays each accepted connection (sandbox/egress/forwarder.py) over its own multiplexed stream
(sandbox/egress/mux.py) to the host, whose egress proxy decides. The VM still has no network
interface: only `lo`, brought up by init.sh.

Idle, it costs nothing: it blocks in accept(), and reads the port only while a stream exists.
When the host end of the port is not connected (a VM restored without it), a new connection
gets a 502 at once instead of hanging.
"""
from __future__ import annotations

import os
import select
import threading

from sandbox import protocol
from sandbox.egress import forwarder, mux
from sandbox.guest.channel import find_port
from sandbox.guest.shared import USER_ID, libc, log

PORT_WAIT_S = 5.0
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
READ_CHUNK = 1 << 16
READ_MAX = 1 << 18


class PortTransport:
    """The egress port as a byte channel for mux.Mux: non-blocking fd, poll for readiness.
    The guest kernel reports POLLHUP while the host end is not connected."""

    def __init__(self, fd: int):
        self.fd = fd

    def connected(self) -> bool:
        p = select.poll()
        p.register(self.fd, select.POLLIN | select.POLLOUT)
        return not any(ev & select.POLLHUP for _fd, ev in p.poll(0))

    def read(self) -> bytes:
        """What has arrived, b"" once the host end is gone. A read gives one port buffer (a
        page) at most: read on until nothing is left, so the mux decodes large pieces."""
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        chunks: list[bytes] = []
        size = 0
        while size < READ_MAX:
            try:
                data = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                data = None
            if data:
                chunks.append(data)
                size += len(data)
                continue
            if chunks:
                break
            if data == b"":
                return b""
            if p.poll()[0][1] & select.POLLERR:
                return b""
        return b"".join(chunks)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        p = select.poll()
        p.register(self.fd, select.POLLOUT)
        while view:
            try:
                view = view[os.write(self.fd, view):]
                continue
            except BlockingIOError:
                pass
            ev = p.poll(1000)
            if ev and ev[0][1] & (select.POLLHUP | select.POLLERR):
                raise BrokenPipeError("the host end of the egress port went away")


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
    transport = PortTransport(fd)
    channel = mux.Mux(transport.read, transport.write)

    def open_upstream():
        if not transport.connected():
            raise ConnectionError("the host end of the egress channel is not connected")
        return channel.open()

    threading.stack_size(512 * 1024)
    threading.Thread(target=channel.run, kwargs={"once": False}, daemon=True,
                     name="egress-mux").start()
    log("egress forwarder up on 127.0.0.1:3128")
    forwarder.serve_socket(listener, open_upstream)


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
