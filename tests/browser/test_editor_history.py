"""Undo and redo over definition snapshots."""
from __future__ import annotations

import pytest

from tests.browser.helpers import definition, linear_definition, open_editor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_undoes_and_redoes_adding_a_node(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("History", linear_definition("action.compose"))
    open_editor(page, w.pk)
    assert page.locator("#btn-undo").is_disabled()

    page.drag_and_drop(".palette-item[data-type='action.http']", "#canvas", target_position={"x": 300, "y": 400})
    page.wait_for_selector(".node[data-id=http_1]")
    page.locator("#canvas").click(position={"x": 20, "y": 20})

    page.keyboard.press("Control+Z")
    page.wait_for_selector(".node[data-id=http_1]", state="detached")
    assert [n["id"] for n in definition(page)["nodes"]] == ["trigger", "compose_1"]
    assert page.locator("#dirty-marker").is_hidden()

    page.keyboard.press("Control+Shift+Z")
    page.wait_for_selector(".node[data-id=http_1]")
    page.keyboard.press("Control+Z")
    page.wait_for_selector(".node[data-id=http_1]", state="detached")
    page.keyboard.press("Control+Y")
    page.wait_for_selector(".node[data-id=http_1]")
    assert page.locator("#dirty-marker").is_visible()


def test_it_undoes_a_name_edit_as_one_step_and_updates_the_panel(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("History", linear_definition("action.compose"))
    open_editor(page, w.pk)
    page.click(".node[data-id=compose_1] .node-name")
    page.fill("#prop-name", "")
    page.keyboard.type("Build payload")
    assert page.locator(".node[data-id=compose_1] .node-name").inner_text() == "Build payload"

    page.click("#btn-undo")
    page.wait_for_function("window.stepwell.definition.nodes[1].name === 'Compose 1'")
    assert page.locator("#prop-name").input_value() == "Compose 1"
    assert page.locator(".node[data-id=compose_1] .node-name").inner_text() == "Compose 1"
    page.click("#btn-redo")
    assert page.locator("#prop-name").input_value() == "Build payload"


def test_it_undoes_moves_and_deletes(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("History", linear_definition("action.compose"))
    open_editor(page, w.pk)
    before = definition(page)["nodes"][1]["position"]
    box = page.locator(".node[data-id=compose_1] .node-head").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 160, box["y"] + 140, steps=8)
    page.mouse.up()
    after = definition(page)["nodes"][1]["position"]
    assert after != before

    page.keyboard.press("Delete")  # the dragged node is selected
    page.wait_for_selector(".node[data-id=compose_1]", state="detached")
    assert definition(page)["edges"] == []

    page.keyboard.press("Control+Z")
    page.wait_for_selector(".node[data-id=compose_1]")
    assert len(definition(page)["edges"]) == 1
    page.keyboard.press("Control+Z")
    page.wait_for_function(f"window.stepwell.definition.nodes[1].position.x === {before['x']}")
