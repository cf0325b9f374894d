"""HTTPS through the egress policy: the connection goes to the checked address, while TLS keeps
the URL's name for SNI and for the certificate check (a name the certificate lacks fails)."""
import pytest

from tests.engine.conftest import Stack
from tests.helpers.httpserver import LoopbackServer, Reply, loopback_name


@pytest.fixture(scope="module")
def tls():
    """(name, server): an HTTPS server on 127.0.0.1 whose self-signed certificate names only `name`;
    it records the SNI names (`sni`) and the requests (their Host headers) it receives."""
    name = loopback_name()
    srv = LoopbackServer(lambda req: Reply(200, {"host": req.headers.get("Host")}), tls=True, tls_names=(name,))
    yield name, srv
    srv.close()


def _hosts(srv):
    return [r.headers.get("Host") for r in srv.requests]


@pytest.fixture(scope="module")
def tls_stack(tls):
    """A stack that lets HTTP steps reach 127.0.0.1 and trusts the test certificate."""
    s = Stack(env={"STEPWELL_EGRESS_PRIVATE_NETWORKS": "127.0.0.1/32", "SSL_CERT_FILE": str(tls[1].ca_file)})
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
    port = srv.port
    run = _run(tls_stack, wf, f"https://{name}:{port}/", [f"{name}:{port}"])
    assert run["status"] == "succeeded", run
    assert run["steps"][-1]["output"]["body"] == {"host": f"{name}:{port}"}
    assert srv.sni == [name] and _hosts(srv) == [f"{name}:{port}"]
    # the same server under its address: the certificate does not name 127.0.0.1, so it fails
    run = _run(tls_stack, wf, f"https://127.0.0.1:{port}/", [f"127.0.0.1:{port}"])
    assert run["status"] == "failed" and "certificate" in run["steps"][-1]["error"], run
    assert _hosts(srv) == [f"{name}:{port}"]
