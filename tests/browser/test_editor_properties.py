"""The properties form is generated from the node type's parameters schema."""
from __future__ import annotations

import pytest

from tests.browser.helpers import definition, linear_definition, open_editor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def node(page, node_id):
    return next(n for n in definition(page)["nodes"] if n["id"] == node_id)


def test_it_edits_enums_strings_numbers_objects_and_retry(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Props", linear_definition("action.http", "control.condition"))
    open_editor(page, w.pk)
    page.click(".node[data-id=http_1] .node-name")
    assert page.locator("#prop-id").get_attribute("readonly") is not None
    assert page.locator("#prop-id").input_value() == "http_1"

    page.select_option("#param-method", label="POST")
    page.fill("#param-url", "https://api.example.com/v1/items")
    page.fill("#param-timeout_s", "12.5")
    page.fill("#param-headers", '{"Authorization": "Bearer {{ vars.token }}"}')
    page.fill("[data-retry=max_attempts]", "3")
    page.fill("[data-retry=backoff_s]", "2")
    page.fill("#prop-notes", "Calls the items API")
    n = node(page, "http_1")
    assert n["parameters"] == {"method": "POST", "url": "https://api.example.com/v1/items", "timeout_s": 12.5,
                               "headers": {"Authorization": "Bearer {{ vars.token }}"}}
    assert n["retry"] == {"max_attempts": 3, "backoff_s": 2}
    assert n["notes"] == "Calls the items API"

    # Invalid JSON is reported in place and not committed; clearing optional fields removes them.
    page.fill("#param-headers", "{ broken")
    assert "Invalid JSON" in page.locator("#props").inner_text()
    assert node(page, "http_1")["parameters"]["headers"] == {"Authorization": "Bearer {{ vars.token }}"}
    page.fill("#param-headers", "")
    page.fill("#param-timeout_s", "")
    page.fill("[data-retry=max_attempts]", "")
    page.fill("[data-retry=backoff_s]", "")
    n = node(page, "http_1")
    assert "headers" not in n["parameters"] and "timeout_s" not in n["parameters"]
    assert "retry" not in n

    # A mapping field ("any" type) is text by default and can switch to a JSON value.
    page.click(".node[data-id=condition_2] .node-name")
    page.fill("#param-left", "{{ http_1.status }}")
    page.select_option("#param-operator", label=">=")
    page.fill("#param-right", "200")
    assert node(page, "condition_2")["parameters"]["right"] == "200"
    page.click("label:has(#param-right) .mode-toggle")
    assert node(page, "condition_2")["parameters"] == {"left": "{{ http_1.status }}", "operator": ">=", "right": 200}
    page.wait_for_selector("#validation-status[data-state=valid]")
    page.click("#btn-save")
    page.wait_for_selector(".toast-success")


def test_it_edits_workflow_settings_and_parents(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Settings", linear_definition("control.foreach", "action.compose"))
    open_editor(page, w.pk)
    page.locator("#canvas").click(position={"x": 20, "y": 20})
    assert "Workflow settings" in page.locator("#props").inner_text()
    page.fill("#setting-default_timeout_s", "45")
    assert page.locator("#setting-isolation").input_value() == "execution"
    page.select_option("#setting-isolation", "workflow")
    page.fill("#setting-hosts", "api.example.com\n\n hooks.example.com ")
    page.click("text=+ Add variable")
    page.keyboard.type("REGION")
    page.keyboard.press("Tab")
    page.keyboard.type("eu-west")
    settings = definition(page)["settings"]
    assert settings["default_timeout_s"] == 45
    assert settings["isolation"] == "workflow"
    assert settings["allowed_hosts"] == ["api.example.com", "hooks.example.com"]
    assert settings["variables"] == [{"name": "REGION", "value": "eu-west"}]

    page.click(".node[data-id=compose_2] .node-name")
    page.select_option("#prop-parent", "foreach_1")
    assert node(page, "compose_2")["parent"] == "foreach_1"
    assert "in foreach_1" in page.locator(".node[data-id=compose_2] .node-type").inner_text()
    page.wait_for_selector("#validation-status[data-state=valid]")
    page.keyboard.press("Control+S")
    page.wait_for_selector(".toast-success")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#canvas").click(position={"x": 20, "y": 20})
    assert page.locator("#setting-default_timeout_s").input_value() == "45"
    assert page.locator("#setting-isolation").input_value() == "workflow"
    assert page.locator(".var-row input").first.input_value() == "REGION"
