"""Cancelling runs: a queued one at once, a running one while its step executes."""
import time


def _sleeper(wf, seconds=20):
    return wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("sleep", "action.python", {"code": f"import time\ntime.sleep({seconds})\nresult = 'woke'"}),
         wf.node("after", "action.compose", {"value": "never"})],
        [wf.edge("trigger", "sleep"), wf.edge("sleep", "after")])


def test_it_cancels_a_running_run(stack, wf):
    api = stack.api()
    w = api.create_workflow(_sleeper(wf))
    run = api.start(w["id"])
    api.wait(run["id"], until=lambda r: any(s["node_id"] == "sleep" and s["status"] == "running"
                                            for s in r["steps"]))
    t0 = time.monotonic()
    status, body = api.post(f"/api/runs/{run['id']}/cancel/")
    assert status == 200 and body["cancel_requested"]
    run = api.wait(run["id"], timeout=10)
    assert time.monotonic() - t0 < 5
    assert run["status"] == "cancelled"
    st = {s["node_id"]: s["status"] for s in run["steps"]}
    assert st == {"trigger": "succeeded", "sleep": "cancelled"}
    # finished runs stay as they are
    status, body = api.post(f"/api/runs/{run['id']}/cancel/")
    assert status == 409


def test_it_cancels_a_queued_run_before_it_starts(private_stack, wf):
    stack = private_stack(workers=0)
    api = stack.api()
    w = api.create_workflow(_sleeper(wf, 1))
    run = api.start(w["id"])
    status, body = api.post(f"/api/runs/{run['id']}/cancel/")
    assert status == 200 and body["status"] == "cancelled"
    stack.start_worker()
    time.sleep(1.0)
    run = api.wait(run["id"])
    assert run["status"] == "cancelled" and run["steps"] == []
