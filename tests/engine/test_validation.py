"""Graph rules of definitions, checked directly."""
import copy

from engine.validation import empty_definition, validate_definition


def _paths(doc):
    return [p.path for p in validate_definition(doc)]


def test_an_empty_definition_is_valid():
    assert validate_definition(empty_definition()) == []


def test_a_definition_needs_a_trigger(definition):
    definition["nodes"] = definition["nodes"][1:]
    definition["edges"] = []
    assert [p.message for p in validate_definition(definition)] == ["a workflow needs exactly one trigger node"]


def test_trigger_cannot_have_incoming_edges(definition):
    definition["edges"].append({"source": "python_1", "target": "trigger"})
    assert "$.edges[1].target_port" in _paths(definition)


def test_condition_ports(definition):
    definition["nodes"].append({"id": "cond", "type": "control.condition", "name": "If",
                                "parameters": {"left": 1, "operator": "=="}, "position": {"x": 0, "y": 0}})
    definition["edges"].append({"source": "python_1", "target": "cond"})
    ok = copy.deepcopy(definition)
    ok["edges"].append({"source": "cond", "source_port": "true", "target": "python_1"})
    assert any("cycle" in p.message for p in validate_definition(ok))
    definition["edges"].append({"source": "cond", "source_port": "out", "target": "python_1"})
    assert "$.edges[2].source_port" in _paths(definition)


def test_node_limit(definition):
    for i in range(5):
        definition["nodes"].append({"id": f"c{i}", "type": "action.compose", "name": "C",
                                    "parameters": {"value": i}, "position": {"x": 0, "y": 0}})
    assert [p.path for p in validate_definition(definition, max_nodes=3)] == ["$.nodes"]


def test_bad_id_and_unknown_field(definition):
    definition["nodes"][1]["id"] = "has space"
    definition["nodes"][1]["colour"] = "red"
    paths = _paths(definition)
    assert "$.nodes[1].id" in paths and "$.nodes[1]" in paths


def test_two_hundred_nodes_validate_quickly(definition):
    import time

    for i in range(200):
        definition["nodes"].append({"id": f"n{i}", "type": "action.compose", "name": "C",
                                    "parameters": {"value": i}, "position": {"x": i, "y": i}})
        definition["edges"].append({"source": "python_1" if i == 0 else f"n{i-1}", "target": f"n{i}"})
    t = time.perf_counter()
    assert validate_definition(definition) == []
    assert time.perf_counter() - t < 2.0
