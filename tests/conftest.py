"""Fixtures shared by every test folder."""
import copy
import os

import pytest
from rest_framework.test import APIClient

from engine.validation import empty_definition
from tests.helpers.httpserver import LoopbackServer, echo


@pytest.fixture
def definition():
    """A valid two-step definition: manual trigger → Python step."""
    d = copy.deepcopy(empty_definition())
    d["nodes"].append({
        "id": "python_1", "type": "action.python", "name": "Add",
        "parameters": {"code": "result = {'n': 1}", "inputs": {}},
        "position": {"x": 300, "y": 160},
    })
    d["edges"].append({"id": "e1", "source": "trigger", "source_port": "out",
                       "target": "python_1", "target_port": "in"})
    return d


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("root", password="pw-root-123", is_staff=True)


@pytest.fixture
def api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def layer_env(settings, tmp_path):
    """Layers and wheels go to a temporary directory (not the shared ~/.cache/stepwell)."""
    settings.STEPWELL_RUNTIME_CACHE_DIR = str(tmp_path / "cache")
    settings.STEPWELL_WHEEL_DIR = str(tmp_path / "wheels")
    return tmp_path


@pytest.fixture
def http_server():
    """Makes loopback HTTP(S) servers (tests/helpers/httpserver.py) that close after the test:
    `srv = http_server(answer, host="127.0.0.1", tls=False)`. A handler that raised fails it."""
    servers = []

    def make(answer=echo, **kw) -> LoopbackServer:
        servers.append(LoopbackServer(answer, **kw))
        return servers[-1]

    yield make
    for srv in servers:
        srv.close()
    errors = [exc for srv in servers for exc in srv.errors]
    assert not errors, f"a test server's handler raised: {errors!r}"


CHROMIUM = os.environ.get("STEPWELL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def pw_browser():
    """Debian's Chromium through Playwright, for one test module.

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
