"""HTTP call steps reach only hosts on the workflow's allow-list (loopback allowed for the test)."""
import pytest

from tests.helpers.httpserver import LoopbackServer, Reply, loopback_name


class Server(LoopbackServer):
    """A loopback server that echoes what reaches it; `routes` maps a path to (status, headers)."""

    def __init__(self, host="127.0.0.1", routes=None):
        self.routes = routes or {}
        super().__init__(self._answer, host=host)

    def _answer(self, req):
        status, headers = self.routes.get(req.path, (200, {}))
        return Reply(status, {"echo": req.json(), "path": req.path, "host": req.headers.get("Host")}, headers)

    @property
    def seen(self):
        return [{"method": r.method, "path": r.path, "host": r.headers.get("Host"), "x_key": r.headers.get("X-Key"),
                 "body": r.json()} for r in self.requests]


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def _flow(wf, url, allowed, method="POST"):
    params = {"method": method, "url": url, "headers": {"X-Key": "{{ vars.KEY }}", "Host": "forged.example"}}
    if method == "POST":
        params["body"] = {"id": "{{ trigger.body.id }}"}
    return wf.definition(
        [wf.node("trigger", "trigger.manual"), wf.node("call", "action.http", params)],
        [wf.edge("trigger", "call")], allowed_hosts=allowed, variables=[{"name": "KEY", "value": "k1"}])


def _run(stack, definition):
    api = stack.api()
    w = api.create_workflow(definition)
    return api.wait(api.start(w["id"], {"id": 7})["id"])


def test_it_calls_an_allowed_host_under_its_name(loopback_stack, wf, server):
    name = loopback_name()
    run = _run(loopback_stack, _flow(wf, f"http://{name}:{server.port}/items", [f"{name}:{server.port}"]))
    assert run["status"] == "succeeded", run
    out = run["steps"][-1]["output"]
    assert out["status_code"] == 200 and out["body"]["echo"] == {"id": 7} and out["body"]["path"] == "/items"
    # the checked address was reached, under the URL's name (a Host header in the step is ignored)
    assert server.seen == [{"method": "POST", "path": "/items", "host": f"{name}:{server.port}",
                            "x_key": "k1", "body": {"id": 7}}]


def test_it_refuses_a_host_not_on_the_list(loopback_stack, wf, server):
    run = _run(loopback_stack, _flow(wf, f"http://127.0.0.1:{server.port}/items", ["api.example.com"]))
    assert run["status"] == "failed"
    call = run["steps"][-1]
    assert call["status"] == "failed"
    assert f"egress to 127.0.0.1:{server.port} is not allowed by this workflow" in call["error"]
    assert server.seen == []


def test_it_refuses_a_port_the_entry_does_not_name(loopback_stack, wf, server):
    """`127.0.0.1` without a port means 80 and 443 only; before, it let every port through."""
    run = _run(loopback_stack, _flow(wf, f"http://127.0.0.1:{server.port}/items", ["127.0.0.1"]))
    assert run["status"] == "failed", run
    assert f"egress to 127.0.0.1:{server.port} is not allowed by this workflow" in run["steps"][-1]["error"]
    assert server.seen == []


def test_it_follows_redirects_it_may_follow(loopback_stack, wf):
    srv = Server(routes={"/old": (303, {"Location": "/new?x=1"})})
    try:
        run = _run(loopback_stack, _flow(wf, f"http://127.0.0.1:{srv.port}/old", [f"127.0.0.1:{srv.port}"]))
        assert run["status"] == "succeeded", run
        assert [(s["method"], s["path"]) for s in srv.seen] == [("POST", "/old"), ("GET", "/new?x=1")]
        assert run["steps"][-1]["output"]["body"]["path"] == "/new?x=1"
    finally:
        srv.close()


def test_it_refuses_a_redirect_to_a_refused_address(loopback_stack, wf):
    """An allowed server redirects to 127.0.0.2, which the workflow lists by name but the
    instance does not let through: the redirect is checked like the first request."""
    target = Server("127.0.0.2")
    first = Server(routes={"/go": (302, {"Location": f"http://127.0.0.2:{target.port}/secret"})})
    try:
        run = _run(loopback_stack, _flow(wf, f"http://127.0.0.1:{first.port}/go", [
            f"127.0.0.1:{first.port}", f"127.0.0.2:{target.port}"], method="GET"))
        assert run["status"] == "failed", run
        error = run["steps"][-1]["error"]
        assert f"redirect refused: egress to 127.0.0.2:{target.port} is refused: 127.0.0.2 is a loopback " \
               "address" in error, error
        assert [s["path"] for s in first.seen] == ["/go"] and target.seen == []
    finally:
        first.close()
        target.close()
