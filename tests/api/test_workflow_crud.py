"""Creating, reading, updating (= new version) and deleting workflows through the API."""
import pytest

pytestmark = pytest.mark.django_db


def test_it_creates_a_workflow_with_a_first_version(api, definition):
    r = api.post("/api/workflows/", {"name": "Expenses", "definition": definition}, format="json")
    assert r.status_code == 201, r.content
    assert r.data["version"] == 1
    assert r.data["definition"] == definition
    got = api.get(f"/api/workflows/{r.data['id']}/")
    assert got.data["definition"] == definition


def test_it_creates_an_empty_workflow_when_no_definition_is_given(api):
    r = api.post("/api/workflows/", {"name": "Blank"}, format="json")
    assert r.status_code == 201
    assert [n["type"] for n in r.data["definition"]["nodes"]] == ["trigger.manual"]


def test_every_update_of_the_definition_creates_a_version(api, definition):
    wid = api.post("/api/workflows/", {"name": "W", "definition": definition}, format="json").data["id"]
    definition["nodes"][1]["parameters"]["code"] = "result = 2"
    r = api.patch(f"/api/workflows/{wid}/", {"definition": definition}, format="json")
    assert r.status_code == 200 and r.data["version"] == 2
    versions = api.get(f"/api/workflows/{wid}/versions/").data["results"]
    assert [v["number"] for v in versions] == [2, 1]
    v1 = api.get(f"/api/workflows/{wid}/versions/1/").data
    assert v1["definition"]["nodes"][1]["parameters"]["code"] == "result = {'n': 1}"


def test_rename_keeps_the_version(api, definition):
    wid = api.post("/api/workflows/", {"name": "W", "definition": definition}, format="json").data["id"]
    r = api.patch(f"/api/workflows/{wid}/", {"name": "Renamed"}, format="json")
    assert r.data["name"] == "Renamed" and r.data["version"] == 1


def test_restoring_an_old_version_saves_it_as_a_new_one(api, definition):
    wid = api.post("/api/workflows/", {"name": "W", "definition": definition}, format="json").data["id"]
    changed = dict(definition, nodes=definition["nodes"][:1], edges=[])
    api.put(f"/api/workflows/{wid}/", {"name": "W", "definition": changed}, format="json")
    r = api.post(f"/api/workflows/{wid}/versions/1/restore/")
    assert r.status_code == 201 and r.data["number"] == 3 and r.data["restored_from"] == 1
    assert api.get(f"/api/workflows/{wid}/").data["definition"] == definition


def test_it_deletes(api, definition):
    wid = api.post("/api/workflows/", {"name": "W", "definition": definition}, format="json").data["id"]
    assert api.delete(f"/api/workflows/{wid}/").status_code == 204
    assert api.get(f"/api/workflows/{wid}/").status_code == 404


def test_versions_cannot_be_changed(api, definition):
    from engine.models import ImmutableError, WorkflowVersion

    wid = api.post("/api/workflows/", {"name": "W", "definition": definition}, format="json").data["id"]
    v = WorkflowVersion.objects.get(workflow_id=wid, number=1)
    v.definition = {}
    with pytest.raises(ImmutableError):
        v.save()


def test_unauthenticated_requests_are_refused(client):
    assert client.get("/api/workflows/").status_code in (401, 403)


def test_token_authentication_works(alice, definition):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    token = Token.objects.create(user=alice)
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert c.post("/api/workflows/", {"name": "T", "definition": definition}, format="json").status_code == 201
    assert len(c.get("/api/workflows/").data["results"]) == 1
