"""Code egress end to end, on every driver: code in the sandbox calls loopback test servers through
127.0.0.1:3128 (the forwarder) and the host's egress proxy; `ExecutionResult.egress` records every
attempt. Loopback is let through by STEPWELL_EGRESS_PRIVATE_NETWORKS=127.0.0.0/8 in these tests
only (set in this process, where the driver's proxy runs)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sandbox.contract import ContractError, ExecutionRequest, ExecutionResult, SandboxError, Status
from tests.helpers.httpserver import Reply
from tests.helpers.tcpecho import echo_once
from tests.sandbox.conftest import describe

INVERT = bytes(range(255, -1, -1))
FETCH = """
import json, time, urllib.request, urllib.error
t0 = time.monotonic()
try:
    with urllib.request.urlopen(inputs["url"], timeout=20) as r:
        result = {"status": r.status, "body": r.read().decode()}
except urllib.error.HTTPError as e:
    result = {"status": e.code, "body": e.read().decode()}
except Exception as e:
    result = {"error": f"{type(e).__name__}: {e}"}
result["s"] = time.monotonic() - t0
"""


@pytest.fixture
def loopback_allowed(monkeypatch):
    monkeypatch.setenv("STEPWELL_EGRESS_PRIVATE_NETWORKS", "127.0.0.0/8")


@pytest.fixture
def run(sx):
    """run(code, allowed_hosts, **kw) -> result; skips on a driver that has no egress yet."""
    if not getattr(sx.driver, "supports_egress", False):
        pytest.skip(f"the {sx.name} driver does not carry code egress yet "
                    "(a driver that honours allowed_hosts sets supports_egress = True)")

    def go(code, allowed_hosts=(), **kw):
        kw.setdefault("timeout_s", 60)
        try:
            return sx(code, allowed_hosts=list(allowed_hosts), **kw)
        except SandboxError as exc:
            if "allowed_hosts" in str(exc) or "egress" in str(exc):
                pytest.skip(f"the {sx.name} driver has no code egress yet: {exc}")
            raise
    return go


def test_the_request_field_is_validated():
    assert ExecutionRequest(code="", allowed_hosts=["api.example.com", "*.example.org:8443"]).allowed_hosts
    with pytest.raises(ContractError, match=r"allowed_hosts\[1\]"):
        ExecutionRequest(code="", allowed_hosts=["ok.example", "https://x.example/"])
    with pytest.raises(ContractError, match="allowed_hosts"):
        ExecutionRequest(code="", allowed_hosts="api.example.com")
    d = ExecutionRequest(code="", allowed_hosts=["a.example"]).to_dict()
    assert ExecutionRequest.from_dict(d).allowed_hosts == ["a.example"]
    row = {"host": "a.example", "port": 443, "method": "CONNECT", "allowed": False, "reason": "no",
           "bytes_out": 0, "bytes_in": 0, "started_at": "2026-01-01T00:00:00.000Z", "duration_ms": 0.1}
    result = ExecutionResult(status=Status.SUCCEEDED, egress=[row])
    assert ExecutionResult.from_dict(json.loads(json.dumps(result.to_dict()))).egress == [row]
    assert ExecutionResult.from_dict({"status": "succeeded"}).egress == []


def test_the_proxy_variables_are_set_and_nothing_is_reachable_by_default(run, http_server, loopback_allowed):
    srv = http_server()
    r = run(FETCH + "\nimport os\nresult['env'] = {k: os.environ.get(k) for k in "
            "('HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'NO_PROXY', 'no_proxy')}",
            inputs={"url": srv.url("/")})
    assert r.status == Status.SUCCEEDED, describe(r)
    assert r.result.pop("env") == {**{k: "http://127.0.0.1:3128" for k in (
        "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}, "NO_PROXY": "", "no_proxy": ""}
    fetched = r.result
    assert fetched["status"] == 403 and "is not allowed by this workflow" in fetched["body"]
    assert srv.requests == []
    assert [(e["host"], e["port"], e["allowed"]) for e in r.egress] == [("127.0.0.1", srv.port, False)]


def test_an_allowed_host_answers_through_urllib(run, http_server, loopback_allowed):
    srv = http_server()
    r = run(FETCH, [srv.netloc], inputs={"url": srv.url("/hello?x=1")})
    assert r.status == Status.SUCCEEDED, describe(r)
    assert r.result["status"] == 200 and '"/hello?x=1"' in r.result["body"], describe(r)
    assert [(q.method, q.path) for q in srv.requests] == [("GET", "/hello?x=1")]
    (row,) = r.egress
    assert row["allowed"] is True and row["method"] == "GET" and row["port"] == srv.port
    assert row["bytes_in"] > 0 and row["bytes_out"] > 0 and row["started_at"].endswith("Z")


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_an_allowed_host_answers_through_requests_and_httpx(run, http_server, loopback_allowed, client):
    srv = http_server()
    code = f"""
try:
    import {client}
except ImportError as e:
    result = {{"missing": str(e)}}
else:
    r = {client}.get(inputs["url"], timeout=20)
    result = {{"status": r.status_code, "body": r.text}}
"""
    r = run(code, [srv.netloc], inputs={"url": srv.url("/c")})
    assert r.status == Status.SUCCEEDED, describe(r)
    if "missing" in r.result:
        pytest.skip(f"{client} is not in the sandbox's package layer (default allow-list): {r.result['missing']}")
    assert r.result["status"] == 200 and '"/c"' in r.result["body"]
    assert [e["allowed"] for e in r.egress] == [True]


def test_a_tls_server_with_a_self_signed_certificate_is_reached_unverified(run, http_server, loopback_allowed):
    srv = http_server(tls=True)
    code = """
import ssl, urllib.request
with urllib.request.urlopen(inputs["url"], timeout=20, context=ssl._create_unverified_context()) as r:
    result = {"status": r.status, "body": r.read().decode()}
try:
    urllib.request.urlopen(inputs["url"], timeout=20)
    result["verified"] = "no error"
except Exception as e:
    result["verified"] = str(e)
"""
    r = run(code, [srv.netloc], inputs={"url": srv.url("/tls")})
    assert r.status == Status.SUCCEEDED, describe(r)
    assert r.result["status"] == 200 and '"/tls"' in r.result["body"]
    assert "CERTIFICATE_VERIFY_FAILED" in r.result["verified"]       # TLS is end to end, not intercepted
    assert [(e["method"], e["allowed"]) for e in r.egress] == [("CONNECT", True), ("CONNECT", True)]


def test_a_connect_tunnel_carries_bytes_both_ways(run, loopback_allowed):
    server = echo_once(lambda data: data.translate(INVERT))     # each byte b comes back as 255 - b
    port = server.getsockname()[1]
    code = """
import socket
s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
s.sendall(f"CONNECT 127.0.0.1:{inputs['port']} HTTP/1.1\\r\\n\\r\\n".encode())
head = b""
while b"\\r\\n\\r\\n" not in head:
    head += s.recv(1)
payload = bytes(range(256)) * 2000
s.sendall(payload)
s.shutdown(socket.SHUT_WR)
got = b""
while data := s.recv(65536):
    got += data
result = {"head": head.decode().split("\\r\\n")[0], "same": got == payload.translate(bytes(range(255, -1, -1))) or len(got),
          "n": len(payload)}
"""
    try:
        r = run(code, [f"127.0.0.1:{port}"], inputs={"port": port})
    finally:
        server.close()
    assert r.status == Status.SUCCEEDED, describe(r)
    assert r.result["head"].startswith("HTTP/1.1 200") and r.result["same"] is True, describe(r)
    (row,) = r.egress
    assert row["method"] == "CONNECT" and row["bytes_out"] == row["bytes_in"] == r.result["n"]


def test_everything_else_fails_fast_and_is_recorded_as_refused(run, http_server, loopback_allowed):
    other = http_server()
    srv = http_server(lambda req: Reply(302, "", {"Location": other.url("/secret")})
                      if req.path == "/go" else None)
    code = """
import json, socket, time, urllib.request, urllib.error
out = {}
def fetch(name, url):
    t0 = time.monotonic()
    try:
        urllib.request.urlopen(url, timeout=20).read()
        out[name] = "reached"
    except urllib.error.HTTPError as e:
        out[name] = f"{e.code} {e.read().decode().strip()}"
    except Exception as e:
        out[name] = f"{type(e).__name__}: {e}"
    out[name + "_s"] = time.monotonic() - t0
fetch("other_port", inputs["other"])
fetch("other_name", "http://other.example/")
fetch("localhost", inputs["localhost"])
fetch("redirect", inputs["redirect"])
t0 = time.monotonic()
try:
    socket.create_connection(("127.0.0.1", inputs["port"]), timeout=20)
    out["raw"] = "connected"
except OSError as e:
    out["raw"] = f"{type(e).__name__}: {e}"
out["raw_s"] = time.monotonic() - t0
result = out
"""
    r = run(code, [srv.netloc], inputs={
        "other": other.url("/x"), "port": srv.port, "redirect": srv.url("/go"),
        "localhost": f"http://localhost:{srv.port}/"})
    assert r.status == Status.SUCCEEDED, describe(r)
    out = r.result
    assert out["other_port"] == f"403 egress to 127.0.0.1:{other.port} is not allowed by this workflow"
    assert out["other_name"] == "403 egress to other.example:80 is not allowed by this workflow"
    assert out["localhost"] == f"403 egress to localhost:{srv.port} is not allowed by this workflow"
    assert out["redirect"] == f"403 egress to 127.0.0.1:{other.port} is not allowed by this workflow"
    assert out["raw"].startswith(("ConnectionRefusedError", "OSError")), out
    assert all(out[k] < 5 for k in out if k.endswith("_s")), out
    assert [q.path for q in other.requests] == [] and [q.path for q in srv.requests] == ["/go"]
    assert [(e["host"], e["port"], e["allowed"]) for e in r.egress] == [
        ("127.0.0.1", other.port, False), ("other.example", 80, False), ("localhost", srv.port, False),
        ("127.0.0.1", srv.port, True), ("127.0.0.1", other.port, False)]


def test_a_name_that_resolves_to_loopback_is_refused_without_the_setting(run, http_server, monkeypatch):
    monkeypatch.delenv("STEPWELL_EGRESS_PRIVATE_NETWORKS", raising=False)
    srv = http_server()
    r = run(FETCH, [srv.netloc, f"localhost:{srv.port}"],
            inputs={"url": f"http://localhost:{srv.port}/"})
    assert r.status == Status.SUCCEEDED, describe(r)
    assert r.result["status"] == 403 and "loopback address" in r.result["body"], describe(r)
    r2 = run(FETCH, [srv.netloc], inputs={"url": srv.url("/")})
    assert r2.result["status"] == 403 and "127.0.0.1 is a loopback address" in r2.result["body"], describe(r2)
    assert srv.requests == []
    assert [e["allowed"] for e in r.egress + r2.egress] == [False, False]


def test_the_byte_and_connection_caps_hold(run, http_server, loopback_allowed, monkeypatch):
    monkeypatch.setenv("STEPWELL_EGRESS_MAX_CONNECTIONS", "2")
    monkeypatch.setenv("STEPWELL_EGRESS_MAX_BYTES", "400000")
    srv = http_server(lambda req: Reply(200, b"z" * 300_000))
    code = """
import urllib.request, urllib.error
out = []
for i in range(3):
    try:
        out.append(len(urllib.request.urlopen(inputs["url"], timeout=20).read()))
    except urllib.error.HTTPError as e:
        out.append(f"{e.code} {e.read().decode().strip()}")
    except Exception as e:
        out.append(type(e).__name__)
result = out
"""
    r = run(code, [srv.netloc], inputs={"url": srv.url("/big")})
    assert r.status == Status.SUCCEEDED, describe(r)
    assert r.result[0] == 300_000 and r.result[1] != 300_000, describe(r)
    assert r.result[2].startswith("403 ") and "2 connections" in r.result[2], describe(r)
    assert sum(e["bytes_in"] for e in r.egress) <= 400_000
    assert "cap of 400000 bytes received" in r.egress[1]["reason"]


def test_a_slow_server_cannot_keep_an_execution_past_its_timeout(run, sx, loopback_allowed):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    held = []

    def accept_and_hold():
        while True:
            try:
                held.append(server.accept())
            except OSError:
                return

    threading.Thread(target=accept_and_hold, daemon=True).start()
    t0 = time.monotonic()
    try:
        r = run("import urllib.request\nurllib.request.urlopen(inputs['url']).read()",
                [f"127.0.0.1:{port}"], inputs={"url": f"http://127.0.0.1:{port}/"}, timeout_s=3)
    finally:
        server.close()
    assert r.status == Status.TIMEOUT, describe(r)
    assert time.monotonic() - t0 < 3 + sx.margin
    assert [(e["allowed"], e["bytes_in"]) for e in r.egress] == [(True, 0)]
    assert r.egress[0]["reason"].startswith("closed")


def test_the_cli_takes_allow_host_and_prints_egress(process_driver, http_server, tmp_path):
    srv = http_server()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "designer.settings", "SANDBOX_DRIVER": "process",
           "SANDBOX_SOCKET": str(tmp_path / "none.sock"), "STEPWELL_EGRESS_PRIVATE_NETWORKS": "127.0.0.0/8"}
    code = tmp_path / "fetch.py"
    code.write_text(FETCH)
    root = Path(__file__).resolve().parents[2]

    def cli(*args):
        return subprocess.run([sys.executable, "manage.py", "sandbox_exec", str(code), "--timeout", "60",
                               "--input", json.dumps({"url": srv.url("/cli")}), *args],
                              cwd=root, env=env, capture_output=True, text=True, timeout=120)

    out = cli("--allow-host", "other.example", "--allow-host", srv.netloc)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["result"]["status"] == 200 and [e["allowed"] for e in result["egress"]] == [True]
    out = cli()
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["result"]["status"] == 403 and [e["allowed"] for e in result["egress"]] == [False]
    out = cli("--allow-host", "https://api.example.com/")
    assert out.returncode == 2 and "allowed_hosts[0]" in out.stderr


def test_egress_through_the_sandbox_service(process_driver, http_server, tmp_path, monkeypatch):
    from sandbox.client import SandboxClient
    from tests.sandbox.test_service import _start, _stop

    monkeypatch.setenv("STEPWELL_EGRESS_PRIVATE_NETWORKS", "127.0.0.0/8")   # for the service process
    srv = http_server()
    proc = _start(tmp_path / "sandbox.sock", pool_size=1)
    try:
        r = SandboxClient(tmp_path / "sandbox.sock").execute(ExecutionRequest(
            code=FETCH, inputs={"url": srv.url("/svc")}, allowed_hosts=[srv.netloc], timeout_s=60))
    finally:
        _stop(proc)
    assert r.status == Status.SUCCEEDED and r.result["status"] == 200, describe(r)
    assert [(e["method"], e["allowed"]) for e in r.egress] == [("GET", True)]
