"""A run whose worker dies is marked failed once its lease expires, by another worker."""
import time


def test_it_marks_runs_of_a_dead_worker_failed(private_stack, wf):
    stack = private_stack(workers=1)
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("sleep", "action.python", {"code": "import time\ntime.sleep(60)"})],
        [wf.edge("trigger", "sleep")]))
    run = api.start(w["id"])
    api.wait(run["id"], until=lambda r: any(s["node_id"] == "sleep" and s["status"] == "running"
                                            for s in r["steps"]))
    stack.kill("worker0")  # SIGKILL: no chance to clean up
    time.sleep(0.5)
    assert api.get(f"/api/runs/{run['id']}/")[1]["status"] == "running"
    stack.start_worker("worker1")  # its reaper notices the expired lease (2 s in tests)
    t0 = time.monotonic()
    run = api.wait(run["id"], timeout=15)
    assert run["status"] == "failed"
    assert "stopped renewing its lease" in run["error"]
    assert {s["node_id"]: s["status"] for s in run["steps"]}["sleep"] == "failed"
    assert time.monotonic() - t0 < 10
    # the new worker still runs new work
    w2 = api.create_workflow(wf.definition([wf.node("trigger", "trigger.manual")], []))
    assert api.wait(api.start(w2["id"])["id"])["status"] == "succeeded"
