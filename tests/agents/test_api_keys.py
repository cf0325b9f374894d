"""API keys through real HTTP (Django's test client, the real database and cache): made by the
command and the API, listed, renamed, revoked; used as Bearer on existing API routes; refused
(401, the API's error shape) when wrong, revoked or expired; never stored in clear; scoped to
their owner; per-key quotas; and the audit events each of these writes."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db


def _bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def _events(kind: str):
    from governance.audit import AuditEvent

    return list(AuditEvent.objects.filter(kind=kind).order_by("id"))


def _assert_401(r):
    assert r.status_code == 401, r.content
    body = r.json()
    assert body["detail"] and body["errors"] == [{"path": "$", "message": body["detail"]}]
    assert r["WWW-Authenticate"].startswith("Bearer")


def _signed_in(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_command_prints_a_key_that_works_as_bearer_and_is_hashed_at_rest(alice, definition):
    from agents.models import ApiKey
    from designer.actions import do_create_workflow

    do_create_workflow(alice, "Alice's", definition=definition)
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "alice", "--name", "ci", "--expires-days", "7", stdout=out, stderr=err)
    key = out.getvalue().strip()
    assert key.startswith("sw_") and len(key) > 50 and "not shown again" in err.getvalue()

    c = Client()
    r = c.get("/api/workflows/", **_bearer(key))
    assert r.status_code == 200 and [w["name"] for w in r.json()["results"]] == ["Alice's"]
    # a write through a key needs no CSRF token, and is audited as the key's actor
    r = c.post("/api/workflows/", {"name": "By key", "definition": definition}, content_type="application/json",
               **_bearer(key))
    assert r.status_code == 201, r.content
    saved = [e for e in _events("workflow.saved") if e.workflow_id == r.json()["id"]]
    assert [e.actor for e in saved] == ["alice/ci"]
    r = c.post(f"/api/workflows/{r.json()['id']}/runs/", {"payload": {}}, content_type="application/json",
               **_bearer(key))
    assert r.status_code == 201 and _events("run.started")[-1].actor == "alice/ci"

    row = ApiKey.objects.get(name="ci")
    assert row.user == alice and key.startswith(f"sw_{row.prefix}_") and row.last_used_at is not None
    assert timedelta(days=6) < row.expires_at - timezone.now() <= timedelta(days=7)
    secret = key.split("_", 2)[2]
    with connection.cursor() as cur:   # the stored row, every column as the database has it
        cur.execute("SELECT * FROM agents_apikey")
        stored = " ".join(str(v) for row_ in cur.fetchall() for v in row_)
        cur.execute("SELECT payload FROM governance_auditevent")
        audited = " ".join(str(v) for (v,) in cur.fetchall())
    assert row.prefix in stored and key not in stored and secret not in stored and secret[:16] not in stored
    assert secret not in audited
    created = _events("api_key.created")
    assert len(created) == 1 and created[0].actor == "system"
    assert created[0].payload["name"] == "ci" and created[0].payload["owner"] == "alice"


def test_command_refuses_unknown_users_and_duplicate_names(alice):
    from django.core.management.base import CommandError

    call_command("create_api_key", "alice", "--name", "ci", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="already have an active key"):
        call_command("create_api_key", "alice", "--name", "ci", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="no user"):
        call_command("create_api_key", "nobody", stdout=io.StringIO(), stderr=io.StringIO())


def test_api_creates_lists_renames_and_revokes_keys(alice):
    c = _signed_in(alice)
    r = c.post("/api/keys/", {"name": "agent one", "expires_days": 30}, content_type="application/json")
    assert r.status_code == 201, r.content
    made = r.json()
    key = made["key"]
    assert key.startswith(f"sw_{made['prefix']}_") and made["status"] == "active" and made["user"] == "alice"
    assert made["max_concurrent_sessions"] >= 1 and made["executions_per_minute"] >= 1

    listed = c.get("/api/keys/").json()
    assert [k["name"] for k in listed] == ["agent one"] and "key" not in listed[0]
    assert key not in c.get("/api/keys/").content.decode() and key not in c.get(f"/api/keys/{made['id']}/").content.decode()

    assert Client().get("/api/workflows/", **_bearer(key)).status_code == 200
    r = c.patch(f"/api/keys/{made['id']}/", {"name": "agent-1"}, content_type="application/json")
    assert r.status_code == 200 and r.json()["name"] == "agent-1"
    assert c.post("/api/keys/", {"name": "agent-1"}, content_type="application/json").status_code == 400
    r = c.post("/api/keys/", {"name": "bad/name"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "$.name"

    # a key cannot manage keys (a leaked key must not mint more)
    r = Client().post("/api/keys/", {"name": "more"}, content_type="application/json", **_bearer(key))
    assert r.status_code == 403 and "API keys cannot manage" in r.json()["detail"]

    r = c.post(f"/api/keys/{made['id']}/revoke/")
    assert r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["revoked_at"]
    _assert_401(Client().get("/api/workflows/", **_bearer(key)))
    assert c.delete(f"/api/keys/{made['id']}/").status_code == 204   # revoking again is harmless
    assert [k["status"] for k in c.get("/api/keys/").json()] == ["revoked"]
    # the name is free again once the key is revoked
    assert c.post("/api/keys/", {"name": "agent-1"}, content_type="application/json").status_code == 201

    assert [e.payload["name"] for e in _events("api_key.created")] == ["agent one", "agent-1"]
    assert all(e.actor == "alice" for e in _events("api_key.created"))
    revoked = _events("api_key.revoked")
    assert len(revoked) == 1 and revoked[0].actor == "alice" and revoked[0].payload["prefix"] == made["prefix"]
    failed = _events("api_key.auth_failed")
    assert [(e.actor, e.payload["reason"]) for e in failed] == [("alice/agent-1", "revoked")]


def test_wrong_and_expired_keys_answer_401_and_are_audited(alice):
    from agents import actions
    from agents.models import ApiKey

    row, key = actions.create(alice, "soon")
    c = Client()
    for bad in ("nope", "", f"sw_{row.prefix}_" + "A" * 43, "sw_000000000000_" + "A" * 43, key + "x"):
        _assert_401(c.get("/api/workflows/", HTTP_AUTHORIZATION=f"Bearer {bad}"))
    assert c.get("/api/workflows/", **_bearer(key)).status_code == 200
    ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _assert_401(c.get("/api/workflows/", **_bearer(key)))
    _assert_401(c.post("/api/workflows/", {"name": "x"}, content_type="application/json", **_bearer(key)))
    alice.is_active = False
    alice.save()
    ApiKey.objects.filter(pk=row.pk).update(expires_at=None)
    _assert_401(c.get("/api/workflows/", **_bearer(key)))

    reasons = [(e.actor, e.payload["reason"]) for e in _events("api_key.auth_failed")]
    assert reasons == [("", "malformed"), ("", "malformed"), ("alice/soon", "mismatch"), ("", "unknown"),
                       ("alice/soon", "mismatch"), ("alice/soon", "expired"), ("alice/soon", "expired"),
                       ("alice/soon", "user_inactive")]
    assert all(e.payload["address"] == "127.0.0.1" for e in _events("api_key.auth_failed"))
    # no Authorization header: what it was before keys existed (the session scheme comes first)
    assert c.get("/api/workflows/").status_code == 403


def test_another_users_key_cannot_be_seen_renamed_or_revoked(alice, bob, staff):
    from agents import actions
    from agents.models import ApiKey

    bobs_row, bobs_key = actions.create(bob, "bob-key")
    c = _signed_in(alice)
    assert c.get("/api/keys/").json() == []
    assert c.get(f"/api/keys/{bobs_row.pk}/").status_code == 404
    assert c.patch(f"/api/keys/{bobs_row.pk}/", {"name": "x"}, content_type="application/json").status_code == 404
    assert c.delete(f"/api/keys/{bobs_row.pk}/").status_code == 404
    assert c.post(f"/api/keys/{bobs_row.pk}/revoke/").status_code == 404
    assert ApiKey.objects.get(pk=bobs_row.pk).status() == "active"
    assert Client().get("/api/keys/", **_bearer(bobs_key)).status_code == 403

    s = _signed_in(staff)
    assert s.get("/api/keys/").json() == []              # staff's own keys by default
    assert [k["user"] for k in s.get("/api/keys/?all=1").json()] == ["bob"]
    assert c.get("/api/keys/?all=1").json() == []        # ?all means nothing to a non-staff user
    assert s.delete(f"/api/keys/{bobs_row.pk}/").status_code == 204
    assert _events("api_key.revoked")[-1].actor == "root"
    _assert_401(Client().get("/api/workflows/", **_bearer(bobs_key)))


@pytest.mark.urls("tests.agents.quota_urls")
@pytest.mark.parametrize("route", ["/test-execute/", "/test-plain-execute/"])
def test_executions_per_minute_answer_429_with_retry_after(alice, route):
    from agents import actions
    from agents.models import ApiKey

    row, key = actions.create(alice, "fast")
    other_row, other = actions.create(alice, "other")
    ApiKey.objects.filter(pk=row.pk).update(executions_per_minute=3)
    c = Client()
    answers = [c.post(route, **_bearer(key)) for _ in range(7)]
    codes = [r.status_code for r in answers]
    # a fixed one-minute window: all 3 pass, then 429 (at most 3 more if a minute boundary fell inside)
    assert codes[:3] == [200, 200, 200] and 429 in codes, codes
    assert answers[0].json() == {"actor": "alice/fast"}
    refused = answers[codes.index(429)]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["errors"][0]["path"] == "$" and refused.json()["detail"]
    # the quota is the key's own: another key of the same user still executes
    assert c.post(route, **_bearer(other)).status_code == 200
    _assert_401(c.post(route, HTTP_AUTHORIZATION="Bearer sw_bad"))
    if route == "/test-plain-execute/":
        _assert_401(c.post(route))                           # no key at all
        assert _events("api_key.auth_failed")[-1].payload["reason"] == "malformed"


def test_session_quotas(alice):
    from agents import actions, quotas
    from agents.models import ApiKey

    row, _ = actions.create(alice, "sessions")
    ApiKey.objects.filter(pk=row.pk).update(max_concurrent_sessions=2, session_seconds_per_day=100)
    row.refresh_from_db()
    quotas.check_sessions(row, 1)
    with pytest.raises(quotas.QuotaExceeded) as exc:
        quotas.check_sessions(row, 2)
    assert exc.value.retry_after >= 1

    other, _ = actions.create(alice, "other")
    quotas.record_usage(row, {"session_s": 60.0, "driver": "libvirt"})
    quotas.record_usage(other, {"session_s": 500.0})      # another key's seconds do not count
    assert quotas.record_usage(row, {"driver": "none"}) is None
    assert quotas.session_seconds_today(row) == 60.0
    quotas.check_session_seconds(row)
    quotas.record_usage(row, {"session_s": 40.0})
    now = timezone.now()
    with pytest.raises(quotas.QuotaExceeded) as exc:
        quotas.check_session_seconds(row, now)
    assert 1 <= exc.value.retry_after <= 86_400
    assert quotas.session_seconds_today(row, now + timedelta(days=1)) == 0.0
    r = quotas.quota_response(exc.value)
    assert r.status_code == 429 and r["Retry-After"] == str(exc.value.retry_after)

    from governance.usage import Usage
    assert Usage.objects.filter(user=alice).count() == 3   # the usage page and API see them too


def test_staff_change_a_keys_quotas_in_the_admin_which_never_shows_the_key(django_user_model, alice):
    from agents import actions

    root = django_user_model.objects.create_superuser("su", "su@example.com", "pw-su-12345")
    row, key = actions.create(alice, "k")
    c = _signed_in(root)
    for url in ("/admin/agents/apikey/", f"/admin/agents/apikey/{row.pk}/change/"):
        r = c.get(url)
        assert r.status_code == 200 and row.prefix in r.content.decode() and key not in r.content.decode()
    r = c.post(f"/admin/agents/apikey/{row.pk}/change/", {"expires_at_0": "", "expires_at_1": "",
                                                          "max_concurrent_sessions": 5, "executions_per_minute": 9,
                                                          "session_seconds_per_day": 10})
    assert r.status_code == 302
    row.refresh_from_db()
    assert (row.max_concurrent_sessions, row.executions_per_minute, row.session_seconds_per_day) == (5, 9, 10)
