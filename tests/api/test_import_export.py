"""Export and import of a workflow round-trip exactly."""
import pytest

pytestmark = pytest.mark.django_db


def test_export_then_import_round_trips(api, definition):
    definition["nodes"][1]["parameters"]["code"] = "# ünïcode ✓\nresult = [1.5, None, {'a': True}]"
    definition["nodes"][1]["retry"] = {"max_attempts": 3, "backoff_s": 1.5}
    wid = api.post("/api/workflows/", {"name": "Original", "description": "d", "definition": definition},
                   format="json").data["id"]
    exported = api.get(f"/api/workflows/{wid}/export/").json()
    assert exported["format"] == "stepwell.workflow/v1"
    r = api.post("/api/workflows/import/", exported, format="json")
    assert r.status_code == 201
    again = api.get(f"/api/workflows/{r.data['id']}/export/").json()
    assert again == exported
    assert again["definition"] == definition


def test_import_of_an_invalid_document_saves_nothing(api, definition):
    from engine.models import Workflow

    definition["nodes"][0]["type"] = "trigger.telepathy"
    r = api.post("/api/workflows/import/", {"format": "stepwell.workflow/v1", "name": "x",
                                            "definition": definition}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "$.definition.nodes[0].type"
    assert Workflow.objects.count() == 0


def test_import_rejects_an_unknown_format(api, definition):
    r = api.post("/api/workflows/import/", {"format": "n8n", "name": "x", "definition": definition},
                 format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "$.format"
