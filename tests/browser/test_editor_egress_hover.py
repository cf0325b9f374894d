"""The code editor warns about URLs whose host the workflow does not allow, and "Allow this host"
in the hover adds it to the workflow settings (undoable, unsaved until saved, saved through the
API), in a real Chromium against the live server (static/designer/editor-egress.js)."""
from __future__ import annotations

import pytest

from tests.browser.helpers import api, definition, linear_definition, open_editor, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE = 'import urllib.request\n\nbody = urllib.request.urlopen("https://api.example.com/x").read()\nresult = {"n": len(body)}\n'
MARKERS = "monaco.editor.getModelMarkers({owner: 'stepwell-egress'})"


def workflow_with_code(make_workflow, code, allowed_hosts=(), step_hosts=None):
    d = linear_definition("action.python")
    d["nodes"][1]["parameters"]["code"] = code
    if step_hosts is not None:
        d["nodes"][1]["parameters"]["allowed_hosts"] = list(step_hosts)
    d["settings"]["allowed_hosts"] = list(allowed_hosts)
    return make_workflow("Egress", d)


def open_code(page, workflow_id):
    open_editor(page, workflow_id)
    page.click(".node[data-id=python_1] .node-name")
    page.wait_for_function("!!(window.stepwell.monaco && window.stepwell.egressHelp)")


def markers(page):
    page.wait_for_timeout(400)  # the check is debounced (250 ms)
    return page.evaluate(f"{MARKERS}.map(m => [m.startLineNumber, m.message])")


def hover_and_allow(page, line, column):
    """Hover the URL at line:column of the code editor and click "Allow this host" in the hover."""
    box = page.evaluate("""([line, column]) => {
        const ed = window.stepwell.monaco;
        ed.revealPosition({lineNumber: line, column});
        const p = ed.getScrolledVisiblePosition({lineNumber: line, column});
        const r = ed.getDomNode().getBoundingClientRect();
        return {x: r.left + p.left + 4, y: r.top + p.top + p.height / 2};
    }""", [line, column])
    page.mouse.move(box["x"] - 30, box["y"] + 40)
    page.mouse.move(box["x"], box["y"], steps=4)
    hover = page.locator(".monaco-hover:visible")
    link = hover.get_by_role("link", name="Allow this host")
    link.wait_for()
    text = hover.inner_text()
    link.click()
    return text


def test_hovering_an_unlisted_url_offers_allow_this_host(signed_in, make_workflow):
    page = signed_in
    w = workflow_with_code(make_workflow, CODE, allowed_hosts=["*.example.org"])
    open_code(page, w.pk)

    page.wait_for_function(f"{MARKERS}.length === 1")
    assert markers(page) == [[3, "api.example.com:443 is not on this workflow's allow-list: "
                                 "the sandbox refuses this request."]]
    page.wait_for_selector("#code-editor .squiggly-warning")
    assert page.locator("#dirty-marker").is_hidden()

    col = CODE.splitlines()[2].index("https://") + 1
    text = hover_and_allow(page, 3, col + 8)
    assert "api.example.com:443 is not on this workflow's allow-list" in text
    assert "adds api.example.com to the workflow's allow-list" in text

    # the settings changed through the editor's commit: one undo step, unsaved, marker gone
    page.wait_for_function("window.stepwell.definition.settings.allowed_hosts.includes('api.example.com')")
    assert definition(page)["settings"]["allowed_hosts"] == ["*.example.org", "api.example.com"]
    page.wait_for_function(f"{MARKERS}.length === 0")
    page.wait_for_selector("#code-editor .squiggly-warning", state="detached")
    assert page.locator("#dirty-marker").is_visible()
    assert definition(page)["nodes"][1]["parameters"]["code"] == CODE

    page.evaluate("window.stepwell.undo()")
    page.wait_for_function(f"{MARKERS}.length === 1")
    assert definition(page)["settings"]["allowed_hosts"] == ["*.example.org"]
    page.evaluate("window.stepwell.redo()")
    page.wait_for_function(f"{MARKERS}.length === 0")

    # the settings panel shows it, and saving stores it
    page.locator("#canvas").click(position={"x": 30, "y": 30})
    page.wait_for_selector("#setting-hosts")
    assert page.input_value("#setting-hosts") == "*.example.org\napi.example.com"
    page.click("#btn-save")
    page.wait_for_selector(".toast-success")
    settle(page)
    saved = api(page, "GET", f"/api/workflows/{w.pk}/")["data"]["definition"]
    assert saved["settings"]["allowed_hosts"] == ["*.example.org", "api.example.com"]
    assert not [e for e in page.console_errors if "favicon" not in e]


def test_markers_follow_the_code_and_the_step_list(signed_in, make_workflow):
    page = signed_in
    code = ('a = "https://api.example.com/v1"          # listed\n'
            "b = f'http://data.example.org:8080/{b}'   # a port of its own\n"
            'c = f"https://{host}/x"                   # computed host: not checked\n'
            '# d = "https://in.a.comment.example/"\n'
            'e = "http://[::1]:9000/"\n')
    w = workflow_with_code(make_workflow, code, allowed_hosts=["api.example.com", "*.example.org"],
                           step_hosts=["api.example.com"])
    open_code(page, w.pk)
    page.wait_for_function(f"{MARKERS}.length === 2")
    assert markers(page) == [
        [2, "data.example.org:8080 is neither on this workflow's allow-list nor on this step's allowed_hosts: "
            "the sandbox refuses this request."],
        [5, "[::1]:9000 is neither on this workflow's allow-list nor on this step's allowed_hosts: "
            "the sandbox refuses this request."],
    ]

    hover_and_allow(page, 2, 12)
    page.wait_for_function(f"{MARKERS}.length === 1")
    d = definition(page)
    assert d["settings"]["allowed_hosts"] == ["api.example.com", "*.example.org", "data.example.org:8080"]
    assert d["nodes"][1]["parameters"]["allowed_hosts"] == ["api.example.com", "data.example.org:8080"]

    # typing a new unlisted URL is marked after the debounce; deleting it clears the mark
    page.evaluate("""() => {
        const ed = window.stepwell.monaco, m = ed.getModel();
        ed.executeEdits("test", [{range: new monaco.Range(6, 1, 6, 1), text: 'f = "https://evil.example/"\\n'}]);
    }""")
    page.wait_for_function(f"{MARKERS}.some(m => m.message.startsWith('evil.example:443 '))")
    page.wait_for_function("window.stepwell.definition.nodes[1].parameters.code.includes('evil.example')")
    page.evaluate("window.stepwell.monaco.setValue('print(1)\\n')")
    page.wait_for_function(f"{MARKERS}.length === 0")
    assert not [e for e in page.console_errors if "favicon" not in e]


def test_allow_this_host_works_under_the_pages_csp(pw_browser, live_server, user, make_workflow):
    """The hover's command link and the edit need no inline or eval'd script (the other tests'
    pages bypass the policy so that wait_for_function can poll)."""
    from tests.browser.helpers import login

    w = workflow_with_code(make_workflow, CODE)
    context = pw_browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    context.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation', "
                            "(e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));")
    page = context.new_page()
    page.pending, page.problems = set(), []
    page.on("console", lambda m: ("Content Security Policy" in m.text or "Refused to" in m.text)
            and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
    try:
        login(page)
        page.goto(f"/workflows/{w.pk}/edit")
        page.wait_for_selector("body[data-ready=true]")
        page.click(".node[data-id=python_1] .node-name")
        page.wait_for_selector("#code-editor .squiggly-warning")
        hover_and_allow(page, 3, CODE.splitlines()[2].index("https://") + 9)
        page.wait_for_selector("#code-editor .squiggly-warning", state="detached")
        assert definition(page)["settings"]["allowed_hosts"] == ["api.example.com"]
        assert page.locator("#dirty-marker").is_visible()
        assert page.evaluate("window.__csp") == [] and page.problems == []
    finally:
        context.close()
