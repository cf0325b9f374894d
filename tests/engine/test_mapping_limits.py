"""Mapping text cannot make validation or a run slow: a linear scanner and caps with JSON paths."""
import time

import pytest

from engine.mapping import MappingError, expressions, resolve, scan


def _flow(wf, value):
    return wf.definition(
        [wf.node("trigger", "trigger.manual"), wf.node("c", "action.compose", {"value": value})],
        [wf.edge("trigger", "c")])


@pytest.mark.parametrize("value, error", [
    ("{{" * 100_000, None),                                  # 200 kB of {{: no expression at all
    ("x{{" * 70_000 + "}}", "an expression of"),             # one huge expression
    ("{{ trigger }}" * 15_000, "more than 1000 {{ expressions }}"),
    ({"a": ["{{" + "}" * 100_000]}, None),                    # one expression: `}...` does not parse
])
def test_validation_of_hostile_mapping_text_is_fast(stack, wf, value, error):
    api = stack.api()
    started = time.monotonic()
    status, body = api.post("/api/workflows/validate/", _flow(wf, value))
    elapsed = time.monotonic() - started
    assert status == 200, body
    assert elapsed < 0.8, f"validation took {elapsed:.2f} s"
    if error is None:
        assert body["valid"] is True or body["errors"][0]["path"].startswith("$.nodes[1].parameters.value"), body
    else:
        assert body["valid"] is False
        assert body["errors"][0]["path"] == "$.nodes[1].parameters.value" and error in body["errors"][0]["message"]


def test_the_scanner_pairs_each_open_with_the_next_close():
    assert scan("a {{ x }} b {{y}}") == [(2, 9, " x "), (12, 17, "y")]
    assert scan("{{{a}}}") == [(0, 6, "{a")]
    assert scan("{{ no end") == [] and scan("}} {{") == []


def test_caps_name_the_json_path(settings):
    settings.STEPWELL_MAPPING_MAX_EXPRESSIONS = 3
    with pytest.raises(MappingError) as exc:
        list(expressions({"a": "{{ x }}{{ y }}", "b": ["{{ z }}", "{{ w }}"]}, "$.parameters"))
    assert exc.value.path == "$.parameters.b[1]"
    settings.STEPWELL_MAPPING_MAX_STRING_CHARS = 1000
    with pytest.raises(MappingError, match="longer than 1000 characters") as exc:
        resolve({"s": "x {{ trigger.big }}"}, {"trigger": {"big": "y" * 2000}}, "$.parameters")
    assert exc.value.path == "$.parameters.s"
    assert resolve("{{ trigger.big }}", {"trigger": {"big": "y" * 2000}}) == "y" * 2000   # a value, not a string
