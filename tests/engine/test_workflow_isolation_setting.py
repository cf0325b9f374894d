"""`settings.isolation` on the real stack (uvicorn + worker + process sandbox): the setting is
accepted and the process driver still gives every execution a fresh sandbox; the Python step's
reuse key names the workflow version and owner (a new version or another owner gets another
key); and an instance policy that forbids workflow isolation refuses the save and the run, both
recorded as `policy` audit events with the rule's name."""
from __future__ import annotations

import json

from tests.engine.conftest import definition, edge, node

LEAVE_AND_LOOK = (
    "import os, json, sys\n"
    "seen = {'tmp': os.path.exists('/tmp/iso-left'), 'env': os.environ.get('ISO_LEFT'),\n"
    "        'mod': hasattr(json, 'ISO_LEFT')}\n"
    "open('/tmp/iso-left', 'w').write('x')\n"
    "os.environ['ISO_LEFT'] = 'yes'\n"
    "json.ISO_LEFT = True\n"
    "result = seen\n"
)


def _wf(code: str = LEAVE_AND_LOOK, **settings) -> dict:
    return definition([node("t", "trigger.manual"), node("py", "action.python", {"code": code})],
                      [edge("t", "py")], **settings)


def _py_output(api, run) -> dict:
    status, detail = api.get(f"/api/runs/{run['id']}/")
    assert status == 200
    [py] = [s for s in detail["steps"] if s["node_id"] == "py"]
    return py["output"]


def _keys(stack, run_ids) -> list[str]:
    out = stack.shell("import json; from engine.steps.python import reuse_key;"
                      f"print(json.dumps([reuse_key(i) for i in {run_ids!r}]))")
    return json.loads(out.strip().splitlines()[-1])


def test_workflow_isolation_is_accepted_and_the_process_driver_stays_fresh(stack):
    api = stack.api("alice")
    wf = api.create_workflow(_wf(isolation="workflow"), name="iso")
    assert wf["definition"]["settings"]["isolation"] == "workflow"
    first = api.wait(api.start(wf["id"])["id"], timeout=60)
    second = api.wait(api.start(wf["id"])["id"], timeout=60)
    assert first["status"] == second["status"] == "succeeded", (first, second)
    assert _py_output(api, second) == {"tmp": False, "env": None, "mod": False}
    # the reuse key: same version and owner -> same key; a new version or another owner -> another
    status, body = api.call("PUT", f"/api/workflows/{wf['id']}/",
                            {"name": "iso", "definition": _wf(LEAVE_AND_LOOK + "# v2\n", isolation="workflow")})
    assert status == 200, body
    third = api.wait(api.start(wf["id"])["id"], timeout=60)
    bob = stack.api("bob")
    bob_wf = bob.create_workflow(_wf(isolation="workflow"), name="iso")
    fourth = bob.wait(bob.start(bob_wf["id"])["id"], timeout=60)
    k1, k2, k3, k4 = _keys(stack, [first["id"], second["id"], third["id"], fourth["id"]])
    assert k1 == k2
    assert len({k1, k3, k4}) == 3


def test_a_policy_that_forbids_workflow_isolation_refuses_save_and_run(stack):
    api = stack.api("alice")
    wf = api.create_workflow(_wf(isolation="workflow"), name="iso forbidden")
    stack.set_policy(allow_workflow_isolation=False)
    try:
        status, body = api.post("/api/workflows/", {"name": "x", "definition": _wf(isolation="workflow")})
        run = api.wait(api.start(wf["id"])["id"], timeout=60)
        plain = api.create_workflow(_wf(isolation="execution"), name="iso allowed")   # still fine
    finally:
        stack.set_policy(allow_workflow_isolation=True)
    assert status == 400, body
    assert body["errors"][0]["rule"] == "workflow_isolation"
    assert body["errors"][0]["path"] == "$.definition.settings.isolation"
    assert run["status"] == "failed" and "[policy rule workflow_isolation]" in run["error"], run["error"]
    events = json.loads(stack.shell(
        "import json; from governance.models import AuditEvent;"
        f"print(json.dumps([e.payload for e in AuditEvent.objects.filter(kind='policy', run_id={run['id']})]))"
    ).strip().splitlines()[-1])
    assert [e["rules"] for e in events] == [["workflow_isolation"]]
    assert events[0]["policy"]["allow_workflow_isolation"] is False
    assert plain["definition"]["settings"]["isolation"] == "execution"
