"""Rate limits, hit through the real endpoints until they bite: sign-in failures per username and
per client address (the sign-in page and the admin's), the REST API per user, hooks per token."""
from __future__ import annotations

import secrets

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from designer.throttling import parse_rate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counts():
    cache.clear()
    yield
    cache.clear()


def _sign_in(client: Client, username: str, password: str, ip: str, path: str = "/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_rates_parse_strictly():
    assert parse_rate("10/5m") == (10, 300)
    assert parse_rate("600/min") == (600, 60)
    assert parse_rate("3/s") == (3, 1)
    for bad in ("", "ten/m", "0/m", "5/5w", "5"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_guessing_one_users_password_from_many_addresses_is_stopped(settings, alice, bob):
    settings.STEPWELL_LOGIN_FAILURE_RATE = "10/5m"
    for i in range(10):
        r = _sign_in(Client(), "alice", f"guess-{i}", f"10.0.0.{i + 1}")
        assert r.status_code == 200  # the form again, with its error
    # The right password, from a fresh address, is refused too: the username is locked for now.
    client = Client()
    r = _sign_in(client, "alice", "pw-alice-123", "10.0.1.1")
    assert r.status_code == 429 and int(r["Retry-After"]) >= 1
    assert not _signed_in(client)
    # The admin's sign-in page is guarded the same way.
    r = _sign_in(client, "alice", "pw-alice-123", "10.0.1.2", "/admin/login/")
    assert r.status_code == 429 and not _signed_in(client)
    # Another user is not affected.
    assert _sign_in(client, "bob", "pw-bob-123", "10.0.1.3").status_code == 302


def test_one_address_guessing_many_users_is_stopped(settings, alice, bob):
    settings.STEPWELL_LOGIN_FAILURE_RATE = "10/5m"
    for i in range(10):
        _sign_in(Client(), f"user{i}", "guess", "192.0.2.7")
    client = Client()
    r = _sign_in(client, "bob", "pw-bob-123", "192.0.2.7")
    assert r.status_code == 429 and not _signed_in(client)
    # The same credentials from another address work.
    r = _sign_in(client, "bob", "pw-bob-123", "192.0.2.8")
    assert r.status_code == 302 and _signed_in(client)


def test_successful_sign_ins_are_not_counted(settings, alice):
    settings.STEPWELL_LOGIN_FAILURE_RATE = "3/5m"
    for _ in range(6):
        client = Client()
        assert _sign_in(client, "alice", "pw-alice-123", "10.9.9.9").status_code == 302
        assert _signed_in(client)


def test_the_api_is_throttled_per_user(settings, alice, bob):
    settings.STEPWELL_API_RATE = "5/min"
    a, b = APIClient(), APIClient()
    a.force_authenticate(alice)
    b.force_authenticate(bob)
    for _ in range(5):
        assert a.get("/api/workflows/").status_code == 200
    r = a.get("/api/workflows/")
    assert r.status_code == 429 and int(r["Retry-After"]) >= 1
    assert a.post("/api/workflows/", {"name": "x"}, format="json").status_code == 429
    assert b.get("/api/workflows/").status_code == 200  # bob has his own count


def test_hooks_are_throttled_per_token(settings):
    settings.STEPWELL_HOOK_RATE = "3/min"
    client = Client()
    token = secrets.token_urlsafe(16)
    statuses = [client.post(f"/hooks/{token}/", "{}", content_type="application/json").status_code
                for _ in range(4)]
    assert statuses[:3] == [404, 404, 404] and statuses[3] == 429
    other = client.post(f"/hooks/{secrets.token_urlsafe(16)}/", "{}", content_type="application/json")
    assert other.status_code == 404
