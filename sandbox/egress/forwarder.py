"""The in-sandbox end of code egress: a TCP listener on 127.0.0.1:3128 that relays each connection,
byte for byte, to a stream opened to the host's egress proxy.

It decides nothing: the host proxy (sandbox/egress/proxy.py) applies the policy. Standard library
only, Python 3.11, because it also runs inside the VM guest. `open_upstream()` returns a
connected stream: for the process driver a unix socket bound into the sandbox
(`connect_unix(path)`); the libvirt guest passes a function that opens a multiplexed stream over
its virtio-serial port. A stream needs `recv`, `sendall`, `shutdown` and `close`, like a socket.

    python3 -m sandbox.egress.forwarder /path/to/proxy.sock [--port 3128]

Each direction of a connection is one thread; between sockets the kernel moves the bytes (splice),
so no Python work is done per byte; end of file on one side is passed on as a half-close.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import threading

DEFAULT_LISTEN = ("127.0.0.1", 3128)
PROXY_URL = "http://127.0.0.1:3128"
# The environment code runs with, so that urllib, requests, httpx and pip use the forwarder.
PROXY_ENV = {"HTTP_PROXY": PROXY_URL, "HTTPS_PROXY": PROXY_URL, "http_proxy": PROXY_URL,
             "https_proxy": PROXY_URL, "NO_PROXY": "", "no_proxy": ""}
CHUNK = 1024 * 1024


def connect_unix(path: str):
    """An `open_upstream` for a unix socket path (the process driver's host proxy)."""
    def open_upstream():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except BaseException:
            s.close()
            raise
        return s
    return open_upstream


def _shut(stream, how) -> None:
    try:
        stream.shutdown(how)
    except (OSError, AttributeError):
        pass


def copy_stream(src, dst, on_bytes=None) -> None:
    """Copy src to dst until end of file. Between two file descriptors (sockets) the kernel moves
    the bytes (splice through a pipe, no copy into Python); other streams use recv/sendall.
    `on_bytes(n)` is called before n bytes are passed on (it may raise to stop the copy)."""
    if _SPLICE and hasattr(src, "fileno") and hasattr(dst, "fileno"):
        try:
            _splice_copy(src.fileno(), dst.fileno(), on_bytes)
            return
        except _NoSplice:
            pass
    while True:
        data = src.recv(CHUNK)
        if not data:
            return
        if on_bytes is not None:
            on_bytes(len(data))
        dst.sendall(data)


class _NoSplice(Exception):
    """splice() does not work for this pair of descriptors (nothing was moved yet)."""


_SPLICE = hasattr(os, "splice")
_F_SETPIPE_SZ = 1031


def _splice_copy(src_fd: int, dst_fd: int, on_bytes) -> None:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, CHUNK)
        except OSError:
            pass
        first = True
        while True:
            try:
                n = os.splice(src_fd, w, CHUNK)
            except OSError as exc:
                if first and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise _NoSplice() from None
                raise
            first = False
            if n == 0:
                return
            if on_bytes is not None:
                on_bytes(n)
            while n:
                n -= os.splice(r, dst_fd, n)
    finally:
        os.close(r)
        os.close(w)


def _pump(src, dst, done: threading.Event | None) -> None:
    """Copy src to dst until end of file or an error, then half-close dst for writing."""
    try:
        copy_stream(src, dst)
    except OSError:
        _shut(src, socket.SHUT_RDWR)
    finally:
        _shut(dst, socket.SHUT_WR)
        if done is not None:
            done.set()


def relay(client, upstream) -> None:
    """Carry bytes both ways between two connected streams until both directions end; close both."""
    done = threading.Event()
    back = threading.Thread(target=_pump, args=(upstream, client, done), daemon=True)
    back.start()
    _pump(client, upstream, None)
    done.wait()
    for s in (client, upstream):
        try:
            s.close()
        except OSError:
            pass


def _serve_one(conn: socket.socket, open_upstream) -> None:
    try:
        upstream = open_upstream()
    except Exception as exc:  # noqa: BLE001 - tell the client, do not hang it
        body = f"the egress proxy is not reachable: {exc}\n".encode()
        try:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass
        conn.close()
        return
    relay(conn, upstream)


def bind_listener(address=DEFAULT_LISTEN) -> socket.socket:
    """The listening socket (bound before the code starts, so its first request finds it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(address)
    s.listen(64)
    return s


def serve_socket(listener: socket.socket, open_upstream) -> None:
    """Accept on `listener` forever (until it is closed), one relay thread per connection."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_one, args=(conn, open_upstream), daemon=True).start()


def serve_from(listener_fd: int, first_fd: int | None, open_upstream) -> None:
    """Serve a listening socket given as a descriptor, starting with an already accepted
    connection `first_fd` (the harness binds and accepts with the bare `_socket` module and only
    imports this module when code first connects, to keep start-up cheap)."""
    listener = socket.socket(fileno=listener_fd)
    if first_fd is not None:
        conn = socket.socket(fileno=first_fd)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_one, args=(conn, open_upstream), daemon=True).start()
    serve_socket(listener, open_upstream)


def serve(listen=DEFAULT_LISTEN, open_upstream=None) -> None:
    """Listen on `listen` (host, port) and relay every connection to `open_upstream()`; blocks."""
    if open_upstream is None:
        raise ValueError("open_upstream is required")
    serve_socket(bind_listener(listen), open_upstream)


def start(open_upstream, address=DEFAULT_LISTEN) -> socket.socket:
    """Bind now and serve from a daemon thread; returns the listener (close it to stop)."""
    listener = bind_listener(address)
    threading.Thread(target=serve_socket, args=(listener, open_upstream), daemon=True,
                     name="egress-forwarder").start()
    return listener


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    port = DEFAULT_LISTEN[1]
    if "--port" in argv:
        i = argv.index("--port")
        port = int(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) != 1:
        sys.exit("usage: python3 -m sandbox.egress.forwarder SOCKET [--port 3128]")
    serve(("127.0.0.1", port), connect_unix(argv[0]))


if __name__ == "__main__":
    main()
