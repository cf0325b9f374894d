"""Unsaved-changes marker, leave confirmation, JSON view, deleting, zooming, renaming, history."""
from __future__ import annotations

import pytest

from tests.browser.helpers import api, definition, linear_definition, open_editor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_tracks_unsaved_changes(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Dirty", linear_definition("action.compose"))
    open_editor(page, w.pk)
    assert page.locator("#dirty-marker").is_hidden()
    assert not page.title().startswith("●")

    page.click(".node[data-id=compose_1] .node-name")
    page.click("#prop-name")
    page.keyboard.press("End")
    page.keyboard.type(" changed")
    assert page.locator("#dirty-marker").is_visible()
    assert page.title().startswith("●")

    # Leaving asks for confirmation.
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.type), d.dismiss()))
    page.evaluate("location.reload()")
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]
    assert page.locator("#dirty-marker").is_visible()  # still here

    page.click("#btn-save")
    page.wait_for_selector(".toast-success")
    assert page.locator("#dirty-marker").is_hidden()
    assert page.locator("#version-badge").inner_text() == "v2"
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert dialogs == ["beforeunload"]
    assert page.locator(".node[data-id=compose_1] .node-name").inner_text() == "Compose 1 changed"


def test_the_json_view_shows_and_applies_the_definition(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("JSON", linear_definition("action.compose"))
    open_editor(page, w.pk)
    page.click("#btn-json")
    text = page.locator("#json-text").input_value()
    assert '"compose_1"' in text and '"edges"' in text

    page.fill("#json-text", text.replace('"Compose 1"', '"Renamed in JSON"'))
    page.click("#json-apply")
    page.wait_for_function("window.stepwell.definition.nodes[1].name === 'Renamed in JSON'")
    page.fill("#json-text", "{ not json")
    page.click("#json-apply")
    assert "Cannot apply" in page.locator("#json-error").inner_text()
    page.click("#btn-json")
    assert page.locator(".node[data-id=compose_1] .node-name").inner_text() == "Renamed in JSON"


def test_it_deletes_with_the_button_and_the_key_and_zooms(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Delete", linear_definition("action.compose", "action.compose"))
    open_editor(page, w.pk)
    page.hover(".node[data-id=compose_1]")
    page.click(".node[data-id=compose_1] .node-delete")
    page.wait_for_selector(".node[data-id=compose_1]", state="detached")
    assert [e for e in definition(page)["edges"] if "compose_1" in (e["source"], e["target"])] == []

    # Select an edge by clicking it, then delete it with the Delete key.
    page.keyboard.press("Control+Z")
    page.wait_for_selector(".node[data-id=compose_1]")
    edge = page.locator(".edge[data-source=trigger] .edge-hit")
    box = edge.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(".edge.selected", state="attached")
    page.keyboard.press("Delete")
    page.wait_for_function("window.stepwell.definition.edges.length === 1")

    k0 = page.evaluate("window.stepwell.canvas.view.k")
    page.click("#zoom-in")
    assert page.evaluate("window.stepwell.canvas.view.k") > k0
    page.mouse.move(700, 400)
    page.mouse.wheel(0, 400)
    assert page.evaluate("window.stepwell.canvas.view.k") < k0 * 1.2
    page.click("#zoom-fit")
    assert page.locator("#zoom-level").inner_text().endswith("%")

    # Dragging the background pans.
    x0 = page.evaluate("window.stepwell.canvas.view.x")
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + box["height"] - 120)
    page.mouse.down()
    page.mouse.move(box["x"] + 130, box["y"] + box["height"] - 100, steps=5)
    page.mouse.up()
    assert page.evaluate("window.stepwell.canvas.view.x") == pytest.approx(x0 + 100)


def test_it_renames_the_workflow_and_restores_a_version(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Old name", linear_definition("action.compose"))
    open_editor(page, w.pk)
    page.fill("#wf-name", "New name")
    page.keyboard.press("Enter")
    page.wait_for_selector(".toast-success")
    assert api(page, "GET", f"/api/workflows/{w.pk}/")["data"]["name"] == "New name"

    page.click(".node[data-id=compose_1] .node-name")
    page.click("#prop-name")
    page.keyboard.press("End")
    page.keyboard.type(" v2")
    page.keyboard.press("Meta+S")  # Cmd+S on a Mac
    page.wait_for_function("document.querySelector('#version-badge').textContent === 'v2'")

    page.click("#btn-history")
    page.wait_for_selector("#history-list .version[data-version='1']")
    page.click("#history-list .version[data-version='1'] button:has-text('Restore')")
    page.wait_for_function("document.querySelector('#version-badge').textContent === 'v3'")
    assert page.locator(".node[data-id=compose_1] .node-name").inner_text() == "Compose 1"
    assert page.locator("#dirty-marker").is_hidden()
    assert api(page, "GET", f"/api/workflows/{w.pk}/")["data"]["version"] == 3


def test_it_shows_shortcuts_and_expands_the_code_editor(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Help", linear_definition("action.python"))
    open_editor(page, w.pk)
    page.locator("#canvas").click(position={"x": 20, "y": 20})
    page.keyboard.press("?")
    page.wait_for_selector("dialog .kbd-list")
    assert "Paste" in page.locator("dialog").inner_text()
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog", state="detached")

    page.click(".node[data-id=python_1] .node-name")
    page.wait_for_function("!!window.stepwell.monaco")
    narrow = page.locator("#props").bounding_box()["width"]
    page.click("#code-expand")
    page.wait_for_timeout(250)  # width transition
    assert page.locator("#props").bounding_box()["width"] > narrow + 100
