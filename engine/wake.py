"""Wake-up datagrams: enqueuers poke the worker right after commit instead of waiting for a poll."""
from __future__ import annotations

import socket

from django.conf import settings


def address(path: str) -> str:
    """A socket address from a stored path; '@name' is Linux's abstract namespace."""
    return "\0" + path[1:] if path.startswith("@") else path


def poke(path: str | None = None) -> bool:
    """Send one datagram to the worker's wake socket; False when no worker listens."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        s.sendto(b"w", path or settings.STEPWELL_WAKE_SOCKET)
        return True
    except OSError:
        return False
    finally:
        s.close()


class ReplyWaiter:
    """A unix datagram socket the worker pokes when a run answered (Response node) or finished.

    Used by requests that must answer synchronously (HTTP trigger, step tests): they wait on the
    socket, with a slow database poll as a fallback, and never run user code themselves.
    """

    FALLBACK_POLL_S = 0.25

    def __init__(self):
        import uuid
        from pathlib import Path

        d = Path(settings.VAR_DIR) / "replies"
        d.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex[:16]
        self.path = str(d / f"{name}.sock")
        if len(self.path.encode()) > 100:  # sun_path holds 108 bytes: use the abstract namespace
            self.path = f"@stepwell-reply-{name}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address(self.path))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        import os

        self.sock.close()
        if not self.path.startswith("@"):
            try:
                os.unlink(self.path)
            except OSError:
                pass

    async def async_wait(self, run_id: int, timeout: float, done, check_first: bool = True) -> "object":
        """`wait` for async views: no thread is held while the run works. With check_first=False
        the first look at the run waits for a poke (or the fallback poll) instead of reading it
        right away (for a run that was just queued)."""
        import asyncio
        import time

        from asgiref.sync import sync_to_async

        from engine.models import Run

        get = sync_to_async(lambda: Run.objects.get(pk=run_id))
        loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        deadline = time.monotonic() + timeout
        while True:
            if check_first:
                run = await get()
                if done(run):
                    return run
            check_first = True
            left = deadline - time.monotonic()
            if left <= 0:
                return await get()
            try:
                await asyncio.wait_for(loop.sock_recv(self.sock, 64), min(left, self.FALLBACK_POLL_S))
            except asyncio.TimeoutError:
                pass

    def wait(self, run_id: int, timeout: float, done) -> "object":
        """Wait until `done(run)` is true or `timeout` passes; returns the latest Run row."""
        import select
        import time

        from engine.models import Run

        deadline = time.monotonic() + timeout
        while True:
            run = Run.objects.get(pk=run_id)
            if done(run):
                return run
            left = deadline - time.monotonic()
            if left <= 0:
                return run
            r, _, _ = select.select([self.sock], [], [], min(left, self.FALLBACK_POLL_S))
            if r:
                try:
                    while True:
                        self.sock.recv(64, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    pass
