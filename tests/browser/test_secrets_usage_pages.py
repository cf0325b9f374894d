"""The secrets page (add, replace, delete; the value never comes back) and the usage page (totals
and Chart.js charts served from npm's package, offline), in a real browser."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.browser.helpers import in_module_page, settle, submit_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VALUE = "browser-secret-value-5f1c"


def test_secrets_page_adds_replaces_and_deletes(signed_in, user):
    from governance.models import Secret

    page = signed_in
    page.goto("/secrets/")
    page.wait_for_selector("#secrets-empty")
    page.fill("#secret-name", "SERVICE_TOKEN")
    page.fill("#secret-value", VALUE)
    page.click("#secret-add-button")
    page.wait_for_selector("tr[data-secret=SERVICE_TOKEN]")
    settle(page)
    assert "added" in page.inner_text("#secrets-message")
    assert VALUE not in page.content()
    assert Secret.objects.get(owner=user, name="SERVICE_TOKEN").reveal() == VALUE

    row = page.locator("tr[data-secret=SERVICE_TOKEN]")
    row.locator("input[name=value]").fill("replaced-value-77")
    row.locator("button", has_text="Replace").click()
    page.wait_for_selector("#secrets-message >> text=replaced")
    settle(page)
    assert "replaced-value-77" not in page.content()
    assert Secret.objects.get(owner=user, name="SERVICE_TOKEN").reveal() == "replaced-value-77"

    page.fill("#secret-name", "bad name")   # the pattern attribute stops it in the browser;
    page.evaluate("document.getElementById('secret-add').noValidate = true")   # the server refuses too
    page.fill("#secret-value", "x")
    page.click("#secret-add-button")
    page.wait_for_selector("#secrets-message >> text=environment variable name")
    settle(page)

    page.locator("tr[data-secret=SERVICE_TOKEN] button", has_text="Delete").click()
    page.wait_for_selector("#secrets-empty")
    settle(page)
    assert not Secret.objects.filter(owner=user).exists()
    assert page.console_errors == [] and page.external == []


def test_usage_page_draws_charts(signed_in, user, make_workflow):
    from django.utils import timezone

    from governance.models import Usage

    wf = make_workflow("Metered")
    today = timezone.now()
    for i, (days_ago, seconds) in enumerate([(0, 1.5), (0, 2.5), (1, 4.0)]):
        when = today - timedelta(days=days_ago)
        Usage.objects.create(user=user, workflow_id=wf.pk, run_id=1, step_id=1000 + i, day=when.date(),
                             created=when, session_s=seconds, peak_memory_bytes=1024, egress_bytes=0)
    page = signed_in
    page.goto("/usage/")
    page.wait_for_selector("#chart-day[data-drawn='2']")
    page.wait_for_selector("#chart-workflow[data-drawn='1']")
    assert page.inner_text("#usage-session") == "8.0"
    assert page.inner_text("#usage-cost") == "0.000136"            # 8 s x 0.000017
    charted = page.evaluate("""() => ['chart-day', 'chart-workflow'].map((id) => {
        const chart = Chart.getChart(document.getElementById(id));
        return chart ? chart.data.datasets[0].data : null; })""")
    assert charted == [[4.0, 4.0], [8.0]]
    painted = page.evaluate("""() => { const c = document.getElementById('chart-day');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
    assert painted > 500                                              # bars and axes were drawn
    assert page.console_errors == [] and page.external == []


def test_env_names_complete_with_variables_and_secrets(page, live_server):
    out = in_module_page(page, live_server, 'const m = await import("/static/designer/imports.js");', """
        const settings = {variables: [{name: "API_URL", value: "https://x"}], secrets: ["API_TOKEN", "DB_PASSWORD"]};
        return [m.envNameCompletions('token = os.environ["API', settings),
                m.envNameCompletions("os.getenv('", settings),
                m.envNameCompletions('os.environ.get("D', settings),
                m.envNameCompletions('print("', settings)];
    """)
    assert out[0] == {"typed": "API", "names": [{"name": "API_TOKEN", "secret": True},
                                                {"name": "API_URL", "secret": False}]}
    assert [n["name"] for n in out[1]["names"]] == ["API_TOKEN", "API_URL", "DB_PASSWORD"]
    assert out[2]["names"] == [{"name": "DB_PASSWORD", "secret": True}]
    assert out[3] is None


def test_code_editor_completes_env_names_and_settings_list_secrets(signed_in, user, make_workflow):
    from governance import secret_actions
    from tests.browser.helpers import definition, linear_definition, open_editor

    secret_actions.create(user, "API_TOKEN", "t-123456")
    d = linear_definition("action.python")
    d["nodes"][1]["parameters"]["code"] = "import os\n"
    d["settings"].update(variables=[{"name": "API_URL", "value": "https://x"}], secrets=["API_TOKEN"])
    w = make_workflow("Env", d)
    page = signed_in
    open_editor(page, w.pk)
    page.click(".node[data-id=python_1] .node-name")
    page.wait_for_function("!!(window.stepwell.monaco && window.stepwell.importHelp)")
    page.evaluate("""() => { const ed = window.stepwell.monaco; ed.focus();
        ed.setPosition({lineNumber: 2, column: 1}); ed.trigger("keyboard", "type", {text: 'os.environ["'}); }""")
    page.evaluate("window.stepwell.monaco.trigger('test', 'editor.action.triggerSuggest', {})")
    rows = page.locator(".suggest-widget .monaco-list-row")
    rows.first.wait_for()
    labels = sorted(rows.all_inner_texts())
    assert any(t.startswith("API_TOKEN") for t in labels) and any(t.startswith("API_URL") for t in labels), labels
    page.keyboard.press("Escape")

    page.click("#canvas", position={"x": 20, "y": 20})       # nothing selected: the workflow settings
    box = page.locator("#setting-secrets")
    box.wait_for()
    assert box.input_value() == "API_TOKEN"
    box.fill("API_TOKEN\nNOT_A_SECRET")
    page.wait_for_selector("#validation-status[data-state=invalid]")
    assert "settings.secrets[1]" in page.locator("#problems-list").inner_text()
    assert definition(page)["settings"]["secrets"] == ["API_TOKEN", "NOT_A_SECRET"]
    box.fill("API_TOKEN")
    page.wait_for_selector("#validation-status[data-state=valid]")
    settle(page)
    assert page.console_errors == []


def test_both_pages_work_under_their_content_security_policy(pw_browser, live_server, user):
    from django.utils import timezone

    from governance.models import Usage
    from tests.browser.helpers import PASSWORD

    now = timezone.now()
    Usage.objects.create(user=user, workflow_id=None, run_id=1, step_id=1, day=now.date(), created=now, session_s=2.0)
    context = pw_browser.new_context(base_url=live_server.url)      # no bypass_csp: the real policy
    context.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                            " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
    page = context.new_page()
    problems = []
    page.on("console", lambda m: ("Content Security Policy" in m.text or "Refused to" in m.text)
            and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    submit_login(page, user.username, PASSWORD)
    response = page.goto("/usage/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for _ in range(100):   # polled with evaluate: wait_for_function needs eval, which the policy forbids
        if page.evaluate("document.getElementById('chart-day').dataset.drawn === '1'"):
            break
        page.wait_for_timeout(100)
    assert page.evaluate("Chart.getChart(document.getElementById('chart-day')).data.datasets[0].data") == [2.0]
    page.goto("/secrets/")
    page.fill("#secret-name", "UNDER_CSP")
    page.fill("#secret-value", "v-123")
    page.click("#secret-add-button")
    page.wait_for_selector("tr[data-secret=UNDER_CSP]")
    assert page.evaluate("window.__csp") == [] and problems == []
    context.close()
