"""Selecting on the canvas: Shift+drag selects with a rectangle, dragging moves the selection together."""
from __future__ import annotations

import pytest

from tests.browser.helpers import definition, linear_definition, open_editor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def selected(page):
    return sorted(page.locator(".node.selected").evaluate_all("els => els.map(e => e.dataset.id)"))


def test_a_rectangle_selects_and_the_selection_moves_together(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Select", linear_definition("action.compose", "action.compose", "action.compose"))
    open_editor(page, w.pk)
    page.click("#zoom-level")  # 100%
    page.evaluate("window.stepwell.canvas.centerOn('compose_2')")

    # Shift+drag around compose_1 and compose_2 (not the trigger, not compose_3).
    a = page.locator(".node[data-id=compose_1] .node-card").bounding_box()
    b = page.locator(".node[data-id=compose_2] .node-card").bounding_box()
    page.keyboard.down("Shift")
    page.mouse.move(a["x"] - 15, a["y"] - 40)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] + 15, b["y"] + b["height"] + 30, steps=10)
    page.mouse.up()
    page.keyboard.up("Shift")
    assert selected(page) == ["compose_1", "compose_2"]
    assert "2 nodes selected" in page.inner_text("#props")

    # Dragging one of them moves both by the same amount, as one undoable change.
    before = {n["id"]: n["position"] for n in definition(page)["nodes"]}
    head = page.locator(".node[data-id=compose_2] .node-head").bounding_box()
    page.mouse.move(head["x"] + 60, head["y"] + 20)
    page.mouse.down()
    page.mouse.move(head["x"] + 100, head["y"] + 80, steps=8)
    page.mouse.up()
    after = {n["id"]: n["position"] for n in definition(page)["nodes"]}
    for nid in ("compose_1", "compose_2"):
        assert after[nid] == {"x": before[nid]["x"] + 40, "y": before[nid]["y"] + 60}
    assert after["compose_3"] == before["compose_3"] and after["trigger"] == before["trigger"]
    assert selected(page) == ["compose_1", "compose_2"]
    page.keyboard.press("Control+Z")
    assert {n["id"]: n["position"] for n in definition(page)["nodes"]} == before

    # A plain click on one node of the selection selects just that node; Escape clears.
    page.click(".node[data-id=compose_1] .node-name")
    assert selected(page) == ["compose_1"]
    page.keyboard.press("Escape")
    assert selected(page) == []


def test_shift_wheel_scrolls_sideways_and_the_middle_button_pans(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Pan", linear_definition("action.compose"))
    open_editor(page, w.pk)
    box = page.locator("#canvas").bounding_box()
    view = lambda: page.evaluate("({...window.stepwell.canvas.view})")  # noqa: E731
    v0 = view()
    page.mouse.move(box["x"] + 40, box["y"] + box["height"] - 60)
    page.keyboard.down("Shift")
    page.mouse.wheel(0, 120)
    page.keyboard.up("Shift")
    v1 = view()
    assert v1["x"] == pytest.approx(v0["x"] - 120) and v1["y"] == v0["y"] and v1["k"] == v0["k"]

    page.mouse.down(button="middle")
    page.mouse.move(box["x"] + 90, box["y"] + box["height"] - 30, steps=4)
    page.mouse.up(button="middle")
    v2 = view()
    assert v2["x"] == pytest.approx(v1["x"] + 50) and v2["y"] == pytest.approx(v1["y"] + 30)
