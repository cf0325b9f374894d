"""The staff status page and /metrics read the same snapshot: queued runs show as queue depth,
the sandbox pool as slots (no sandbox service here: 0 slots, reported unavailable)."""
from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_staff_see_the_queue_on_the_status_page_and_at_metrics(staff, alice, definition, monkeypatch, tmp_path):
    monkeypatch.setenv("SANDBOX_SOCKET", str(tmp_path / "no-service.sock"))
    c = Client()
    c.force_login(alice)
    wf = c.post("/api/workflows/", {"name": "q", "definition": definition}, content_type="application/json").json()
    for _ in range(3):   # no worker runs here: they stay queued
        assert c.post(f"/api/workflows/{wf['id']}/runs/", {"payload": {}}, content_type="application/json").status_code == 201
    assert c.get("/status/").status_code == 302       # not staff: to the admin sign-in
    assert c.get("/metrics").status_code == 403
    c.force_login(staff)
    page = c.get("/status/").content.decode()
    assert '<td id="status-queue">3</td>' in page and "service not answering" in page
    text = c.get("/metrics").content.decode()
    assert "stepwell_queue_depth 3.0" in text and 'stepwell_runs{status="queued"} 3.0' in text
    assert "stepwell_sandbox_up 0.0" in text and 'stepwell_sandbox_slots{state="ready"} 0.0' in text
