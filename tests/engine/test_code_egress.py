"""Code steps and the workflow's allow-list: the code reaches a listed loopback server through the
egress proxy, the run's step keeps the egress rows, and a node may narrow the list, never widen it."""
from engine.validation import validate_definition
from tests.helpers.egress import FETCH_STATUSES as CODE


def _flow(wf, urls: dict, workflow_hosts: list, node_hosts=None):
    params = {"code": CODE, "inputs": {"urls": urls}}
    if node_hosts is not None:
        params["allowed_hosts"] = node_hosts
    return wf.definition([wf.node("trigger", "trigger.manual"), wf.node("code", "action.python", params)],
                         [wf.edge("trigger", "code")], allowed_hosts=workflow_hosts)


def test_a_code_step_reaches_a_listed_host_and_its_step_records_egress(loopback_stack, wf, http_server):
    srv, other = http_server(), http_server()
    api = loopback_stack.api()
    w = api.create_workflow(_flow(wf, {"ok": srv.url("/in"), "no": other.url("/out")},
                                  [srv.netloc, other.netloc], node_hosts=[srv.netloc]))
    run = api.wait(api.start(w["id"])["id"], timeout=90)
    assert run["status"] == "succeeded", run
    step = run["steps"][-1]
    assert step["output"] == {"ok": 200, "no": 403}               # the node narrowed the list
    # the code walks its inputs in their stored key order, which jsonb (PostgreSQL) sorts
    rows = sorted(step["sandbox"]["egress"], key=lambda r: not r["allowed"])
    assert [(r["host"], r["port"], r["method"], r["allowed"]) for r in rows] == [
        ("127.0.0.1", srv.port, "GET", True), ("127.0.0.1", other.port, "GET", False)]
    assert rows[0]["bytes_in"] > 0 and "not allowed by this workflow" in rows[1]["reason"]
    assert [r.path for r in srv.requests] == ["/in"] and other.requests == []


def test_a_node_may_narrow_the_list_but_never_widen_it(wf):
    flow = _flow(wf, {}, ["api.example.com", "*.example.org", "files.example.net:8443"],
                 node_hosts=["api.example.com:443", "a.example.org", "*.b.example.org",
                             "evil.example", "api.example.com:8080", "*.example.net", "bad host"])
    problems = validate_definition(flow)
    assert [p.path for p in problems] == [f"$.nodes[1].parameters.allowed_hosts[{i}]" for i in (3, 4, 5, 6)]
    assert "never widen" in problems[0].message and problems[0].node_id == "code"
    assert "is not a host name" in problems[3].message
    assert validate_definition(_flow(wf, {}, ["api.example.com"], node_hosts=[])) == []
