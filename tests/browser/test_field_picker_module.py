"""The helpers of static/designer/field-picker.js and stale.js, run in the browser: insertion at a
Monaco editor's selection, completion candidates, unknown references with their "did you mean",
and what changed since a snapshot."""
from __future__ import annotations

import pytest

from tests.browser.helpers import in_module_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IMPORTS = """
const fp = await import("/static/designer/field-picker.js");
const stale = await import("/static/designer/stale.js");
"""

GROUPS = """
const groups = [
  {id: "calc", title: "Calc", inferred: true, fields: [
    {path: "", expression: "{{ steps.calc.output }}", type: "object"},
    {path: "total", expression: "{{ steps.calc.output.total }}", type: "integer"},
    {path: "rows", expression: "{{ steps.calc.output.rows }}", type: "array"},
    {path: "rows[0].name", expression: "{{ steps.calc.output.rows[0].name }}", type: "string"},
    {path: "meta", expression: "{{ steps.calc.output.meta }}", type: "object"}]},
  {id: "never", title: "Never ran", inferred: false, fields: [{path: "", expression: "{{ steps.never.output }}", type: "?"}]},
  {id: "trigger-payload", title: "Trigger", inferred: true, fields: [
    {path: "body", expression: "{{ trigger.body }}", type: "object"},
    {path: "body.n", expression: "{{ trigger.body.n }}", type: "number"},
    {path: "headers", expression: "{{ trigger.headers }}", type: "object"}]},
];
"""


def test_references_completions_and_stale_reasons(page, live_server):
    out = in_module_page(page, live_server, IMPORTS, GROUPS + """
        const text = '{"a": "{{ steps.calc.output.totl }}", "b": "{{ steps.calc.output.rows[3].name }}",' +
          ' "c": "{{ trigger.headers.host }} {{ steps.calc.output.meta.anything }} {{ steps.never.output.x }}",' +
          ' "d": "{{ trigger.body.m }} {{ steps.calc.output.zzzzzzzz }}"}';
        const def = {nodes: [{id: "t", type: "trigger.manual", parameters: {}},
                             {id: "calc", type: "action.python", name: "Calc", parameters: {code: "x", inputs: {n: 2}}},
                             {id: "fmt", type: "action.compose", name: "Fmt", parameters: {value: "v"}}],
                     edges: [{source: "t", target: "calc"}, {source: "calc", target: "fmt"}]};
        const then = {t: {type: "trigger.manual", parameters: {}},
                      calc: {type: "action.python", parameters: {inputs: {n: 2}, code: "x"}},
                      fmt: {type: "action.compose", parameters: {value: "v"}}};
        const changed = JSON.parse(JSON.stringify(def));
        changed.nodes[1].parameters.code = "y";
        changed.nodes[2].parameters.value = "w";
        return {
          refs: fp.unknownReferences(text, groups),
          typed: fp.typedReference("x {{ steps.ca", 13),
          none: fp.typedReference("x {{ vars.a", 11),
          comp: fp.completions("steps.calc.output.r", groups).map((f) => f.expression),
          trig: fp.completions("trigger.b", groups).map((f) => f.expression),
          dist: fp.editDistance("totl", "total"),
          same: stale.staleReasons(then, def, "fmt"),
          diff: stale.staleReasons(then, changed, "fmt"),
          own: stale.staleReasons(then, changed, "calc"),
        };
    """)
    assert out["refs"] == [
        {"ref": "steps.calc.output.totl", "suggestion": "steps.calc.output.total"},
        {"ref": "trigger.body.m", "suggestion": "trigger.body.n"},
        {"ref": "steps.calc.output.zzzzzzzz", "suggestion": None},
    ]
    assert out["typed"] == {"start": 2, "prefix": "steps.ca"} and out["none"] is None
    assert out["comp"] == ["{{ steps.calc.output.rows }}", "{{ steps.calc.output.rows[0].name }}"]
    assert out["trig"] == ["{{ trigger.body }}", "{{ trigger.body.n }}"]
    assert out["dist"] == 1
    assert out["same"] == []   # key order is not a change
    assert out["diff"] == ["value changed", "upstream step “Calc”: code changed"]
    assert out["own"] == ["code changed"]


def test_an_expression_goes_in_at_a_monaco_selection(page, live_server):
    page.goto(f"{live_server.url}/static/designer/app.css")   # any same-origin page
    out = page.evaluate("""async () => {
        const fp = await import("/static/designer/field-picker.js");
        const { createEditor } = await import("/static/designer/monaco.js");
        const host = document.createElement("div");
        host.style.width = "400px"; host.style.height = "200px";
        document.body.append(host);
        const ed = await createEditor(host, { value: "total = \\nother", language: "plaintext" });
        ed.setSelection({ startLineNumber: 1, startColumn: 9, endLineNumber: 1, endColumn: 9 });
        fp.insertExpression(ed, "{{ steps.a.output.x }}");
        const first = ed.getValue();
        ed.setSelection({ startLineNumber: 2, startColumn: 1, endLineNumber: 2, endColumn: 6 });  // "other" selected
        fp.insertExpression(ed, "{{ trigger.body }}");
        return [first, ed.getValue()];
    }""")
    assert out == ["total = {{ steps.a.output.x }}\nother", "total = {{ steps.a.output.x }}\n{{ trigger.body }}"]
