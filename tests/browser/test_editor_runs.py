"""Running from the editor against a real stack (uvicorn + run_worker, process sandbox driver):
Run colours the canvas's nodes live over the websocket, the run page shows the step's output,
a later node's field picker offers the inferred fields, and Test step / Pin output work inline."""
from __future__ import annotations

import pytest

from tests.browser.helpers import open_editor, select_node

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PARSE_CODE = """\
import time
time.sleep(1.5)
values = inputs["values"]
print("parsed", len(values), "values")
result = {"total": sum(values), "count": len(values), "stats": {"max": max(values)}}
"""


def _definition(code: str = PARSE_CODE, report: bool = True) -> dict:
    """Start (sample values) -> "Parse values" (`code`) [-> "Report" (compose)]."""
    d = {
        "version": 1, "settings": {"variables": [], "allowed_hosts": []},
        "nodes": [
            {"id": "trigger", "type": "trigger.manual", "name": "Start",
             "parameters": {"sample_payload": {"values": [3, 1, 4]}}, "position": {"x": 40, "y": 120}},
            {"id": "parse", "type": "action.python", "name": "Parse values",
             "parameters": {"code": code, "inputs": {"values": "{{ trigger.body.values }}"}},
             "position": {"x": 340, "y": 120}},
        ],
        "edges": [{"source": "trigger", "source_port": "out", "target": "parse", "target_port": "in"}],
    }
    if report:
        d["nodes"].append({"id": "report", "type": "action.compose", "name": "Report", "parameters": {"value": {}},
                           "position": {"x": 640, "y": 120}})
        d["edges"].append({"source": "parse", "source_port": "out", "target": "report", "target_port": "in"})
    return d


@pytest.fixture
def page(stack_page):
    return stack_page






def definition(page):
    return page.evaluate("JSON.parse(JSON.stringify(window.stepwell.definition))")


def test_it_runs_from_the_canvas_and_picks_inferred_fields(page, stack):
    wf = stack.api().create_workflow(_definition(), name="Totals")
    open_editor(page, wf["id"], settled=False)
    # Record every status a node shows, and mark the page so that a reload would be noticed.
    page.evaluate("""() => {
        window.__noReload = true;
        window.__seen = {};
        new MutationObserver((records) => {
            for (const r of records) {
                const el = r.target, s = el.dataset.status;
                if (!s) continue;
                const list = (window.__seen[el.dataset.id] ||= []);
                if (list[list.length - 1] !== s) list.push(s);
            }
        }).observe(document.querySelector('#canvas'), {subtree: true, attributes: true, attributeFilter: ['data-status']});
    }""")

    # Run: the dialog starts with the manual trigger's sample payload.
    page.click("#btn-run")
    payload = page.locator("dialog #run-payload")
    assert '"values"' in payload.input_value()
    payload.fill('{"values": [2, 5, 9]}')
    page.click("dialog button[data-value=run]")

    # The nodes change colour live: parse runs (it sleeps), then everything succeeds.
    page.wait_for_selector(".node[data-id=parse][data-status=running]", timeout=30_000)
    assert page.locator(".node[data-id=parse] .node-status").inner_text().lower() == "running"
    assert page.get_attribute(".node[data-id=report]", "data-status") in (None, "queued")
    page.wait_for_selector(".node[data-id=report][data-status=succeeded]", timeout=60_000)
    assert page.get_attribute(".node[data-id=parse]", "data-status") == "succeeded"
    assert page.get_attribute(".node[data-id=trigger]", "data-status") == "succeeded"
    seen = page.evaluate("window.__seen")
    assert seen["parse"][-2:] == ["running", "succeeded"], seen
    assert page.evaluate("window.__noReload === true")
    page.wait_for_selector("#run-link[data-status=succeeded]")
    assert "succeeded" in page.inner_text("#run-link")

    # The run page has the step's output.
    run_page = page.get_attribute("#run-link", "href")
    assert run_page.startswith("/runs/")
    page.click("#run-link")
    page.wait_for_url(f"**{run_page}")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector(".rg-node[data-node=parse][data-status=succeeded]")
    page.click(".rg-node[data-node=parse]")
    output = page.locator("#step-panel .sec-output .json-tree")
    output.wait_for()
    assert "total" in output.inner_text() and "16" in output.inner_text()
    assert "parsed 3 values" in page.locator("#step-panel .sec-stdout pre").inner_text()

    # Back in the editor, the report node's field picker offers parse's inferred fields.
    open_editor(page, wf["id"], settled=False)
    select_node(page, "report")
    value = page.locator("#param-value")
    value.fill('{"total": }')
    value.evaluate("ta => ta.setSelectionRange(10, 10)")  # the caret before the closing brace
    page.click(".pick-field[data-for=param-value]")
    picker = page.locator(".field-picker")
    picker.wait_for()
    assert picker.locator(".picker-group[data-node=parse]").count() == 1
    assert picker.locator(".picker-group[data-node=trigger]").count() == 1
    assert picker.locator(".pick-item[data-path='stats.max']").count() == 1
    picker.locator(".pick-item[data-expression='{{ steps.parse.output.total }}']").click()
    page.wait_for_selector(".field-picker", state="detached")
    report = next(n for n in definition(page)["nodes"] if n["id"] == "report")
    assert report["parameters"]["value"] == {"total": "{{ steps.parse.output.total }}"}

    # A text field gets the bare expression at the caret.
    page.click(".node[data-id=parse] .node-name")
    page.click(".pick-field[data-for=param-inputs]")
    page.locator(".field-picker .picker-search").fill("body")
    assert page.locator(".field-picker .pick-item").count() >= 1
    page.keyboard.press("Escape")
    page.wait_for_selector(".field-picker", state="detached")
    assert page.console_errors == []


def test_it_tests_a_step_and_pins_its_output(page, stack):
    wf = stack.api().create_workflow(_definition(), name="Step tests")
    open_editor(page, wf["id"], settled=False)
    page.click(".node[data-id=parse] .node-name")
    # No sample input typed: the trigger's sample payload ({"values": [3, 1, 4]}) is used.
    page.click("#btn-test-step")
    page.wait_for_selector("#test-result .status-badge[data-status=succeeded]", timeout=60_000)
    out = page.locator("#test-result .test-output .json-tree")
    assert "total" in out.inner_text() and "8" in out.inner_text()
    assert "parsed 3 values" in page.locator("#test-result .test-stdout").inner_text()
    # The output tree collapses.
    tree = out.locator("details").first
    assert tree.evaluate("d => d.open")
    tree.locator("> summary").click()
    assert not tree.evaluate("d => d.open")

    # Pin the output: later steps' pickers show it; changing the step marks the pin stale.
    page.click("#btn-pin")
    page.wait_for_selector("#pin-state .pin-head")
    assert page.locator("#pin-state .stale-marker").count() == 0
    pins = stack.api().get(f"/api/workflows/{wf['id']}/pins/")[1]
    assert pins["parse"]["output"]["total"] == 8

    select_node(page, "report")
    page.click(".pick-field[data-for=param-value]")
    group = page.locator(".field-picker .picker-group[data-node=parse]")
    group.wait_for()
    assert "pinned" in group.inner_text()
    assert group.locator(".pick-item[data-path=total] .pick-sample").inner_text() == "8"
    page.keyboard.press("Escape")

    page.click(".node[data-id=parse] .node-name")
    page.fill("#param-timeout_s", "30")
    page.wait_for_selector("#pin-state .stale-marker")
    page.click("#btn-unpin")
    page.wait_for_selector("#pin-state .pin-head", state="detached")
    assert stack.api().get(f"/api/workflows/{wf['id']}/pins/")[1] == {}

    # A failing step shows its error and stderr inline (the draft is tested as it is: not saved).
    page.fill("#param-inputs", '{"values": "{{ trigger.body.missing }}"}')
    page.click("#btn-test-step")
    page.wait_for_selector("#test-result .status-badge[data-status=failed]", timeout=60_000)
    assert "TypeError" in page.locator("#test-result").inner_text()
    assert "unsaved draft" in page.locator("#test-result .test-source").inner_text()
    assert page.locator("#dirty-marker").is_visible()
    assert stack.api().get(f"/api/workflows/{wf['id']}/versions/")[1]["count"] == 1
    assert page.console_errors == []


def test_it_tests_a_step_with_a_typed_sample_input(page, stack):
    wf = stack.api().create_workflow(_definition(), name="Typed input")
    open_editor(page, wf["id"], settled=False)
    page.click(".node[data-id=parse] .node-name")
    page.fill("#test-input", '{"trigger": {"body": {"values": [10, 20]}}}')
    page.click("#btn-test-step")
    page.wait_for_selector("#test-result .status-badge, #test-result .test-error", timeout=60_000)
    assert page.locator("#test-result .status-badge[data-status=succeeded]").count() == 1, page.inner_text("#test-result")
    assert "30" in page.locator("#test-result .test-output").inner_text()
