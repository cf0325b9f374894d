"""sandbox/egress/mux.py: frames, streams both ways, half-close, reset, flow control and a peer
that breaks the rules. The two ends talk over a real socketpair (as the host's unix socket to
QEMU does), each with its reading thread."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from sandbox.egress import forwarder, mux
from tests.helpers.streams import close_all, echo_reversed, read_all


def test_frames_decode_whole_however_the_bytes_are_cut():
    data = (mux.encode(1, mux.OPEN) + mux.encode(1, mux.DATA, b"hello")
            + mux.encode(7, mux.WINDOW, (1234).to_bytes(4, "big")) + mux.encode(1, mux.EOF))
    dec = mux.Decoder()
    got = []
    for i in range(len(data)):
        got += dec.feed(data[i:i + 1])
    assert got == [(1, mux.OPEN, b""), (1, mux.DATA, b"hello"), (7, mux.WINDOW, b"\x00\x00\x04\xd2"),
                   (1, mux.EOF, b"")]


def test_a_bad_header_is_an_error():
    with pytest.raises(mux.MuxError, match="kind"):
        mux.Decoder().feed(mux.HEADER.pack(1, 99, 0))
    with pytest.raises(mux.MuxError, match="over the limit"):
        mux.Decoder().feed(mux.HEADER.pack(1, mux.DATA, mux.MAX_PAYLOAD + 1))


class Pair:
    """A guest end (opens streams) and a host end (echo, upper-cased, or a callback per stream)."""

    def __init__(self, on_open=None, max_streams=256):
        self.g_sock, self.h_sock = socket.socketpair()
        self.opened: list[mux.Stream] = []

        def accept(st):
            self.opened.append(st)
            if on_open is not None:
                threading.Thread(target=on_open, args=(st,), daemon=True).start()

        self.guest = mux.Mux(lambda: self.g_sock.recv(1 << 16), self.g_sock.sendall)
        self.host = mux.Mux(lambda: self.h_sock.recv(1 << 16), self.h_sock.sendall,
                            on_open=accept, max_streams=max_streams)
        for m in (self.guest, self.host):
            threading.Thread(target=m.run, daemon=True).start()

    def close(self):
        close_all(self.g_sock, self.h_sock)


def test_streams_carry_bytes_both_ways_with_half_close_and_many_at_once():
    p = Pair(on_open=echo_reversed)
    try:
        payloads = [bytes([i]) * (i * 100_000 + 1) for i in range(6)]   # up to 3x the window
        results = [None] * len(payloads)

        def client(i):
            st = p.guest.open()
            st.sendall(payloads[i])
            st.shutdown(socket.SHUT_WR)
            results[i] = read_all(st)
            st.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(payloads))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [x[::-1] for x in payloads]
        deadline = time.monotonic() + 5
        while (p.guest.streams() or p.host.streams()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.guest.streams() == p.host.streams() == 0     # finished streams are forgotten
    finally:
        p.close()


def test_a_slow_reader_holds_back_only_its_own_stream():
    release, done = threading.Event(), threading.Event()

    def slow_then_read(st):
        release.wait(30)
        done.n = len(read_all(st))
        st.close()
        done.set()

    p = Pair(on_open=lambda st: (slow_then_read if len(p.opened) == 1 else echo_reversed)(st))
    try:
        slow = p.guest.open()
        sent = threading.Event()

        def flood():
            slow.sendall(b"x" * (3 * mux.WINDOW_BYTES))
            sent.set()

        threading.Thread(target=flood, daemon=True).start()
        time.sleep(0.5)
        assert not sent.is_set()                       # blocked by the window, not buffered
        host_slow = p.opened[0]
        assert host_slow._buffered <= mux.WINDOW_BYTES
        fast = p.guest.open()                           # another stream still flows
        fast.sendall(b"abc")
        fast.shutdown(socket.SHUT_WR)
        assert read_all(fast) == b"cba"
        release.set()
        assert sent.wait(10)
        slow.shutdown(socket.SHUT_WR)
        assert done.wait(10) and done.n == 3 * mux.WINDOW_BYTES
    finally:
        p.close()


def test_data_past_the_window_resets_the_stream_and_the_channel_goes_on():
    p = Pair(on_open=lambda st: None if len(p.opened) == 1 else echo_reversed(st))
    try:
        rogue = p.guest.open()   # its host end reads nothing: no credit comes back
        # write frames straight to the channel, ignoring the window the host granted
        for _ in range(mux.WINDOW_BYTES // mux.MAX_PAYLOAD + 1):
            p.guest.send(mux.encode(rogue.sid, mux.DATA, b"r" * mux.MAX_PAYLOAD))
        with pytest.raises(ConnectionResetError):
            rogue.recv(10)
        good = p.guest.open()
        good.sendall(b"still fine")
        good.shutdown(socket.SHUT_WR)
        assert read_all(good) == b"enif llits"
    finally:
        p.close()


def test_over_max_streams_an_open_is_reset_and_a_lost_channel_resets_every_stream():
    p = Pair(on_open=lambda st: None, max_streams=2)
    try:
        a, b, c = p.guest.open(), p.guest.open(), p.guest.open()
        with pytest.raises(ConnectionResetError):
            c.recv(1)
        p.h_sock.shutdown(socket.SHUT_RDWR)            # the host end goes away
        for st in (a, b):
            with pytest.raises(ConnectionResetError):
                st.recv(1)
            with pytest.raises(BrokenPipeError):
                st.sendall(b"x")
    finally:
        p.close()


def test_the_forwarder_relays_a_tcp_client_over_a_stream():
    """The guest's arrangement on loopback: forwarder -> mux stream -> host side -> a TCP server."""
    server = socket.create_server(("127.0.0.1", 0))

    def upper_server():
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    threading.Thread(target=upper_server, daemon=True).start()

    def to_server(st):
        up = socket.create_connection(server.getsockname())
        forwarder.relay(st, up)

    p = Pair(on_open=to_server)
    listener = forwarder.start(p.guest.open, ("127.0.0.1", 0))
    try:
        c = socket.create_connection(listener.getsockname(), timeout=10)
        payload = b"abc" * 500_000
        threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)), daemon=True).start()
        got = bytearray()
        while data := c.recv(1 << 16):
            got += data
        assert bytes(got) == payload.upper()
    finally:
        listener.close()
        server.close()
        p.close()
