"""The pure helpers of static/designer/step-tools.js, run in the browser."""
from __future__ import annotations

import pytest

from tests.browser.helpers import in_module_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def run(page, live_server, body):
    return in_module_page(page, live_server, 'const tools = await import("/static/designer/step-tools.js");', body)


def test_upstream_nodes_nearest_first_including_the_loop(page, live_server):
    out = run(page, live_server, """
        const def = {nodes: ["t", "a", "b", "loop", "body", "after", "other"].map((id) => ({id, ...(id === "body" ? {parent: "loop"} : {})})),
          edges: [{source: "t", target: "a"}, {source: "a", target: "b"}, {source: "b", target: "loop"},
                  {source: "loop", source_port: "done", target: "after"}, {source: "t", target: "other"}]};
        return [tools.upstreamOf(def, "b"), tools.upstreamOf(def, "body"), tools.upstreamOf(def, "after"), tools.upstreamOf(def, "t")];
    """)
    assert out == [["a", "t"], ["loop", "b", "a", "t"], ["loop", "b", "a", "t"], []]


def test_an_expression_goes_in_at_the_caret_quoted_in_json_outside_strings(page, live_server):
    out = run(page, live_server, """
        const put = (value, caret, mode) => {
            const ta = document.createElement("textarea");
            document.body.append(ta);
            ta.value = value;
            if (mode) ta.dataset.mode = mode;
            ta.setSelectionRange(caret, caret);
            let events = 0;
            ta.addEventListener("input", () => events++);
            tools.insertAtCursor(ta, "{{ steps.a.output.x }}");
            return [ta.value, events];
        };
        return [put('{"x": }', 6, "json"), put('{"x": "total: "}', 14, "json"), put("Hello ", 6, "text"), put("ab", 1)];
    """)
    assert out == [
        ['{"x": "{{ steps.a.output.x }}"}', 1],
        ['{"x": "total: {{ steps.a.output.x }}"}', 1],
        ["Hello {{ steps.a.output.x }}", 1],
        ["a{{ steps.a.output.x }}b", 1],
    ]
