"""Page routes: sign-in lands on the workflow list page, not on the API."""
import pytest

pytestmark = pytest.mark.django_db


def test_login_redirects_to_the_workflow_page(client, alice):
    r = client.post("/login/", {"username": "alice", "password": "pw-alice-123"})
    assert r.status_code == 302 and r.url == "/workflows/"


def test_home_redirects_to_the_workflow_page(client, alice):
    client.force_login(alice)
    assert client.get("/").url == "/workflows/"


def test_pages_need_login(client):
    r = client.get("/workflows/")
    assert r.status_code == 302 and r.url.startswith("/login/")
