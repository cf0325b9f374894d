"""Live output of a running code step: what the sandbox streams (sandbox/streaming.py) becomes
`step.output` events (engine.events.step_output) while the step runs.

The sandbox calls `add(stdout, stderr)` from its own thread; the step's waiting loop calls
`pump()`, which stores one event at most every INTERVAL_S with what arrived since the last one
(so the database sees a bounded rate whatever the code prints). All events of a step together
hold at most MAX_BYTES; after that one event says the rest comes with the step's result.
`text()` is everything received, for a step that ends before the sandbox answers (a cancel).
With `whole_lines` (a run with secrets: the emitter masks them) only complete lines go out
before the final pump, so that no secret is split across two events where masking misses it.
"""
from __future__ import annotations

import threading
import time

INTERVAL_S = 0.5
MAX_BYTES = 256 * 1024


class LiveOutput:
    def __init__(self, emit, interval: float = INTERVAL_S, max_bytes: int = MAX_BYTES,
                 whole_lines: bool = False):
        self.emit = emit                 # emit(stdout: str, stderr: str, truncated: bool)
        self.whole_lines = whole_lines
        self.interval = interval
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._new = ["", ""]
        self._all = ["", ""]
        self._sent_bytes = 0
        self._cut = False
        self._last = 0.0

    def add(self, stdout: str, stderr: str) -> None:
        with self._lock:
            self._new[0] += stdout
            self._new[1] += stderr
            self._all[0] += stdout
            self._all[1] += stderr

    def text(self) -> tuple[str, str]:
        with self._lock:
            return self._all[0], self._all[1]

    def pump(self, force: bool = False) -> None:
        """Emit what arrived since the last event, when INTERVAL_S has passed (or `force`)."""
        if self._cut or (not force and time.monotonic() - self._last < self.interval):
            return
        with self._lock:
            out, err = self._new
            self._new = ["", ""]
            if self.whole_lines and not force:
                keep = []
                for i, text in enumerate((out, err)):
                    cut = text.rfind("\n") + 1
                    keep.append(text[cut:])
                    self._new[i] = text[cut:]
                out, err = out[:len(out) - len(keep[0])], err[:len(err) - len(keep[1])]
        if not out and not err:
            return
        self._last = time.monotonic()
        room = self.max_bytes - self._sent_bytes
        size = len(out.encode()) + len(err.encode())
        truncated = size > room
        if truncated:
            out = out.encode()[:room].decode("utf-8", "ignore")
            err = err.encode()[:max(room - len(out.encode()), 0)].decode("utf-8", "ignore")
            self._cut = True
        self._sent_bytes += len(out.encode()) + len(err.encode())
        self.emit(out, err, truncated)
