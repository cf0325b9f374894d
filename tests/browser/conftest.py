"""Fixtures for the browser tests: headless Chromium per test module, a page per test, a user."""
from __future__ import annotations

import os

import pytest

from tests.browser.helpers import PASSWORD, login, settle

CHROMIUM = os.environ.get("STEPWELL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def pw_browser():
    """Chromium for one test module.

    Playwright's sync API keeps an asyncio loop running in the main thread while it is started,
    which makes Django refuse synchronous ORM calls and breaks `asyncio.run`. So it lives only as
    long as one module of browser tests, and only then are the tests' own (synchronous) ORM calls
    allowed through DJANGO_ALLOW_ASYNC_UNSAFE.
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("ada", "ada@example.com", PASSWORD)


@pytest.fixture
def page(pw_browser, live_server):
    context = pw_browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900},
                                     accept_downloads=True)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    pg.pending = set()
    pg.external = []  # requests that left the live server: everything must work offline
    pg.on("request", lambda r: pg.pending.add(r))
    pg.on("request", lambda r: r.url.startswith((live_server.url, "data:", "blob:", "about:"))
          or pg.external.append(r.url))
    pg.on("requestfinished", lambda r: pg.pending.discard(r))
    pg.on("requestfailed", lambda r: pg.pending.discard(r))
    pg.console_errors = []
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    yield pg
    settle(pg)
    context.close()


@pytest.fixture
def signed_in(page, user):
    login(page)
    return page


@pytest.fixture
def make_workflow(user):
    from designer import actions

    def make(name="Demo", definition=None, description=""):
        return actions.do_create_workflow(user, name, description, definition)
    return make