"""sandbox/egress/muxloop.py, the libvirt guest's single-threaded forwarder, against the host's
mux.Mux over a real socketpair (the port) and real TCP clients: many connections at once with
half-close and more than a window each way, a slow client holding back only its own stream,
a client that sends nothing, a host that resets a stream, and a host end that is not there."""
from __future__ import annotations

import socket
import threading
import time

from sandbox.egress import mux, muxloop
from tests.helpers.streams import close_all, echo_reversed, read_all


class Guest:
    """The loop on one end of a socketpair, a host Mux on the other; `on_open(stream)` runs in a
    thread of its own for every stream the loop opens."""

    def __init__(self, on_open, connected=None):
        self.g_sock, self.h_sock = socket.socketpair()
        self.g_sock.setblocking(False)
        self.opened: list[mux.Stream] = []

        def accept(st):
            self.opened.append(st)
            threading.Thread(target=on_open, args=(st,), daemon=True).start()

        self.host = mux.Mux(lambda: self.h_sock.recv(1 << 16), self.h_sock.sendall, on_open=accept)
        threading.Thread(target=self.host.run, daemon=True).start()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.loop = muxloop.Loop(self.listener, self.g_sock.fileno(), connected=connected)
        threading.Thread(target=self.loop.run, daemon=True).start()

    def connect(self) -> socket.socket:
        return socket.create_connection(self.listener.getsockname(), timeout=20)

    def close(self):
        self.listener.close()
        close_all(self.g_sock, self.h_sock)


def test_many_connections_carry_more_than_a_window_both_ways_with_half_close():
    g = Guest(echo_reversed)
    try:
        payloads = [bytes([65 + i]) * (i * 700_000 + 1) + b"|end" for i in range(5)]   # up to 1.4 windows
        results = [None] * len(payloads)

        def client(i):
            c = g.connect()
            threading.Thread(target=lambda: (c.sendall(payloads[i]), c.shutdown(socket.SHUT_WR)),
                             daemon=True).start()
            results[i] = read_all(c)
            c.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(payloads))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [p[::-1] for p in payloads]
        deadline = time.monotonic() + 10
        while (g.loop.conns or g.host.streams()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert g.loop.conns == {} and g.host.streams() == 0    # finished streams are forgotten
        assert len(g.opened) == len(payloads)
    finally:
        g.close()


def test_a_slow_client_holds_back_only_its_own_stream_and_credit_flows_back():
    big = 12 * mux.WINDOW_BYTES           # more than the window and the kernel's socket buffers
    sent = threading.Event()

    def serve(st):
        head = st.recv(16)
        if head == b"big":
            st.sendall(b"y" * big)        # blocks on the window until the client reads
            sent.set()
        else:
            st.sendall(head.upper())
        st.shutdown(socket.SHUT_WR)
        st.close()

    g = Guest(serve)
    try:
        slow = g.connect()
        slow.sendall(b"big")
        slow.shutdown(socket.SHUT_WR)     # both ends half-closed: the host's close is no reset
        time.sleep(0.5)
        assert not sent.is_set()                    # the window holds the host back
        assert all(c.buffered <= mux.WINDOW_BYTES for c in list(g.loop.conns.values()))
        fast = g.connect()
        fast.sendall(b"quick")
        fast.shutdown(socket.SHUT_WR)
        assert fast.recv(16) == b"QUICK"
        assert len(read_all(slow)) == big
    finally:
        g.close()


def test_a_silent_client_opens_nothing_and_a_reset_from_the_host_closes_the_client():
    g = Guest(lambda st: st.reset())
    try:
        silent = g.connect()
        silent.close()
        c = g.connect()
        c.sendall(b"hello")
        assert read_all(c) == b""          # the host reset it: the client sees the end
        time.sleep(0.2)
        assert len(g.opened) == 1          # the silent one never reached the host
    finally:
        g.close()


def test_without_the_host_end_a_client_gets_502_at_once():
    g = Guest(echo_reversed, connected=lambda: False)
    try:
        c = g.connect()
        t = time.monotonic()
        c.sendall(b"GET http://example.com/ HTTP/1.1\r\n\r\n")
        answer = read_all(c)
        assert answer.startswith(b"HTTP/1.1 502 Bad Gateway") and b"not reachable" in answer
        assert time.monotonic() - t < 5
        assert g.opened == []
    finally:
        g.close()
