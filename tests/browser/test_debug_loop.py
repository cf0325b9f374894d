"""The debugging loop of issue 13 in Chromium against a real stack (uvicorn + worker, process
sandbox): a code step's output streams live into the Test step panel and the run page; a figure
shown with plt.show() comes back as an image in both; "Rerun from this step" on the run page
starts a run that reuses the upstream step (marked reused) and runs the step again."""
from __future__ import annotations


import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("host_matplotlib")]

SLOW_CODE = ("import time\nimport matplotlib.pyplot as plt\nprint('tick one')\ntime.sleep(6)\n"
             "plt.plot([1, 3, 2]); plt.show()\nprint('tick two')\nresult = {'seen': inputs['r']}\n")


def _definition() -> dict:
    return {
        "version": 1, "settings": {"variables": [], "allowed_hosts": []},
        "nodes": [
            {"id": "trigger", "type": "trigger.manual", "name": "Start", "parameters": {},
             "position": {"x": 40, "y": 120}},
            {"id": "rand", "type": "action.python", "name": "Random",
             "parameters": {"code": "import random\nresult = random.random()\n", "inputs": {}},
             "position": {"x": 340, "y": 120}},
            {"id": "slow", "type": "action.python", "name": "Slow printer",
             "parameters": {"code": SLOW_CODE, "inputs": {"r": "{{ steps.rand.output }}"}},
             "position": {"x": 640, "y": 120}},
        ],
        "edges": [{"source": "trigger", "source_port": "out", "target": "rand", "target_port": "in"},
                  {"source": "rand", "source_port": "out", "target": "slow", "target_port": "in"}],
    }


@pytest.fixture
def page(stack_page):
    return stack_page


def _image_loaded(page, selector):
    page.wait_for_function("sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 100; }",
                           arg=selector, timeout=30_000)


def test_live_output_figures_and_rerun_from_a_step(page, stack):
    api = stack.api()
    wf = api.create_workflow(_definition(), name="Debug loop")

    # -- Test step: live output while it runs, then the figure among the produced files
    page.goto(f"/workflows/{wf['id']}/edit")
    page.wait_for_selector("body[data-ready=true]")
    page.click(".node[data-id=slow] .node-name")
    page.fill("#test-input", '{"steps": {"rand": {"output": 0.5}}}')
    page.click("#btn-test-step")
    page.wait_for_selector("#test-live .test-live-stdout:has-text('tick one')", timeout=60_000)
    assert "tick two" not in page.locator("#test-live .test-live-stdout").inner_text()
    assert page.locator("#test-result .status-badge").count() == 0   # still running
    page.wait_for_selector("#test-result .status-badge[data-status=succeeded]", timeout=60_000)
    assert "tick two" in page.locator("#test-result .test-stdout").inner_text()
    _image_loaded(page, "#test-result .test-files-block img[data-file='figure_1.png']")

    # -- run page: live stdout of the running step, then the figure
    run = api.start(wf["id"])
    page.goto(f"/runs/{run['id']}/#node=slow")
    page.wait_for_selector(".sec-stdout pre.log-live:has-text('tick one')", timeout=60_000)
    assert "tick two" not in page.locator(".sec-stdout pre").inner_text()
    assert "stdout (live)" in page.locator(".sec-stdout summary").inner_text()
    page.wait_for_selector("#run-status[data-status=succeeded]", timeout=60_000)
    page.wait_for_selector(".sec-stdout pre:has-text('tick two')")
    _image_loaded(page, "#step-panel .file-image[data-file='figure_1.png']")
    first = api.get(f"/api/runs/{run['id']}/")[1]
    rand_before = next(s for s in first["steps"] if s["node_id"] == "rand")

    # -- rerun from the slow step: the random step is reused, the slow one runs again
    page.click("#step-panel .btn-rerun-from[data-node=slow]")
    page.wait_for_url(lambda url: f"/runs/{run['id']}/" not in url, timeout=30_000)
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#run-status[data-status=succeeded]", timeout=90_000)
    assert "rerun of" in page.locator("#run-meta").inner_text()
    assert "from Slow printer" in page.locator("#run-meta").inner_text()
    page.wait_for_selector("tr[data-node=rand] .reused-tag")
    assert page.locator("tr[data-node=slow] .reused-tag").count() == 0
    page.click("tr[data-node=rand]")
    page.wait_for_selector(f"#step-panel .reused-link:has-text('from run {run['id']}')")
    new_id = int(page.url.rstrip("/").split("/runs/")[1].split("/")[0])
    rerun = api.get(f"/api/runs/{new_id}/")[1]
    steps = {s["node_id"]: s for s in rerun["steps"]}
    assert steps["rand"]["output"] == rand_before["output"]
    assert steps["slow"]["output"] == {"seen": rand_before["output"]}
    assert steps["slow"]["reused_from"] is None
    assert not page.console_errors, page.console_errors
