"""HTTP call steps reach only hosts on the workflow's allow-list."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def server():
    seen = []

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((self.path, self.headers.get("X-Key"), json.loads(raw)))
            body = json.dumps({"echo": json.loads(raw), "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.seen = seen
    yield srv
    srv.shutdown()


def _flow(wf, port, allowed):
    return wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("call", "action.http", {"method": "POST", "url": f"http://127.0.0.1:{port}/items",
                                         "headers": {"X-Key": "{{ vars.KEY }}"},
                                         "body": {"id": "{{ trigger.body.id }}"}})],
        [wf.edge("trigger", "call")], allowed_hosts=allowed, variables=[{"name": "KEY", "value": "k1"}])


def test_it_calls_an_allowed_host(stack, wf, server):
    api = stack.api()
    w = api.create_workflow(_flow(wf, server.server_port, ["127.0.0.1"]))
    run = api.wait(api.start(w["id"], {"id": 7})["id"])
    assert run["status"] == "succeeded", run
    call = run["steps"][-1]
    assert call["output"]["status_code"] == 200 and call["output"]["body"] == {"echo": {"id": 7}, "path": "/items"}
    assert server.seen == [("/items", "k1", {"id": 7})]


def test_it_refuses_a_host_not_on_the_list(stack, wf, server):
    api = stack.api()
    w = api.create_workflow(_flow(wf, server.server_port, ["api.example.com"]))
    run = api.wait(api.start(w["id"], {"id": 7})["id"])
    assert run["status"] == "failed"
    call = run["steps"][-1]
    assert call["status"] == "failed"
    assert "'127.0.0.1' is not on this workflow's allowed hosts" in call["error"]
    assert server.seen == []


def test_host_matching_rules():
    from engine.steps.http_call import host_allowed

    assert host_allowed("https://api.example.com/x", ["api.example.com"])
    assert host_allowed("https://a.example.com/x", ["*.example.com"])
    assert not host_allowed("https://example.com/x", ["*.example.com"])
    assert not host_allowed("https://api.example.com.evil.net/", ["api.example.com"])
    assert host_allowed("http://127.0.0.1:8080/", ["127.0.0.1:8080"])
    assert not host_allowed("http://127.0.0.1:9090/", ["127.0.0.1:8080"])
    assert not host_allowed("http://user@evil.net/", ["user"])
