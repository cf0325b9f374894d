"""Testing one node from the designer (in the worker's sandbox) and pinning sample outputs."""


def _flow(wf, code="result = {'double': inputs['n'] * 2}"):
    return wf.definition(
        [wf.node("trigger", "trigger.manual", {"sample_payload": {"n": 4}}),
         wf.node("calc", "action.python", {"code": code, "inputs": {"n": "{{ trigger.body.n }}"}}),
         wf.node("fmt", "action.compose", {"value": "double is {{ steps.calc.output.double }}"})],
        [wf.edge("trigger", "calc"), wf.edge("calc", "fmt")])


def test_it_tests_a_node_with_sample_input(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf, "print('hello')\nresult = {'double': inputs['n'] * 2}"))
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/calc/test/", {"input": {"trigger": {"body": {"n": 21}}}})
    assert status == 200, body
    assert body["status"] == "succeeded" and body["output"] == {"double": 42} and body["stdout"] == "hello\n"
    assert body["run"]["kind"] == "test"
    # trigger's sample_payload is the default input
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/calc/test/", {})
    assert body["output"] == {"double": 8}
    # step tests are not in the run history
    assert api.get(f"/api/workflows/{w['id']}/runs/")[1]["count"] == 0
    assert api.get(f"/api/workflows/{w['id']}/runs/?kind=test")[1]["count"] == 2


def test_it_uses_the_latest_run_upstream_outputs(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf))
    api.wait(api.start(w["id"], {"n": 50})["id"])
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/fmt/test/", {"use_latest_run": True})
    assert body["output"] == "double is 100"


def test_a_failing_test_reports_the_error(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf, "raise KeyError('nope')"))
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/calc/test/", {})
    assert status == 200 and body["status"] == "failed" and "KeyError" in body["error"]
    assert api.post(f"/api/workflows/{w['id']}/nodes/ghost/test/", {})[0] == 404
    assert stack.api("bob").post(f"/api/workflows/{w['id']}/nodes/calc/test/", {})[0] == 404


def test_pins_feed_step_tests_and_go_stale_when_the_node_changes(stack, wf):
    api = stack.api()
    d = _flow(wf)
    w = api.create_workflow(d)
    status, pin = api.post(f"/api/workflows/{w['id']}/nodes/calc/pin/", {"output": {"double": 7}})
    assert status == 201 and pin["stale"] is False
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/fmt/test/", {})
    assert body["output"] == "double is 7"
    status, schemas = api.get(f"/api/workflows/{w['id']}/schemas/")
    assert schemas["schemas"]["calc"]["properties"]["double"]["type"] == "integer"
    d["nodes"][1]["parameters"]["code"] = "result = {'double': 0}"
    assert api.call("PATCH", f"/api/workflows/{w['id']}/", {"definition": d})[0] == 200
    assert api.get(f"/api/workflows/{w['id']}/pins/")[1]["calc"]["stale"] is True
    assert api.delete(f"/api/workflows/{w['id']}/nodes/calc/pin/")[0] == 204
    assert api.get(f"/api/workflows/{w['id']}/pins/")[1] == {}
    assert api.delete(f"/api/workflows/{w['id']}/nodes/calc/pin/")[0] == 404


def test_it_pins_a_runs_output(stack, wf):
    api = stack.api()
    w = api.create_workflow(_flow(wf))
    run = api.wait(api.start(w["id"], {"n": 3})["id"])
    status, pin = api.post(f"/api/workflows/{w['id']}/nodes/calc/pin/", {"run": run["id"]})
    assert status == 201 and pin["output"] == {"double": 6} and pin["source_run"] == run["id"]


def test_it_tests_a_for_each_with_its_body(stack, wf):
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("loop", "control.foreach", {"items": "{{ trigger.body.xs }}"}),
         wf.node("inc", "action.compose", {"value": "{{ sum([item, `1`]) }}"}, parent="loop")],
        [wf.edge("trigger", "loop")]))
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/loop/test/",
                            {"input": {"trigger": {"body": {"xs": [1, 2, 3]}}}})
    assert status == 200 and body["status"] == "succeeded" and body["output"] == [2, 3, 4]
    status, body = api.post(f"/api/workflows/{w['id']}/nodes/inc/test/", {"input": {"item": 41, "index": 0}})
    assert body["output"] == 42
