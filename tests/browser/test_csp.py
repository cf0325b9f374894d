"""Every page carries a Content-Security-Policy (no inline or eval'd script) and still works under
it in a real Chromium against a real stack: the editor with the canvas and Monaco (its AMD loader,
workers and injected styles), the list page, a run page and the staff's runtimes page. Any CSP
violation, reported as a `securitypolicyviolation` event or as a console message, fails the test."""
from __future__ import annotations

import pytest

from tests.browser.helpers import submit_login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CODE = "result = {'typed': True}"

RECORD = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def _definition() -> dict:
    return {"version": 1, "settings": {"variables": [], "allowed_hosts": []},
            "nodes": [{"id": "trigger", "type": "trigger.manual", "name": "Start", "parameters": {},
                       "position": {"x": 40, "y": 120}},
                      {"id": "python_1", "type": "action.python", "name": "Step",
                       "parameters": {"code": "result = {'n': 1}", "inputs": {}},
                       "position": {"x": 340, "y": 120}}],
            "edges": [{"source": "trigger", "source_port": "out", "target": "python_1", "target_port": "in"}]}


@pytest.fixture
def page(pw_browser, stack):
    stack.shell("from django.contrib.auth.models import User;"
                "User.objects.filter(username='alice').update(is_staff=True)")
    context = pw_browser.new_context(base_url=stack.base, viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(20_000)
    context.add_init_script(RECORD)
    pg = context.new_page()
    pg.problems = []
    pg.on("console", lambda m: ("Content Security Policy" in m.text or "Refused to" in m.text)
          and pg.problems.append(m.text))
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    submit_login(pg, "alice", "pw-alice-123")
    yield pg
    context.close()


def _wait(page, expression: str, timeout_s: float = 20):
    """Poll `expression` with page.evaluate (wait_for_function evaluates with eval, which the
    policy forbids, as it should)."""
    for _ in range(int(timeout_s * 10)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"still false after {timeout_s} s: {expression}")


def _open(page, path: str) -> dict:
    response = page.goto(path)
    assert response.status == 200, path
    return response.headers


def _assert_clean(page, where: str, expected: str | None = None):
    """No CSP violation; `expected` names a blocked outside URL that is the policy doing its job."""
    page.wait_for_timeout(300)  # late reports (workers, fonts) arrive asynchronously
    violations = [v for v in page.evaluate("window.__csp") if not (expected and expected in v)]
    problems = [p for p in page.problems if not (expected and expected in p)]
    assert violations == [] and problems == [], (where, violations, problems)


def test_pages_work_under_the_policy(page, stack):
    api = stack.api("alice")
    wf = api.create_workflow(_definition(), name="CSP check")
    run = api.start(wf["id"])

    headers = _open(page, "/workflows/")
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    page.wait_for_selector(".wf-table, #empty-state")
    _assert_clean(page, "list page")

    # The editor: the canvas draws the nodes; Monaco loads, starts its worker and takes typing.
    _open(page, f"/workflows/{wf['id']}/edit")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator(".node").count() == 2
    page.click(".node[data-id=python_1] .node-name")
    _wait(page, "!!(window.stepwell && window.stepwell.monaco)")
    page.click("#code-editor .view-lines")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(CODE)
    _wait(page,
        "window.stepwell.definition.nodes.find(n => n.id === 'python_1').parameters.code === %r" % CODE)
    assert page.locator("#code-editor .monaco-editor [class^=mtk]").count() > 0  # styled tokens
    _wait(page, "window.stepwell.monaco.getValue() === %r" % CODE)
    assert any(w.url.startswith("data:text/javascript") for w in page.workers)  # Monaco's worker
    _assert_clean(page, "editor")

    api.wait(run["id"], timeout=60)
    _open(page, f"/runs/{run['id']}/")
    page.wait_for_selector(".node, .run-node, svg", state="attached")
    _assert_clean(page, "run page")

    _open(page, f"/workflows/{wf['id']}/runs")
    _assert_clean(page, "runs list")

    _open(page, "/runtimes/")
    page.wait_for_load_state("networkidle")
    _assert_clean(page, "runtimes page")

    # Pages from libraries: the admin, Swagger UI and Redoc (their scripts are static files too).
    _open(page, "/admin/")
    page.wait_for_selector("#content")
    _assert_clean(page, "admin")
    _open(page, "/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    _assert_clean(page, "Swagger UI")
    _open(page, "/api/redoc/")
    page.wait_for_selector("redoc .menu-content, [role=navigation]", timeout=30_000)
    # Redoc's bundle shows its maker's logo from their CDN: refused, as every outside load is.
    _assert_clean(page, "Redoc", expected="https://cdn.redoc.ly/")


def test_a_policy_a_response_sets_itself_is_kept(stack):
    """Hook answers carry their own, stricter policy; the site-wide one must not replace it."""
    import secrets
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{stack.base}/hooks/{secrets.token_urlsafe(16)}/", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as err:
        headers = err.headers
    policies = headers.get_all("Content-Security-Policy")
    assert policies and len(policies) == 1 and "sandbox" in policies[0], policies
