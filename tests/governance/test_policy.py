"""The instance policy through the real API: staff change it (audited), a violation refuses a
save with the JSON path and the rule's name, and every decision is a `policy` audit event."""
from __future__ import annotations

import copy

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from governance.audit import AuditEvent
from governance.rules import covered

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user("root", password="pw-root-123", is_staff=True)
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def alice_client(alice):
    c = Client()
    c.force_login(alice)
    return c


def _put(staff, **values):
    body = {"max_timeout_s": None, "max_memory_mib": None, "egress_ceiling": [], "code_steps_group": "",
            "allow_process_driver": True, "output_retention_days": None, **values}
    r = staff.put("/api/policy/", body, content_type="application/json")
    assert r.status_code == 200, r.content
    return r.json()


def _create(client, definition):
    return client.post("/api/workflows/", {"name": "wf", "definition": definition}, content_type="application/json")


def test_default_policy_and_staff_only(staff, alice_client):
    assert staff.get("/api/policy/").json()["egress_ceiling"] == []
    assert alice_client.get("/api/policy/").status_code == 403
    assert alice_client.put("/api/policy/", {}, content_type="application/json").status_code == 403
    r = staff.put("/api/policy/", {"egress_ceiling": ["https://x.example.com/path"]}, content_type="application/json")
    assert r.status_code == 400 and r.json()["errors"][0]["path"].startswith("$.egress_ceiling")


def test_a_tighter_policy_refuses_a_save_with_path_and_rule_and_is_audited(staff, alice_client, definition):
    _put(staff, max_timeout_s=30)
    changed = AuditEvent.objects.filter(kind="policy.changed").last()
    assert changed.actor == "root" and changed.payload["after"]["max_timeout_s"] == 30
    d = copy.deepcopy(definition)
    d["nodes"][1]["parameters"]["timeout_s"] = 100
    r = _create(alice_client, d)
    assert r.status_code == 400, r.content
    err = r.json()["errors"][0]
    assert err["path"] == "$.definition.nodes[1].parameters.timeout_s" and err["rule"] == "max_timeout"
    assert "above the instance policy's max_timeout of 30s" in err["message"]
    denied = AuditEvent.objects.filter(kind="policy").last()    # kept although the save rolled back
    assert denied.actor == "alice" and denied.payload["stage"] == "save"
    assert denied.payload["decision"] == "denied" and denied.payload["rules"] == ["max_timeout"]
    d["nodes"][1]["parameters"]["timeout_s"] = 20
    r = _create(alice_client, d)
    assert r.status_code == 201
    allowed = AuditEvent.objects.filter(kind="policy").last()
    assert allowed.payload["decision"] == "allowed"
    saved = AuditEvent.objects.filter(kind="workflow.saved").last()
    assert saved.workflow_id == r.json()["id"] and saved.actor == "alice" and saved.payload["version"] == 1


def test_egress_ceiling_is_empty_by_default_and_limits_hosts(staff, alice_client, definition):
    d = copy.deepcopy(definition)
    d["settings"] = {"allowed_hosts": ["api.example.com"]}
    r = _create(alice_client, d)
    assert r.status_code == 400
    assert r.json()["errors"][0] == {
        "path": "$.definition.settings.allowed_hosts[0]", "rule": "egress_ceiling",
        "message": "'api.example.com': no host is allowed: the instance policy's egress ceiling is empty "
                   "[policy rule egress_ceiling]"}
    _put(staff, egress_ceiling=["*.example.com"])
    assert _create(alice_client, d).status_code == 201
    d["settings"]["allowed_hosts"] = ["api.example.com:8443"]
    assert _create(alice_client, d).status_code == 400     # a port the ceiling does not name


def test_ceiling_coverage():
    assert covered("api.example.com", ["*"])
    assert covered("api.example.com", ["api.example.com"]) and covered("api.example.com:443", ["api.example.com"])
    assert not covered("api.example.com:8443", ["api.example.com"])
    assert covered("a.b.example.com", ["*.example.com"]) and covered("*.b.example.com", ["*.example.com"])
    assert not covered("example.com", ["*.example.com"]) and not covered("evilexample.com", ["*.example.com"])
    assert not covered("*.example.com", ["api.example.com"]) and not covered("x.com", [])


def test_code_steps_only_for_a_group(staff, alice, alice_client, definition):
    _put(staff, code_steps_group="coders")
    r = _create(alice_client, definition)
    assert r.status_code == 400
    err = r.json()["errors"][0]
    assert err["path"] == "$.definition.nodes[1]" and err["rule"] == "code_steps_group"
    alice.groups.add(Group.objects.create(name="coders"))
    r = _create(alice_client, definition)
    assert r.status_code == 201
    wf = r.json()["id"]
    alice.groups.clear()
    # without the group she may still edit around an existing code step, not change its code
    d = copy.deepcopy(definition)
    d["nodes"][0]["name"] = "renamed trigger"
    put = alice_client.patch(f"/api/workflows/{wf}/", {"definition": d}, content_type="application/json")
    assert put.status_code == 200, put.content
    d["nodes"][1]["parameters"]["code"] = "result = 2"
    put = alice_client.patch(f"/api/workflows/{wf}/", {"definition": d}, content_type="application/json")
    assert put.status_code == 400 and put.json()["errors"][0]["rule"] == "code_steps_group"


def test_policy_page_saves_through_the_form(staff, alice_client):
    r = staff.post("/policy/", {"max_timeout_s": "40", "egress_ceiling": "api.example.com\n*.corp.example",
                                "code_steps_group": "", "allow_process_driver": "on"})
    assert r.status_code == 302
    body = staff.get("/api/policy/").json()
    assert body["max_timeout_s"] == 40 and body["egress_ceiling"] == ["api.example.com", "*.corp.example"]
    assert AuditEvent.objects.filter(kind="policy.changed", actor="root").exists()
    r = staff.post("/policy/", {"egress_ceiling": "http://bad/"})
    assert r.status_code == 200 and b"without a scheme" in r.content
    assert alice_client.get("/policy/").status_code == 302     # to the admin sign-in


def test_deleting_a_workflow_is_audited(alice_client, definition):
    wf = _create(alice_client, definition).json()["id"]
    assert alice_client.delete(f"/api/workflows/{wf}/").status_code == 204
    event = AuditEvent.objects.filter(kind="workflow.deleted").last()
    assert event.workflow_id == wf and event.actor == "alice" and event.payload["name"] == "wf"


def test_login_and_failed_login_are_audited_without_the_password(alice):
    c = Client()
    r = c.post("/login/", {"username": "alice", "password": "wrong-password-xyz"})
    assert r.status_code == 200
    r = c.post("/login/", {"username": "alice", "password": "pw-alice-123"})
    assert r.status_code == 302
    failed = AuditEvent.objects.get(kind="login_failed")
    ok = AuditEvent.objects.get(kind="login")
    assert failed.actor == "alice" and ok.actor == "alice" and ok.payload["address"] == "127.0.0.1"
    for e in AuditEvent.objects.all():
        assert "wrong-password-xyz" not in str(e.payload) and "pw-alice-123" not in str(e.payload)


def test_agent_steps_count_as_code_steps(staff, alice, alice_client, definition):
    """An AI agent step runs the code its model writes: outside the code-steps group it cannot be
    added, nor its prompt changed."""
    from engine.agent_connections import ModelConnection

    ModelConnection.objects.create(name="model", base_url="http://127.0.0.1:9/v1", model="scripted")
    _put(staff, code_steps_group="coders")
    d = copy.deepcopy(definition)
    d["nodes"][1] = {"id": "agent", "type": "action.agent", "name": "Agent", "position": {"x": 0, "y": 0},
                     "parameters": {"connection": "model", "prompt": "What is 6 * 7?"}}
    d["edges"] = [{**e, "target": "agent"} if e.get("target") == definition["nodes"][1]["id"] else e
                  for e in d["edges"]]
    r = _create(alice_client, d)
    assert r.status_code == 400, r.content
    err = r.json()["errors"][0]
    assert err["path"] == "$.definition.nodes[1]" and err["rule"] == "code_steps_group", err
    alice.groups.add(Group.objects.create(name="coders"))
    r = _create(alice_client, d)
    assert r.status_code == 201, r.content
    alice.groups.clear()
    d["nodes"][1]["parameters"]["prompt"] = "Now compute 7 * 8."
    put = alice_client.patch(f"/api/workflows/{r.json()['id']}/", {"definition": d}, content_type="application/json")
    assert put.status_code == 400 and put.json()["errors"][0]["rule"] == "code_steps_group"
