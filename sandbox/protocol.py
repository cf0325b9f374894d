"""Length-prefixed JSON frames between the host and the guest agent (stdlib only).

Shared by the host (sandbox.libvirt) and the guest agent, which gets a copy of this file in
the guest image. Wire format of one frame:

    b"SWF1" | uint32 big-endian payload length | payload (UTF-8 JSON object)

In the guest both agent processes write to the channel: the worker every answer while it
lives, the supervisor the "partial" answer while the code runs and every answer once the worker
died (see sandbox/guest/agent.py). User code's stdout and stderr go to pipes that the
agent reads with caps and then ships *inside* a JSON payload, so no text a program prints can
ever be taken for a frame boundary or a result.
"""
from __future__ import annotations

import json
import os
import select
import struct
import time

CHANNEL_NAME = "org.stepwell.agent.0"  # the virtio-serial port's name (domain XML <target name>)
EGRESS_CHANNEL_NAME = "org.stepwell.egress.0"  # the second port: code egress (sandbox/egress/mux.py)
MAGIC = b"SWF1"
HEADER = struct.Struct(">4sI")
MAX_FRAME = 256 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent bytes that are not a well-formed frame."""


class ChannelClosed(ProtocolError):
    """The peer closed its end of the channel."""


class FrameTimeout(ProtocolError):
    """No complete frame arrived before the deadline."""


def encode(message: dict) -> bytes:
    """One frame carrying `message` (a JSON object)."""
    if not isinstance(message, dict):
        raise TypeError("a frame carries a JSON object")
    return frame(json.dumps(message, separators=(",", ":"), allow_nan=False).encode())


def frame(payload: bytes) -> bytes:
    """One frame around an already encoded JSON object."""
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(MAGIC, len(payload)) + payload


class FrameDecoder:
    """Incremental decoder: feed() bytes as they arrive, then take complete messages."""

    def __init__(self, max_frame: int = MAX_FRAME, check=None):
        self._buf = bytearray()
        self._max = max_frame
        self._check = check  # called with each payload before parsing; raises ValueError

    def feed(self, data: bytes) -> list[dict]:
        self._buf += data
        out: list[dict] = []
        while True:
            if len(self._buf) < HEADER.size:
                return out
            magic, length = HEADER.unpack_from(self._buf)
            if magic != MAGIC:
                raise ProtocolError(f"bad frame magic {bytes(magic)!r}")
            if length > self._max:
                raise ProtocolError(f"frame of {length} bytes exceeds {self._max}")
            end = HEADER.size + length
            if len(self._buf) < end:
                return out
            payload = bytes(self._buf[HEADER.size:end])
            del self._buf[:end]
            if self._check is not None:
                try:
                    self._check(payload)
                except ValueError as exc:
                    raise ProtocolError(str(exc)) from None
            try:
                msg = json.loads(payload)
            except ValueError as exc:
                raise ProtocolError(f"frame payload is not JSON: {exc}") from None
            except RecursionError:
                raise ProtocolError("frame payload is nested too deeply") from None
            if not isinstance(msg, dict):
                raise ProtocolError("frame payload is not a JSON object")
            out.append(msg)

    @property
    def pending(self) -> int:
        return len(self._buf)


class FdChannel:
    """Frames over a file descriptor (a socket or the guest's virtio-serial port).

    recv() waits with an optional deadline (time.monotonic() based) and returns one message.
    """

    def __init__(self, fd: int, max_frame: int = MAX_FRAME, read_chunk: int = 1 << 20,
                 check=None):
        self.fd = fd
        self._chunk = read_chunk
        self._dec = FrameDecoder(max_frame, check)
        self._ready: list[dict] = []

    def send(self, message: dict) -> None:
        write_all(self.fd, encode(message))

    def recv(self, deadline: float | None = None) -> dict:
        while not self._ready:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FrameTimeout("no frame before the deadline")
                r, _, _ = select.select([self.fd], [], [], left)
                if not r:
                    raise FrameTimeout("no frame before the deadline")
            try:
                data = os.read(self.fd, self._chunk)
            except BlockingIOError:
                select.select([self.fd], [], [], 0.05)
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                raise ChannelClosed("peer closed the channel")
            self._ready.extend(self._dec.feed(data))
        return self._ready.pop(0)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]
