"""Connecting on the canvas: rules, detaching from an input, re-attaching elsewhere."""
from __future__ import annotations

import pytest

from tests.browser.helpers import definition, linear_definition, open_editor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def drag(page, source_sel, target_sel=None, to=None):
    a = page.locator(source_sel).bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    if target_sel:
        b = page.locator(target_sel).bounding_box()
        to = (b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    page.mouse.move(*to, steps=8)
    page.mouse.up()


def edges(page):
    return sorted(f"{e['source']}.{e['source_port']}->{e['target']}.{e['target_port']}" for e in definition(page)["edges"])


def test_it_enforces_connection_rules(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Edges", linear_definition("control.condition", "action.compose", "action.compose"))
    open_editor(page, w.pk)
    before = edges(page)
    # Output onto the same node's input: refused with a message.
    drag(page, ".node[data-id=compose_2] .port-out .port-dot", ".node[data-id=compose_2] .port-in .port-dot")
    page.wait_for_selector(".toast-error")
    assert "itself" in page.locator(".toast-error").inner_text()
    # The same connection twice: refused.
    drag(page, ".node[data-id=compose_2] .port-out .port-dot", ".node[data-id=compose_3] .port-in .port-dot")
    assert edges(page) == before
    # Dropped on empty canvas: nothing.
    drag(page, ".node[data-id=compose_3] .port-out .port-dot", to=(700, 700))
    assert edges(page) == before
    # The condition's `false` output onto a node body connects to its (first) input.
    drag(page, ".node[data-id=condition_1] .port-out[data-port=false] .port-dot", ".node[data-id=compose_3] .node-name")
    assert "condition_1.false->compose_3.in" in edges(page)


def test_dragging_from_a_connected_input_moves_the_edge(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Edges", linear_definition("action.compose", "action.compose"))
    open_editor(page, w.pk)
    assert "compose_1.out->compose_2.in" in edges(page)
    # Pick the edge up at compose_2's input and drop it on the empty canvas: it is removed.
    drag(page, ".node[data-id=compose_2] .port-in .port-dot", to=(700, 700))
    assert edges(page) == ["trigger.out->compose_1.in"]
    page.keyboard.press("Control+Z")
    assert "compose_1.out->compose_2.in" in edges(page)
    # Re-attaching it where it is not allowed (a self-loop on compose_1) leaves it in place.
    drag(page, ".node[data-id=compose_2] .port-in .port-dot", ".node[data-id=compose_1] .port-in .port-dot")
    page.wait_for_selector(".toast-error")
    assert "compose_1.out->compose_2.in" in edges(page)
    # Onto another node's input it moves.
    page.drag_and_drop(".palette-item[data-type='action.response']", "#canvas", target_position={"x": 300, "y": 450})
    page.wait_for_selector(".node[data-id=response_1]")
    drag(page, ".node[data-id=compose_2] .port-in .port-dot", ".node[data-id=response_1] .port-in .port-dot")
    assert edges(page) == ["compose_1.out->response_1.in", "trigger.out->compose_1.in"]


def test_tidy_arranges_nodes_left_to_right(signed_in, make_workflow):
    page = signed_in
    d = linear_definition("control.condition", "action.compose", "action.compose")
    d["edges"][-1] = {"source": "condition_1", "source_port": "false", "target": "compose_3", "target_port": "in"}
    for n in d["nodes"]:
        n["position"] = {"x": 500, "y": 500}  # all on top of each other
    w = make_workflow("Tidy", d)
    open_editor(page, w.pk)
    page.click("#btn-tidy")
    pos = {n["id"]: n["position"] for n in definition(page)["nodes"]}
    assert pos["trigger"]["x"] < pos["condition_1"]["x"] < pos["compose_2"]["x"]
    assert pos["compose_2"]["x"] == pos["compose_3"]["x"] and pos["compose_2"]["y"] != pos["compose_3"]["y"]
    assert len({(p["x"], p["y"]) for p in pos.values()}) == 4
    page.keyboard.press("Control+Z")
    assert all(n["position"] == {"x": 500, "y": 500} for n in definition(page)["nodes"])
