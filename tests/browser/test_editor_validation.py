"""Validation problems are shown on the offending node and in the problems list."""
from __future__ import annotations

import pytest

from tests.browser.helpers import api, linear_definition, open_editor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_marks_a_node_missing_a_required_parameter(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Validation", linear_definition("action.http"))
    open_editor(page, w.pk)
    assert page.locator("#validation-status").inner_text() == "✓ Valid"

    page.click(".node[data-id=http_1] .node-name")
    page.fill("#param-url", "")
    page.wait_for_selector(".node[data-id=http_1].has-error")
    assert "non-empty" in page.locator(".node[data-id=http_1] .node-error").inner_text()
    assert page.locator("#validation-status").get_attribute("data-state") == "invalid"
    assert page.locator("#problems-list .problem").count() == 1
    assert "parameters.url" in page.locator("#problems-list .problem-path").inner_text()
    assert page.locator("#props .props-problem").count() == 1

    # Saving is refused by the server; the 400's errors land on the node too.
    page.click("#btn-save")
    page.wait_for_selector(".toast-error")
    assert "Not saved" in page.locator(".toast-error").inner_text()
    assert page.locator("#version-badge").inner_text() == "v1"
    assert page.locator("#dirty-marker").is_visible()
    assert api(page, "GET", f"/api/workflows/{w.pk}/")["data"]["version"] == 1

    page.fill("#param-url", "https://example.com/ok")
    page.wait_for_selector(".node[data-id=http_1]:not(.has-error)")
    assert page.locator("#validation-status").inner_text() == "✓ Valid"
    assert page.locator("#problems").is_hidden()


def test_it_shows_graph_problems_and_focuses_the_node_from_the_list(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Validation", linear_definition("action.compose"))
    open_editor(page, w.pk)
    # An edge into a trigger: drag compose_1.out onto the trigger's body (it has no input).
    page.drag_and_drop(".palette-item[data-type='action.python']", "#canvas", target_position={"x": 500, "y": 500})
    page.wait_for_selector(".node[data-id=python_1]")
    page.click(".node[data-id=python_1] .node-delete")
    page.wait_for_selector(".node[data-id=python_1]", state="detached")
    # A second trigger produces a workflow-level problem listed without a node.
    page.drag_and_drop(".palette-item[data-type='trigger.schedule']", "#canvas", target_position={"x": 500, "y": 500})
    page.wait_for_selector(".node[data-id=schedule_1]")
    page.wait_for_selector("#validation-status[data-state=invalid]")
    assert "exactly one trigger" in page.locator("#problems-list").inner_text()

    # Clearing the cron expression adds a node-level problem; clicking it selects the node.
    page.fill("#param-cron", "")
    page.wait_for_selector(".node[data-id=schedule_1].has-error")
    page.click(".node[data-id=trigger] .node-name")
    page.locator("#problems-list .problem", has_text="schedule_1").first.click()
    page.wait_for_selector(".node[data-id=schedule_1].selected")
    assert page.locator("#prop-id").input_value() == "schedule_1"
