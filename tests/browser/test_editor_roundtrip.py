"""End to end: sign in, create a workflow, build it on the canvas, write code, save, reload."""
from __future__ import annotations

import pytest

from tests.browser.helpers import api, linear_definition, login, open_editor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE = 'result = {"answer": 42}'


def drag_port_to_port(page, source_sel, target_sel):
    src = page.locator(source_sel).bounding_box()
    dst = page.locator(target_sel).bounding_box()
    page.mouse.move(src["x"] + src["width"] / 2, src["y"] + src["height"] / 2)
    page.mouse.down()
    page.mouse.move(src["x"] + 60, src["y"] + 30, steps=5)
    page.mouse.move(dst["x"] + dst["width"] / 2, dst["y"] + dst["height"] / 2, steps=10)
    page.mouse.up()


def test_it_builds_saves_and_reloads_a_workflow(page, user):
    login(page)

    # Create from the list page.
    page.click("#btn-create")
    page.fill("#wf-dialog-name", "Lead enrichment")
    page.click("dialog button[value=ok]")
    page.wait_for_url("**/workflows/*/edit")
    page.wait_for_selector("body[data-ready=true]")
    workflow_id = int(page.url.rstrip("/").split("/")[-2])
    assert page.locator(".node").count() == 1  # the manual trigger of a new workflow

    # Drag two nodes from the palette onto the canvas.
    page.drag_and_drop(".palette-item[data-type='action.python']", "#canvas", target_position={"x": 380, "y": 120})
    page.drag_and_drop(".palette-item[data-type='action.response']", "#canvas", target_position={"x": 540, "y": 330})
    page.wait_for_selector(".node[data-id=python_1]")
    page.wait_for_selector(".node[data-id=response_1]")
    assert page.locator(".node").count() == 3
    assert page.locator(".node[data-id=response_1] .port-out").count() == 0  # Response has no output

    # Connect trigger.out → python_1.in and python_1.out → response_1.in.
    drag_port_to_port(page, ".node[data-id=trigger] .port-out[data-port=out] .port-dot",
                      ".node[data-id=python_1] .port-in[data-port=in] .port-dot")
    drag_port_to_port(page, ".node[data-id=python_1] .port-out[data-port=out] .port-dot",
                      ".node[data-id=response_1] .port-in[data-port=in] .port-dot")
    page.wait_for_function("window.stepwell.definition.edges.length === 2")
    assert page.locator(".edge").count() == 2
    assert page.locator("#dirty-marker").is_visible()

    # Type code into Monaco.
    page.click(".node[data-id=python_1] .node-name")
    page.wait_for_function("window.stepwell.monaco !== null && window.stepwell.monaco !== undefined")
    page.click("#code-editor .view-lines")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(CODE)
    page.wait_for_function("window.stepwell.definition.nodes.find(n => n.id === 'python_1').parameters.code === %r" % CODE)
    assert page.locator("#code-editor .monaco-editor .mtk1, #code-editor .monaco-editor [class^=mtk]").count() > 0

    # Save with the keyboard shortcut.
    page.locator("#canvas").click(position={"x": 30, "y": 30})
    page.keyboard.press("Control+S")
    page.wait_for_selector(".toast-success")
    assert page.locator("#version-badge").inner_text() == "v2"
    assert page.locator("#dirty-marker").is_hidden()

    # Reload: same nodes, edges and code.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert sorted(page.locator(".node").evaluate_all("els => els.map(e => e.dataset.id)")) == [
        "python_1", "response_1", "trigger"]
    edges = page.locator(".edge").evaluate_all(
        "els => els.map(e => `${e.dataset.source}.${e.dataset.sourcePort}->${e.dataset.target}.${e.dataset.targetPort}`)")
    assert sorted(edges) == ["python_1.out->response_1.in", "trigger.out->python_1.in"]
    page.click(".node[data-id=python_1] .node-name")
    page.wait_for_function("window.stepwell.monaco && window.stepwell.monaco.getValue() === %r" % CODE)
    assert CODE.replace(" ", "\u00a0") in page.locator("#code-editor .view-lines").inner_text().replace(" ", "\u00a0")

    # And through the API.
    res = api(page, "GET", f"/api/workflows/{workflow_id}/")
    assert res["status"] == 200
    d = res["data"]
    assert d["version"] == 2
    nodes = {n["id"]: n for n in d["definition"]["nodes"]}
    assert set(nodes) == {"trigger", "python_1", "response_1"}
    assert nodes["python_1"]["type"] == "action.python"
    assert nodes["python_1"]["parameters"]["code"] == CODE
    assert {(e["source"], e["source_port"], e["target"], e["target_port"]) for e in d["definition"]["edges"]} == {
        ("trigger", "out", "python_1", "in"), ("python_1", "out", "response_1", "in")}
    assert all(isinstance(n["position"]["x"], (int, float)) for n in nodes.values())
    assert not [e for e in page.console_errors if "favicon" not in e]
    assert page.external == []  # Monaco and everything else come from our static files


def test_the_code_editor_warns_about_imports_the_sandbox_lacks(signed_in, make_workflow):
    page = signed_in
    w = make_workflow("Imports", linear_definition("action.python"))
    open_editor(page, w.pk)
    page.click(".node[data-id=python_1] .node-name")
    page.wait_for_function("!!(window.stepwell.monaco && window.stepwell.importHelp)")
    page.evaluate("window.stepwell.importHelp.ready")
    page.evaluate("window.stepwell.monaco.setValue('import json\\nimport surely_not_installed_pkg\\n')")
    page.wait_for_function("""() => monaco.editor.getModelMarkers({owner: 'stepwell-imports'})
        .some(m => m.message.includes("surely_not_installed_pkg"))""")
    markers = page.evaluate("monaco.editor.getModelMarkers({owner: 'stepwell-imports'}).map(m => m.startLineNumber)")
    assert markers == [2]  # json is in the standard library
    assert not [e for e in page.console_errors if "favicon" not in e]
