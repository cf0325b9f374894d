"""Saving without a change creates no version; the diff between two versions; the Python syntax
check behind the code editor's markers."""
import copy

import pytest

from engine.models import WorkflowVersion

pytestmark = pytest.mark.django_db


def _create(api, definition):
    r = api.post("/api/workflows/", {"name": "W", "definition": definition}, format="json")
    assert r.status_code == 201, r.content
    return r.json()["id"]


def test_saving_the_same_definition_creates_no_version(api, definition):
    wid = _create(api, definition)
    same = {k: definition[k] for k in reversed(list(definition))}   # another key order
    r = api.patch(f"/api/workflows/{wid}/", {"definition": same}, format="json")
    assert r.status_code == 200 and r.json()["unchanged"] is True and r.json()["version"] == 1
    assert WorkflowVersion.objects.filter(workflow_id=wid).count() == 1

    changed = copy.deepcopy(definition)
    changed["nodes"][1]["parameters"]["code"] = "result = {'n': 2}"
    r = api.patch(f"/api/workflows/{wid}/", {"definition": changed}, format="json")
    assert r.status_code == 200 and r.json()["unchanged"] is False and r.json()["version"] == 2
    r = api.patch(f"/api/workflows/{wid}/", {"name": "renamed"}, format="json")
    assert r.json()["unchanged"] is False and r.json()["version"] == 2
    assert WorkflowVersion.objects.filter(workflow_id=wid).count() == 2


def test_the_diff_between_two_versions(api, definition):
    wid = _create(api, definition)
    changed = copy.deepcopy(definition)
    changed["nodes"][1]["parameters"]["code"] = "result = {'n': 2}"
    changed["nodes"][1]["parameters"]["memory_mib"] = 256
    changed["nodes"].insert(1, {"id": "note", "type": "action.compose", "name": "Note",
                                "parameters": {"value": "x"}, "position": {"x": 0, "y": 0}})
    assert api.patch(f"/api/workflows/{wid}/", {"definition": changed}, format="json").status_code == 200

    r = api.get(f"/api/workflows/{wid}/versions/diff/?from=1&to=2")
    assert r.status_code == 200, r.content
    body = r.json()
    ops = {(c["op"], c["path"]) for c in body["changes"]}
    # nodes matched by id: the inserted node does not make python_1 look replaced
    assert ("changed", "$.nodes[2].parameters.code") in ops
    assert ("added", "$.nodes[2].parameters.memory_mib") in ops
    assert ("added", "$.nodes[1]") in ops and len(ops) == 3
    code = next(c for c in body["changes"] if c["path"].endswith(".code"))
    assert code["old"] == "result = {'n': 1}" and code["new"] == "result = {'n': 2}"
    assert body["unified"].startswith("--- v1\n+++ v2\n")
    removed = [line for line in body["unified"].splitlines() if line.startswith("-") and "code" in line]
    assert removed == ["-        \"code\": \"result = {'n': 1}\","]
    assert r.json()["from"] == 1 and r.json()["to"] == 2

    same = api.get(f"/api/workflows/{wid}/versions/diff/?from=2&to=2").json()
    assert same["changes"] == [] and same["unified"] == ""
    bad = api.get(f"/api/workflows/{wid}/versions/diff/?from=1")
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "$.to"
    missing = api.get(f"/api/workflows/{wid}/versions/diff/?from=1&to=9")
    assert missing.status_code == 404 and missing.json()["detail"]


def test_the_python_syntax_check(api, settings):
    r = api.post("/api/python/check/", {"code": "import os\nif os:\nprint(1)\n"}, format="json")
    assert r.status_code == 200
    body = r.json()
    assert body["python"] == "3.11"
    [err] = body["errors"]
    assert err["line"] == 3 and err["column"] == 1 and err["message"].startswith("IndentationError:")
    assert api.post("/api/python/check/", {"code": "import os\nresult = os.sep\n"}, format="json").json()["errors"] == []
    # module-level code as the sandbox compiles it
    assert "'return' outside function" in api.post("/api/python/check/", {"code": "return 1"},
                                                   format="json").json()["errors"][0]["message"]
    too_long = api.post("/api/python/check/", {"code": "x" * 200_001}, format="json")
    assert too_long.status_code == 400 and too_long.json()["errors"][0]["path"] == "$.code"
    assert "200,000" in too_long.json()["detail"]


def test_a_syntax_error_blocks_a_run_not_a_save(api, definition):
    broken = copy.deepcopy(definition)
    code_node = next(i for i, n in enumerate(broken["nodes"]) if n["type"] == "action.python")
    broken["nodes"][code_node]["parameters"]["code"] = "def f(:\n    pass\n"
    wf = _create(api, broken)                                   # saved
    r = api.post(f"/api/workflows/{wf}/runs/", {"payload": {}}, format="json")
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["detail"].startswith("Not run: a code step has a syntax error")
    assert body["errors"][0]["path"] == f"$.head.definition.nodes[{code_node}].parameters.code"
    assert body["errors"][0]["line"] == 1
    broken["nodes"][code_node]["parameters"]["code"] = "result = 1\n"
    assert api.put(f"/api/workflows/{wf}/", {"name": "W", "definition": broken}, format="json").status_code == 200
    assert api.post(f"/api/workflows/{wf}/runs/", {"payload": {}}, format="json").status_code == 201
