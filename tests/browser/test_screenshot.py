"""Renders a small, realistic workflow with Monaco open. Writes docs/screenshot-canvas.png when
STEPWELL_SCREENSHOT=1 (the README image), otherwise a temporary file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.helpers import open_editor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE = '''# Score each lead from the enrichment API
lead = inputs["lead"]
score = 0
if lead.get("company_size", 0) > 50:
    score += 40
if lead.get("country") in {"DE", "FR", "NL"}:
    score += 20
result = {"id": lead["id"], "score": score, "hot": score >= 50}
'''

DEFINITION = {
    "version": 1,
    "nodes": [
        {"id": "webhook", "type": "trigger.http", "name": "New lead", "parameters": {"method": "POST"},
         "position": {"x": 0, "y": 150}},
        {"id": "enrich", "type": "action.http", "name": "Enrich company", "position": {"x": 270, "y": 150},
         "parameters": {"method": "GET", "url": "https://api.example.com/companies/{{ trigger.body.domain }}"}},
        {"id": "score", "type": "action.python", "name": "Score lead", "position": {"x": 540, "y": 150},
         "parameters": {"code": CODE, "inputs": {"lead": "{{ steps.enrich.output.body }}"}, "timeout_s": 30}},
        {"id": "is_hot", "type": "control.condition", "name": "Hot lead?", "position": {"x": 810, "y": 150},
         "parameters": {"left": "{{ steps.score.output.hot }}", "operator": "is_true", "right": ""}},
        {"id": "notify", "type": "action.http", "name": "Notify sales", "position": {"x": 1080, "y": 50},
         "parameters": {"method": "POST", "url": "https://hooks.example.com/sales"}},
        {"id": "reply", "type": "action.response", "name": "Reply 202", "position": {"x": 1080, "y": 260},
         "parameters": {"status_code": 202, "body": {"queued": True}}},
    ],
    "edges": [
        {"source": "webhook", "source_port": "out", "target": "enrich", "target_port": "in"},
        {"source": "enrich", "source_port": "out", "target": "score", "target_port": "in"},
        {"source": "score", "source_port": "out", "target": "is_hot", "target_port": "in"},
        {"source": "is_hot", "source_port": "true", "target": "notify", "target_port": "in"},
        {"source": "is_hot", "source_port": "false", "target": "reply", "target_port": "in"},
    ],
    "settings": {"variables": [], "allowed_hosts": ["api.example.com", "hooks.example.com"]},
}


def test_it_renders_the_readme_screenshot(signed_in, make_workflow, tmp_path):
    page = signed_in
    page.set_viewport_size({"width": 1920, "height": 1080})
    w = make_workflow("Lead scoring", DEFINITION, "Scores inbound leads and alerts sales")
    open_editor(page, w.pk)
    page.click(".node[data-id=score] .node-name")
    page.wait_for_function("window.stepwell.monaco && window.stepwell.monaco.getValue().length > 0")
    page.wait_for_selector("#code-editor .view-lines [class^=mtk]")
    page.click("#zoom-fit")
    page.wait_for_timeout(400)
    out = Path("docs/screenshot-canvas.png") if os.environ.get("STEPWELL_SCREENSHOT") == "1" else tmp_path / "canvas.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out))
    assert out.stat().st_size > 10_000
    assert page.locator(".node").count() == 6
    assert page.locator(".edge").count() == 5
    assert "null" not in page.locator("#props").inner_text()
