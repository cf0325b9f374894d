"""The session pool API's checks that happen before any sandbox is asked (Django's test client,
the real database and cache, a sandbox socket nobody listens on): Bearer keys (401), the
identifier (400), unknown pools (404), a full pool and a key's concurrent sessions (429 with
Retry-After, at once), idle sessions counted as ended, an unreachable sandbox (503, the session
not left busy), and staff-only, audited pool changes. With a sandbox: test_sessionpools_vm.py."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

# transaction=True: the views run in threads of their own (connections of their own)
pytestmark = pytest.mark.django_db(transaction=True)

BASE = "/api/sessionpools/default"
BODY = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "1+1"}}


@pytest.fixture(autouse=True)
def no_sandbox(tmp_path, monkeypatch):
    from agents.models import SessionPool

    monkeypatch.setenv("SANDBOX_SOCKET", str(tmp_path / "nobody.sock"))
    SessionPool.objects.get_or_create(name="default")   # the data migration's (flushed between these tests)


@pytest.fixture
def key(alice):
    from agents import actions

    return actions.create(alice, "agent")


def _post(path, key=None, body=BODY):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return Client().post(path, body, content_type="application/json", **headers)


def test_keys_identifiers_and_pools_are_checked_first(key):
    _, plain = key
    url = f"{BASE}/code/execute?identifier=s1&api-version=2024-02-02-preview"
    r = _post(url)
    assert r.status_code == 401 and r["WWW-Authenticate"].startswith("Bearer")
    r = _post(url, "sw_000000000000_" + "x" * 43)
    assert r.status_code == 401
    r = _post(f"{BASE}/code/execute?api-version=2024-02-02-preview", plain)
    assert r.status_code == 400 and "identifier" in r.json()["detail"]
    for bad in ("-x", "a" * 129, "a%20b", "a%2Fb"):
        r = _post(f"{BASE}/code/execute/?identifier={bad}", plain)
        assert r.status_code == 400 and "identifier" in r.json()["detail"], (bad, r.content)
    r = _post("/api/sessionpools/nope/code/execute?identifier=s1", plain)
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    r = Client().get(f"{BASE}/code/execute?identifier=s1", HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert r.status_code == 405
    # the instance policy's code_steps_group holds here too
    from governance.policies import Policy

    Policy.objects.update_or_create(pk=1, defaults={"code_steps_group": "coders"})
    r = _post(f"{BASE}/code/execute?identifier=s1", plain)
    assert r.status_code == 403 and "coders" in r.json()["detail"]


def test_a_full_pool_and_a_keys_session_limit_answer_429_at_once(key, alice, bob):
    from agents.models import PoolSession, SessionPool

    k, plain = key
    pool = SessionPool.objects.get(name="default")
    pool.max_sessions = 2
    pool.save()
    now = timezone.now()
    for i in range(2):
        PoolSession.objects.create(pool=pool, owner=bob, identifier=f"b{i}", last_used=now - timedelta(seconds=i))
    r = _post(f"{BASE}/code/execute?identifier=new", plain)
    assert r.status_code == 429 and "full" in r.json()["detail"]
    assert 1 <= int(r["Retry-After"]) <= pool.cooldown_s
    # the key's own limit (max_concurrent_sessions) in a roomy pool
    pool.max_sessions = 10
    pool.save()
    k.max_concurrent_sessions = 1
    k.save()
    PoolSession.objects.create(pool=pool, owner=alice, api_key=k, identifier="mine")
    r = _post(f"{BASE}/code/execute?identifier=other", plain)
    assert r.status_code == 429 and "open sessions" in r.json()["detail"] and int(r["Retry-After"]) >= 1


def test_executions_per_minute_and_session_seconds_per_day_answer_429(key, alice):
    from agents.models import ApiKey, KeyUsage
    from governance.usage import record

    k, plain = key
    ApiKey.objects.filter(pk=k.pk).update(executions_per_minute=1)
    assert _post(f"{BASE}/code/execute?identifier=q1", plain).status_code == 503   # counted, then no sandbox
    r = _post(f"{BASE}/code/execute?identifier=q1", plain)
    assert r.status_code == 429 and "per minute" in r.json()["detail"] and 1 <= int(r["Retry-After"]) <= 60
    ApiKey.objects.filter(pk=k.pk).update(executions_per_minute=100, session_seconds_per_day=10)
    usage = record(meta={"session_s": 11.0}, user_id=alice.pk, workflow_id=None, run_id=None, step_id=None)
    KeyUsage.objects.create(usage=usage, key=k)
    r = _post(f"{BASE}/code/execute?identifier=q2", plain)
    assert r.status_code == 429 and "session-seconds" in r.json()["detail"]
    assert 1 <= int(r["Retry-After"]) <= 86400


def test_idle_sessions_count_as_ended_and_a_down_sandbox_is_503(key, alice):
    from agents.models import PoolSession, SessionPool

    k, plain = key
    pool = SessionPool.objects.get(name="default")
    pool.max_sessions = 1
    pool.save()
    old = PoolSession.objects.create(pool=pool, owner=alice, api_key=k, identifier="s1",
                                     last_used=timezone.now() - timedelta(seconds=pool.cooldown_s + 5))
    r = _post(f"{BASE}/code/execute?identifier=s2", plain)
    assert r.status_code == 503 and "sandbox" in r.json()["detail"], r.content
    old.refresh_from_db()
    assert old.ended is not None                     # expired: the pool had room for s2
    s2 = PoolSession.objects.get(identifier="s2")
    assert s2.ended is not None and s2.busy_until is None   # nothing ran: the session is over, not stuck
    # ending a session that is not open
    r = Client().delete(f"{BASE}/session?identifier=s2", HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert r.status_code == 404


def test_staff_create_and_change_pools_audited(staff, alice, key):
    from governance.audit import AuditEvent

    _, plain = key
    c = Client()
    c.force_login(alice)
    assert c.get("/api/sessionpools/").json()[0]["name"] == "default"
    r = c.post("/api/sessionpools/", {"name": "big"}, content_type="application/json")
    assert r.status_code == 403
    c.force_login(staff)
    r = c.post("/api/sessionpools/", {"name": "big", "max_sessions": 3, "cooldown_s": 60,
                                      "allowed_hosts": ["pypi.org"]}, content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()["max_sessions"] == 3 and r.json()["open_sessions"] == 0
    r = c.patch("/api/sessionpools/big/", {"max_sessions": 5}, content_type="application/json")
    assert r.status_code == 200 and r.json()["max_sessions"] == 5
    r = c.post("/api/sessionpools/", {"name": "bad", "allowed_hosts": ["not a host"]},
               content_type="application/json")
    assert r.status_code == 400
    kinds = [(e.kind, e.actor) for e in AuditEvent.objects.filter(kind__startswith="session_pool.").order_by("id")]
    assert kinds == [("session_pool.created", "root"), ("session_pool.changed", "root")]
    changed = AuditEvent.objects.get(kind="session_pool.changed").payload["changed"]
    assert changed == {"max_sessions": {"from": 3, "to": 5}}
    r = c.delete("/api/sessionpools/big/")
    assert r.status_code == 204
    # the new pool's session API answers for the new name only while it exists
    r = _post("/api/sessionpools/big/code/execute?identifier=s1", plain)
    assert r.status_code == 404


def test_a_multipart_upload_under_a_json_content_type_is_read(key):
    """Semantic Kernel's client keeps `Content-Type: application/json` from an earlier
    execute_code on its upload: the body is still read as the multipart it is (the call then
    reaches the sandbox, absent here: 503, not 400 'no file')."""
    import httpx

    _, plain = key
    req = httpx.Request("POST", "http://x/", files={"file": ("/mnt/data/a.txt", b"abc", "application/octet-stream")})
    body = req.read()
    r = Client().post(f"{BASE}/files/upload?identifier=u1", body, content_type="application/json",
                      HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert r.status_code == 503, r.content
    r = Client().post(f"{BASE}/files/upload?identifier=u1", b"{}", content_type="application/json",
                      HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert r.status_code == 400 and "no file" in r.json()["detail"]


def test_staff_pin_a_pool_to_a_built_runtime_whose_layer_is_then_kept(staff, layer_env, settings):
    """`runtime`: a ready runtime (or null, the active one); a failed, unknown or pruned one is
    refused; the change is audited; pruning old layers keeps a pinned runtime's."""
    from governance.audit import AuditEvent
    from runtimes import actions
    from runtimes.models import Runtime
    from sandbox.layers import layers_dir

    settings.STEPWELL_RUNTIME_KEEP_LAYERS = 0
    cache = layer_env / "cache"
    runtimes = []
    for name in ("old", "active"):
        site = layers_dir(cache) / name / "site"
        site.mkdir(parents=True)
        (site.parent / "complete").write_text("{}")
        runtimes.append(Runtime.objects.create(status="ready", image_id=name, layer_dir=str(site),
                                               active=(name == "active")))
    old, _ = runtimes
    failed = Runtime.objects.create(status="failed", error="pip said no")
    c = Client()
    c.force_login(staff)
    r = c.post("/api/sessionpools/", {"name": "pinned", "runtime": old.pk}, content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()["runtime"] == old.pk
    assert c.get("/api/sessionpools/default/").json()["runtime"] is None
    r = c.patch("/api/sessionpools/default/", {"runtime": failed.pk}, content_type="application/json")
    assert r.status_code == 400 and "only use a built (ready) runtime" in str(r.json()), r.content
    r = c.patch("/api/sessionpools/default/", {"runtime": 999}, content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"] == "there is no runtime #999", r.content
    assert actions.prune_layers() == []   # "old" is neither active nor recent, but pinned
    assert (layers_dir(cache) / "old").is_dir()
    r = c.patch("/api/sessionpools/pinned/", {"runtime": None}, content_type="application/json")
    assert r.status_code == 200 and r.json()["runtime"] is None
    changed = AuditEvent.objects.filter(kind="session_pool.changed").last().payload["changed"]
    assert changed == {"runtime": {"from": old.pk, "to": None}}
    assert actions.prune_layers() == ["old"]
    r = c.patch("/api/sessionpools/pinned/", {"runtime": old.pk}, content_type="application/json")
    assert r.status_code == 400 and "no longer on disk" in str(r.json()), r.content
