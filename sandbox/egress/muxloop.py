"""The libvirt guest's forwarder loop: every connection accepted on the listener carried over one
mux channel (the egress virtio-serial port) by a single thread with poll(), no thread per
connection and no hand-off between threads.

Standard library only (the guest runs it, sandbox/guest/egress.py). The frames and the flow
control are sandbox/egress/mux.py's and the host end is a `mux.Mux`; this is the same protocol,
event-driven. Under QEMU TCG (software emulation) every thread start and wake-up costs a good
part of a millisecond, so the whole path is one thread:

- a stream is opened with the connection's first bytes: OPEN and DATA leave in one write to the
  port (a client that closes without sending anything never reaches the host);
- frames queued in one turn of the loop go out in one write;
- the answer is written to the client as its frames arrive; credit (WINDOW) goes back to the
  host every CREDIT_STEP bytes the client has taken, and a client is read only while the host
  has given credit (and while the port keeps up: at most PORT_BACKLOG bytes wait for it).

When the host end of the port is not connected (a VM restored without it) a new connection gets
a 502 at once, and the port is watched only while a stream exists (its hang-up would otherwise
wake the loop forever).
"""
from __future__ import annotations

import collections
import errno
import os
import select
import socket

from sandbox.egress import mux

PAGE = 4096               # a virtio-serial port buffer: one read() gives one at most...
READ_MAX = 1 << 18        # ...so the port is read with readv() into up to 64 of them at once
PORT_BACKLOG = 1 << 20    # frames waiting for the port before clients are read again
CLIENT_READ = 1 << 16     # bytes read from a client at once (one DATA frame)
DEFER_ACCEPT_S = 2
_RD, _WR = select.POLLIN, select.POLLOUT
_ERR = select.POLLERR | select.POLLHUP | select.POLLNVAL
_BAD_GATEWAY = ("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Connection: close\r\nContent-Length: {n}\r\n\r\n{body}")


class _Conn:
    __slots__ = ("sock", "fd", "sid", "credit", "out", "buffered", "unacked", "eof_in",
                 "eof_out", "mask")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        self.sid = 0                     # 0 until its first bytes open the stream
        self.credit = mux.WINDOW_BYTES   # what we may still send to the host
        self.out: collections.deque = collections.deque()   # to write to the client
        self.buffered = 0                # bytes in `out`
        self.unacked = 0                 # written to the client, credit not yet returned
        self.eof_in = False              # the host sent EOF
        self.eof_out = False             # the client sent EOF (passed on)
        self.mask = 0


class Loop:
    """Serve `listener` (a bound, listening socket) over the channel at `port_fd` (non-blocking;
    a socket works too) until the listener is closed. `connected()` says whether the host end is
    there (default: the port does not report a hang-up)."""

    def __init__(self, listener: socket.socket, port_fd: int, connected=None):
        listener.setblocking(False)
        try:    # wake for a connection once its first bytes are there (clients of a proxy speak first)
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_S)
        except (AttributeError, OSError):
            pass
        self.listener = listener
        self.port = port_fd
        self.connected = connected or self._port_connected
        self.poll = select.poll()
        self.poll.register(listener.fileno(), _RD)
        self.conns: dict[int, _Conn] = {}     # by client fd
        self.streams: dict[int, _Conn] = {}   # by stream id
        self.next_sid = 1
        self.wbuf = bytearray()               # frames for the port
        self.port_mask = 0
        self.paused: set[_Conn] = set()       # not read while the port is behind
        self.dec = mux.Decoder()
        self._rview = memoryview(bytearray(READ_MAX))
        self._iov = [self._rview[i:i + PAGE] for i in range(0, READ_MAX, PAGE)]

    # --- the port ----------------------------------------------------------------------------
    def _port_connected(self) -> bool:
        p = select.poll()
        p.register(self.port, _RD | _WR)
        return not any(ev & select.POLLHUP for _fd, ev in p.poll(0))

    def _watch_port(self) -> None:
        mask = (_RD if self.streams else 0) | (_WR if self.wbuf else 0)
        if mask != self.port_mask:
            if mask and self.port_mask:
                self.poll.modify(self.port, mask)
            elif mask:
                self.poll.register(self.port, mask)
            else:
                self.poll.unregister(self.port)
            self.port_mask = mask

    def _send(self, sid: int, kind: int, payload=b"") -> None:
        self.wbuf += mux.HEADER.pack(sid, kind, len(payload))
        self.wbuf += payload

    def _flush(self) -> None:
        while self.wbuf:
            try:
                n = os.write(self.port, self.wbuf)
            except BlockingIOError:
                break
            except OSError:
                self._port_lost()
                return
            del self.wbuf[:n]
        if self.paused and len(self.wbuf) < PORT_BACKLOG:
            paused, self.paused = self.paused, set()
            for c in paused:
                self._want(c)

    def _read_port(self) -> None:
        try:
            n = os.readv(self.port, self._iov)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        if not n:
            self._port_lost()
            return
        try:
            frames = self.dec.feed(self._rview[:n])
        except mux.MuxError:
            self._port_lost()
            return
        for sid, kind, payload in frames:
            c = self.streams.get(sid)
            if c is None:
                if kind not in (mux.RESET, mux.WINDOW, mux.EOF):
                    self._send(sid, mux.RESET)
                continue
            if kind == mux.DATA:
                if c.eof_in or c.buffered + len(payload) > mux.WINDOW_BYTES:
                    self._reset(c)
                elif payload:
                    c.out.append(payload)
                    c.buffered += len(payload)
                    self._write_client(c)
            elif kind == mux.WINDOW and len(payload) == 4:
                c.credit = min(c.credit + int.from_bytes(payload, "big"), mux.WINDOW_BYTES)
                self._want(c)
            elif kind == mux.EOF:
                c.eof_in = True
                self._write_client(c)
            elif kind == mux.RESET:
                self._close(c)
            else:
                self._reset(c)

    def _port_lost(self) -> None:
        """The host end went away (or spoke garbage): every connection ends."""
        for c in list(self.conns.values()):
            self._close(c)
        self.wbuf.clear()
        self.dec = mux.Decoder()

    # --- connections -------------------------------------------------------------------------
    def _want(self, c: _Conn) -> None:
        mask = _WR if c.out else 0
        if not c.eof_out and c.credit > 0 and c not in self.paused:
            mask |= _RD
        if mask != c.mask:
            self.poll.modify(c.fd, mask)
            c.mask = mask

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.ECONNABORTED, errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                                 errno.ENOMEM):
                    return
                raise
            sock.setblocking(False)
            if not self.connected():
                body = "the egress proxy is not reachable: the host end of the egress channel is not connected\n"
                try:
                    sock.recv(CLIENT_READ)    # the request: closing with it unread would reset
                except OSError:
                    pass
                try:
                    sock.send(_BAD_GATEWAY.format(n=len(body), body=body).encode())
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(sock)
            self.conns[c.fd] = c
            self.poll.register(c.fd, _RD)
            c.mask = _RD
            self._read_client(c)      # the request is usually there already: no second wake-up

    def _read_client(self, c: _Conn) -> None:
        if len(self.wbuf) >= PORT_BACKLOG:
            self.paused.add(c)
            self._want(c)
            return
        try:
            data = c.sock.recv(min(c.credit, CLIENT_READ))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._reset(c)
            return
        if not c.sid:
            if not data:          # closed before a byte: nothing to tell the host
                self._close(c)
                return
            c.sid = self.next_sid
            self.next_sid = self.next_sid % 0xFFFFFFFF + 1
            self.streams[c.sid] = c
            self._send(c.sid, mux.OPEN)
        if data:
            c.credit -= len(data)
            self._send(c.sid, mux.DATA, data)
        else:
            c.eof_out = True
            self._send(c.sid, mux.EOF)
            self._maybe_done(c)
            if c.fd not in self.conns:
                return
        self._want(c)

    def _write_client(self, c: _Conn) -> None:
        sent = 0
        try:
            while c.out:
                chunk = c.out[0]
                n = c.sock.send(chunk)
                sent += n
                if n < len(chunk):
                    c.out[0] = chunk[n:]
                    break
                c.out.popleft()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._reset(c)
            return
        if sent:
            c.buffered -= sent
            c.unacked += sent
            if c.unacked >= mux.CREDIT_STEP:
                self._send(c.sid, mux.WINDOW, c.unacked.to_bytes(4, "big"))
                c.unacked = 0
        if c.eof_in and not c.out:
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._maybe_done(c)
            if c.fd not in self.conns:
                return
        self._want(c)

    def _maybe_done(self, c: _Conn) -> None:
        if c.eof_in and c.eof_out and not c.out:
            self._close(c)

    def _reset(self, c: _Conn) -> None:
        if c.sid:
            self._send(c.sid, mux.RESET)
        self._close(c)

    def _close(self, c: _Conn) -> None:
        if self.conns.pop(c.fd, None) is None:
            return
        self.streams.pop(c.sid, None)
        self.paused.discard(c)
        try:
            self.poll.unregister(c.fd)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        lfd = self.listener.fileno()
        while self.listener.fileno() >= 0:
            self._watch_port()
            events = self.poll.poll()
            for fd, ev in events:
                if fd == lfd:
                    if ev & _ERR and not ev & _RD:
                        return          # the listener was closed
                    self._accept()
                elif fd == self.port:
                    if ev & _RD:
                        self._read_port()
                    elif ev & _ERR:
                        self._port_lost()
                    if ev & _WR:
                        self._flush()
                else:
                    c = self.conns.get(fd)
                    if c is None:
                        continue
                    if ev & _RD and c.mask & _RD:
                        self._read_client(c)
                    if ev & _WR and c.fd in self.conns:
                        self._write_client(c)
                    if ev & _ERR and not ev & (_RD | _WR) and c.fd in self.conns:
                        self._reset(c)
            if self.wbuf:
                self._flush()
