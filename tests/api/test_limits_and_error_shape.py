"""Every API error is the documented JSON, also a body over the size limits (413, with the
limits named); a step's memory and timeout are checked against the server's caps at save."""
import copy
import json

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _shape(r, status):
    assert r.status_code == status, r.content[:300]
    assert r["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert all(set(e) >= {"path", "message"} for e in body["errors"])
    return body


@pytest.fixture
def session(alice):
    """Signed in with a session (CSRF enforced as in the browser; the test client sends none)."""
    c = APIClient(enforce_csrf_checks=False)
    c.login(username="alice", password="pw-alice-123")
    return c


def test_a_two_megabyte_code_step_gets_json_413_everywhere(session, definition):
    wid = session.post("/api/workflows/", {"name": "w", "definition": definition}, format="json").json()["id"]
    big = copy.deepcopy(definition)
    big["nodes"][1]["parameters"]["code"] = "x = 1\n" * 350_000   # 2.1 MB, more as JSON
    for method, url, body in (("patch", f"/api/workflows/{wid}/", {"definition": big}),
                              ("post", "/api/workflows/validate/", big),
                              ("post", f"/api/workflows/{wid}/nodes/python_1/test/", {"definition": big}),
                              ("post", "/api/python/check/", {"code": big["nodes"][1]["parameters"]["code"]})):
        r = getattr(session, method)(url, json.dumps(body), content_type="application/json")
        doc = _shape(r, 413)
        assert "too large" in doc["detail"] and "200,000 characters" in doc["detail"], (url, doc)
    assert session.get(f"/api/workflows/{wid}/versions/").json()["count"] == 1


def test_code_over_the_limit_names_its_path_without_echoing_it(api, definition):
    definition["nodes"][1]["parameters"]["code"] = "#" * 250_000
    body = _shape(api.post("/api/workflows/", {"name": "w", "definition": definition}, format="json"), 400)
    [err] = body["errors"]
    assert err["path"] == "$.definition.nodes[1].parameters.code"
    assert err["message"] == "is 250,000 characters long; the limit is 200,000 (a code step's code)"


def test_memory_and_timeout_above_the_server_caps_are_refused_at_save(api, definition, settings):
    settings.STEPWELL_MAX_STEP_MEMORY_MIB = 2048
    settings.STEPWELL_MAX_STEP_TIMEOUT_S = 120
    definition["nodes"][1]["parameters"].update(memory_mib=4096, timeout_s=300)
    definition["settings"] = {**definition.get("settings", {}), "default_memory_mib": 3000}
    body = _shape(api.post("/api/workflows/", {"name": "w", "definition": definition}, format="json"), 400)
    by_path = {e["path"]: e["message"] for e in body["errors"]}
    assert by_path == {
        "$.definition.nodes[1].parameters.memory_mib":
            "4096 MiB is above this server's limit of 2048 MiB (STEPWELL_MAX_STEP_MEMORY_MIB)",
        "$.definition.nodes[1].parameters.timeout_s":
            "300s is above this server's limit of 120s (STEPWELL_MAX_STEP_TIMEOUT_S)",
        "$.definition.settings.default_memory_mib":
            "3000 MiB is above this server's limit of 2048 MiB (STEPWELL_MAX_STEP_MEMORY_MIB)",
    }
    # the validate endpoint (the editor's check as you type) says the same
    r = api.post("/api/workflows/validate/", definition, format="json")
    assert r.status_code == 200 and {e["path"] for e in r.json()["errors"]} == {
        "$.nodes[1].parameters.memory_mib", "$.nodes[1].parameters.timeout_s", "$.settings.default_memory_mib"}
    # at the caps: accepted
    definition["nodes"][1]["parameters"].update(memory_mib=2048, timeout_s=120)
    definition["settings"]["default_memory_mib"] = 2048
    assert api.post("/api/workflows/", {"name": "w", "definition": definition}, format="json").status_code == 201


def test_django_own_error_pages_become_json_under_api(api):
    _shape(api.get("/api/no-such-route/"), 404)


def test_the_policy_ceilings_show_while_editing_and_refuse_the_save(api, definition):
    from governance.policies import Policy

    Policy.objects.update_or_create(pk=1, defaults={"max_memory_mib": 1024, "egress_ceiling": ["*"]})
    definition["nodes"][1]["parameters"]["memory_mib"] = 1536
    r = api.post("/api/workflows/validate/", definition, format="json")
    [err] = r.json()["errors"]
    assert err["path"] == "$.nodes[1].parameters.memory_mib" and "policy rule max_memory" in err["message"]
    body = _shape(api.post("/api/workflows/", {"name": "w", "definition": definition}, format="json"), 400)
    assert [e["path"] for e in body["errors"]] == ["$.definition.nodes[1].parameters.memory_mib"]


def test_node_types_show_the_server_caps(api, settings):
    settings.STEPWELL_MAX_STEP_MEMORY_MIB = 2048
    settings.STEPWELL_MAX_HTTP_TIMEOUT_S = 30
    types = {t["key"]: t["parameters_schema"]["properties"] for t in api.get("/api/node-types/").json()}
    assert types["action.python"]["memory_mib"]["maximum"] == 2048
    assert types["action.python"]["timeout_s"]["maximum"] == 600
    assert types["action.http"]["timeout_s"]["maximum"] == 30
