"""Byte-stream helpers for the egress multiplexer tests: read a stream to its end, an echo that
answers reversed after the peer's half-close, and closing socket pairs whatever their state."""
from __future__ import annotations

import socket


def read_all(st) -> bytes:
    """Everything `st` (a socket or a mux stream) delivers until its end."""
    out = bytearray()
    while data := st.recv(1 << 16):
        out += data
    return bytes(out)


def echo_reversed(st) -> None:
    """Read until the peer's half-close, send it back reversed, then end the stream."""
    data = read_all(st)
    st.sendall(data[::-1])
    st.shutdown(socket.SHUT_WR)
    st.close()


def close_all(*socks) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
