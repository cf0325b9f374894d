"""The host end of code egress: an HTTP/1.1 forward proxy for one execution, every attempt recorded.

One `EgressProxy` per execution, in the host process that runs it (the process driver, the
sandbox service). The code reaches it through the forwarder on 127.0.0.1:3128 inside the sandbox
(sandbox/egress/forwarder.py), which hands over raw streams: `handle(sock)` serves one of them in
its own thread, `serve_unix(path)` accepts them on a unix socket.

- `http://` absolute-URI requests (any method) are rewritten to origin form and sent with
  `Connection: close`; the answer is passed back with `Connection: close` (one request per
  connection).
- `CONNECT host:port` opens a tunnel (TLS stays end to end, nothing is intercepted).
- Each request goes through `policy.decide` and the connection goes to its checked address
  (`policy.open_connection`); a refusal is a `403` with the reason as plain text, at once.
- `EgressLimits`: connections and bytes (each way) per execution, connect and idle timeouts.
  `close()` ends every connection when the execution ends.
- `records()`: one dict per attempt, refused ones included (the first MAX_RECORDS; later ones
  are only counted in `dropped_records`).
"""
from __future__ import annotations

import datetime
import os
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sandbox.egress import policy
from sandbox.egress.forwarder import copy_stream

MIB = 1024 * 1024
MAX_RECORDS = 1000
MAX_HEAD_BYTES = 64 * 1024
CHUNK = 256 * 1024
_HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization", "proxy-authenticate",
               "te", "trailer", "upgrade"}


@dataclass(frozen=True)
class EgressLimits:
    """Per-execution caps (sandbox/config.py reads them from STEPWELL_EGRESS_* settings)."""
    max_connections: int = 32
    max_bytes_out: int = 64 * MIB        # code -> remote hosts, all connections together
    max_bytes_in: int = 64 * MIB         # remote hosts -> code
    connect_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0


class _Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _split_host_port(authority: str, default_port: int | None) -> tuple[str, int]:
    """('host', port) of `host:port` / `[v6]:port` / `host`; ValueError when malformed."""
    authority = authority.strip()
    if authority.startswith("["):
        host, sep, rest = authority[1:].partition("]")
        if not sep:
            raise ValueError(f"bad authority {authority!r}")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
        if port_text is None:
            raise ValueError(f"bad authority {authority!r}")
    elif authority.count(":") == 1:
        host, port_text = authority.split(":")
    else:
        host, port_text = authority, ""
    if port_text == "":
        if default_port is None:
            raise ValueError(f"{authority!r} has no port")
        return host, default_port
    if not port_text.isdigit():
        raise ValueError(f"bad port in {authority!r}")
    return host, int(port_text)


class _Connection:
    """One client stream and, once allowed, its upstream socket; the record it fills in."""

    def __init__(self, proxy: "EgressProxy", client: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.record: dict | None = None
        self.last = time.monotonic()            # last byte either way (the idle watchdog reads it)
        self.relaying = False

    # --- reading the request head --------------------------------------------------------------
    def read_head(self) -> tuple[bytes, bytes]:
        buf = b""
        self.client.settimeout(self.proxy.limits.idle_timeout_s)
        while b"\r\n\r\n" not in buf:
            if len(buf) > MAX_HEAD_BYTES:
                raise _Refused(431, "the request head is larger than 64 KiB")
            data = self.client.recv(CHUNK)
            if not data:
                raise ConnectionError("the client closed before a full request")
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    def run(self) -> None:
        try:
            try:
                head, rest = self.read_head()
            except (OSError, ConnectionError):
                return
            except _Refused as exc:
                self._answer(exc.status, exc.reason)
                return
            try:
                self._serve(head, rest)
            except _Refused as exc:
                if self.record is not None and not self.record["reason"]:
                    self.record["reason"] = exc.reason
                self._answer(exc.status, exc.reason)
        except OSError:
            pass
        finally:
            self.proxy._finish(self)

    def _serve(self, head: bytes, rest: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _Refused(400, "this is an HTTP proxy: send an absolute http:// URL or CONNECT host:port")
        method, target, _version = parts
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _Refused(400, f"malformed header line {line[:80]!r}")
            headers.append((name, value.strip()))
        if method.upper() == "CONNECT":
            try:
                host, port = _split_host_port(target, None)
            except ValueError as exc:
                raise _Refused(400, f"CONNECT needs host:port ({exc})") from None
            self._open("CONNECT", host, port)
            self.client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                self._send_up(rest)
            self._relay()
            return
        url = urlsplit(target)
        if url.scheme.lower() != "http" or not url.netloc:
            raise _Refused(400, "this proxy forwards absolute http:// URLs; use CONNECT for https "
                                f"(got {method} {target[:200]})")
        try:
            host, port = _split_host_port(url.netloc.rpartition("@")[2], 80)
        except ValueError as exc:
            raise _Refused(400, f"bad URL {target[:200]!r} ({exc})") from None
        self._open(method, host, port)
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        # The Host header is the URL's authority (the name that was checked), never another
        # name the code wrote: no reaching a different virtual host on an allowed address.
        out = [f"{method} {path} HTTP/1.1", f"Host: {url.netloc.rpartition('@')[2]}"]
        for name, value in headers:
            if name.lower() in _HOP_BY_HOP or name.lower() == "host":
                continue
            out.append(f"{name}: {value}")
        out.append("Connection: close")
        self._send_up(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + rest)
        self._relay(rewrite_response=True)

    # --- policy, connect -----------------------------------------------------------------------
    def _open(self, method: str, host: str, port: int) -> None:
        proxy = self.proxy
        self.record = proxy._new_record(host, port, method)
        decision = policy.decide(proxy.allowed_hosts, host, port, proxy.private_networks)
        self.record["host"] = decision.host or host
        if not decision.allowed:
            self.record["reason"] = decision.reason
            raise _Refused(403, decision.reason)
        if not proxy._take_connection():
            reason = (f"egress to {host}:{port} is refused: this execution already opened its "
                      f"{proxy.limits.max_connections} connections")
            self.record["reason"] = reason
            raise _Refused(403, reason)
        self.record["allowed"] = True
        try:
            upstream = policy.open_connection(decision, proxy.limits.connect_timeout_s)
        except OSError as exc:
            raise _Refused(502, f"egress to {host}:{port}: could not connect ({exc})") from None
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream = upstream
        if proxy.closed:
            raise _Refused(503, "the execution has ended")

    def _send_up(self, data: bytes) -> None:
        self._count("bytes_out", len(data))
        self.upstream.sendall(data)

    def _count(self, key: str, n: int) -> None:
        """Add n bytes to the record and the execution's total; _Refused-free: a cap closes."""
        if not self.proxy._spend(key, n):
            cap = self.proxy.limits.max_bytes_out if key == "bytes_out" else self.proxy.limits.max_bytes_in
            self.record["reason"] = (f"closed: the execution's cap of {cap} bytes "
                                     f"{'sent' if key == 'bytes_out' else 'received'} was reached")
            raise ConnectionAbortedError(self.record["reason"])
        self.record[key] += n

    # --- relaying ------------------------------------------------------------------------------
    def _relay(self, rewrite_response: bool = False) -> None:
        """Carry bytes both ways (one thread each, blocking; the kernel moves them between the
        sockets) until both directions end, a cap is reached, the idle watchdog or close() shuts
        the sockets. With `rewrite_response` (plain http) the answer's head gets `Connection:
        close` and the connection ends with the answer."""
        client, upstream = self.client, self.upstream
        client.settimeout(None)
        upstream.settimeout(None)
        self.last = time.monotonic()
        self.relaying = True
        self.proxy._watch()
        out = threading.Thread(target=self._pump, args=(client, upstream, "bytes_out", False), daemon=True,
                               name="egress-proxy-out")
        out.start()
        self._pump(upstream, client, "bytes_in", rewrite_response)
        if rewrite_response:
            self.shut()
        out.join()

    def _pump(self, src: socket.socket, dst: socket.socket, key: str, rewrite_head: bool) -> None:
        def on_bytes(n: int) -> None:
            self._count(key, n)
            self.last = time.monotonic()

        try:
            if rewrite_head:
                buf = b""
                while b"\r\n\r\n" not in buf and len(buf) <= MAX_HEAD_BYTES:
                    data = src.recv(CHUNK)
                    if not data:
                        break
                    on_bytes(len(data))
                    buf += data
                if buf:
                    dst.sendall(_close_response_head(buf))
                if b"\r\n\r\n" not in buf:
                    return
            copy_stream(src, dst, on_bytes)
        except ConnectionAbortedError:          # a byte cap: the record says which
            self.shut()
        except OSError as exc:
            if self.record is not None and not self.record["reason"] and not self.proxy.closed:
                self.record["reason"] = f"closed: {exc}"
            self.shut()
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _answer(self, status: int, reason: str) -> None:
        titles = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large",
                  502: "Bad Gateway", 503: "Service Unavailable"}
        body = (reason + "\n").encode()
        head = (f"HTTP/1.1 {status} {titles.get(status, 'Error')}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            self.client.sendall(head + body)
        except OSError:
            pass

    def shut(self) -> None:
        for s in (self.client, self.upstream):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _close_response_head(buf: bytes) -> bytes:
    """The upstream answer's head with its connection headers replaced by `Connection: close`."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return buf
    lines = head.split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:]
                         if line.split(b":", 1)[0].strip().lower().decode("latin-1") not in
                         ("connection", "keep-alive", "proxy-connection")]
    kept.append(b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


class EgressProxy:
    """The egress of one execution: policy, limits and the record of every attempt."""

    def __init__(self, allowed_hosts=(), private_networks=(), limits: EgressLimits | None = None):
        self.allowed_hosts = tuple(allowed_hosts or ())
        self.private_networks = tuple(private_networks or ())
        self.limits = limits or EgressLimits()
        self.closed = False
        self.dropped_records = 0
        # client streams served at once (each holds a thread here), refused beyond with a 503
        self.max_clients = max(64, 2 * self.limits.max_connections)
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._live: set[_Connection] = set()
        self._connections = 0
        self._bytes = {"bytes_out": 0, "bytes_in": 0}
        self._listeners: list[socket.socket] = []
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()

    # --- serving -------------------------------------------------------------------------------
    def handle(self, sock: socket.socket) -> threading.Thread:
        """Serve one client stream (a socketpair end, an accepted unix socket) in its own thread."""
        conn = _Connection(self, sock)
        with self._lock:
            busy = len(self._live) >= self.max_clients
            if self.closed or busy:
                conn = None
            else:
                self._live.add(conn)
        if conn is None:
            if busy and not self.closed:
                body = f"this execution already has {self.max_clients} connections open to the egress proxy\n"
                try:
                    sock.sendall(("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                  f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}").encode())
                except OSError:
                    pass
            sock.close()
            return threading.Thread()
        thread = threading.Thread(target=conn.run, daemon=True, name="egress-proxy")
        thread.start()
        return thread

    def serve_unix(self, path: str, mode: int = 0o666) -> socket.socket:
        """Listen on a unix socket at `path` (made with `mode`) and handle() each connection."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener.bind(path)
        os.chmod(path, mode)
        listener.listen(64)
        with self._lock:
            self._listeners.append(listener)

        def accept_loop():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                self.handle(conn)

        threading.Thread(target=accept_loop, daemon=True, name="egress-proxy-accept").start()
        return listener

    def close(self) -> None:
        """End every connection and stop listening (the execution has ended)."""
        self._stop.set()
        with self._lock:
            self.closed = True
            listeners, self._listeners = self._listeners, []
            live = list(self._live)
        for listener in listeners:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for conn in live:
            if conn.record is not None and conn.record["allowed"] and not conn.record["reason"]:
                conn.record["reason"] = "closed: the execution ended"
            conn.shut()

    def records(self) -> list[dict]:
        """Every attempt so far (copies), oldest first."""
        now = time.monotonic()
        with self._lock:
            out = []
            for rec in self._records:
                rec = dict(rec)
                t0 = rec.pop("_t0")
                if rec["duration_ms"] is None:
                    rec["duration_ms"] = round((now - t0) * 1000, 3)
                out.append(rec)
            return out

    # --- book-keeping (called by _Connection) --------------------------------------------------
    def _new_record(self, host: str, port: int, method: str) -> dict:
        rec = {"host": host, "port": port, "method": method.upper(), "allowed": False, "reason": "",
               "bytes_out": 0, "bytes_in": 0, "started_at": _now_iso(), "duration_ms": None,
               "_t0": time.monotonic()}
        with self._lock:
            if len(self._records) < MAX_RECORDS:
                self._records.append(rec)
            else:
                self.dropped_records += 1
        return rec

    def _watch(self) -> None:
        """Start the idle watchdog (once): it shuts connections silent for idle_timeout_s."""
        with self._lock:
            if self._watchdog is not None or self.closed:
                return
            self._watchdog = threading.Thread(target=self._watch_idle, daemon=True, name="egress-proxy-idle")
        self._watchdog.start()

    def _watch_idle(self) -> None:
        idle = self.limits.idle_timeout_s
        while not self._stop.wait(min(1.0, idle / 4)):
            now = time.monotonic()
            with self._lock:
                stale = [c for c in self._live if c.relaying and now - c.last > idle]
            for conn in stale:
                if conn.record is not None and not conn.record["reason"]:
                    conn.record["reason"] = f"closed: idle for {idle:g} s"
                conn.shut()

    def _take_connection(self) -> bool:
        with self._lock:
            if self._connections >= self.limits.max_connections:
                return False
            self._connections += 1
            return True

    def _spend(self, key: str, n: int) -> bool:
        cap = self.limits.max_bytes_out if key == "bytes_out" else self.limits.max_bytes_in
        with self._lock:
            if self._bytes[key] + n > cap:
                self._bytes[key] = cap
                return False
            self._bytes[key] += n
            return True

    def _finish(self, conn: _Connection) -> None:
        if conn.record is not None:
            conn.record["duration_ms"] = round((time.monotonic() - conn.record["_t0"]) * 1000, 3)
        for s in (conn.upstream, conn.client):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        with self._lock:
            self._live.discard(conn)
