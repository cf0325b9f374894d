"""Fixtures for the browser tests: a page per test and a user (Chromium itself comes from tests/conftest.py)."""
from __future__ import annotations

import pytest

from tests.browser.helpers import PASSWORD, login, settle, submit_login


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("ada", "ada@example.com", PASSWORD)


@pytest.fixture
def page(pw_browser, live_server):
    # bypass_csp: Playwright's wait_for_function polls with eval, which the pages' CSP forbids;
    # tests/browser/test_csp.py checks the pages under their real policy.
    context = pw_browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900},
                                     accept_downloads=True, bypass_csp=True)
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
    from governance.policies import Policy

    # the instance policy's egress ceiling allows no host by default: open it for these fixtures
    Policy.objects.update_or_create(pk=1, defaults={"egress_ceiling": ["*"]})

    def make(name="Demo", definition=None, description=""):
        return actions.do_create_workflow(user, name, description, definition)
    return make

@pytest.fixture(scope="module")
def stack():
    """uvicorn + one worker on a file database; DJANGO_DEBUG lets WhiteNoise serve static files
    from the source folders (no collectstatic)."""
    from tests.engine.conftest import Stack

    s = Stack(env={"DJANGO_DEBUG": "1", "STEPWELL_WORKER_INTERVAL_MS": "200"})
    yield s
    s.close()


@pytest.fixture
def stack_page(pw_browser, stack):
    """A page signed in as the stack's user (alice), collecting page errors in `console_errors`."""
    context = pw_browser.new_context(base_url=stack.base, viewport={"width": 1440, "height": 1000},
                                     bypass_csp=True)  # see `page` above
    context.set_default_timeout(20_000)
    pg = context.new_page()
    pg.console_errors = []
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    submit_login(pg, "alice", "pw-alice-123")
    yield pg
    context.close()


@pytest.fixture(scope="module")
def host_matplotlib():
    """The process sandbox driver runs code with the host's Python: skip pages that draw figures
    when it has no matplotlib."""
    import subprocess

    if subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"], capture_output=True).returncode:
        pytest.skip("the process sandbox driver needs python3-matplotlib on the host")
