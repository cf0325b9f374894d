"""The debugging loop in the editor against a real stack (uvicorn + worker, process sandbox):
"Test step" runs the unsaved draft and saves nothing; the Python syntax check marks errors as
you type and blocks a test and a run (not a save); saving without a change says "No changes";
two versions (and the draft) can be compared; Enter with the suggestion list open after a
complete `import os` starts a new line."""
from __future__ import annotations

import pytest

from tests.browser.helpers import open_editor
from tests.browser.test_editor_runs import _definition as parse_values_definition

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CODE = "result = {'total': sum(inputs['values'])}\n"


def _definition() -> dict:
    return parse_values_definition(CODE, report=False)


@pytest.fixture
def page(stack_page):
    return stack_page




def open_code(page):
    page.click(".node[data-id=parse] .node-name")
    page.wait_for_selector("#code-editor .monaco-editor")
    page.wait_for_function("() => window.stepwell.monaco && window.monaco")


def set_code(page, code):
    """Replace the code as an edit of the user would (through the editor's model: one undo step)."""
    page.evaluate("""code => {
        const ed = window.stepwell.monaco;
        ed.executeEdits("test", [{range: ed.getModel().getFullModelRange(), text: code}]);
    }""", code)


def toast_text(page):
    return page.locator(".toast").last.inner_text()


def test_draft_tests_syntax_blocks_no_change_saves_and_version_diffs(page, stack):
    api = stack.api()
    wf = api.create_workflow(_definition(), name="Drafts")
    versions = lambda: api.get(f"/api/workflows/{wf['id']}/versions/")[1]["count"]  # noqa: E731
    tests = lambda: api.get(f"/api/workflows/{wf['id']}/runs/?kind=test")[1]["count"]  # noqa: E731
    open_editor(page, wf["id"], settled=False)
    open_code(page)

    # Test step runs the draft as it is in the editor, and saves nothing.
    set_code(page, "print('draft')\nresult = {'total': sum(inputs['values']) * 10}\n")
    page.wait_for_selector("#dirty-marker:visible")
    page.click("#btn-test-step")
    page.wait_for_selector("#test-result .status-badge[data-status=succeeded]", timeout=60_000)
    assert "80" in page.locator("#test-result .test-output").inner_text()
    assert "unsaved draft (based on v1)" in page.locator("#test-result .test-source").inner_text()
    assert page.locator("#dirty-marker").is_visible()
    assert versions() == 1 and tests() == 1

    # A syntax error is marked as you type (the server compiles with the sandbox's Python) ...
    set_code(page, "if True:\nprint('x')\n")
    page.wait_for_selector("#syntax-status:visible")
    status = page.inner_text("#syntax-status")
    assert status.startswith("Line 2:") and "IndentationError" in status, status
    page.wait_for_selector("#code-editor .squiggly-error")
    # ... and blocks a test and a run, with a message naming the step and the line,
    page.click("#btn-test-step")
    page.wait_for_selector(".toast-error")
    assert "Not tested: “Parse values” has a syntax error at line 2" in toast_text(page)
    page.click("#btn-run")
    page.wait_for_function("() => [...document.querySelectorAll('.toast-error')].some(t => t.textContent.includes('Not run'))")
    assert page.locator("dialog #run-payload").count() == 0
    assert tests() == 1 and api.get(f"/api/workflows/{wf['id']}/runs/")[1]["count"] == 0
    # ... but not a save.
    page.click("#btn-save")
    page.wait_for_selector(".toast-success:has-text('Saved as version 2')")
    assert versions() == 2

    # Saving again without a change makes no version.
    page.click("#btn-save")
    page.wait_for_selector(".toast-info:has-text('No changes')")
    assert versions() == 2
    assert page.inner_text("#version-badge") == "v2"

    # The diff of two versions, and of the draft against its version.
    set_code(page, CODE)
    page.click("#btn-history")
    page.wait_for_selector("#history-list .version[data-version='2']")
    assert page.locator("#diff-from").input_value() == "1" and page.locator("#diff-to").input_value() == "2"
    page.click("#btn-compare")
    dialog = page.locator("dialog.diff-modal")
    dialog.wait_for()
    code_change = dialog.locator(".diff-change[data-path='$.nodes[1].parameters.code']")
    assert code_change.count() == 1
    # the code's own line diff, under its path
    assert code_change.locator(".diff-del .diff-text").all_inner_texts() == ["result = {'total': sum(inputs['values'])}"]
    assert code_change.locator(".diff-add .diff-text").all_inner_texts() == ["if True:", "print('x')"]
    removed = dialog.locator(".diff-view > .diff-lines .diff-del").all_inner_texts()
    added = dialog.locator(".diff-view > .diff-lines .diff-add").all_inner_texts()
    assert any("sum(inputs['values'])}" in t for t in removed), removed
    assert any("if True:" in t for t in added), added
    assert dialog.locator(".diff-fold").count() >= 1   # unchanged lines are folded
    dialog.locator("button[data-value=cancel]").click()
    page.click("#btn-diff-draft")
    dialog.wait_for()
    assert any("if True:" in t for t in dialog.locator(".diff-del").all_inner_texts())
    dialog.locator("button[data-value=cancel]").click()
    page.click("#history-list .version[data-version='2'] .btn-diff")
    dialog.wait_for()
    assert "v1 → v2" in dialog.locator(".modal-title").inner_text()
    dialog.locator("button[data-value=cancel]").click()
    assert page.console_errors == []


def test_enter_after_a_complete_import_starts_a_new_line(page, stack):
    wf = stack.api().create_workflow(_definition(), name="Enter")
    open_editor(page, wf["id"], settled=False)
    open_code(page)
    page.evaluate("window.stepwell.monaco.setValue('')")
    page.click("#code-editor .view-lines")
    page.keyboard.type("import os")
    page.keyboard.press("Control+Space")
    widget = page.locator("#code-editor .suggest-widget.visible, .suggest-widget.visible").first
    widget.wait_for()
    page.wait_for_selector(".suggest-widget.visible .monaco-list-row")
    assert page.locator(".suggest-widget.visible .monaco-list-row.focused").inner_text().split()[0] == "os"
    page.keyboard.press("Enter")
    page.keyboard.type("x = 1")
    assert page.evaluate("window.stepwell.monaco.getValue()") == "import os\nx = 1"
    # A suggestion that changes the text is still accepted with Enter.
    page.keyboard.press("Enter")
    page.keyboard.type("import jso")
    page.keyboard.press("Control+Space")
    page.wait_for_selector(".suggest-widget.visible .monaco-list-row.focused")
    first = page.locator(".suggest-widget.visible .monaco-list-row.focused").inner_text().split()[0]
    page.keyboard.press("Enter")
    assert page.evaluate("window.stepwell.monaco.getValue()").splitlines()[-1] == f"import {first}"
    assert page.console_errors == []
