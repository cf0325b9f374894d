"""A user sees and changes only their own workflows; others get 404."""
import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def bobs_workflow(bob, definition):
    c = APIClient()
    c.force_authenticate(bob)
    return c.post("/api/workflows/", {"name": "Bob's", "definition": definition}, format="json").data["id"]


@pytest.mark.parametrize("method,suffix", [
    ("get", ""), ("patch", ""), ("put", ""), ("delete", ""), ("get", "versions/"),
    ("get", "versions/1/"), ("post", "versions/1/restore/"), ("get", "export/"),
])
def test_other_users_get_404(api, bobs_workflow, definition, method, suffix):
    r = getattr(api, method)(f"/api/workflows/{bobs_workflow}/{suffix}",
                             {"name": "x", "definition": definition}, format="json")
    assert r.status_code == 404


def test_the_list_shows_only_own_workflows(api, bobs_workflow, definition):
    api.post("/api/workflows/", {"name": "Alice's", "definition": definition}, format="json")
    names = [w["name"] for w in api.get("/api/workflows/").data["results"]]
    assert names == ["Alice's"]


def test_the_editor_page_is_404_for_other_users(client, alice, bobs_workflow):
    client.force_login(alice)
    assert client.get(f"/workflows/{bobs_workflow}/edit").status_code == 404
