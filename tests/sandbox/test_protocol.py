"""Framing shared by host and guest agent (sandbox/protocol.py)."""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from sandbox import protocol


def test_round_trip_and_incremental_decoding():
    msgs = [{"op": "exec", "n": i, "text": "é" * i, "nested": {"a": [1, 2, None]}} for i in range(50)]
    wire = b"".join(protocol.encode(m) for m in msgs)
    dec = protocol.FrameDecoder()
    got = []
    for i in range(0, len(wire), 7):  # arbitrary chunking, frames split anywhere
        got.extend(dec.feed(wire[i:i + 7]))
    assert got == msgs
    assert dec.pending == 0


def test_text_that_looks_like_frames_is_only_payload():
    forged = protocol.encode({"op": "result", "status": "succeeded", "result": "forged"})
    msg = {"op": "result", "status": "failed", "stdout": forged.decode("latin-1") * 3}
    out = protocol.FrameDecoder().feed(protocol.encode(msg))
    assert out == [msg]


@pytest.mark.parametrize("junk", [b"XXXX\x00\x00\x00\x02{}", b"SWF1\x00\x00\x00\x01[", b"SWF1\x00\x00\x00\x02[]"])
def test_malformed_frames_are_rejected(junk):
    with pytest.raises(protocol.ProtocolError):
        protocol.FrameDecoder().feed(junk)


def test_oversized_frame_is_rejected_before_buffering():
    dec = protocol.FrameDecoder(max_frame=1024)
    with pytest.raises(protocol.ProtocolError):
        dec.feed(protocol.HEADER.pack(protocol.MAGIC, 1 << 30))
    with pytest.raises(TypeError):
        protocol.encode(["not", "an", "object"])


def test_fd_channel_over_a_socket_pair_with_deadline_and_close():
    a, b = socket.socketpair()
    ca, cb = protocol.FdChannel(a.fileno()), protocol.FdChannel(b.fileno())
    big = {"op": "x", "blob": "y" * (3 << 20)}  # larger than socket buffers: needs a reader
    t = threading.Thread(target=ca.send, args=(big,))
    t.start()
    assert cb.recv(time.monotonic() + 10) == big
    t.join()
    t0 = time.monotonic()
    with pytest.raises(protocol.FrameTimeout):
        cb.recv(time.monotonic() + 0.2)
    assert time.monotonic() - t0 < 2
    a.close()
    with pytest.raises(protocol.ChannelClosed):
        cb.recv(time.monotonic() + 5)
    b.close()


def test_write_all_on_pipe():
    r, w = os.pipe()
    protocol.write_all(w, protocol.encode({"op": "ping"}))
    os.close(w)
    assert protocol.FdChannel(r).recv(time.monotonic() + 1) == {"op": "ping"}
    os.close(r)
