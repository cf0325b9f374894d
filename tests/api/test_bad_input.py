"""Bad input answers 400 with the JSON path of each problem, and nothing is saved."""
import json

import pytest

from engine.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db


def _nothing_saved():
    assert Workflow.objects.count() == 0 and WorkflowVersion.objects.count() == 0


def test_malformed_json(api):
    r = api.generic("POST", "/api/workflows/", '{"name": "x", "definition": {', content_type="application/json")
    assert r.status_code == 400
    assert "malformed JSON" in r.json()["errors"][0]["message"]
    _nothing_saved()


def test_unknown_node_type(api, definition):
    definition["nodes"][1]["type"] = "action.teleport"
    r = api.post("/api/workflows/", {"name": "x", "definition": definition}, format="json")
    assert r.status_code == 400
    err = r.json()["errors"][0]
    assert err["path"] == "$.definition.nodes[1].type"
    assert "unknown node type 'action.teleport'" in err["message"]
    assert err["node_id"] == "python_1"
    _nothing_saved()


def test_dangling_edge(api, definition):
    definition["edges"].append({"source": "python_1", "target": "ghost"})
    r = api.post("/api/workflows/", {"name": "x", "definition": definition}, format="json")
    assert r.status_code == 400
    assert r.json()["errors"] == [{"path": "$.definition.edges[1].target",
                                   "message": "edge target 'ghost' is not a node of this workflow"}]
    _nothing_saved()


def test_cycle(api, definition):
    definition["nodes"].append({"id": "c", "type": "action.compose", "name": "C",
                                "parameters": {"value": 1}, "position": {"x": 0, "y": 0}})
    definition["edges"] += [{"source": "python_1", "target": "c"}, {"source": "c", "target": "python_1"}]
    r = api.post("/api/workflows/", {"name": "x", "definition": definition}, format="json")
    assert r.status_code == 400
    assert "cycle" in r.json()["errors"][0]["message"]


def test_two_triggers_and_duplicate_ids(api, definition):
    definition["nodes"].append(dict(definition["nodes"][0]))
    r = api.post("/api/workflows/", {"name": "x", "definition": definition}, format="json")
    paths = {e["path"] for e in r.json()["errors"]}
    assert r.status_code == 400 and {"$.definition.nodes[2].id", "$.definition.nodes"} <= paths


def test_missing_parameter_names_its_path(api, definition):
    del definition["nodes"][1]["parameters"]["code"]
    r = api.post("/api/workflows/", {"name": "x", "definition": definition}, format="json")
    assert r.json()["errors"][0]["path"] == "$.definition.nodes[1].parameters"
    assert "'code' is a required property" in r.json()["errors"][0]["message"]


def test_oversize_definition(api, definition, settings):
    settings.MAX_DEFINITION_BYTES = 5000
    definition["nodes"][1]["parameters"]["code"] = "x = 1\n" * 2000
    r = api.post("/api/workflows/", {"name": "x", "definition": definition}, format="json")
    assert r.status_code == 400
    assert "limit" in r.json()["errors"][0]["message"]
    _nothing_saved()


def test_oversize_body_is_refused_before_parsing(api, settings):
    settings.MAX_DEFINITION_BYTES = 1000
    body = json.dumps({"name": "x", "definition": {"pad": "y" * 200_000}})
    r = api.generic("POST", "/api/workflows/", body, content_type="application/json")
    assert r.status_code == 413 and "too large" in r.json()["detail"] and "limit" in r.json()["detail"]
    _nothing_saved()


def test_failed_update_keeps_the_last_version(api, definition):
    wid = api.post("/api/workflows/", {"name": "W", "definition": definition}, format="json").data["id"]
    bad = dict(definition, edges=[{"source": "trigger", "target": "nowhere"}])
    r = api.patch(f"/api/workflows/{wid}/", {"definition": bad, "name": "changed"}, format="json")
    assert r.status_code == 400
    got = api.get(f"/api/workflows/{wid}/").data
    assert got["version"] == 1 and got["name"] == "W" and got["definition"] == definition


def test_missing_name(api, definition):
    r = api.post("/api/workflows/", {"definition": definition}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "$.name"


def test_definition_not_an_object(api):
    r = api.post("/api/workflows/", {"name": "x", "definition": [1, 2]}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "$.definition"
