"""Rerun from a step (issue 13): POST /api/runs/{id}/rerun/ with from_node (and item_index) reuses
the recorded outputs upstream (marked reused) and runs from that step on, also for a step inside
a For each iteration and in a Condition branch; refusals use the one error shape."""
from __future__ import annotations

RAND = "import random\nresult = {'r': random.random(), 'x': inputs.get('x')}"


def _flow(wf, tail_code: str = "result = {'sum': sum(v['x'] for v in inputs['all'])}"):
    return wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("rand", "action.python", {"code": RAND, "inputs": {}}),
         wf.node("cond", "control.condition", {"left": "{{ trigger.body.go }}", "operator": "is_true"}),
         wf.node("loop", "control.foreach", {"items": "{{ trigger.body.items }}"}),
         wf.node("sq", "action.python", {"code": RAND, "inputs": {"x": "{{ item }}"}}),
         wf.node("tail", "action.python", {"code": tail_code, "inputs": {"all": "{{ steps.loop.output }}"}}),
         wf.node("never", "action.compose", {"value": "no"})],
        [wf.edge("trigger", "rand"), wf.edge("rand", "cond"), wf.edge("cond", "loop", "true"),
         wf.edge("cond", "never", "false"), wf.edge("loop", "sq", "each"), wf.edge("loop", "tail", "done")])


def _steps(run):
    return {(s["node_id"], s["item_index"]): s for s in run["steps"]}


def test_rerun_from_a_step_reuses_upstream_and_runs_the_rest(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf))
    first = api.wait(api.start(w["id"], {"go": True, "items": [1, 2, 3]})["id"], timeout=120)
    assert first["status"] == "succeeded", first
    old = _steps(first)
    assert old[("never", None)]["status"] == "skipped"

    # from a top-level step in the taken branch, on the recorded version
    status, new = api.post(f"/api/runs/{first['id']}/rerun/", {"from_node": "tail", "same_version": True})
    assert status == 201, new
    assert new["trigger"] == "rerun" and new["rerun_of"] == first["id"]
    assert new["rerun_from"] == {"node": "tail", "item_index": None, "source_run": first["id"]}
    run = api.wait(new["id"], timeout=120)
    assert run["status"] == "succeeded", run
    got = _steps(run)
    for key in [("trigger", None), ("rand", None), ("cond", None), ("loop", None)]:
        assert got[key]["status"] == "succeeded" and got[key]["reused_from"] == {
            "run": first["id"], "step": old[key]["id"]}, key
        assert got[key]["output"] == old[key]["output"]
    assert ("sq", 0) not in got            # the loop was reused whole: its body did not run
    assert got[("tail", None)]["reused_from"] is None
    assert got[("tail", None)]["output"] == {"sum": 6}
    assert got[("never", None)]["status"] == "skipped"   # the untaken branch stays untaken

    # from a step inside one For each iteration: only that iteration runs, the loop gathers again
    status, new = api.post(f"/api/runs/{first['id']}/rerun/", {"from_node": "sq", "item_index": 1})
    assert status == 201, new
    run = api.wait(new["id"], timeout=120)
    assert run["status"] == "succeeded", run
    got = _steps(run)
    assert got[("rand", None)]["reused_from"] is not None
    assert got[("loop", None)]["reused_from"] is None and got[("tail", None)]["reused_from"] is None
    for i in (0, 2):
        assert got[("sq", i)]["reused_from"]["step"] == old[("sq", i)]["id"]
        assert got[("sq", i)]["output"] == old[("sq", i)]["output"]
    assert got[("sq", 1)]["reused_from"] is None
    assert got[("sq", 1)]["output"]["x"] == 2 and got[("sq", 1)]["output"] != old[("sq", 1)]["output"]
    loop_out = got[("loop", None)]["output"]
    assert loop_out[0] == old[("sq", 0)]["output"] and loop_out[1] == got[("sq", 1)]["output"]

    # from the Condition itself: everything after it runs anew
    status, new = api.post(f"/api/runs/{first['id']}/rerun/", {"from_node": "cond"})
    run = api.wait(new["id"], timeout=120)
    got = _steps(run)
    assert got[("rand", None)]["reused_from"] is not None
    assert all(got[(n, i)]["reused_from"] is None for n, i in got if n not in ("trigger", "rand"))
    assert {i for n, i in got if n == "sq"} == {0, 1, 2}


def test_rerun_from_a_step_with_a_draft_and_refusals(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf))
    first = api.wait(api.start(w["id"], {"go": True, "items": [1, 2]})["id"], timeout=120)
    assert first["status"] == "succeeded", first
    # the editor's unsaved draft: the rerun executes it, nothing is saved
    draft = _flow(wf, "result = {'doubled': 2 * sum(v['x'] for v in inputs['all'])}")
    status, new = api.post(f"/api/runs/{first['id']}/rerun/", {"from_node": "tail", "definition": draft})
    assert status == 201, new
    run = api.wait(new["id"], timeout=120)
    assert run["status"] == "succeeded", run
    assert _steps(run)[("tail", None)]["output"] == {"doubled": 6}
    assert api.get(f"/api/workflows/{w['id']}/")[1]["definition"]["nodes"][5]["parameters"]["code"].startswith(
        "result = {'sum'")

    cases = [({"from_node": "nope"}, "$.from_node"),
             ({"from_node": "tail", "item_index": 0}, "$.item_index"),
             ({"from_node": "sq", "item_index": -1}, "$.item_index"),
             ({"from_node": "tail", "same_version": "yes"}, "$.same_version"),
             ({"from_node": "tail", "definition": {"nodes": "x"}}, "$.definition")]
    for body, path in cases:
        status, err = api.post(f"/api/runs/{first['id']}/rerun/", body)
        assert status == 400, (body, err)
        assert err["detail"] and err["errors"][0]["path"].startswith(path), (body, err)
    # someone else's run is not found
    assert stack.api("bob").post(f"/api/runs/{first['id']}/rerun/", {"from_node": "tail"})[0] == 404
