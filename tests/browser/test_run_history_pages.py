"""Run history pages in a real browser against a real stack (uvicorn + run_worker, process
sandbox driver): a Python step draws a matplotlib chart into /mnt/data; the runs list filters by
status and the run page shows the coloured graph, the output tree, stdout, the chart inline, and
reruns with the same input."""
from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("host_matplotlib")]

CHART_CODE = """\
import os
os.environ.setdefault("MPLCONFIGDIR", "/tmp/mpl")
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

values = inputs["values"]
fig, ax = plt.subplots(figsize=(3, 2), dpi=80)
ax.bar([str(i) for i in range(len(values))], values, color="#4f46e5")
fig.savefig("/mnt/data/chart.png")
open("/mnt/data/values.csv", "w").write("\\n".join(str(v) for v in values))
print("chart drawn for", len(values), "values")
result = {"total": sum(values), "count": len(values), "stats": {"max": max(values), "label": "bars"}}
"""


def _definition(code: str, node_id: str = "chart") -> dict:
    return {"version": 1, "settings": {"variables": [], "allowed_hosts": []},
            "nodes": [{"id": "trigger", "type": "trigger.manual", "name": "Start", "parameters": {},
                       "position": {"x": 40, "y": 120}},
                      {"id": node_id, "type": "action.python", "name": "Draw chart",
                       "parameters": {"code": code, "inputs": {"values": "{{ trigger.body.values }}"}},
                       "position": {"x": 340, "y": 120}}],
            "edges": [{"source": "trigger", "source_port": "out", "target": node_id, "target_port": "in"}]}


@pytest.fixture
def page(stack_page):
    return stack_page


def test_runs_list_and_run_page(page, stack):
    api = stack.api()
    ok = api.create_workflow(_definition(CHART_CODE), name="Sales chart")
    bad = api.create_workflow(_definition("raise ValueError('no data')", "boom"), name="Broken")
    first = api.wait(api.start(ok["id"], {"values": [3, 1, 4]})["id"], timeout=60)
    assert first["status"] == "succeeded", first
    failed = api.wait(api.start(bad["id"], {"values": []})["id"], timeout=60)
    assert failed["status"] == "failed"

    # other people get 404 on both pages
    assert stack.api("bob").get(f"/api/runs/{first['id']}/")[0] == 404

    # -- runs list: start a second run with "Run now", then filter by status
    page.goto(f"/workflows/{ok['id']}/runs")
    page.wait_for_selector(f"tr[data-run='{first['id']}']")
    assert page.locator("tr[data-run] .badge").first.inner_text() == "Succeeded"
    page.click("#btn-run")
    page.fill("dialog textarea", '{"values": [2, 7]}')
    page.click("dialog button[data-value=run]")
    page.wait_for_selector("tr[data-run]:nth-child(2)")
    second_id = int(page.locator("tr[data-run]").first.get_attribute("data-run"))
    assert second_id > first["id"]
    # the new row turns succeeded without a reload (websocket ws/workflows/<id>/)
    page.wait_for_selector(f"tr[data-run='{second_id}'] .badge[data-status=succeeded]", timeout=60_000)
    assert "2 runs" in page.inner_text("#runs-count")

    page.click(".chip[data-status=failed]")
    page.wait_for_selector("#empty-state")
    assert "status=failed" in page.url
    page.click(".chip[data-status=succeeded]")
    page.wait_for_function("document.querySelectorAll('tr[data-run]').length === 2")
    assert re.search(r"status=failed(%2C|,)succeeded", page.url)

    # paging: one run a page
    page.goto(f"/workflows/{ok['id']}/runs?limit=1")
    page.wait_for_selector(f"tr[data-run='{second_id}']")
    assert page.inner_text("#page-info") == "1–1 of 2" and page.is_disabled("#btn-prev")
    page.click("#btn-next")
    page.wait_for_selector(f"tr[data-run='{first['id']}']")
    assert page.inner_text("#page-info") == "2–2 of 2" and page.is_disabled("#btn-next")
    assert "offset=1" in page.url

    # -- run page
    page.click(f"tr[data-run='{first['id']}'] a.run-link")
    page.wait_for_url(f"**/runs/{first['id']}/")
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_attribute("#run-status", "data-status") == "succeeded"
    page.wait_for_selector(".rg-node[data-node=chart][data-status=succeeded]")
    assert page.get_attribute(".rg-node[data-node=trigger]", "data-status") == "succeeded"
    assert page.locator(".rg-edge").count() == 1
    assert page.get_attribute("#link-runs", "href") == f"/workflows/{ok['id']}/runs"

    page.click(".rg-node[data-node=chart]")
    panel = page.locator("#step-panel")
    panel.wait_for()
    assert "Draw chart" in panel.locator(".panel-head").inner_text()
    output = panel.locator(".sec-output .json-tree")
    assert "total" in output.inner_text() and "8" in output.inner_text()
    assert '"bars"' in output.inner_text()  # nested objects open to depth 3
    stats = output.locator("details[data-key=stats]")
    assert stats.evaluate("d => d.open")
    stats.locator("> summary").click()  # the tree collapses
    assert not stats.evaluate("d => d.open")
    assert "values" in panel.locator(".sec-inputs").inner_text()
    assert "chart drawn for 3 values" in panel.locator(".sec-stdout pre").inner_text()
    img = panel.locator("img.file-image[data-file='chart.png']")
    page.wait_for_function("() => { const i = document.querySelector(\"img[data-file='chart.png']\");"
                           " return i && i.complete && i.naturalWidth > 0; }")
    assert img.evaluate("i => i.naturalWidth") == 240  # 3 in at 80 dpi
    assert panel.locator("a.file-link", has_text="values.csv").get_attribute("href").endswith("/values.csv")
    panel.locator(".sec-sandbox > summary").click()
    assert "process" in panel.locator(".sec-sandbox").inner_text().lower()
    panel.locator(".sec-schema > summary").click()
    page.wait_for_function("document.querySelector('.sec-schema').innerText.includes('total')")

    # -- rerun with the same input opens the new run page, which follows the run live
    page.click("#btn-rerun")
    page.wait_for_url(re.compile(r".*/runs/(?!%d/)\d+/$" % first["id"]))
    rerun_id = int(page.url.rstrip("/").split("/")[-1])
    page.wait_for_selector(".rg-node[data-node=chart][data-status=succeeded]", timeout=60_000)
    assert page.get_attribute("#run-status", "data-status") == "succeeded"
    rerun = api.get(f"/api/runs/{rerun_id}/")[1]
    assert rerun["payload"] == first["payload"] and rerun["rerun_of"] == first["id"]
    assert f"run {first['id']}" in page.inner_text("#run-meta")

    # -- a failed run: red node, its error in the panel
    page.goto(f"/runs/{failed['id']}/#node=boom")
    page.wait_for_selector(".rg-node[data-node=boom][data-status=failed]")
    page.wait_for_selector("#step-panel .step-error")
    assert "no data" in page.inner_text("#step-panel .step-error")
    assert "no data" in page.inner_text("#step-panel .sec-stderr")
    assert page.console_errors == []


def test_cancel_a_running_run(page, stack):
    api = stack.api()
    w = api.create_workflow(_definition("import time\ntime.sleep(30)\nresult = 1", "nap"), name="Nap")
    run = api.start(w["id"], {"values": []})
    page.goto(f"/runs/{run['id']}/")
    page.wait_for_selector(".rg-node[data-node=nap][data-status=running]", timeout=30_000)
    assert page.get_attribute("#run-status", "data-status") == "running"
    page.click("#btn-cancel")
    page.click("dialog button[data-value=ok]")
    page.wait_for_selector("#run-status[data-status=cancelled]", timeout=30_000)
    page.wait_for_selector(".rg-node[data-node=nap][data-status=cancelled]", timeout=30_000)
    assert page.is_hidden("#btn-cancel")
    assert page.console_errors == []
