"""Cancelling executions in flight by the id their caller chose (`execute(request, execution_id=...)`).

Each driver keeps one `Cancels`: a running execution registers how to stop it (the process driver
kills its cgroup, the libvirt driver stops waiting for the agent, keeps the output so far and
destroys the VM); `cancel(id)` calls that. A cancel that arrives before its execution registered
(it still waits for a slot or a VM) is remembered for a while, and that execution then ends
before its code starts. A cancelled execution's result has status `killed` and MESSAGE.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from sandbox.contract import ContractError

MESSAGE = "cancelled on request; the execution was stopped"
MAX_ID_CHARS = 200
REMEMBER_S = 600.0   # how long a cancel of an id not (yet) running is remembered


def check_id(execution_id) -> str | None:
    """`execution_id` when it is a usable id (or None).

    :raises ContractError: not a non-empty string of at most MAX_ID_CHARS printable characters.
    """
    if execution_id is None:
        return None
    if (not isinstance(execution_id, str) or not execution_id or len(execution_id) > MAX_ID_CHARS
            or not execution_id.isprintable()):
        raise ContractError(f"execution_id must be a string of 1 to {MAX_ID_CHARS} printable characters")
    return execution_id


class Cancels:
    """Executions running here by id, and the cancels asked for."""

    def __init__(self):
        self._lock = threading.Lock()
        self._live: dict[str, Callable[[], None] | None] = {}
        self._asked: dict[str, float] = {}   # id -> monotonic time of the cancel

    def register(self, execution_id: str | None, stop: Callable[[], None] | None = None) -> bool:
        """Note a running execution and how to stop it; False when it was cancelled already."""
        if execution_id is None:
            return True
        with self._lock:
            self._live[execution_id] = stop
            return execution_id not in self._asked

    def unregister(self, execution_id: str | None) -> None:
        if execution_id is None:
            return
        with self._lock:
            self._live.pop(execution_id, None)
            self._asked.pop(execution_id, None)

    def running(self, execution_id: str) -> bool:
        """True while the execution is registered here (its code runs or is about to)."""
        with self._lock:
            return execution_id in self._live

    def cancelled(self, execution_id: str | None) -> bool:
        if execution_id is None:
            return False
        with self._lock:
            return execution_id in self._asked

    def cancel(self, execution_id: str) -> bool:
        """Stop the execution; True when it is running here (else the cancel is remembered)."""
        now = time.monotonic()
        with self._lock:
            for old in [k for k, t in self._asked.items() if now - t > REMEMBER_S and k not in self._live]:
                del self._asked[old]
            self._asked[execution_id] = now
            running = execution_id in self._live
            stop = self._live.get(execution_id)
        if stop is not None:
            stop()
        return running
