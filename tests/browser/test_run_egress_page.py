"""The run page shows a code step's egress: one row per attempt (allowed and refused), from a real
run on a real stack whose code calls a loopback server through the egress proxy."""
from __future__ import annotations

import pytest

from tests.helpers.egress import FETCH_STATUSES as CODE

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack():
    """Like tests/browser/conftest.py's stack, with loopback let through for code egress."""
    from tests.engine.conftest import Stack

    s = Stack(env={"DJANGO_DEBUG": "1", "STEPWELL_WORKER_INTERVAL_MS": "200",
                   "STEPWELL_EGRESS_PRIVATE_NETWORKS": "127.0.0.1/32"})
    yield s
    s.close()


def test_the_run_page_lists_a_steps_egress(stack_page, stack, http_server):
    page = stack_page
    srv = http_server()
    definition = {
        "version": 1, "settings": {"variables": [], "allowed_hosts": [srv.netloc]},
        "nodes": [{"id": "trigger", "type": "trigger.manual", "name": "Start", "parameters": {},
                   "position": {"x": 40, "y": 120}},
                  {"id": "fetch", "type": "action.python", "name": "Fetch",
                   "parameters": {"code": CODE, "inputs": {"urls": {"ok": srv.url("/a"),
                                                                    "no": "http://refused.example/"}}},
                   "position": {"x": 340, "y": 120}}],
        "edges": [{"source": "trigger", "source_port": "out", "target": "fetch", "target_port": "in"}]}
    api = stack.api()
    wf = api.create_workflow(definition, name="Egress")
    run = api.wait(api.start(wf["id"])["id"], timeout=90)
    assert run["status"] == "succeeded", run

    page.goto(f"/runs/{run['id']}/#node=fetch")
    page.wait_for_selector(".sec-egress table.egress")
    rows = page.locator(".sec-egress tbody tr")
    assert rows.count() == 2
    first, second = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert "127.0.0.1" in first and str(srv.port) in first and "GET" in first and "allowed" in first
    assert "refused.example" in second and "refused" in second and "not allowed by this workflow" in second
    assert rows.nth(0).get_attribute("class") == "egress-allowed"
    assert rows.nth(1).get_attribute("class") == "egress-refused"
    assert "Egress (2)" in page.locator(".sec-egress > summary").inner_text()
    assert page.console_errors == []
