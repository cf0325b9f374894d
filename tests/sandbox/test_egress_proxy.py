"""The egress proxy and forwarder on the host, without a sandbox: real loopback servers, real
sockets (the forwarder on an ephemeral loopback port, the proxy on a unix socket), real clients."""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from sandbox.egress import forwarder, parse_networks
from sandbox.egress.proxy import EgressLimits, EgressProxy
from tests.helpers.httpserver import Reply
from tests.helpers.tcpecho import echo_once

LOOPBACK = parse_networks("127.0.0.0/8")


@pytest.fixture
def egress(tmp_path):
    """make(allowed_hosts, private_networks=LOOPBACK, limits=None) -> (proxy, proxy URL)."""
    made = []

    def make(allowed, networks=LOOPBACK, limits=None):
        proxy = EgressProxy(allowed, networks, limits or EgressLimits())
        path = str(tmp_path / f"proxy{len(made)}.sock")
        proxy.serve_unix(path)
        listener = forwarder.start(forwarder.connect_unix(path), ("127.0.0.1", 0))
        made.append((proxy, listener))
        return proxy, f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield make
    for proxy, listener in made:
        listener.close()
        proxy.close()


def opener(proxy_url, context=None):
    handlers = [urllib.request.ProxyHandler({"http": proxy_url, "https": proxy_url})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def connect_through(proxy_url: str, target: str) -> tuple[socket.socket, bytes]:
    port = int(proxy_url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = s.recv(1)
        if not data:
            break
        head += data
    return s, head


def test_an_allowed_get_and_post_go_through_in_origin_form(http_server, egress):
    srv = http_server()
    proxy, url = egress([srv.netloc])
    assert opener(url).open(srv.url("/a?b=1"), timeout=10).read()
    body = opener(url).open(urllib.request.Request(srv.url("/p"), data=b"x" * 100_000, method="POST"),
                            timeout=10).read()
    assert len(body) > 100_000
    assert [(r.method, r.path, r.headers.get("Host")) for r in srv.requests] == [
        ("GET", "/a?b=1", srv.netloc), ("POST", "/p", srv.netloc)]
    assert srv.requests[0].headers.get("Proxy-Connection") is None
    rows = proxy.records()
    assert [(r["method"], r["allowed"], r["port"]) for r in rows] == [("GET", True, srv.port), ("POST", True, srv.port)]
    assert rows[1]["bytes_out"] > 100_000 and rows[1]["bytes_in"] > 100_000
    assert rows[0]["started_at"].endswith("Z") and rows[0]["duration_ms"] >= 0


def test_a_refused_request_gets_403_with_the_reason_at_once(http_server, egress):
    srv = http_server()
    proxy, url = egress([srv.netloc])
    t0 = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as err:
        opener(url).open(f"http://127.0.0.1:{srv.port + 1 if srv.port < 65535 else 1}/", timeout=10)
    assert err.value.code == 403
    assert "is not allowed by this workflow" in err.value.read().decode()
    s, head = connect_through(url, "evil.example:443")
    assert head.startswith(b"HTTP/1.1 403")
    assert b"egress to evil.example:443 is not allowed by this workflow" in s.recv(1000)
    assert time.monotonic() - t0 < 3
    assert srv.requests == []
    rows = proxy.records()
    assert [(r["method"], r["host"], r["allowed"]) for r in rows] == [
        ("GET", "127.0.0.1", False), ("CONNECT", "evil.example", False)]
    assert rows[1]["reason"] == "egress to evil.example:443 is not allowed by this workflow"


def test_loopback_is_refused_without_the_private_networks_setting(http_server, egress):
    srv = http_server()
    proxy, url = egress([srv.netloc], networks=())
    with pytest.raises(urllib.error.HTTPError) as err:
        opener(url).open(srv.url("/"), timeout=10)
    assert err.value.code == 403 and "loopback" in err.value.read().decode()
    assert srv.requests == [] and proxy.records()[0]["allowed"] is False


def test_a_connect_tunnel_carries_tls_both_ways(http_server, egress):
    srv = http_server(tls=True)
    proxy, url = egress([srv.netloc])
    got = opener(url, ssl._create_unverified_context()).open(srv.url("/tls"), timeout=10).read()
    assert b'"/tls"' in got
    got = opener(url, srv.client_context()).open(srv.url("/checked"), timeout=10).read()
    assert b'"/checked"' in got
    rows = proxy.records()
    assert [(r["method"], r["allowed"]) for r in rows] == [("CONNECT", True), ("CONNECT", True)]
    assert all(r["bytes_in"] > 500 and r["bytes_out"] > 100 for r in rows)


def test_a_raw_tunnel_echoes_bytes(egress):
    server = echo_once()
    port = server.getsockname()[1]
    proxy, url = egress([f"127.0.0.1:{port}"])
    s, head = connect_through(url, f"127.0.0.1:{port}")
    assert head.startswith(b"HTTP/1.1 200")
    payload = bytes(range(256)) * 4096
    threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)), daemon=True).start()
    got = b""
    while data := s.recv(65536):
        got += data
    assert got == payload
    s.close()
    server.close()
    time.sleep(0.2)
    rec = proxy.records()[0]
    assert rec["bytes_out"] == rec["bytes_in"] == len(payload)


def test_the_byte_and_connection_caps_hold(http_server, egress):
    srv = http_server(lambda req: Reply(200, b"z" * 300_000))
    proxy, url = egress([srv.netloc], limits=EgressLimits(max_connections=2, max_bytes_in=500_000))
    assert len(opener(url).open(srv.url("/1"), timeout=10).read()) == 300_000
    try:                                     # the second answer is cut at the execution's cap
        data = opener(url).open(srv.url("/2"), timeout=10).read()
    except (OSError, http.client.HTTPException):
        data = b""
    assert len(data) < 300_000
    with pytest.raises(urllib.error.HTTPError) as err:
        opener(url).open(srv.url("/3"), timeout=10)
    assert err.value.code == 403 and "2 connections" in err.value.read().decode()
    rows = proxy.records()
    assert sum(r["bytes_in"] for r in rows) <= 500_000
    assert "cap of 500000 bytes received" in rows[1]["reason"]
    assert rows[2]["allowed"] is False


def test_idle_and_close_end_connections(egress):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    proxy, url = egress([f"127.0.0.1:{port}"], limits=EgressLimits(idle_timeout_s=1))
    s, head = connect_through(url, f"127.0.0.1:{port}")
    assert head.startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    assert s.recv(10) == b""                   # the silent server is dropped after the idle timeout
    assert time.monotonic() - t0 < 5
    assert "idle" in proxy.records()[0]["reason"]
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    proxy2, url2 = egress([f"127.0.0.1:{port}"])
    s2, head = connect_through(url2, f"127.0.0.1:{port}")
    assert head.startswith(b"HTTP/1.1 200")
    proxy2.close()
    s2.settimeout(5)
    assert s2.recv(10) == b""
    assert proxy2.records()[0]["reason"] == "closed: the execution ended"
    server.close()


def test_records_are_bounded(egress, monkeypatch):
    import sandbox.egress.proxy as proxy_module

    monkeypatch.setattr(proxy_module, "MAX_RECORDS", 3)
    proxy, url = egress([])
    for _ in range(5):
        with pytest.raises(urllib.error.HTTPError):
            opener(url).open("http://127.0.0.1:9/", timeout=10)
    assert len(proxy.records()) == 3 and proxy.dropped_records == 2


def test_limits_come_from_the_environment(monkeypatch):
    from sandbox.config import egress_limits_from_env

    assert egress_limits_from_env() == EgressLimits()
    monkeypatch.setenv("STEPWELL_EGRESS_MAX_CONNECTIONS", "5")
    monkeypatch.setenv("STEPWELL_EGRESS_MAX_BYTES", "1000")
    monkeypatch.setenv("STEPWELL_EGRESS_IDLE_TIMEOUT_S", "7")
    limits = egress_limits_from_env()
    assert (limits.max_connections, limits.max_bytes_in, limits.max_bytes_out, limits.idle_timeout_s) == (5, 1000, 1000, 7)
    monkeypatch.setenv("STEPWELL_EGRESS_CONNECT_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="STEPWELL_EGRESS_CONNECT_TIMEOUT_S"):
        egress_limits_from_env()


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_requests_and_httpx_work_through_the_forwarder(http_server, egress, client):
    lib = pytest.importorskip(client, reason=f"{client} is not installed on this host")
    plain, tls = http_server(), http_server(tls=True)
    proxy, url = egress([plain.netloc, tls.netloc])
    if client == "requests":
        get = lambda u: lib.get(u, proxies={"http": url, "https": url}, verify=False, timeout=10)  # noqa: E731
    else:
        get = lambda u: lib.Client(proxy=url, verify=False, timeout=10).get(u)  # noqa: E731
    assert get(plain.url("/p")).status_code == 200 and get(tls.url("/t")).status_code == 200
    refused = get(f"http://127.0.0.1:{plain.port + 1 if plain.port < 65535 else 1}/")
    assert refused.status_code == 403 and "not allowed by this workflow" in refused.text
    assert [(r["method"], r["allowed"]) for r in proxy.records()] == [("GET", True), ("CONNECT", True), ("GET", False)]


def test_the_host_header_is_the_checked_name(http_server, egress):
    srv = http_server()
    proxy, url = egress([srv.netloc])
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {srv.url('/h')} HTTP/1.1\r\nHost: other-vhost.example\r\n\r\n".encode())
        while s.recv(65536):
            pass
    assert [r.headers.get("Host") for r in srv.requests] == [srv.netloc]


def test_idle_client_streams_are_bounded(tmp_path):
    proxy = EgressProxy([], LOOPBACK, EgressLimits(max_connections=1))
    path = str(tmp_path / "p.sock")
    proxy.serve_unix(path)
    held = []
    try:
        for _ in range(proxy.max_clients):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            held.append(s)
        time.sleep(0.3)
        extra = socket.socket(socket.AF_UNIX)
        extra.connect(path)
        extra.settimeout(5)
        assert extra.recv(1000).startswith(b"HTTP/1.1 503")
        extra.close()
    finally:
        for s in held:
            s.close()
        proxy.close()
