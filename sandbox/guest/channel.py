"""The guest end of the virtio-serial channel: find the port, read frames from it for good,
send frames to it, and the replies both the worker and the supervisor give (hello, partial,
ping, power-off). Which process may read the channel at a time is decided by the channel lock
(see agent.py); either may write."""
from __future__ import annotations

import errno
import os
import select
import time

from sandbox import protocol
from sandbox.guest import procfs
from sandbox.guest.shared import READ_CHUNK, T0, Shared, log, poweroff


def find_port(timeout: float = 30.0, name: str = protocol.CHANNEL_NAME) -> str:
    """/dev path of the virtio-serial port named `name` (the agent's: protocol.CHANNEL_NAME)."""
    deadline = time.monotonic() + timeout
    while True:
        base = "/sys/class/virtio-ports"
        try:
            for d in sorted(os.listdir(base)):
                try:
                    with open(f"{base}/{d}/name") as fh:
                        if fh.read().strip() == name:
                            return f"/dev/{d}"
                except OSError:
                    continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"virtio port {name} not found")
        time.sleep(0.05)


def write(port: int, data: bytes, shared: Shared) -> None:
    """Write one encoded frame. When the host end is gone: power off if armed, else drop it."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(port, view)
            view = view[n:]
        except BlockingIOError:
            select.select([], [port], [], 1.0)
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.ENODEV, errno.EIO):
                if shared["armed"]:
                    poweroff()
                return
            raise


def send(port: int, message: dict, shared: Shared) -> None:
    write(port, protocol.encode(message), shared)


def serve(port: int, shared: Shared, handle) -> None:
    """Read frames from the host for good and pass each to `handle`. When the host end goes
    away while the agent is armed, power the VM off (restored domains outlive the process that
    restored them); before the host connects (or while disarmed), just wait."""
    dec = protocol.FrameDecoder()
    poller = select.poll()
    poller.register(port, select.POLLIN)
    while True:
        ev = poller.poll()[0][1]
        data = None
        if ev & select.POLLIN:
            try:
                data = os.read(port, READ_CHUNK)
            except BlockingIOError:
                pass
        if not data:
            if ev & select.POLLHUP:
                if shared["armed"]:
                    log("host went away: powering off")
                    poweroff()
                time.sleep(0.02)
            continue
        try:
            msgs = dec.feed(data)
        except protocol.ProtocolError as exc:
            log(f"bad frame from host: {exc}")
            dec = protocol.FrameDecoder()
            continue
        for m in msgs:
            handle(m)


def partial_reply(shared: Shared | None) -> dict:
    """The output so far of the running code (`shared`), or empty output (None: nothing runs)."""
    if shared is None:
        return {"op": "partial", "stdout": "", "stderr": "",
                "stdout_truncated": False, "stderr_truncated": False}
    out, out_trunc = shared.text("out")
    err, err_trunc = shared.text("err")
    return {"op": "partial", "stdout": out, "stderr": err,
            "stdout_truncated": out_trunc, "stderr_truncated": err_trunc}


def answer_common(port: int, shared: Shared, m: dict, worker: dict | None) -> bool:
    """Answer the ops whose reply does not depend on who answers (hello, ping, poweroff);
    `worker` is the worker's ready report (None: no worker runs). False for any other op."""
    op = m.get("op")
    if op == "hello":
        if m.get("arm"):
            shared["armed"] = 1
        send(port, {"op": "hello", "ready": worker is not None, "worker": worker,
                    "uptime_s": round(time.monotonic() - T0, 3),
                    "mem_mib": procfs.mem_total_mib(), "armed": bool(shared["armed"])}, shared)
    elif op == "ping":
        send(port, {"op": "pong", "t": m.get("t")}, shared)
    elif op == "poweroff":
        poweroff()
    else:
        return False
    return True
