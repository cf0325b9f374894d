"""The node panel's "Latest run" section against a real stack (uvicorn + run_worker): the selected
node's input, output, stdout/stderr and error in the newest run, a selector over recent runs, a
stale marker saying what changed since that run, and "Use pinned data" for a manual run (the
pinned step takes its pin instead of running; its node wears a pinned badge)."""
from __future__ import annotations

import pytest

from tests.browser.helpers import open_editor, select_node

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CODE = "print('doubling', inputs['n'])\nresult = {'double': inputs['n'] * 2}\n"


def _definition() -> dict:
    return {
        "version": 1, "settings": {"variables": [], "allowed_hosts": []},
        "nodes": [
            {"id": "trigger", "type": "trigger.manual", "name": "Start",
             "parameters": {"sample_payload": {"n": 4}}, "position": {"x": 40, "y": 120}},
            {"id": "calc", "type": "action.python", "name": "Calc",
             "parameters": {"code": CODE, "inputs": {"n": "{{ trigger.body.n }}"}}, "position": {"x": 300, "y": 120}},
            {"id": "fmt", "type": "action.compose", "name": "Format",
             "parameters": {"value": "double is {{ steps.calc.output.double }}"}, "position": {"x": 560, "y": 120}},
        ],
        "edges": [
            {"source": "trigger", "source_port": "out", "target": "calc", "target_port": "in"},
            {"source": "calc", "source_port": "out", "target": "fmt", "target_port": "in"},
        ],
    }


@pytest.fixture
def page(stack_page):
    return stack_page






def test_the_panel_shows_run_data_and_runs_use_pinned_data(page, stack):
    api = stack.api()
    wf = api.create_workflow(_definition(), name="Node data")
    first = api.wait(api.start(wf["id"], {"n": 4})["id"])
    second = api.wait(api.start(wf["id"], {"n": 5})["id"])
    assert first["status"] == second["status"] == "succeeded"
    open_editor(page, wf["id"], settled=False)

    # The newest run's data of the selected node: status, input, output, stdout.
    select_node(page, "calc", wait_form=True)
    data = page.locator("#node-data")
    data.locator(".node-run-status[data-status=succeeded]").wait_for()
    assert "10" in data.locator(".node-run-output").inner_text()
    assert "doubling 5" in data.locator(".node-run-stdout").inner_text()
    data.locator(".node-run-input-block > summary").click()
    assert "5" in data.locator(".node-run-input").inner_text()
    # A run selector over recent runs: the older run shows its own data.
    options = data.locator("#node-run-select option")
    assert options.count() == 2
    assert options.first.get_attribute("value") == str(second["id"])
    page.select_option("#node-run-select", str(first["id"]))
    assert "8" in data.locator(".node-run-output").inner_text()
    assert "doubling 4" in data.locator(".node-run-stdout").inner_text()
    assert data.locator(".node-run-stale").is_hidden()
    assert "null" not in data.locator(".node-run-body").inner_text()

    # Changing the step's mappings marks the run's data stale, with what changed.
    page.fill("#param-inputs", '{"n": "{{ trigger.body.n }}", "extra": 1}')
    stale = data.locator(".node-run-stale")
    stale.wait_for()
    assert "input mappings changed" in stale.inner_text()
    # The field picker of a later step shows the newest run's values, marked stale with the reason.
    select_node(page, "fmt", wait_form=True)
    page.click(".pick-field[data-for=param-value]")
    group = page.locator(".field-picker .picker-group[data-node=calc]")
    group.wait_for()
    assert group.locator(".pick-item[data-path=double] .pick-sample").inner_text() == "10"
    assert "input mappings changed" in group.locator(".picker-stale").inner_text()
    page.keyboard.press("Escape")
    page.locator("#canvas").click(position={"x": 20, "y": 20})
    page.keyboard.press("Control+Z")
    select_node(page, "calc", wait_form=True)
    data.locator(".node-run-status").wait_for()
    assert data.locator(".node-run-stale").is_hidden()

    # A failing run: the panel shows the step's error.
    bad = _definition()
    bad["nodes"][1]["parameters"]["code"] = "raise ValueError('n is bad')\n"
    assert api.call("PATCH", f"/api/workflows/{wf['id']}/", {"definition": bad})[0] == 200
    failed = api.wait(api.start(wf["id"], {"n": 1})["id"])
    assert failed["status"] == "failed"
    open_editor(page, wf["id"], settled=False)
    select_node(page, "calc", wait_form=True)
    data.locator(".node-run-status[data-status=failed]").wait_for()
    assert "ValueError" in data.locator(".node-run-error").inner_text()

    # Pin calc's output: its node wears a badge, and a manual run with "Use pinned data" takes it.
    assert api.post(f"/api/workflows/{wf['id']}/nodes/calc/pin/", {"output": {"double": 7}})[0] == 201
    open_editor(page, wf["id"], settled=False)
    page.wait_for_selector(".node[data-id=calc] .node-pin-badge")
    assert page.locator(".node[data-id=fmt] .node-pin-badge").count() == 0
    select_node(page, "fmt", wait_form=True)
    page.click("#btn-run")
    use = page.locator("dialog #run-use-pinned")
    assert "“Calc” takes its pinned output" in page.locator("dialog .run-use-pinned").inner_text()
    use.check()
    page.click("dialog button[data-value=run]")
    page.wait_for_selector("#run-link[data-status=succeeded]", timeout=60_000)
    # the panel refreshes when the run finishes: fmt read the pinned output
    page.locator("#node-data .node-run-output").filter(has_text="double is 7").wait_for()
    run = api.get(f"/api/workflows/{wf['id']}/runs/?limit=1")[1]["results"][0]
    detail = api.get(f"/api/runs/{run['id']}/")[1]
    assert detail["pinned_nodes"] == ["calc"] and detail["status"] == "succeeded"
    select_node(page, "calc", wait_form=True)
    data.locator(".tag").filter(has_text="pinned data").wait_for()
    assert page.console_errors == []
