"""Copy and paste of selected nodes: new ids, shifted positions, inner edges kept."""
from __future__ import annotations

import pytest

from tests.browser.helpers import definition, linear_definition, open_editor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_pastes_copies_with_new_ids_and_their_edge(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Clipboard", linear_definition("action.python", "action.compose"))
    open_editor(page, w.pk)
    # compose_2 first: selecting python_1 alone widens the panel (code editor) over compose_2.
    page.click(".node[data-id=compose_2] .node-name")
    page.click(".node[data-id=python_1] .node-name", modifiers=["Shift"])
    page.keyboard.press("Control+C")
    page.keyboard.press("Control+V")
    page.wait_for_selector(".node[data-id=python_2]")
    page.wait_for_selector(".node[data-id=compose_1]")

    d = definition(page)
    nodes = {n["id"]: n for n in d["nodes"]}
    assert set(nodes) == {"trigger", "python_1", "compose_2", "python_2", "compose_1"}
    assert nodes["python_2"]["position"] == {"x": nodes["python_1"]["position"]["x"] + 40,
                                             "y": nodes["python_1"]["position"]["y"] + 40}
    assert nodes["python_2"]["parameters"] == nodes["python_1"]["parameters"]
    assert nodes["python_2"]["name"] != nodes["python_1"]["name"]
    pairs = {(e["source"], e["target"]) for e in d["edges"]}
    assert ("python_2", "compose_1") in pairs                 # the edge between the copies
    assert not any(e["target"] == "python_2" for e in d["edges"])  # none from outside the copy
    # The pasted nodes are selected, and pasting again offsets further.
    assert sorted(page.locator(".node.selected").evaluate_all("els => els.map(e => e.dataset.id)")) == [
        "compose_1", "python_2"]
    page.keyboard.press("Control+V")
    page.wait_for_selector(".node[data-id=python_3]")
    nodes = {n["id"]: n for n in definition(page)["nodes"]}
    assert nodes["python_3"]["position"]["x"] == nodes["python_1"]["position"]["x"] + 80

    page.keyboard.press("Control+Z")
    page.wait_for_selector(".node[data-id=python_3]", state="detached")
