"""Every API error has the one shape designer/api/errors.py promises:
{"detail": "...", "errors": [{"path": "$...", "message": "..."}]}, whichever view answers."""
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from designer.actions import do_create_workflow
from engine.actions import do_cancel_run, do_start_run, trigger_payload

pytestmark = pytest.mark.django_db


def _error(r, status: int, detail: str | None = None) -> dict:
    assert r.status_code == status, r.content
    body = r.json()
    assert set(body) == {"detail", "errors"}
    assert body["errors"] and all({"path", "message"} <= set(e) for e in body["errors"])
    if detail is not None:
        assert body["detail"] == detail
    return body


def test_unpinning_a_node_that_is_not_pinned(api, alice, definition):
    wf = do_create_workflow(alice, "w", definition=definition)
    body = _error(api.delete(f"/api/workflows/{wf.pk}/nodes/python_1/pin/"), 404, "not pinned")
    assert body["errors"] == [{"path": "$", "message": "not pinned"}]


def test_cancelling_a_finished_run(api, alice, definition):
    wf = do_create_workflow(alice, "w", definition=definition)
    run = do_cancel_run(do_start_run(wf, trigger_payload({})))
    body = _error(api.post(f"/api/runs/{run.pk}/cancel/"), 409, "the run already finished (cancelled)")
    assert body["errors"] == [{"path": "$", "message": body["detail"]}]


def test_not_signed_in_and_not_yours(api, bob, definition):
    _error(APIClient().get("/api/workflows/"), 403)
    wf = do_create_workflow(bob, "b", definition=definition)
    _error(api.get(f"/api/workflows/{wf.pk}/"), 404)


def test_the_async_step_test_view_names_the_bad_field(client, alice, definition):
    wf = do_create_workflow(alice, "w", definition=definition)
    url = f"/api/workflows/{wf.pk}/nodes/python_1/test/"
    _error(client.post(url, {}, content_type="application/json"), 403)
    auth = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=alice).key}"}
    body = _error(client.post(url, {"timeout_s": 0}, content_type="application/json", **auth), 400)
    assert [e["path"] for e in body["errors"]] == ["$.timeout_s"]
    _error(client.post(url, "{", content_type="application/json", **auth), 400, "the body must be JSON")
    _error(client.get(url, **auth), 405, "use POST")


def test_runtime_api_errors(django_user_model):
    staff = django_user_model.objects.create_user("root", password="pw-root-123", is_staff=True)
    api = APIClient()
    api.force_authenticate(staff)
    _error(api.get("/api/runtimes/active/"), 404, "No runtime is active yet.")
    body = _error(api.get("/api/runtimes/diff/"), 400, "Give two runtime ids: ?from=ID&to=ID")
    assert body["errors"][0]["path"] == "$"
    body = _error(api.post("/api/packages/", {"name": "not a name!"}, format="json"), 400)
    assert body["errors"][0]["path"] == "$.name"
