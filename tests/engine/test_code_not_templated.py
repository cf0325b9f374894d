"""A code step's source is never templated: values reach code only through `inputs`."""
from engine.validation import validate_definition

INJECTION = '"}\nimport os\nresult = {"pwned": os.getpid()}\nif 0: x = {"a": "'


def _hook_flow(wf, code, inputs=None):
    return wf.definition(
        [wf.node("hook", "trigger.http", {"method": "POST", "response_timeout_s": 30}),
         wf.node("code", "action.python", {"code": code, "inputs": inputs or {}})],
        [wf.edge("hook", "code")])


def _call_hook(stack, definition, body):
    api = stack.api()
    w = api.create_workflow(definition)
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    status, answer = stack.api(None).post(f"/hooks/{token}/", body)
    assert status == 202, answer
    return api.wait(answer["run_id"], timeout=60)


def test_a_hook_caller_cannot_inject_python_through_the_body(stack, wf):
    code = 'result = {"greeting": "{{ trigger.body.name }}", "name": inputs["name"]}'
    run = _call_hook(stack, _hook_flow(wf, code, {"name": "{{ trigger.body.name }}"}), {"name": INJECTION})
    assert run["status"] == "succeeded", run
    step = run["steps"][-1]
    assert step["output"] == {"greeting": "{{ trigger.body.name }}", "name": INJECTION}
    assert step["inputs"]["code"] == code        # recorded as written, nothing substituted


def test_double_braces_in_code_are_python(stack, wf):
    code = 'x = 5\nprint(f"{{x}} {x}")\nresult = {"s": f"{{x}}", "d": {"k": [1]}, "t": "{{ trigger }}"}'
    run = _call_hook(stack, _hook_flow(wf, code), {"x": "no"})
    assert run["status"] == "succeeded", run
    step = run["steps"][-1]
    assert step["stdout"].strip() == "{x} 5"
    assert step["output"] == {"s": "{x}", "d": {"k": [1]}, "t": "{{ trigger }}"}


def test_validation_does_not_read_code_as_mapping(wf):
    d = _hook_flow(wf, 'print("{{ steps.ghost.output }} {{ ..bad")', {"n": "{{ steps.ghost.output }}"})
    problems = validate_definition(d)
    assert [p.path for p in problems] == ["$.nodes[1].parameters.inputs.n"], problems
