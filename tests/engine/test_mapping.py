"""The mapping language: {{ jmespath }} in parameter strings."""
import pytest

from engine.mapping import MappingError, expression_for, resolve, step_references

NS = {"trigger": {"body": {"items": [1, 2], "name": "Ann"}},
      "steps": {"parse": {"output": {"total": 3.5, "rows": [{"a": 1}]}, "status": "succeeded"},
                "my-node": {"output": 5, "status": "succeeded"}},
      "item": {"id": 9}, "index": 0}


def test_a_whole_expression_yields_the_raw_value():
    assert resolve("{{ trigger.body.items }}", NS) == [1, 2]
    assert resolve("  {{ steps.parse.output }} ", NS) == {"total": 3.5, "rows": [{"a": 1}]}
    assert resolve("{{ steps.parse.output.total }}", NS) == 3.5
    assert resolve('{{ steps."my-node".output }}', NS) == 5
    assert resolve("{{ item.id }}", NS) == 9 and resolve("{{ index }}", NS) == 0


def test_mixed_text_interpolates_strings():
    assert resolve("Hi {{ trigger.body.name }}, total {{ steps.parse.output.total }}", NS) == "Hi Ann, total 3.5"
    assert resolve("rows={{ steps.parse.output.rows }}", NS) == 'rows=[{"a":1}]'
    assert resolve("missing=[{{ trigger.nope }}]", NS) == "missing=[]"


def test_it_walks_objects_and_arrays_and_keeps_other_values():
    value = {"a": ["{{ index }}", 2, None, True], "b": {"c": "{{ length(trigger.body.items) }}"}}
    assert resolve(value, NS) == {"a": [0, 2, None, True], "b": {"c": 2}}


def test_it_reports_the_json_path_of_a_bad_expression():
    with pytest.raises(MappingError) as exc:
        resolve({"x": ["ok", "{{ steps..total }}"]}, NS, "$.parameters")
    assert exc.value.path == "$.parameters.x[1]"
    with pytest.raises(MappingError) as exc:
        resolve("{{ length(trigger.body.name.first) }}", NS)  # length(null): invalid type
    assert "cannot evaluate" in exc.value.message


def test_it_never_evaluates_python():
    with pytest.raises(MappingError) as exc:
        resolve("{{ __import__('os') }}", {})
    assert "Unknown function" in exc.value.message


def test_it_finds_step_references():
    assert step_references('steps.parse.output.total && steps."my-node".x') == {"parse", "my-node"}
    assert step_references("length(steps.q.output) > `1`") == {"q"}
    assert step_references("trigger.steps.fake") == set()


def test_it_builds_expressions_for_field_paths():
    assert expression_for("parse", ["rows", 0, "a"]) == "{{ steps.parse.output.rows[0].a }}"
    assert expression_for("my-node", ["odd key"]) == '{{ steps."my-node".output."odd key" }}'
