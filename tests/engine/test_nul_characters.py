"""NUL characters (U+0000) that code prints or returns, or that a server answers, are stored the
same way on SQLite and PostgreSQL (whose text and jsonb cannot hold them): replaced with U+FFFD
where the run's records are written, so the run ends as it would anywhere else."""
from __future__ import annotations

from tests.helpers.httpserver import Reply

CODE = (
    "import sys\n"
    "print('out\\x00put')\n"
    "print('err\\x00or', file=sys.stderr)\n"
    "result = {'te\\x00xt': 'a\\x00b', 'list': ['\\x00']}\n"
)


def test_nul_in_code_output_and_result_is_stored_as_a_replacement_character(stack, wf):
    api = stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("code", "action.python", {"code": CODE}),
         wf.node("next", "action.compose", {"value": "{{ steps.code.output }}"})],
        [wf.edge("trigger", "code"), wf.edge("code", "next")]))
    run = api.wait(api.start(w["id"])["id"])
    assert run["status"] == "succeeded", run["error"]
    steps = {s["node_id"]: s for s in run["steps"]}
    code = steps["code"]
    assert code["stdout"] == "out\ufffdput\n"
    assert "err\ufffdor" in code["stderr"]
    assert code["output"] == {"te\ufffdxt": "a\ufffdb", "list": ["\ufffd"]}
    assert steps["next"]["output"] == code["output"]


def test_nul_in_a_server_answer_and_a_failure_message(loopback_stack, wf, http_server):
    srv = http_server(lambda req: Reply(200, "body\x00with nul"))
    api = loopback_stack.api()
    w = api.create_workflow(wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("call", "action.http", {"method": "GET", "url": srv.url("/nul")}),
         wf.node("boom", "action.python", {"code": "raise ValueError('bad\\x00value')"})],
        [wf.edge("trigger", "call"), wf.edge("call", "boom")],
        allowed_hosts=[srv.netloc]))
    run = api.wait(api.start(w["id"])["id"])
    steps = {s["node_id"]: s for s in run["steps"]}
    assert steps["call"]["status"] == "succeeded", steps["call"]
    assert steps["call"]["output"]["body"] == "body\ufffdwith nul"
    assert run["status"] == "failed"
    assert steps["boom"]["status"] == "failed"
    assert "bad\ufffdvalue" in steps["boom"]["error"] and "bad\ufffdvalue" in run["error"]
