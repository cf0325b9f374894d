"""Request bodies are capped in the ASGI stack, before Django reads (and spools) them: a real
uvicorn answers 413 to a 20 MB body as soon as its Content-Length is known, and cuts a chunked
body as soon as it passes the limit. Wheel uploads keep their own, larger limit."""
from __future__ import annotations

import json
import select
import socket
import time

import pytest

from tests.engine.conftest import Stack

MB = 1024 * 1024
LIMIT = 2 * MB


@pytest.fixture(scope="module")
def web():
    s = Stack(workers=0, env={"STEPWELL_MAX_REQUEST_BYTES": str(LIMIT), "STEPWELL_MAX_WHEEL_MB": "10"})
    yield s
    s.close()


def _connect(web) -> socket.socket:
    return socket.create_connection(("127.0.0.1", web.port), timeout=10)


def _head(web, path: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n"
            f"Authorization: Token {web.tokens['alice']}\r\n{extra}\r\n").encode()


def _response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict, bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    want = int(headers.get("content-length", 0))
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _assert_413(status, headers, body):
    assert status == 413, (status, body)
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert "limit" in doc["detail"] and doc["errors"] == [{"path": "$", "message": doc["detail"]}]


def test_a_declared_20_mb_body_is_refused_before_it_is_sent(web):
    with _connect(web) as sock:
        sock.sendall(_head(web, "/api/workflows/", f"Content-Type: application/json\r\n"
                                                   f"Content-Length: {20 * MB}\r\n"))
        # Not a byte of the body is sent: the answer comes from the headers alone.
        _assert_413(*_response(sock, timeout=5))


def test_a_chunked_body_is_cut_once_it_passes_the_limit(web):
    chunk = b"x" * (256 * 1024)
    sent = 0
    answer = None
    with _connect(web) as sock:
        sock.sendall(_head(web, "/api/workflows/", "Content-Type: application/json\r\n"
                                                   "Transfer-Encoding: chunked\r\n"))
        while sent < 20 * MB:
            try:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline and not select.select([sock], [], [], 0.01)[0]:
                pass
            if select.select([sock], [], [], 0)[0]:
                answer = _response(sock)
                break
        if answer is None:
            answer = _response(sock)
    _assert_413(*answer)
    assert LIMIT < sent <= LIMIT + 2 * MB, f"answered after {sent} bytes; the limit is {LIMIT}"


def test_bodies_under_the_limit_still_work(web):
    status, body = web.api().post("/api/workflows/", {"name": "small", "description": "d" * 100_000})
    assert status == 201, body


def test_wheel_uploads_have_their_own_larger_limit(web):
    """5 MB passes the general 2 MB cap on the upload path (alice is not staff: 403 from the view,
    after Django read the body); 20 MB passes the 10 MB wheel cap there and is refused."""
    boundary = "stepwellboundary"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a-1.0-py3-none-any.whl\"\r\n"
               f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"w" * (5 * MB) + \
        f"\r\n--{boundary}--\r\n".encode()
    with _connect(web) as sock:
        sock.sendall(_head(web, "/api/packages/upload/",
                           f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                           f"Content-Length: {len(payload)}\r\n") + payload)
        status, _, body = _response(sock, timeout=30)
    assert status == 403, body
    with _connect(web) as sock:
        sock.sendall(_head(web, "/api/packages/upload/",
                           f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                           f"Content-Length: {20 * MB}\r\n"))
        _assert_413(*_response(sock, timeout=5))
