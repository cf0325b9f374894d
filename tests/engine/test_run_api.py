"""Starting runs through the API and reading them back: the worker executes, the API reports."""


def _simple(wf, code="result = {'n': inputs['x'] * 2}"):
    return wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("double", "action.python", {"code": code, "inputs": {"x": "{{ trigger.body.x }}"}}),
         wf.node("summary", "action.compose", {"value": {"n": "{{ steps.double.output.n }}",
                                                         "text": "n is {{ steps.double.output.n }}"}})],
        [wf.edge("trigger", "double"), wf.edge("double", "summary")])


def test_it_runs_a_workflow_end_to_end(stack, wf):
    api = stack.api()
    w = api.create_workflow(_simple(wf))
    run = api.start(w["id"], {"x": 21})
    assert run["status"] == "queued" and run["trigger"] == "manual" and run["version"] == 1
    run = api.wait(run["id"])
    assert run["status"] == "succeeded", run
    steps = {s["node_id"]: s for s in run["steps"]}
    assert steps["double"]["output"] == {"n": 42}
    assert steps["double"]["inputs"]["inputs"] == {"x": 21}
    assert steps["double"]["sandbox"]["status"] == "succeeded"
    assert steps["summary"]["output"] == {"n": 42, "text": "n is 42"}
    assert run["payload"]["body"] == {"x": 21}
    assert run["started_by"] == "alice"


def test_it_lists_runs_with_status_filter_and_paging(stack, wf):
    api = stack.api()
    w = api.create_workflow(_simple(wf, code="result = 1/0 if inputs['x'] == 0 else {'n': 1}"))
    ok = api.wait(api.start(w["id"], {"x": 1})["id"])
    bad = api.wait(api.start(w["id"], {"x": 0})["id"])
    assert ok["status"] == "succeeded" and bad["status"] == "failed"
    status, page = api.get(f"/api/workflows/{w['id']}/runs/")
    assert status == 200 and page["count"] == 2
    status, page = api.get(f"/api/workflows/{w['id']}/runs/?status=failed")
    assert [r["id"] for r in page["results"]] == [bad["id"]]
    status, page = api.get(f"/api/workflows/{w['id']}/runs/?limit=1")
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]
    status, body = api.get(f"/api/workflows/{w['id']}/runs/?status=bogus")
    assert status == 400 and body["errors"][0]["path"] == "$.status"


def test_it_records_a_failing_step(stack, wf):
    api = stack.api()
    w = api.create_workflow(_simple(wf, code="print('about to fail')\nraise ValueError('bad input')"))
    run = api.wait(api.start(w["id"], {"x": 1})["id"])
    assert run["status"] == "failed"
    steps = {s["node_id"]: s for s in run["steps"]}
    assert steps["double"]["status"] == "failed"
    assert "ValueError" in steps["double"]["error"] and "bad input" in steps["double"]["stderr"]
    assert steps["double"]["stdout"] == "about to fail\n"
    assert "summary" not in steps
    assert "double" in run["error"]


def test_it_reruns_with_the_same_input(stack, wf):
    api = stack.api()
    w = api.create_workflow(_simple(wf))
    first = api.wait(api.start(w["id"], {"x": 5})["id"])
    status, again = api.post(f"/api/runs/{first['id']}/rerun/")
    assert status == 201 and again["rerun_of"] == first["id"] and again["trigger"] == "rerun"
    again = api.wait(again["id"])
    assert again["payload"] == first["payload"]
    assert {s["node_id"]: s["output"] for s in again["steps"]}["double"] == {"n": 10}


def test_it_hides_runs_from_other_users(stack, wf):
    alice, bob = stack.api("alice"), stack.api("bob")
    w = alice.create_workflow(_simple(wf))
    run = alice.wait(alice.start(w["id"], {"x": 1})["id"])
    assert bob.get(f"/api/runs/{run['id']}/")[0] == 404
    assert bob.get(f"/api/workflows/{w['id']}/runs/")[0] == 404
    assert bob.post(f"/api/workflows/{w['id']}/runs/", {"payload": {}})[0] == 404
    assert bob.post(f"/api/runs/{run['id']}/cancel/")[0] == 404
    assert bob.post(f"/api/runs/{run['id']}/rerun/")[0] == 404
    assert stack.api(None).get(f"/api/runs/{run['id']}/")[0] in (401, 403)
