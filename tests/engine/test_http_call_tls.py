"""HTTPS through the egress policy: the connection goes to the checked address, while TLS keeps
the URL's name for SNI and for the certificate check (a name the certificate lacks fails)."""
import json
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.engine.conftest import Stack


def _name_for_127_0_0_1():
    for name in ("localhost", socket.gethostname()):
        try:
            if {ai[4][0] for ai in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)} == {"127.0.0.1"}:
                return name
        except OSError:
            pass
    pytest.skip("no host name here resolves to 127.0.0.1 alone")


class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hosts.append(self.headers.get("Host"))
        out = json.dumps({"host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """(name, server): an HTTPS server on 127.0.0.1 whose self-signed certificate names only `name`;
    it records the SNI names and Host headers it receives."""
    name = _name_for_127_0_0_1()
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", folder / "key.pem", "-out", folder / "cert.pem", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    srv.daemon_threads = True
    srv.sni, srv.hosts, srv.cert = [], [], folder / "cert.pem"
    context.sni_callback = lambda sock, server_name, ctx: srv.sni.append(server_name)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    srv.handle_error = lambda *a: None      # refused handshakes are part of the test
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield name, srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def tls_stack(tls):
    """A stack that lets HTTP steps reach 127.0.0.1 and trusts the test certificate."""
    s = Stack(env={"STEPWELL_EGRESS_PRIVATE_NETWORKS": "127.0.0.1/32", "SSL_CERT_FILE": str(tls[1].cert)})
    yield s
    s.close()


def _run(stack, wf, url, allowed):
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"), wf.node("call", "action.http", {"method": "GET", "url": url})],
        [wf.edge("trigger", "call")], allowed_hosts=allowed))
    return api.wait(api.start(w["id"], {})["id"])


def test_tls_keeps_the_name_for_sni_and_the_certificate_check(tls_stack, wf, tls):
    name, srv = tls
    port = srv.server_address[1]
    run = _run(tls_stack, wf, f"https://{name}:{port}/", [f"{name}:{port}"])
    assert run["status"] == "succeeded", run
    assert run["steps"][-1]["output"]["body"] == {"host": f"{name}:{port}"}
    assert srv.sni == [name] and srv.hosts == [f"{name}:{port}"]
    # the same server under its address: the certificate does not name 127.0.0.1, so it fails
    run = _run(tls_stack, wf, f"https://127.0.0.1:{port}/", [f"127.0.0.1:{port}"])
    assert run["status"] == "failed" and "certificate" in run["steps"][-1]["error"], run
    assert srv.hosts == [f"{name}:{port}"]
