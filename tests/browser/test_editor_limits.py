"""A code step too large to send and a memory above the server's cap: the editor shows the
server's own message (the API's JSON errors, never an HTML page) on the problems list, with the
JSON path of the step, and the save says why it did not happen."""
from __future__ import annotations

import pytest

from tests.browser.helpers import linear_definition, open_editor

pytestmark = pytest.mark.browser


def _problems(page):
    return page.locator("#problems-list .problem").all_inner_texts()


def test_a_two_megabyte_code_step_and_memory_over_the_cap(signed_in, make_workflow, settings):
    page = signed_in
    wf = make_workflow("Limits", linear_definition("action.python"))
    open_editor(page, wf.pk)
    assert page.inner_text("#validation-status") == "✓ Valid"
    page.click(".node[data-id=python_1] .node-name")
    page.wait_for_selector("#code-editor .monaco-editor")
    page.wait_for_function("() => window.stepwell.monaco")

    # Memory above STEPWELL_MAX_STEP_MEMORY_MIB (2048): named at its path before any run.
    assert page.get_attribute("#param-memory_mib", "placeholder") == "128–2048"   # the server's cap
    page.fill("#param-memory_mib", "4096")
    page.wait_for_selector("#validation-status[data-state=invalid]")
    [memory] = _problems(page)
    assert "4096 MiB is above this server's limit of 2048 MiB" in memory and "python_1" in memory
    page.click("#btn-save")
    page.wait_for_selector(".toast-error:has-text('Not saved: 1 problem')")
    page.fill("#param-memory_mib", "2048")
    page.wait_for_selector("#validation-status[data-state=valid]")

    # 2 MB of code: the server's 413 (JSON) is shown, and the step over the code limit is named.
    page.evaluate("window.stepwell.monaco.setValue('x = 1\\n'.repeat(350000))")
    page.wait_for_selector("#validation-status[data-state=invalid]", timeout=30_000)
    problems = _problems(page)
    assert any("The request is too large" in p and "200,000 characters" in p for p in problems), problems
    assert any("python_1" in p and "2,100,000 characters long; the limit is 200,000" in p
               and "$.nodes[1].parameters.code" in p for p in problems), problems
    page.click("#btn-save")
    page.wait_for_selector(".toast-error:has-text('Not saved: The request is too large')")
    assert "Validation unavailable" not in page.inner_text("#validation-status")
    assert "400 Bad Request" not in page.inner_text("#toasts")
