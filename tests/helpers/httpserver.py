"""A loopback HTTP(S) server for tests: a handler function served on an ephemeral port of
127.0.0.1 (or another loopback address) from a thread, with every request recorded.

    def answer(req: Request) -> Reply:
        return Reply(503 if len(srv.requests) < 3 else 200, {"hit": len(srv.requests)})

    with LoopbackServer(answer) as srv:            # or the `http_server` fixture (tests/conftest.py)
        url = srv.url("/items")                     # "http://127.0.0.1:PORT/items"
        ...
        assert [r.path for r in srv.requests] == ["/items"]

- `answer(request)` is called in the server's thread, once a request, after the request is
  recorded; it returns a `Reply` (or None for an empty 200). A `Reply` body may be bytes, str
  (sent as text/plain) or anything JSON-serialisable (sent as application/json). Without a
  handler every request gets 200 and a JSON echo: method, path, host and body.
- `Request` has `method`, `path` (with the query), `headers` (case-insensitive `.get`), `body`
  (bytes) and `json()`.
- If `answer` raises, the client gets a 500 and the exception lands in `srv.errors`; the
  fixture fails the test when any is left there.
- `host="::1"` or `"127.0.0.2"` serve elsewhere on loopback; tests never listen elsewhere.
- `tls=True` serves HTTPS with a fresh self-signed certificate (made with `cryptography`) for
  `tls_names` (host names and addresses; by default the host and "localhost"); `srv.ca_file` is
  the PEM file a client must trust, `srv.client_context()` an `ssl.SSLContext` that trusts it,
  and `srv.sni` the server names clients sent (None for a client that sent none).
- `srv.wait_for(n)` waits until n requests have arrived (for requests made by other processes).
- `loopback_name()` is a host name that resolves to 127.0.0.1 alone (the test is skipped if
  there is none), for calls that must go by name.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Request:
    """One request as it reached the server."""

    method: str
    path: str
    headers: HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Reply:
    """What the server answers: a status, a body (bytes, str or JSON-serialisable) and headers."""

    status: int = 200
    body: object = b""
    headers: dict = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


def echo(request: Request) -> Reply:
    """The default answer: what was asked, as JSON."""
    body = request.body.decode(errors="replace")
    try:
        body = request.json()
    except ValueError:
        pass
    return Reply(200, {"method": request.method, "path": request.path, "host": request.headers.get("Host"),
                       "body": body})


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(self.command, self.path, self.headers, self.rfile.read(length) if length else b"")
        self.server.requests.append(request)
        try:
            reply = self.server.answer(request) or Reply()
        except Exception as exc:  # noqa: BLE001 - reported to the test through `errors`
            self.server.errors.append(exc)
            reply = Reply(500, f"test server handler failed: {exc!r}")
        body, content_type = reply.encoded()
        self.send_response(reply.status)
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, *args):
        pass


def loopback_name() -> str:
    """"localhost" or this machine's name, whichever resolves to 127.0.0.1 and nothing else."""
    import pytest

    for name in ("localhost", socket.gethostname()):
        try:
            if {ai[4][0] for ai in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)} == {"127.0.0.1"}:
                return name
        except OSError:
            pass
    pytest.skip("no host name here resolves to 127.0.0.1 alone")


class LoopbackServer(ThreadingHTTPServer):
    """An HTTP(S) server on a loopback address and an ephemeral port, serving from a thread."""

    daemon_threads = True

    def __init__(self, answer: Callable[[Request], Reply | None] = echo, *, host: str = "127.0.0.1",
                 tls: bool = False, tls_names: tuple[str, ...] | None = None):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"test servers listen on loopback only, not {host}")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.answer, self.host, self.tls = answer, host, tls
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self.ca_file: Path | None = None
        self.sni: list[str | None] = []
        self._dir = tempfile.TemporaryDirectory(prefix="stepwell-test-server-")
        super().__init__((host, 0), _Handler)
        if tls:
            cert, key = _self_signed(tls_names or (host, "localhost"), Path(self._dir.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            context.sni_callback = lambda sock, server_name, ctx: self.sni.append(server_name)
            # the handshake happens in the request's thread, so a silent client blocks nobody
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
            self.ca_file = cert
        self._thread = threading.Thread(target=self.serve_forever, name=f"test-server-{self.port}", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"{'https' if self.tls else 'http'}://{self.netloc}{path}"

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up or refuse the certificate are part of many tests: not noise."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's certificate (and nothing else)."""
        if self.ca_file is None:
            raise ValueError("this server does not speak TLS")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def wait_for(self, n: int, timeout: float = 10) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} requests reached {self.url()}, not {n}, "
                                     f"in {timeout} s")
            time.sleep(0.02)
        return self.requests

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)
        self._dir.cleanup()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _self_signed(names: tuple[str, ...], where: Path) -> tuple[Path, Path]:
    """A fresh key and a self-signed certificate for `names` (host names or addresses), valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stepwell test server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = where / "cert.pem", where / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _general_name(name: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
