"""The audit chain on the real stack (uvicorn + worker + process sandbox, a file database): a run
leaves an `execution` event linked to its step, audit_verify passes, a policy tightened after the
save fails the next run with the rule's name (a `policy` event at run), and a direct SQL edit
of an event makes audit_verify fail naming it (that test runs last: it breaks the chain)."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.engine.conftest import ROOT, PY, Stack, definition, edge, node

CODE = "print('hello from the sandbox')\nresult = {'sum': inputs['a'] + 1}\n"


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    yield s
    s.close()


def _events(stack, **filters) -> list[dict]:
    code = ("import json; from governance.models import AuditEvent;"
            f"print(json.dumps([dict(id=e.id, kind=e.kind, actor=e.actor, run=e.run_id, step=e.step_id, "
            f"workflow=e.workflow_id, payload=e.payload) for e in AuditEvent.objects.filter(**{filters!r})]))")
    return json.loads(stack.shell(code).strip().splitlines()[-1])


def _verify(stack) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "manage.py", "audit_verify"], cwd=ROOT, env=stack.env, capture_output=True, text=True)


def _wf(timeout_s: int = 20) -> dict:
    return definition([node("trigger", "trigger.manual"),
                       node("code", "action.python", {"code": CODE, "inputs": {"a": "{{ trigger.body.a }}"},
                                                      "timeout_s": timeout_s})],
                      [edge("trigger", "code")])


def test_a_run_is_audited_and_the_chain_verifies(stack):
    api = stack.api("alice")
    wf = api.create_workflow(_wf(), name="audited")
    run = api.wait(api.start(wf["id"], {"a": 41})["id"], timeout=90)
    assert run["status"] == "succeeded", run
    step = next(s for s in run["steps"] if s["node_id"] == "code")
    [event] = _events(stack, kind="execution", run_id=run["id"])
    p = event["payload"]
    assert event["step"] == step["id"] and event["actor"] == "alice" and event["workflow"] == wf["id"]
    assert p["code"] == CODE and len(p["code_sha256"]) == 64 and p["status"] == "succeeded"
    assert p["inputs"] == {"a": 41} and p["output"] == {"sum": 42} and "hello from the sandbox" in p["stdout"]
    assert p["driver"] == "process" and p["exit_code"] == 0 and p["limits"]["timeout_s"] == 20
    assert p["egress"] == [] and p["version"] == 1 and p["trigger"] == "manual"
    kinds = [e["kind"] for e in _events(stack, workflow_id=wf["id"])]
    assert kinds == ["workflow.saved", "run.started", "policy", "execution"]   # the save's decision came first,
    assert _events(stack, kind="policy", run_id=run["id"])[0]["payload"]["stage"] == "run"   # before the id
    out = _verify(stack)
    assert out.returncode == 0, out.stderr
    assert "events verified" in out.stdout


def test_a_policy_tightened_after_the_save_fails_the_run(stack):
    api = stack.api("alice")
    wf = api.create_workflow(_wf(timeout_s=20), name="tightened")
    stack.set_policy(max_timeout_s=10)
    try:
        run = api.wait(api.start(wf["id"], {"a": 1})["id"], timeout=60)
    finally:
        stack.set_policy(max_timeout_s=None)
    assert run["status"] == "failed"
    assert "refused by the instance policy" in run["error"] and "[policy rule max_timeout]" in run["error"]
    assert "$.nodes[1].parameters.timeout_s" in run["error"]
    assert not _events(stack, kind="execution", run_id=run["id"])      # nothing ran
    [decision] = _events(stack, kind="policy", run_id=run["id"])
    assert decision["payload"]["stage"] == "run" and decision["payload"]["decision"] == "denied"
    assert decision["payload"]["rules"] == ["max_timeout"]


def test_a_policy_that_forbids_the_process_driver_fails_code_runs(stack):
    api = stack.api("alice")
    wf = api.create_workflow(_wf(), name="no process driver")
    stack.set_policy(allow_process_driver=False)
    try:
        run = api.wait(api.start(wf["id"], {"a": 1})["id"], timeout=60)
    finally:
        stack.set_policy(allow_process_driver=True)
    assert run["status"] == "failed" and "[policy rule process_driver]" in run["error"], run["error"]
    assert not _events(stack, kind="execution", run_id=run["id"])


@pytest.mark.once
def test_concurrent_appends_from_processes_do_not_fork_the_chain(stack):
    code = ("from governance.actions import record\n"
            "for i in range(40):\n"
            "    record('package.changed', actor='proc', payload={'i': i})\n")
    procs = [subprocess.Popen([PY, "manage.py", "shell", "-v0", "-c", code], cwd=ROOT, env=stack.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    assert len(_events(stack, kind="package.changed", actor="proc")) == 160
    out = _verify(stack)
    assert out.returncode == 0, out.stderr


def test_a_direct_sql_edit_fails_audit_verify(stack):
    [first, *_] = _events(stack, kind="execution")
    edit = {"sqlite": "json_set(payload, '$.status', 'failed')",
            "postgresql": "jsonb_set(payload, '{status}', '\"failed\"')"}
    stack.shell("from django.db import connection; c = connection.cursor();"
                f"c.execute(\"UPDATE governance_auditevent SET payload = \" + {edit!r}[connection.vendor] + "
                f"\" WHERE id = {first['id']}\")")
    out = _verify(stack)
    assert out.returncode != 0
    assert f"event #{first['id']} (execution) does not match its hash" in out.stderr
