"""Saving a definition checks mapping expressions: syntax, and references to preceding steps."""
import copy

from engine.validation import validate_definition


def _d(wf, value, extra_nodes=(), extra_edges=()):
    return wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("a", "action.compose", {"value": "{{ trigger.body }}"}),
         wf.node("b", "action.compose", {"value": value}), *extra_nodes],
        [wf.edge("trigger", "a"), wf.edge("a", "b"), *extra_edges])


def test_references_to_ancestors_are_fine(wf):
    assert validate_definition(_d(wf, {"x": "{{ steps.a.output }}", "t": "{{ steps.trigger.output }}"})) == []


def test_a_reference_to_a_later_or_parallel_step_is_an_error(wf):
    d = _d(wf, "{{ steps.c.output }}", [wf.node("c", "action.compose", {"value": 1})], [wf.edge("a", "c")])
    problems = validate_definition(d)
    assert [(p.path, p.node_id) for p in problems] == [("$.nodes[2].parameters.value", "b")]
    assert "does not run before 'b'" in problems[0].message
    d2 = copy.deepcopy(d)
    d2["nodes"][1]["parameters"]["value"] = {"deep": ["{{ steps.b.output }}"]}
    problems = validate_definition(d2)
    assert problems[0].path == "$.nodes[1].parameters.value.deep[0]"


def test_a_reference_to_an_unknown_step_or_bad_syntax_is_an_error(wf):
    problems = validate_definition(_d(wf, "x {{ steps.ghost.output }} y"))
    assert "not a node of this workflow" in problems[0].message
    problems = validate_definition(_d(wf, "{{ steps..x }}"))
    assert problems[0].path == "$.nodes[2].parameters.value" and "cannot parse" in problems[0].message


def test_for_each_body_may_read_the_loop_and_its_ancestors(wf):
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("loop", "control.foreach", {"items": "{{ trigger.body }}"}),
         wf.node("inner", "action.compose", {"value": "{{ steps.trigger.output }}"}, parent="loop"),
         wf.node("inner2", "action.compose", {"value": "{{ steps.inner.output }}"}),
         wf.node("after", "action.compose", {"value": "{{ steps.inner2.output }}"})],
        [wf.edge("trigger", "loop"), wf.edge("inner", "inner2"), wf.edge("loop", "after", "done")])
    problems = validate_definition(d)
    assert [p.node_id for p in problems] == ["after"]


def test_the_api_rejects_it_with_paths(stack, wf):
    api = stack.api()
    status, body = api.post("/api/workflows/", {"name": "x", "definition": _d(wf, "{{ steps.zzz.output }}")})
    assert status == 400
    assert body["errors"][0]["path"] == "$.definition.nodes[2].parameters.value"
