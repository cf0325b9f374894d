"""Fixtures for the browser tests: one headless Chromium per session, a page per test, a user."""
from __future__ import annotations

import os

import pytest

# Playwright's sync API runs an event loop in the main thread; the ORM calls made by the tests
# themselves (creating users and workflows) are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("STEPWELL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def pw_browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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


def settle(page, timeout_ms=5000):
    """Wait until the page has no request in flight.

    The live server and the test share one SQLite database, whose in-memory shared cache uses
    table locks: ORM writes in the test while the server answers a request can fail as "locked".
    """
    waited = 0
    while page.pending and waited < timeout_ms:
        page.wait_for_timeout(25)
        waited += 25


def login(page, username="ada", password=PASSWORD):
    """Sign in through the login form."""
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/workflows/")
    page.wait_for_selector(".wf-table, #empty-state")
    settle(page)


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


def open_editor(page, workflow_id):
    page.goto(f"/workflows/{workflow_id}/edit")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#validation-status:not([data-state=checking])")
    settle(page)


def api(page, method, path, body=None):
    """Call the REST API from inside the page (session cookie + CSRF header)."""
    return page.evaluate(
        """async ([method, path, body]) => {
            const token = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
            const res = await fetch(path, {method, headers: {"Content-Type": "application/json", "X-CSRFToken": token},
                                          body: body === null ? undefined : JSON.stringify(body)});
            const text = await res.text();
            return {status: res.status, data: text ? JSON.parse(text) : null};
        }""",
        [method, path, body],
    )


def linear_definition(*types, spacing=270):
    """A valid definition: a manual trigger followed by nodes of `types`, chained out → in."""
    from engine.nodes import NODE_TYPES

    nodes = [{"id": "trigger", "type": "trigger.manual", "name": "Manual trigger", "parameters": {},
              "position": {"x": 0, "y": 100}}]
    edges = []
    for i, key in enumerate(types, start=1):
        t = NODE_TYPES[key]
        nid = f"{key.split('.')[-1]}_{i}"
        nodes.append({"id": nid, "type": key, "name": f"{t.label} {i}", "parameters": dict(t.defaults),
                      "position": {"x": spacing * i, "y": 100}})
        edges.append({"source": nodes[-2]["id"], "source_port": NODE_TYPES[nodes[-2]["type"]].outputs[0],
                      "target": nid, "target_port": "in"})
    return {"version": 1, "nodes": nodes, "edges": edges, "settings": {"variables": [], "allowed_hosts": []}}


def definition(page):
    return page.evaluate("JSON.parse(JSON.stringify(window.stepwell.definition))")
