"""The pure definition helpers of static/designer/model.js and history.js, run in the browser."""
from __future__ import annotations

import pytest

from tests.browser.helpers import in_module_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


IMPORTS = """
    const m = await import("/static/designer/model.js");
    const { History } = await import("/static/designer/history.js");
"""


def run(page, live_server, body):
    return in_module_page(page, live_server, IMPORTS, body)


def test_ids_are_unique_and_valid(page, live_server):
    out = run(page, live_server, """
        const taken = new Set(["python_1", "python_2"]);
        return [m.uniqueId("python", taken), m.idPrefix("action.python"), m.idPrefix("x.9lives"),
                m.ID_RE.test(m.uniqueId(m.idPrefix("x.9lives"), new Set()))];
    """)
    assert out == ["python_3", "python", "n_9lives", True]


def test_paste_remaps_ids_edges_and_parents(page, live_server):
    out = run(page, live_server, """
        const def = {version: 1, nodes: [
            {id: "loop", type: "control.foreach", name: "Loop", parameters: {}, position: {x: 0, y: 0}},
            {id: "body", type: "action.compose", name: "Body", parameters: {value: 1}, position: {x: 10, y: 20}, parent: "loop"},
            {id: "other", type: "action.compose", name: "Other", parameters: {}, position: {x: 0, y: 0}}],
          edges: [{source: "loop", source_port: "each", target: "body", target_port: "in"},
                  {source: "other", source_port: "out", target: "loop", target_port: "in"}]};
        const clip = m.copyNodes(def, ["loop", "body"]);
        const ids = m.pasteNodes(def, clip, {x: 40, y: 40});
        const byId = Object.fromEntries(def.nodes.map(n => [n.id, n]));
        return {ids, clipEdges: clip.edges.length, parent: byId[ids[1]].parent, pos: byId[ids[1]].position,
                name: byId[ids[1]].name, edges: def.edges.map(m.edgeKey)};
    """)
    assert out["ids"] == ["foreach_1", "compose_1"]
    assert out["clipEdges"] == 1
    assert out["parent"] == "foreach_1"
    assert out["pos"] == {"x": 50, "y": 60}
    assert out["name"] == "Body 2"
    assert "foreach_1:each->compose_1:in" in out["edges"]
    assert len(out["edges"]) == 3


def test_connect_rules_and_problem_targets(page, live_server):
    out = run(page, live_server, """
        const types = new m.NodeTypes([
            {key: "trigger.manual", category: "trigger", inputs: [], outputs: ["out"]},
            {key: "action.response", category: "action", inputs: ["in"], outputs: []}]);
        const def = {nodes: [{id: "t", type: "trigger.manual"}, {id: "r", type: "action.response"}],
                     edges: [{source: "t", source_port: "out", target: "r", target_port: "in"}]};
        return [
            m.canConnect(def, types, {source: "t", source_port: "out", target: "r", target_port: "in"}),
            m.canConnect(def, types, {source: "r", source_port: "out", target: "t", target_port: "in"}),
            m.canConnect(def, types, {source: "t", source_port: "out", target: "t", target_port: "in"}),
            m.problemTarget(def, {path: "$.definition.nodes[1].parameters.body", message: "x"}),
            m.problemTarget(def, {path: "$.edges[0].target_port", message: "x", node_id: "r"}),
        ];
    """)
    assert out[0] == "These ports are already connected."
    assert out[1].startswith("No output")
    assert out[2] == "A node cannot connect to itself."
    assert out[3] == {"nodeId": "r", "edgeIndex": None, "path": "$.nodes[1].parameters.body"}
    assert out[4] == {"nodeId": "r", "edgeIndex": 0, "path": "$.edges[0].target_port"}


def test_history_merges_typing_and_clears_redo(page, live_server):
    out = run(page, live_server, """
        const h = new History();
        h.record("a", "name:x"); h.record("b", "name:x"); h.record("c", null);
        const u1 = h.undo("d"), u2 = h.undo("c");
        const r1 = h.redo("a");
        h.record("c2");
        return [u1, u2, r1, h.canRedo, h.undoStack];
    """)
    assert out == ["c", "a", "c", False, ["a", "c2"]]


def test_layered_layout_survives_cycles(page, live_server):
    out = run(page, live_server, """
        const def = {nodes: ["a", "b", "c", "d"].map((id, i) => ({id, position: {x: i, y: 0}})),
                     edges: [{source: "a", target: "b"}, {source: "b", target: "c"}, {source: "c", target: "b"},
                             {source: "a", target: "d"}]};
        return m.layeredLayout(def, {dx: 100, dy: 50});
    """)
    assert out["a"]["x"] == 0
    assert out["b"]["x"] == 100 and out["d"]["x"] == 100
    assert out["c"]["x"] == 200
    assert out["b"]["y"] != out["d"]["y"]
