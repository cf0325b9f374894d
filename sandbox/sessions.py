"""Stateful sessions on the host: which sandbox (a VM, or a process) is held for which session
key, shared by the drivers.

An execution with `isolation == "session"` names its session with `reuse_key`. `acquire(key)`
gives it the sandbox held for the key (the execution then runs in it: "resumed"), or reserves
the key so the caller starts a new one ("new"). While an execution runs, the key is busy: a
second execution with the same key waits for it (up to its own deadline), so one key never has
two sandboxes. `release(key, sandbox, keep, idle_s)` holds the sandbox again or destroys it
(`retire`). A background thread destroys sandboxes idle for longer than the `session_idle_s` of
the execution that last used them; `end(key)` destroys one at once (after the execution in
flight, if any). At most `max_sessions` keys are held (SANDBOX_SESSION_MAX, 32): a new session
beyond that is refused (SessionError "no free session slot"), a live one is never evicted.
There is no limit on the executions of one session.
"""
from __future__ import annotations

import os
import threading
import time

from sandbox.contract import ExecutionResult, SandboxError, Status

DEFAULT_MAX_SESSIONS = 32
KEEP = (Status.SUCCEEDED, Status.FAILED)
REAP_TICK_S = 0.25


class SessionError(SandboxError):
    """A session execution that cannot get its sandbox (no free slot, or the key stayed busy)."""


def max_sessions_from_env() -> int:
    try:
        return max(1, int(os.environ.get("SANDBOX_SESSION_MAX", DEFAULT_MAX_SESSIONS)))
    except ValueError:
        return DEFAULT_MAX_SESSIONS


def keepable(result: ExecutionResult | None) -> bool:
    """The session's state survived the execution: it ended normally and the guest says the
    session's process still lives."""
    return (result is not None and result.status in KEEP
            and result.metadata.get("session_alive", True) is not False)


class _Entry:
    __slots__ = ("sandbox", "busy", "last", "idle_s", "ending", "calls")

    def __init__(self):
        self.sandbox = None
        self.busy = True
        self.last = time.monotonic()
        self.idle_s = 300.0
        self.ending = False
        self.calls = 0


class SessionStore:
    """Sandboxes held per session key; `retire(sandbox)` destroys one."""

    def __init__(self, retire, max_sessions: int | None = None, name: str = "sessions"):
        self._retire = retire
        self.max_sessions = max_sessions or max_sessions_from_env()
        self._entries: dict[str, _Entry] = {}
        self._cv = threading.Condition()
        self._closed = False
        self.stats = {"started": 0, "resumed": 0, "ended": 0, "destroyed_idle": 0,
                      "destroyed_failed": 0, "refused_full": 0}
        self._reaper = threading.Thread(target=self._reap_loop, name=f"{name}-reaper", daemon=True)
        self._reaper.start()

    def acquire(self, key: str, deadline: float):
        """The sandbox held for `key` (now busy), or None: the key is reserved for a new one
        the caller starts and hands to release(). SessionError when the key stays busy until
        `deadline` (monotonic) or no slot is free for a new session."""
        with self._cv:
            while True:
                if self._closed:
                    raise SessionError("the sandbox is shutting down")
                e = self._entries.get(key)
                if e is None:
                    if len(self._entries) >= self.max_sessions:
                        self.stats["refused_full"] += 1
                        raise SessionError(
                            f"no free session slot: {self.max_sessions} sessions are held "
                            "(SANDBOX_SESSION_MAX); end one or wait for one to expire")
                    e = self._entries[key] = _Entry()
                    self.stats["started"] += 1
                    return None
                if not e.busy:
                    e.busy = True
                    self.stats["resumed"] += 1
                    return e.sandbox
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SessionError("the session is busy with another execution (waited "
                                       "until this execution's timeout)")
                self._cv.wait(left)

    def release(self, key: str, sandbox, keep: bool, idle_s: float) -> bool:
        """The execution holding `key` ended: hold `sandbox` for the key again (keep) or
        destroy it and forget the key. True when held."""
        with self._cv:
            e = self._entries.get(key)
            held = keep and sandbox is not None and e is not None and not e.ending and not self._closed
            if held:
                e.sandbox, e.busy, e.last, e.idle_s = sandbox, False, time.monotonic(), float(idle_s)
                e.calls += 1
            else:
                if e is not None:
                    del self._entries[key]
                    if e.ending:
                        self.stats["ended"] += 1
                    elif sandbox is not None:
                        self.stats["destroyed_failed"] += 1
            self._cv.notify_all()
        if not held and sandbox is not None:
            self._retire(sandbox)
        return held

    def end(self, key: str) -> bool:
        """Destroy the key's sandbox (an execution in flight finishes first); False when no
        session has that key."""
        with self._cv:
            e = self._entries.get(key)
            if e is None:
                return False
            if e.busy:
                e.ending = True
                return True
            del self._entries[key]
            self.stats["ended"] += 1
            self._cv.notify_all()
        self._retire(e.sandbox)
        return True

    def busy_sandbox(self, key: str):
        """The sandbox of a session whose execution is in flight (None otherwise)."""
        with self._cv:
            e = self._entries.get(key)
            return e.sandbox if e is not None and e.busy else None

    def reap(self, now: float | None = None) -> int:
        """Destroy the sandboxes idle for longer than their idle_s; how many."""
        now = time.monotonic() if now is None else now
        out = []
        with self._cv:
            for key, e in list(self._entries.items()):
                if not e.busy and now - e.last >= e.idle_s:
                    del self._entries[key]
                    out.append(e.sandbox)
            self.stats["destroyed_idle"] += len(out)
            if out:
                self._cv.notify_all()
        for sandbox in out:
            self._retire(sandbox)
        return len(out)

    def _reap_loop(self) -> None:
        while not self._closed:
            time.sleep(REAP_TICK_S)
            try:
                self.reap()
            except Exception:  # noqa: BLE001 - keep reaping
                pass

    def counts(self) -> dict:
        with self._cv:
            held = len(self._entries)
            busy = sum(1 for e in self._entries.values() if e.busy)
            return {"held": held, "busy": busy, "idle": held - busy, "max": self.max_sessions,
                    **self.stats}

    def close(self) -> list:
        """Stop holding sandboxes; the idle ones (for the caller to destroy). Busy ones are
        destroyed when their execution ends."""
        with self._cv:
            self._closed = True
            out = [e.sandbox for e in self._entries.values() if not e.busy and e.sandbox is not None]
            self._entries = {k: e for k, e in self._entries.items() if e.busy}
            self._cv.notify_all()
        return out
