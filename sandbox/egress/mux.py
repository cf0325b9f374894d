"""Many byte streams over one ordered byte channel, with flow control: the libvirt guest's egress
port (a second virtio-serial port) carries every connection the in-guest forwarder accepts.

Standard library only (Python 3.11): the guest (sandbox/guest/egress.py) and the host
(sandbox/libvirt/guest.py) share this module.

Frame: a 9-byte header, then the payload.

    stream id (u32, big-endian) | kind (u8) | payload length (u32) | payload

Kinds: OPEN (the guest opens a new stream; ids are the opener's), DATA, EOF (the sender sends no
more data: a half-close), RESET (abort the stream both ways), WINDOW (payload: u32 credit). Each
side may have at most WINDOW_BYTES of DATA per stream that its peer has not handed on yet; the
receiver returns credit with WINDOW frames as its reader consumes, so one slow stream never
blocks the channel and a peer can never make the other buffer more than a window per stream.
A peer that breaks the rules (unknown kind, oversized frame, data past its window) gets the
stream reset; a malformed header ends the channel (`MuxError`).

`Stream` looks like a socket to sandbox/egress/forwarder.relay: recv, sendall, shutdown, close.
"""
from __future__ import annotations

import collections
import socket
import struct
import threading

HEADER = struct.Struct(">IBI")
OPEN, DATA, EOF, RESET, WINDOW = 1, 2, 3, 4, 5
KINDS = {OPEN: "open", DATA: "data", EOF: "eof", RESET: "reset", WINDOW: "window"}
MAX_PAYLOAD = 256 * 1024          # largest DATA frame
WINDOW_BYTES = 2 * 1024 * 1024    # unacknowledged bytes per stream and direction
CREDIT_STEP = WINDOW_BYTES // 4   # return credit once this much was consumed
_CREDIT = struct.Struct(">I")


class MuxError(Exception):
    """The channel carries something that is not a frame: it cannot be read any further."""


def encode(sid: int, kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(sid, kind, len(payload)) + payload


class Decoder:
    """Incremental: feed() bytes as they arrive, get complete (stream id, kind, payload) back."""

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self._buf = bytearray()
        self._max = max_payload

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        self._buf += data
        out = []
        pos, buf = 0, self._buf
        with memoryview(buf) as view:     # one copy per payload, not two
            while len(buf) - pos >= HEADER.size:
                sid, kind, n = HEADER.unpack_from(buf, pos)
                if kind not in KINDS:
                    raise MuxError(f"unknown frame kind {kind}")
                if n > self._max:
                    raise MuxError(f"frame of {n} bytes is over the limit of {self._max}")
                end = pos + HEADER.size + n
                if end > len(buf):
                    break
                out.append((sid, kind, bytes(view[pos + HEADER.size:end])))
                pos = end
        if pos:
            del buf[:pos]
        return out


class Stream:
    """One multiplexed stream; used like a connected socket (blocking)."""

    def __init__(self, mux: "Mux", sid: int):
        self.mux, self.sid = mux, sid
        self._cond = threading.Condition()
        self._chunks: collections.deque = collections.deque()
        self._buffered = 0            # received, not yet read
        self._unacked = 0             # read, credit not yet returned
        self._credit = WINDOW_BYTES   # what we may still send
        self._eof_in = False          # the peer sent EOF
        self._eof_out = False         # we sent EOF
        self._reset = False

    # -- the reading side
    def recv(self, n: int) -> bytes:
        with self._cond:
            while not self._chunks and not self._eof_in and not self._reset:
                self._cond.wait()
            if self._reset and not self._chunks:
                raise ConnectionResetError(f"egress stream {self.sid} was reset")
            if not self._chunks:
                return b""
            data = self._chunks.popleft()
            if len(data) > n:
                self._chunks.appendleft(data[n:])
                data = data[:n]
            self._buffered -= len(data)
            self._unacked += len(data)
            credit = 0
            if self._unacked >= CREDIT_STEP:
                credit, self._unacked = self._unacked, 0
        if credit:
            self.mux.send(encode(self.sid, WINDOW, _CREDIT.pack(credit)))
        return data

    # -- the writing side
    def sendall(self, data) -> None:
        view = memoryview(data)
        while view:
            with self._cond:
                while self._credit <= 0 and not self._reset:
                    self._cond.wait()
                if self._reset or self._eof_out:
                    raise BrokenPipeError(f"egress stream {self.sid} is closed for sending")
                n = min(len(view), self._credit, MAX_PAYLOAD)
                self._credit -= n
            self.mux.send(encode(self.sid, DATA, bytes(view[:n])))
            view = view[n:]

    def shutdown(self, how: int) -> None:
        if how == socket.SHUT_RD:
            return
        if how == socket.SHUT_RDWR:
            self.reset()
            return
        with self._cond:
            if self._eof_out or self._reset:
                return
            self._eof_out = True
        self.mux.send(encode(self.sid, EOF))
        self._maybe_done()

    def close(self) -> None:
        with self._cond:
            done = self._reset or (self._eof_out and self._eof_in)
        if not done:
            self.reset()
        self.mux.forget(self)

    def reset(self, tell_peer: bool = True) -> None:
        with self._cond:
            if self._reset:
                return
            self._reset = True
            self._chunks.clear()
            self._cond.notify_all()
        if tell_peer:
            self.mux.send(encode(self.sid, RESET), quiet=True)
        self.mux.forget(self)

    def _maybe_done(self) -> None:
        with self._cond:
            done = self._eof_out and self._eof_in and not self._chunks
        if done:
            self.mux.forget(self)

    # -- frames from the peer (the mux's reader thread)
    def _on_frame(self, kind: int, payload: bytes) -> None:
        if kind == DATA:
            with self._cond:
                if self._reset:
                    return
                if self._eof_in or self._buffered + len(payload) > WINDOW_BYTES:
                    bad = True
                else:
                    bad = False
                    if payload:
                        self._chunks.append(payload)
                        self._buffered += len(payload)
                        self._cond.notify_all()
            if bad:
                self.reset()
        elif kind == WINDOW and len(payload) == _CREDIT.size:
            with self._cond:
                self._credit = min(self._credit + _CREDIT.unpack(payload)[0], WINDOW_BYTES)
                self._cond.notify_all()
        elif kind == EOF:
            with self._cond:
                self._eof_in = True
                self._cond.notify_all()
        elif kind == RESET:
            self.reset(tell_peer=False)
        else:
            self.reset()


class Mux:
    """One end of the channel. `read()` gives the channel's bytes (b"" when it is gone) and
    `write(data)` writes them all; run() is the reading loop (a thread of the caller's).

    The guest end opens streams (open()); the host end accepts them (`on_open(stream)` is called
    for each, from the reading thread; at most `max_streams` at a time, more are reset)."""

    def __init__(self, read, write, on_open=None, max_streams: int = 256):
        self._read, self._write = read, write
        self._on_open = on_open
        self._max_streams = max_streams
        self._wlock = threading.Lock()
        self._lock = threading.Condition()
        self._streams: dict[int, Stream] = {}
        self._next_id = 1
        self.closed = False

    def open(self) -> Stream:
        with self._lock:
            if self.closed:
                raise ConnectionError("the egress channel is closed")
            sid = self._next_id
            self._next_id = self._next_id % 0xFFFFFFFF + 1
            st = self._streams[sid] = Stream(self, sid)
            self._lock.notify_all()
        try:
            self.send(encode(sid, OPEN))
        except OSError:
            self.forget(st)
            raise
        return st

    def streams(self) -> int:
        with self._lock:
            return len(self._streams)

    def wait_for_streams(self) -> bool:
        """Block until a stream exists (the guest reads its port only then); False once closed."""
        with self._lock:
            while not self._streams and not self.closed:
                self._lock.wait()
            return not self.closed

    def send(self, frame: bytes, quiet: bool = False) -> None:
        try:
            with self._wlock:
                self._write(frame)
        except OSError:
            if not quiet:
                raise

    def forget(self, stream: Stream) -> None:
        with self._lock:
            if self._streams.get(stream.sid) is stream:
                del self._streams[stream.sid]

    def reset_all(self) -> None:
        """The other end went away: every stream ends (its readers and writers wake)."""
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for st in streams:
            st.reset(tell_peer=False)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._lock.notify_all()
        self.reset_all()

    def run(self, once: bool = True) -> None:
        """Read frames until the channel is gone (`once`), or for good (the guest: after the
        host end went away, wait for the next stream and read again)."""
        dec = Decoder()
        while not self.closed:
            if not once and not self.wait_for_streams():
                return
            try:
                data = self._read()
            except OSError:
                data = b""
            if not data:
                self.reset_all()
                dec = Decoder()
                if once:
                    return
                continue
            try:
                frames = dec.feed(data)
            except MuxError:
                self.reset_all()
                if once:
                    return
                dec = Decoder()
                continue
            for sid, kind, payload in frames:
                self._dispatch(sid, kind, payload)

    def _dispatch(self, sid: int, kind: int, payload: bytes) -> None:
        with self._lock:
            st = self._streams.get(sid)
        if kind == OPEN:
            if st is not None or self._on_open is None:
                self.send(encode(sid, RESET), quiet=True)
                return
            with self._lock:
                full = len(self._streams) >= self._max_streams
                if not full:
                    st = self._streams[sid] = Stream(self, sid)
            if full:
                self.send(encode(sid, RESET), quiet=True)
                return
            self._on_open(st)
        elif st is not None:
            st._on_frame(kind, payload)
        elif kind not in (RESET, WINDOW, EOF):
            self.send(encode(sid, RESET), quiet=True)
