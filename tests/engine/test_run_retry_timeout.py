"""Retry policy (a new attempt per failure, with backoff) and sandbox timeouts."""
from tests.helpers.httpserver import Reply


def test_it_retries_a_failing_step_by_policy(stack, wf):
    api = stack.api()
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("flaky", "action.python", {"code": "raise RuntimeError('still broken')"},
                 retry={"max_attempts": 3, "backoff_s": 0.1, "backoff_factor": 2})],
        [wf.edge("trigger", "flaky")])
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"])["id"], timeout=60)
    assert run["status"] == "failed"
    attempts = [(s["attempt"], s["status"]) for s in run["steps"] if s["node_id"] == "flaky"]
    assert attempts == [(1, "failed"), (2, "failed"), (3, "failed")]
    status, events = api.get(f"/api/runs/{run['id']}/events/")
    retry_events = [e for e in events if e["node_id"] == "flaky" and e["data"].get("next_attempt")]
    assert [e["data"]["next_attempt"] for e in retry_events] == [2, 3]
    assert [e["data"]["retry_in_s"] for e in retry_events] == [0.1, 0.2]


def test_a_retried_step_can_succeed(loopback_stack, wf, http_server):
    """An HTTP call to a server that answers 503 twice, then 200: attempt 3 succeeds."""
    hits = http_server(lambda req: Reply(503 if len(hits.requests) < 3 else 200, {"hit": len(hits.requests)}))
    api = loopback_stack.api()
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("call", "action.http", {"method": "GET", "url": hits.url("/x")},
                 retry={"max_attempts": 4, "backoff_s": 0.05, "backoff_factor": 1})],
        [wf.edge("trigger", "call")], allowed_hosts=[hits.netloc])
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"])["id"])
    assert run["status"] == "succeeded", run
    calls = [(s["attempt"], s["status"]) for s in run["steps"] if s["node_id"] == "call"]
    assert calls == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert run["steps"][-1]["output"]["body"] == {"hit": 3}


def test_it_marks_a_step_timed_out(stack, wf):
    api = stack.api()
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("slow", "action.python", {"code": "import time\nprint('start', flush=True)\ntime.sleep(30)",
                                           "timeout_s": 1})],
        [wf.edge("trigger", "slow")])
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"])["id"], timeout=30)
    assert run["status"] == "timed_out", run
    slow = next(s for s in run["steps"] if s["node_id"] == "slow")
    assert slow["status"] == "timed_out" and slow["sandbox"]["status"] == "timeout"
    assert slow["sandbox"]["timeout_s"] == 1
    assert slow["stdout"] == "start\n"


def test_workflow_defaults_and_server_caps_apply(stack, wf):
    api = stack.api()
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("env", "action.python", {"code": "import os\nresult = os.environ.get('GREETING')"})],
        [wf.edge("trigger", "env")],
        variables=[{"name": "GREETING", "value": "hello"}], default_timeout_s=600, default_memory_mib=8192)
    # above STEPWELL_MAX_STEP_MEMORY_MIB (2048): refused at save, not lowered quietly at run time
    status, body = api.post("/api/workflows/", {"name": "wf", "definition": d})
    assert status == 400 and [e["path"] for e in body["errors"]] == ["$.definition.settings.default_memory_mib"], body
    assert "above this server's limit of 2048 MiB" in body["errors"][0]["message"]
    d["settings"]["default_memory_mib"] = 2048
    w = api.create_workflow(d)
    run = api.wait(api.start(w["id"])["id"])
    step = next(s for s in run["steps"] if s["node_id"] == "env")
    assert step["output"] == "hello"
    assert step["sandbox"]["timeout_s"] == 600  # STEPWELL_MAX_STEP_TIMEOUT_S default 600
    assert step["sandbox"]["memory_mib"] == 2048  # the workflow's default, at the cap
