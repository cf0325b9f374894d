"""Wake-ups: enqueuers poke the workers right after commit instead of waiting for a poll.

On one host a datagram to the worker's wake socket does it (the fast path). Workers on other
hosts hear a PostgreSQL `NOTIFY stepwell_wake` sent with it (when the database is PostgreSQL):
each worker's `HostListener` LISTENs on its own connection and pokes its local wake socket.
Replies to synchronous requests (`ReplyWaiter`) stay on the web host's socket, with a 0.25 s
database poll as the path across hosts.
"""
from __future__ import annotations

import logging
import socket
import threading

from django.conf import settings
from django.db import connection

log = logging.getLogger("engine.wake")
CHANNEL = "stepwell_wake"


def address(path: str) -> str:
    """A socket address from a stored path; '@name' is Linux's abstract namespace."""
    return "\0" + path[1:] if path.startswith("@") else path


def poke(path: str | None = None) -> bool:
    """Send one datagram to the worker's wake socket, and (PostgreSQL) a NOTIFY for the workers
    of other hosts; False when no worker listens on this host."""
    if path is None:
        notify_hosts()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        s.sendto(b"w", path or settings.STEPWELL_WAKE_SOCKET)
        return True
    except OSError:
        return False
    finally:
        s.close()


def notify_hosts() -> None:
    """`NOTIFY stepwell_wake` (delivered at commit when inside a transaction); nothing on SQLite."""
    if connection.vendor != "postgresql":
        return
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_notify(%s, '')", [CHANNEL])
    except Exception:  # noqa: BLE001 - a lost wake-up costs one poll interval, never the enqueue
        log.warning("could not notify the other hosts' workers", exc_info=True)


class HostListener:
    """In a worker: LISTEN stepwell_wake on a connection of its own and call `wake()` for each
    notification, reconnecting after errors, until `stop` is set. Does nothing on SQLite."""

    def __init__(self, wake, stop: threading.Event):
        self.wake, self.stop = wake, stop
        self.thread: threading.Thread | None = None

    def start(self) -> "HostListener":
        if connection.vendor == "postgresql":
            self.thread = threading.Thread(target=self._run, name="wake-listener", daemon=True)
            self.thread.start()
        return self

    def _connect(self):
        import psycopg

        db = settings.DATABASES["default"]
        params = {"dbname": db["NAME"], "user": db.get("USER") or None, "password": db.get("PASSWORD") or None,
                  "host": db.get("HOST") or None, "port": db.get("PORT") or None}
        conn = psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _run(self) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:  # noqa: BLE001 - the database may be restarting
                log.warning("wake listener: %s; retrying in %g s", exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30)
                continue
            backoff = 0.5
            try:
                with conn:
                    while not self.stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.wake()
            except Exception as exc:  # noqa: BLE001 - reconnect
                log.warning("wake listener lost its connection: %s", exc)


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
