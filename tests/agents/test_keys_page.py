"""The API keys page in a real Chromium under the pages' real CSP: create a key (shown once, with
a copy button), use it, rename it, revoke it after a confirmation."""
from __future__ import annotations

import pytest
from django.test import Client

from tests.browser.helpers import PASSWORD, settle, submit_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def strict_page(pw_browser, live_server, django_user_model):
    """A page signed in as ada, without bypass_csp: any policy violation is collected."""
    django_user_model.objects.create_user("ada", "ada@example.com", PASSWORD)
    context = pw_browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    pg.pending = set()
    pg.on("request", lambda r: pg.pending.add(r))
    pg.on("requestfinished", lambda r: pg.pending.discard(r))
    pg.on("requestfailed", lambda r: pg.pending.discard(r))
    pg.problems = []
    pg.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
          and pg.problems.append(m.text))   # CSP violations and script errors; a 400 on purpose is not one
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    submit_login(pg)
    yield pg
    settle(pg)
    context.close()


def test_keys_page_creates_copies_renames_and_revokes(strict_page):
    from agents.models import ApiKey
    from governance.audit import AuditEvent

    page = strict_page
    page.goto("/keys/")
    page.wait_for_selector("#keys-empty")
    page.fill("#key-name", "laptop agent")
    page.select_option("#key-expires", "30")
    page.click("#key-create-button")
    page.wait_for_selector("#key-created:not([hidden])")
    page.wait_for_selector("tr[data-key='laptop agent'][data-status=active]")
    settle(page)
    key = page.input_value("#key-created-value")
    row = ApiKey.objects.get(name="laptop agent")
    assert key.startswith(f"sw_{row.prefix}_") and row.expires_at is not None
    assert f"sw_{row.prefix}_" in page.inner_text("#keys-table") and key not in page.inner_text("#keys-table")

    page.click("#key-copy")
    page.wait_for_selector(".toast >> text=Key copied")
    assert page.evaluate("navigator.clipboard.readText()") == key
    assert Client().get("/api/workflows/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200

    page.click("#key-created-done")
    page.wait_for_selector("#key-created[hidden]", state="attached")
    assert page.input_value("#key-created-value") == ""
    page.reload()
    page.wait_for_selector("tr[data-key='laptop agent']")
    assert key not in page.content()                       # shown once: not after a reload

    page.click("tr[data-key='laptop agent'] [data-action=rename]")
    page.fill("#key-rename-input", "laptop")
    page.click("dialog button[data-value=ok]")
    page.wait_for_selector("tr[data-key=laptop]")
    settle(page)

    page.click("tr[data-key=laptop] [data-action=revoke]")
    page.click("dialog button[data-value=cancel]")         # the confirmation can be declined
    settle(page)
    assert ApiKey.objects.get(pk=row.pk).revoked_at is None
    page.click("tr[data-key=laptop] [data-action=revoke]")
    page.click("dialog button[data-value=ok]")
    page.wait_for_selector("tr[data-key=laptop][data-status=revoked]")
    settle(page)
    assert ApiKey.objects.get(pk=row.pk).revoked_at is not None
    assert Client().get("/api/workflows/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401
    kinds = list(AuditEvent.objects.filter(kind__startswith="api_key.").values_list("kind", "actor"))
    assert kinds == [("api_key.created", "ada"), ("api_key.renamed", "ada"), ("api_key.revoked", "ada"),
                     ("api_key.auth_failed", "ada/laptop")]

    page.fill("#key-name", "bad/name")                     # the server's refusal is shown
    page.click("#key-create-button")
    page.wait_for_selector("#key-create-error >> text=key name")
    settle(page)
    assert page.problems == [], page.problems
