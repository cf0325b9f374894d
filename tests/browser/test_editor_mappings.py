"""Mappings in the properties panel (field-picker.js): the picker inserts at the cursor and keeps
the JSON valid, fields are dragged from the picker onto a field, `{{ steps.` / `{{ trigger.`
complete while typing, an unknown field gets a warning with a "did you mean", and pinned data in
the picker says what changed since it was pinned. Also the panel's scroll and wheel, the pinned
badge on the canvas, and a dropped node that the widened panel must not hide."""
from __future__ import annotations

import pytest

from tests.browser.helpers import definition, open_editor, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE = "result = {'total': inputs['n'] * 2}\n"


def _definition() -> dict:
    return {
        "version": 1, "settings": {"variables": [], "allowed_hosts": []},
        "nodes": [
            {"id": "trigger", "type": "trigger.manual", "name": "Start",
             "parameters": {"sample_payload": {"n": 4, "who": "ada"}}, "position": {"x": 40, "y": 120}},
            {"id": "calc", "type": "action.python", "name": "Calc",
             "parameters": {"code": CODE, "inputs": {"n": "{{ trigger.body.n }}"}}, "position": {"x": 340, "y": 120}},
            {"id": "report", "type": "action.compose", "name": "Report", "parameters": {"value": {}},
             "position": {"x": 640, "y": 120}},
            {"id": "calc2", "type": "action.python", "name": "Calc two",
             "parameters": {"code": "result = 1\n", "inputs": {}}, "position": {"x": 340, "y": 380}},
        ],
        "edges": [
            {"source": "trigger", "source_port": "out", "target": "calc", "target_port": "in"},
            {"source": "calc", "source_port": "out", "target": "report", "target_port": "in"},
            {"source": "trigger", "source_port": "out", "target": "calc2", "target_port": "in"},
        ],
    }


def _node(page, node_id):
    return next(n for n in definition(page)["nodes"] if n["id"] == node_id)


def _select(page, node_id):
    page.locator("#canvas").click(position={"x": 20, "y": 20})
    page.wait_for_selector(".settings-form")
    page.click(f".node[data-id={node_id}] .node-name")
    page.wait_for_selector(f".props-form[data-node-id={node_id}]")


def _box(page, selector):
    return page.locator(selector).bounding_box()


def test_mappings_insert_drag_complete_and_warn(signed_in, make_workflow):
    from engine import actions

    page = signed_in
    w = make_workflow("Mappings", _definition())
    actions.do_pin_output(w, "calc", {"total": 8, "stats": {"max": 4}})
    open_editor(page, w.pk)

    # The pinned step wears a badge on the canvas.
    page.wait_for_selector(".node[data-id=calc] .node-pin-badge")
    assert page.locator(".node[data-id=report] .node-pin-badge").count() == 0

    # Insert at the cursor: the caret between the quotes of a JSON value, the text kept as typed.
    _select(page, "report")
    value = page.locator("#param-value")
    value.fill('{ "doubled": "" }')
    value.evaluate("ta => ta.setSelectionRange(14, 14)")
    page.click(".pick-field[data-for=param-value]")
    picker = page.locator(".field-picker")
    picker.wait_for()
    # the trigger's sample payload is offered as {{ trigger.… }} fields
    trig = picker.locator(".picker-group[data-node=trigger-payload]")
    assert trig.locator(".pick-item[data-expression='{{ trigger.body.n }}'] .pick-sample").inner_text() == "4"
    picker.locator(".picker-group[data-node=calc] .pick-item[data-expression='{{ steps.calc.output.total }}']").click()
    page.wait_for_selector(".field-picker", state="detached")
    assert value.input_value() == '{ "doubled": "{{ steps.calc.output.total }}" }'
    assert _node(page, "report")["parameters"]["value"] == {"doubled": "{{ steps.calc.output.total }}"}
    # outside a string the expression goes in quoted, at the caret, not at the end
    value.fill('{"a": , "b": 1}')
    value.evaluate("ta => ta.setSelectionRange(6, 6)")
    page.click(".pick-field[data-for=param-value]")
    page.locator(".field-picker .pick-item[data-expression='{{ trigger.body.who }}']").click()
    assert _node(page, "report")["parameters"]["value"] == {"a": "{{ trigger.body.who }}", "b": 1}

    # Drag a field from the picker onto a field.
    value.fill('{"x": ""}')
    value.evaluate("ta => ta.setSelectionRange(7, 7)")
    page.click(".pick-field[data-for=param-value]")
    page.drag_and_drop(".field-picker .pick-item[data-expression='{{ steps.calc.output.stats.max }}']", "#param-value")
    page.wait_for_function("() => document.querySelector('#param-value').value.includes('stats.max')")
    page.keyboard.press("Escape")
    assert _node(page, "report")["parameters"]["value"] == {"x": "{{ steps.calc.output.stats.max }}"}

    # Completion while typing, in a plain text field (the mode toggle makes the value text).
    value.fill("")
    if value.get_attribute("data-mode") == "json":
        page.click("#props .field .mode-toggle")
    assert value.get_attribute("data-mode") == "text"
    value.click()
    page.keyboard.type("Total: {{ steps.calc.output.to")
    menu = page.locator(".mapping-complete")
    menu.wait_for()
    assert menu.locator(".complete-item").first.get_attribute("data-expression") == "{{ steps.calc.output.total }}"
    page.keyboard.press("Enter")
    menu.wait_for(state="detached")
    assert value.input_value() == "Total: {{ steps.calc.output.total }}"
    page.keyboard.type(" by {{ trigger.bo")
    menu.wait_for()
    assert "{{ trigger.body.who }}" in [menu.locator(".complete-item").nth(i).get_attribute("data-expression")
                                       for i in range(menu.locator(".complete-item").count())]
    page.keyboard.press("Escape")
    menu.wait_for(state="detached")

    # A field no schema knows: a warning with a "did you mean" that fixes it.
    value.fill("{{ steps.calc.output.totl }} and {{ trigger.body.n }}")
    warning = page.locator(".ref-warning[data-ref='steps.calc.output.totl']")
    warning.wait_for()
    assert page.locator(".ref-warning").count() == 1
    assert warning.locator(".ref-fix").get_attribute("data-suggestion") == "steps.calc.output.total"
    warning.locator(".ref-fix").click()
    page.wait_for_selector(".ref-warning", state="detached")
    assert _node(page, "report")["parameters"]["value"] == "{{ steps.calc.output.total }} and {{ trigger.body.n }}"

    # Pinned data goes stale when the step's mappings change, and the picker says what changed.
    _select(page, "calc")
    page.fill("#param-inputs", '{"n": "{{ trigger.body.n }}", "m": 1}')
    _select(page, "report")
    page.click(".pick-field[data-for=param-value]")
    group = page.locator(".field-picker .picker-group[data-node=calc]")
    group.wait_for()
    assert group.locator(".stale-marker").count() == 1
    assert "input mappings changed" in group.locator(".picker-stale").inner_text()
    page.keyboard.press("Escape")

    # The panel starts at the top for each node, and the wheel over Monaco scrolls the panel.
    _select(page, "calc")
    page.wait_for_selector("#code-editor .monaco-editor")
    page.click("#zoom-fit")
    props = page.locator("#props")
    props.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    assert props.evaluate("el => el.scrollTop") > 0
    page.click(".node[data-id=calc2] .node-name")
    page.wait_for_selector(".props-form[data-node-id=calc2] #code-editor .monaco-editor")
    assert props.evaluate("el => el.scrollTop") == 0
    box = _box(page, "#code-editor")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 300)
    page.wait_for_function("() => document.querySelector('#props').scrollTop > 0")

    # A code step dropped near the right edge stays in view when its wide panel opens.
    page.locator("#canvas").click(position={"x": 20, "y": 20})
    page.wait_for_selector(".settings-form")
    canvas = _box(page, "#canvas")
    page.drag_and_drop(".palette-item[data-type='action.python']", "#canvas",
                       target_position={"x": canvas["width"] - 120, "y": 300})
    page.wait_for_selector(".props-form #code-editor")
    new_id = page.locator(".props-form").get_attribute("data-node-id")
    # the panel's width transition, then the pan that brings the node back into view; settled
    # when two polls 100 ms apart see the same boxes (a loaded machine draws transitions slowly)
    page.wait_for_function("""(id) => {
        const n = document.querySelector(`.node[data-id="${id}"]`).getBoundingClientRect();
        const c = document.querySelector('#canvas').getBoundingClientRect();
        const p = document.querySelector('#props').getBoundingClientRect();
        const boxes = [n.left, n.right, c.left, c.right, p.width].map(Math.round).join();
        const settled = window.__droppedBoxes === boxes;
        window.__droppedBoxes = boxes;
        return settled && p.width > 500 && n.right <= c.right && n.left >= c.left;
    }""", arg=new_id, polling=100)
    node = _box(page, f".node[data-id={new_id}]")
    canvas, panel = _box(page, "#canvas"), _box(page, "#props")
    assert node["x"] >= canvas["x"] and node["x"] + node["width"] <= canvas["x"] + canvas["width"], (node, canvas)
    assert node["x"] + node["width"] <= panel["x"], (node, panel)
    settle(page)
    assert page.console_errors == []
