"""An expression that cannot be evaluated at run time fails its step with the parameter's path."""


def test_it_fails_the_step_with_the_path(stack, wf):
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("count", "action.compose", {"value": {"n": ["{{ length(trigger.body.missing) }}"]}})],
        [wf.edge("trigger", "count")]))
    run = api.wait(api.start(w["id"], {"other": 1})["id"])
    assert run["status"] == "failed"
    step = run["steps"][-1]
    assert step["status"] == "failed" and step["attempt"] == 1
    assert step["error"].startswith("mapping error at $.parameters.value.n[0]")
    assert "length" in step["error"]
