"""SSRF through the HTTP-call step: loopback, link-local and other private addresses are refused
even when the workflow lists them, unless STEPWELL_EGRESS_PRIVATE_NETWORKS lets them through
(the shared stack sets nothing)."""
import socket

import pytest

from tests.engine.test_http_call_allowlist import Server, _flow, _run


@pytest.fixture(scope="module")
def servers():
    v4, v6 = Server("127.0.0.1"), Server("::1")
    yield v4, v6
    v4.close()
    v6.close()


def _cases(p4, p6):
    """(url, allow-list entries naming the target exactly, expected reason)."""
    name = socket.gethostname()
    return {
        "ipv4 loopback": (f"http://127.0.0.1:{p4}/", [f"127.0.0.1:{p4}"], "127.0.0.1 is a loopback address"),
        "localhost": (f"http://localhost:{p4}/", [f"localhost:{p4}"], "it resolves to"),
        "ipv6 loopback": (f"http://[::1]:{p6}/", [f"[::1]:{p6}"], "::1 is a loopback address"),
        "ipv4-mapped": (f"http://[::ffff:127.0.0.1]:{p4}/", [f"[::ffff:127.0.0.1]:{p4}"],
                        "carries 127.0.0.1, a loopback address"),
        "metadata": ("http://169.254.169.254/latest/meta-data/", ["169.254.169.254"],
                     "169.254.169.254 is a link-local address"),
        "host name": (f"http://{name}:{p4}/", [f"{name}:{p4}"], "address"),
    }


@pytest.mark.parametrize("case", ["ipv4 loopback", "localhost", "ipv6 loopback", "ipv4-mapped", "metadata",
                                  "host name"])
def test_it_refuses_private_addresses_the_workflow_lists(stack, wf, servers, case):
    v4, v6 = servers
    url, allowed, reason = _cases(v4.port, v6.port)[case]
    if case in ("localhost", "host name"):
        resolved = {ai[4][0] for ai in socket.getaddrinfo(url.split("/")[2].rsplit(":", 1)[0], 80)}
        if not all(a.startswith("127.") or a == "::1" for a in resolved):
            pytest.skip(f"{url} does not resolve to loopback here")
    run = _run(stack, _flow(wf, url, allowed, method="GET"))
    assert run["status"] == "failed", run
    error = run["steps"][-1]["error"]
    assert "is refused" in error and reason in error and "STEPWELL_EGRESS_PRIVATE_NETWORKS" in error, error
    assert v4.seen == [] and v6.seen == []
