"""Live output of a running execution: what the code printed since the last batch, handed to the
caller's `on_output(stdout, stderr)` while the code still runs.

Both drivers feed an OutputStream: the process driver with the bytes it reads from the pipes
(`feed`), the libvirt driver with the output so far that the guest agent's "partial" answers
carry (`feed_total`). The stream calls `on_output` at most every INTERVAL_S with the new text
(UTF-8, a character split across reads waits for its end), each batch at most CHUNK_MAX bytes
per stream, all batches together at most the request's stdout/stderr caps. A callback that
raises is dropped: live output never fails an execution. The final result still carries the
whole (capped) output; live batches are a preview of it.

`attached(on_output)` makes a callback the current thread's for the length of an execution
(the libvirt driver's session reads it with `current()`).
"""
from __future__ import annotations

import codecs
import contextlib
import logging
import threading
import time

log = logging.getLogger("sandbox.streaming")

INTERVAL_S = 0.3          # at most one batch per interval
PARTIAL_INTERVAL_S = 0.5  # libvirt: how often the host asks the guest for its output so far
CHUNK_MAX = 64 * 1024     # bytes per stream per batch

_local = threading.local()


class OutputStream:
    """Batches new stdout/stderr text for `on_output(stdout: str, stderr: str)`."""

    def __init__(self, on_output, stdout_cap: int, stderr_cap: int, interval: float = INTERVAL_S):
        self.on_output = on_output
        self.interval = interval
        self._caps = {"out": int(stdout_cap), "err": int(stderr_cap)}
        self._budget = dict(self._caps)
        self._pending = {"out": "", "err": ""}
        self._seen = {"out": 0, "err": 0}     # feed_total: characters already taken
        self._decoders = {k: codecs.getincrementaldecoder("utf-8")("replace") for k in self._caps}
        self._last = time.monotonic()

    def feed(self, which: str, data: bytes) -> None:
        """New bytes of stream `which` ("out" or "err")."""
        if self.on_output is None or self._budget[which] <= 0:
            return
        self._add(which, self._decoders[which].decode(data[: self._budget[which] + 4]))

    def feed_total(self, stdout: str, stderr: str) -> None:
        """The whole output so far (each call a longer prefix of the same text)."""
        if self.on_output is None:
            return
        for which, text in (("out", stdout), ("err", stderr)):
            if not isinstance(text, str):
                continue
            new = text[self._seen[which]:]
            self._seen[which] = max(self._seen[which], len(text))
            if new:
                self._add(which, new)

    def _add(self, which: str, text: str) -> None:
        room = self._budget[which]
        data = text.encode()
        if len(data) > room:
            text = data[:room].decode("utf-8", "ignore")
            data = text.encode()
        self._budget[which] -= len(data)
        self._pending[which] += text

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval

    def tick(self) -> None:
        """Hand over what is pending when the interval has passed."""
        if self.due():
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if self.on_output is None or not (self._pending["out"] or self._pending["err"]):
            return
        batch = {}
        for which in ("out", "err"):
            data = self._pending[which].encode()
            head = data[:CHUNK_MAX].decode("utf-8", "ignore")
            batch[which] = head
            self._pending[which] = self._pending[which][len(head):]
        try:
            self.on_output(batch["out"], batch["err"])
        except Exception:  # noqa: BLE001 - a listener's fault is not the execution's
            log.exception("live output callback failed; no more live output for this execution")
            self.on_output = None


@contextlib.contextmanager
def attached(on_output):
    """Make `on_output` the current thread's live output callback (None: none) for the block."""
    previous = getattr(_local, "on_output", None)
    _local.on_output = on_output
    try:
        yield
    finally:
        _local.on_output = previous


def current():
    """The live output callback attached to this thread, or None."""
    return getattr(_local, "on_output", None)
