"""Manual runs with "use pinned data" (pinned nodes take their pin instead of running), a node's
data in recent runs, the newest run's outputs, and what a pin was pinned against (snapshot)."""
from tests.engine.test_node_test_and_pin import _flow  # the same doubling flow


def _step(run, node_id):
    return next(s for s in run["steps"] if s["node_id"] == node_id)


def test_a_manual_run_uses_pinned_outputs_only_when_asked(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf))
    assert api.post(f"/api/workflows/{w['id']}/nodes/calc/pin/", {"output": {"double": 7}})[0] == 201
    status, started = api.post(f"/api/workflows/{w['id']}/runs/", {"payload": {"n": 4}, "use_pinned": True})
    assert status == 201, started
    run = api.wait(started["id"])
    assert run["status"] == "succeeded", run
    assert run["pinned_nodes"] == ["calc"]
    calc = _step(run, "calc")
    assert calc["output"] == {"double": 7} and calc["sandbox"] == {"pinned": True} and calc["stdout"] == ""
    assert _step(run, "fmt")["output"] == "double is 7"
    # without the flag the pinned node runs
    run = api.wait(api.start(w["id"], {"n": 4})["id"])
    assert run["pinned_nodes"] == [] and _step(run, "fmt")["output"] == "double is 8"
    assert _step(run, "calc")["sandbox"] != {"pinned": True}
    assert api.post(f"/api/workflows/{w['id']}/runs/", {"payload": {}, "use_pinned": "maybe"})[0] == 400


def test_a_nodes_recent_runs_and_the_latest_runs_outputs(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf, "print('n is', inputs['n'])\nresult = {'double': inputs['n'] * 2}"))
    status, latest = api.get(f"/api/workflows/{w['id']}/latest-run/")
    assert status == 200 and latest == {"run": None, "outputs": {}, "nodes": {}}
    first = api.wait(api.start(w["id"], {"n": 1})["id"])
    second = api.wait(api.start(w["id"], {"n": 5})["id"])
    status, body = api.get(f"/api/workflows/{w['id']}/nodes/calc/runs/")
    assert status == 200, body
    assert [r["run"]["id"] for r in body["runs"]] == [second["id"], first["id"]]
    newest = body["runs"][0]
    assert newest["steps"][0]["output"] == {"double": 10} and newest["steps"][0]["stdout"] == "n is 5\n"
    assert newest["steps"][0]["inputs"]["inputs"] == {"n": 5}
    assert "print(" in newest["nodes"]["calc"]["parameters"]["code"]
    assert api.get(f"/api/workflows/{w['id']}/nodes/calc/runs/?limit=1")[1]["runs"][0]["run"]["id"] == second["id"]
    assert api.get(f"/api/workflows/{w['id']}/nodes/ghost/runs/")[1]["runs"] == []
    assert api.get(f"/api/workflows/{w['id']}/nodes/calc/runs/?limit=0")[0] == 400
    assert api.get(f"/api/workflows/{w['id']}/nodes/calc/runs/?kind=other")[0] == 400
    assert api.get(f"/api/workflows/{w['id']}/nodes/calc/runs/?kind=test")[1]["runs"] == []
    status, latest = api.get(f"/api/workflows/{w['id']}/latest-run/")
    assert latest["run"]["id"] == second["id"] and latest["outputs"]["fmt"] == "double is 10"
    assert latest["nodes"]["fmt"]["type"] == "action.compose"
    # a failed step's error is there too
    d = _flow(wf, "raise ValueError('bad n')")
    assert api.call("PATCH", f"/api/workflows/{w['id']}/", {"definition": d})[0] == 200
    failed = api.wait(api.start(w["id"], {"n": 2})["id"])
    newest = api.get(f"/api/workflows/{w['id']}/nodes/calc/runs/")[1]["runs"][0]
    assert newest["run"]["id"] == failed["id"] and newest["run"]["status"] == "failed"
    assert "ValueError" in newest["steps"][0]["error"] and newest["steps"][0]["status"] == "failed"
    bob = stack.api("bob")
    assert bob.get(f"/api/workflows/{w['id']}/nodes/calc/runs/")[0] == 404
    assert bob.get(f"/api/workflows/{w['id']}/latest-run/")[0] == 404


def test_a_pin_says_what_it_was_pinned_against(stack, wf):
    api = stack.api()
    d = _flow(wf)
    w = api.create_workflow(d)
    api.post(f"/api/workflows/{w['id']}/nodes/calc/pin/", {"output": {"double": 3}})
    pin = api.get(f"/api/workflows/{w['id']}/pins/")[1]["calc"]
    assert pin["stale"] is False and pin["snapshot"]["version"] == 1
    d["nodes"][1]["parameters"]["code"] = "result = {'double': 0}"
    assert api.call("PATCH", f"/api/workflows/{w['id']}/", {"definition": d})[0] == 200
    pin = api.get(f"/api/workflows/{w['id']}/pins/")[1]["calc"]
    assert pin["stale"] is True and pin["snapshot"]["version"] == 1
    assert pin["snapshot"]["nodes"]["calc"]["parameters"]["code"] == "result = {'double': inputs['n'] * 2}"


def test_a_pinned_for_each_skips_its_body_and_triggers_always_run(stack, wf):
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("loop", "control.foreach", {"items": "{{ trigger.body.xs }}"}),
         wf.node("inc", "action.compose", {"value": "{{ sum([item, `1`]) }}"}, parent="loop"),
         wf.node("after", "action.compose", {"value": "{{ steps.loop.output }}"})],
        [wf.edge("trigger", "loop"), wf.edge("loop", "after", "done")]))
    api.post(f"/api/workflows/{w['id']}/nodes/loop/pin/", {"output": [10, 20]})
    api.post(f"/api/workflows/{w['id']}/nodes/trigger/pin/", {"output": {"body": {"xs": [0]}}})
    api.post(f"/api/workflows/{w['id']}/nodes/inc/pin/", {"output": 99})
    status, started = api.post(f"/api/workflows/{w['id']}/runs/", {"payload": {"xs": [1, 2]}, "use_pinned": True})
    run = api.wait(started["id"])
    assert run["status"] == "succeeded", run
    assert run["pinned_nodes"] == ["loop"]   # not the trigger, not a step inside a For each
    assert _step(run, "trigger")["output"]["body"] == {"xs": [1, 2]}
    assert _step(run, "loop")["sandbox"] == {"pinned": True}
    assert not [s for s in run["steps"] if s["node_id"] == "inc"]
    assert _step(run, "after")["output"] == [10, 20]
