"""Stop an execution whose client went away: while the sandbox service runs an execution for a
connection, a watcher polls that connection and, once the peer has closed it (the worker was
killed, or gave up), cancels the execution (sandbox.cancel: the process driver kills its cgroup,
the libvirt driver destroys the VM). Nobody is left to read the result, so nothing should keep
running for it.
"""
from __future__ import annotations

import logging
import select
import socket
import threading
from contextlib import contextmanager
from typing import Callable

log = logging.getLogger("sandbox.hangup")

POLL_S = 0.25
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, "POLLRDHUP", 0)


def peer_closed(sock: socket.socket) -> bool:
    """True when the other end of `sock` has closed it (without consuming any data)."""
    p = select.poll()
    p.register(sock, select.POLLIN | _GONE)
    events = p.poll(0)
    if not events:
        return False
    if events[0][1] & _GONE:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@contextmanager
def cancel_on_hangup(sock: socket.socket | None, cancel: Callable[[], object]):
    """Within the block, call `cancel()` once if the peer of `sock` closes the connection."""
    if sock is None:
        yield
        return
    done = threading.Event()

    def watch():
        while not done.wait(POLL_S):
            try:
                gone = peer_closed(sock)
            except (OSError, ValueError):
                gone = True
            if gone:
                log.warning("client went away during an execution; cancelling it")
                try:
                    cancel()
                except Exception:  # noqa: BLE001
                    log.exception("cancel after hangup")
                return

    t = threading.Thread(target=watch, name="hangup", daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
