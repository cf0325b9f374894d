"""The validate endpoint, the published definition schema and the OpenAPI schema."""
import pytest
from jsonschema import Draft202012Validator

from engine.models import Workflow

pytestmark = pytest.mark.django_db


def test_validate_reports_errors_without_saving(api, definition):
    definition["edges"][0]["source_port"] = "sideways"
    r = api.post("/api/workflows/validate/", definition, format="json")
    assert r.status_code == 200 and r.data["valid"] is False
    assert r.data["errors"][0]["path"] == "$.edges[0].source_port"
    assert Workflow.objects.count() == 0


def test_validate_accepts_a_valid_definition(api, definition):
    assert api.post("/api/workflows/validate/", definition, format="json").data == {"valid": True, "errors": []}


def test_workflow_schema_is_served_and_is_draft_2020_12(client, definition):
    r = client.get("/api/schema/workflow.json")
    assert r.status_code == 200
    schema = r.json()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert not list(Draft202012Validator(schema).iter_errors(definition))


def test_openapi_schema_and_docs(api, client, alice):
    r = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    assert "/api/workflows/{id}/versions/{number}/" in r.json()["paths"]
    client.force_login(alice)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_node_types_lists_every_type(api):
    keys = {t["key"] for t in api.get("/api/node-types/").data}
    assert keys == {"trigger.manual", "trigger.http", "trigger.schedule", "action.python", "action.http",
                    "control.condition", "control.foreach", "action.compose", "action.response", "action.agent"}
