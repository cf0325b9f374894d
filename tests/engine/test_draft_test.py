"""A step test of the editor's unsaved draft: it runs the node as the draft has it, saves no
version, and the test run records the draft's hash and the version it was based on."""
import copy

from engine.drafts import definition_hash


def _flow(wf, code):
    return wf.definition(
        [wf.node("trigger", "trigger.manual", {"sample_payload": {"n": 4}}),
         wf.node("calc", "action.python", {"code": code, "inputs": {"n": "{{ trigger.body.n }}"}})],
        [wf.edge("trigger", "calc")])


def test_a_draft_is_tested_without_saving_it(stack, wf):
    api = stack.api()
    saved = _flow(wf, "result = {'double': inputs['n'] * 2}")
    w = api.create_workflow(saved)
    draft = copy.deepcopy(saved)
    draft["nodes"][1]["parameters"]["code"] = "print('draft')\nresult = {'triple': inputs['n'] * 3}"
    draft["nodes"].append(wf.node("new_step", "action.python", {"code": "result = 'fresh'"}))
    draft["edges"].append(wf.edge("calc", "new_step"))

    status, body = api.post(f"/api/workflows/{w['id']}/nodes/calc/test/", {"definition": draft})
    assert status == 200, body
    assert body["status"] == "succeeded" and body["output"] == {"triple": 12} and body["stdout"] == "draft\n"
    assert body["draft"] == {"hash": definition_hash(draft), "base_version": 1}
    assert body["run"]["draft_hash"] == definition_hash(draft)
    # a node that exists only in the draft can be tested too
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/new_step/test/", {"definition": draft})
    assert status == 200 and body["output"] == "fresh", body

    # nothing was saved: one version, the saved code still runs
    assert api.get(f"/api/workflows/{w['id']}/versions/")[1]["count"] == 1
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/calc/test/", {})
    assert body["output"] == {"double": 8} and body["draft"] is None and body["run"]["draft_hash"] == ""
    # hooks and runs keep executing the saved version
    run = api.wait(api.start(w["id"], {"n": 1})["id"])
    assert run["steps"][-1]["output"] == {"double": 2}


def test_a_draft_with_a_syntax_error_or_an_invalid_draft_is_refused(stack, wf):
    api = stack.api()
    saved = _flow(wf, "result = 1")
    w = api.create_workflow(saved)
    draft = copy.deepcopy(saved)
    draft["nodes"][1]["parameters"]["code"] = "if True:\nprint('x')\n"
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/calc/test/", {"definition": draft})
    assert status == 400, body
    assert body["errors"][0]["path"] == "$.definition.nodes[1].parameters.code"
    assert "IndentationError" in body["detail"] and "line 2" in body["detail"]

    draft["nodes"][1]["parameters"] = {"code": "result = 1", "memory_mib": 4096}
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/calc/test/", {"definition": draft})
    assert status == 400 and body["errors"][0]["path"] == "$.definition.nodes[1].parameters.memory_mib", body
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/calc/test/", {"definition": [1]})
    assert status == 400 and body["errors"][0]["path"] == "$.definition"
    # another user's workflow: 404, whatever the draft
    assert stack.api("bob").post(f"/api/workflows/{w['id']}/nodes/calc/test/", {"definition": saved})[0] == 404
    assert api.get(f"/api/workflows/{w['id']}/runs/?kind=test")[1]["count"] == 0
