"""Designer round two (issue 13) in Chromium: the HTTP trigger's URL panel (copy, curl, rotate),
the keyboard-shortcuts dialog, the runs list's date/trigger/version filters, the workflow list's
trigger and last-run columns, the example's layout, Monaco's minimap and the dark mode."""
from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timezone as tz
from pathlib import Path

import pytest

from engine.actions import do_start_run, trigger_payload
from engine.models import Run
from tests.browser.helpers import api, linear_definition, open_editor, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAMPLE = {"amount": 12, "note": "it's paid"}  # a quote the shell line must escape
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "expense-report.json"


def errors(page):
    """Page errors, but for the websocket that the live server (no Channels) refuses."""
    return [e for e in page.console_errors if "WebSocket" not in e]


def http_definition():
    d = linear_definition("action.python")
    d["nodes"][0].update({"type": "trigger.http", "name": "Webhook",
                          "parameters": {"method": "POST", "sample_payload": SAMPLE}})
    return d


def test_the_http_trigger_panel_shows_copies_and_rotates_the_url(signed_in, make_workflow, live_server, settings,
                                                                 tmp_path):
    page = signed_in
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    wf = make_workflow("Hooked", http_definition())
    open_editor(page, wf.pk)
    page.click(".node[data-id=trigger] .node-name")
    page.wait_for_function("() => /\\/hooks\\/[^/]+\\/$/.test(document.querySelector('#hook-url')?.value || '')")
    url = page.input_value("#hook-url")
    hook = api(page, "GET", f"/api/workflows/{wf.pk}/hook/")["data"]
    assert url == hook["url"] and url.startswith(live_server.url) and hook["token"] in url
    curl = page.input_value("#hook-curl")
    page.locator(".hook-section").screenshot(path=str(tmp_path / "hook-panel.png"))
    body = json.dumps(SAMPLE, separators=(",", ":")).replace("'", "'\\''")
    assert curl == f"curl -X POST '{url}' -H 'Content-Type: application/json' -d '{body}'"

    page.click("#hook-copy")
    page.wait_for_selector(".toast-success:has-text('URL copied')")
    assert page.evaluate("() => navigator.clipboard.readText()") == url
    page.click("#hook-copy-curl")
    page.wait_for_selector(".toast-success:has-text('curl command copied')")
    assert page.evaluate("() => navigator.clipboard.readText()") == curl

    # the curl line follows the method
    page.select_option("#param-method", label="GET")
    page.wait_for_function("(want) => document.querySelector('#hook-curl').value === want", arg=f"curl -X GET '{url}'")
    page.select_option("#param-method", label="POST")
    page.wait_for_function("(want) => document.querySelector('#hook-curl').value === want", arg=curl)

    # the curl line works as shown in a shell: it starts a run with the sample payload as body
    done = subprocess.run(["sh", "-c", curl + " -s -o /dev/null -w '%{http_code}'"], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout == "202", done
    assert Run.objects.filter(workflow=wf, trigger=Run.Trigger.HTTP).get().payload["body"] == SAMPLE

    # rotate asks first; cancelling keeps the URL
    page.click("#hook-rotate")
    page.wait_for_selector("dialog.modal:has-text('Rotate the hook URL?')")
    page.click("dialog.modal button[data-value=cancel]")
    assert page.input_value("#hook-url") == url
    assert api(page, "GET", f"/api/workflows/{wf.pk}/hook/")["data"]["token"] == hook["token"]
    page.click("#hook-rotate")
    page.click("dialog.modal button[data-value=ok]")
    page.wait_for_function("(old) => document.querySelector('#hook-url').value !== old", arg=url)
    new_url = page.input_value("#hook-url")
    new = api(page, "GET", f"/api/workflows/{wf.pk}/hook/")["data"]
    assert new_url == new["url"] and new["token"] != hook["token"]
    assert new_url in page.input_value("#hook-curl")
    assert page.request.post(url, data="{}", headers={"Content-Type": "application/json"}).status == 404
    settle(page)

    # STEPWELL_HOOK_BASE_URL sets the origin the panel shows; other triggers have no URL section
    settings.STEPWELL_HOOK_BASE_URL = "https://hooks.example.com"
    open_editor(page, wf.pk)
    page.click(".node[data-id=trigger] .node-name")
    page.wait_for_function("() => (document.querySelector('#hook-url')?.value || '').startsWith('https://hooks.example.com/hooks/')")
    page.click(".node[data-id=python_1] .node-name")
    assert page.locator("#hook-url").count() == 0
    assert not errors(page), errors(page)


def test_keyboard_shortcuts_dialog_shows_key_names(signed_in, make_workflow):
    page = signed_in
    wf = make_workflow("Keys", linear_definition("action.compose"))
    open_editor(page, wf.pk)
    page.click("#btn-shortcuts")
    dialog = page.locator("dialog.modal")
    text = dialog.inner_text()
    assert "[object" not in text and "HTMLElement" not in text
    assert re.search(r"Ctrl \+ S\s+Save a new version", text), text
    assert re.search(r"Ctrl \+ Shift \+ Z\s+Redo", text), text
    assert dialog.locator("dt").first.locator("kbd").all_inner_texts() == ["Ctrl", "S"]
    assert dialog.locator("kbd").count() >= 20
    page.click("dialog.modal button[data-value=ok]")
    page.locator("#canvas").click(position={"x": 20, "y": 20})
    page.keyboard.press("?")
    assert "Esc" in page.locator("dialog.modal").inner_text()


def test_runs_list_filters_by_date_trigger_and_version(signed_in, make_workflow, user):
    from designer.actions import do_save_version

    page = signed_in
    definition = linear_definition("action.python")
    wf = make_workflow("Filtered", definition)
    jan = do_start_run(wf, trigger_payload({}), Run.Trigger.MANUAL, user)
    hook_jan = do_start_run(wf, trigger_payload({}), Run.Trigger.HTTP)
    Run.objects.filter(pk__in=[jan.pk, hook_jan.pk]).update(created=datetime(2026, 1, 10, 9, tzinfo=tz.utc))
    definition["nodes"][1]["name"] = "Renamed"
    do_save_version(wf, definition, user)
    wf.refresh_from_db()
    v2_sched = do_start_run(wf, trigger_payload({}), Run.Trigger.SCHEDULE)
    v2_hook = do_start_run(wf, trigger_payload({}), Run.Trigger.HTTP)
    Run.objects.filter(pk__in=[v2_sched.pk, v2_hook.pk]).update(created=datetime(2026, 2, 3, 9, tzinfo=tz.utc))

    def shown():
        page.wait_for_selector("body[data-ready=true]")
        settle(page)
        page.wait_for_timeout(300)
        settle(page)
        return {int(x) for x in page.locator("tr.run-row").evaluate_all("rs => rs.map((r) => r.dataset.run)")}

    page.goto(f"/workflows/{wf.pk}/runs")
    assert shown() == {jan.pk, hook_jan.pk, v2_sched.pk, v2_hook.pk}
    assert page.locator("#filter-clear").is_hidden()
    page.select_option("#filter-trigger", "http")
    assert shown() == {hook_jan.pk, v2_hook.pk}
    assert "trigger=http" in page.url
    page.fill("#filter-version", "2")
    page.locator("#filter-version").dispatch_event("change")
    assert shown() == {v2_hook.pk}
    page.select_option("#filter-trigger", "")
    page.fill("#filter-since", "2026-02-01")
    page.fill("#filter-until", "2026-02-03")
    assert shown() == {v2_sched.pk, v2_hook.pk}
    assert "since=2026-02-01" in page.url and "until=2026-02-03" in page.url and "version=2" in page.url
    # the URL keeps the filters across a reload
    page.reload()
    assert shown() == {v2_sched.pk, v2_hook.pk}
    assert page.input_value("#filter-since") == "2026-02-01" and page.input_value("#filter-version") == "2"
    page.fill("#filter-until", "2026-01-31")
    page.wait_for_selector("#empty-state")
    assert "No runs match" in page.locator("#empty-state").inner_text()
    page.click("#empty-state button:has-text('Clear filters')")
    assert shown() == {jan.pk, hook_jan.pk, v2_sched.pk, v2_hook.pk}
    assert page.input_value("#filter-since") == "" and "since" not in page.url

    # the workflow list shows the trigger kind and the newest run
    page.goto("/workflows/")
    page.wait_for_selector(".wf-table tbody tr")
    row = page.locator(f"tr[data-id='{wf.pk}']")
    assert row.locator(".wf-trigger").inner_text() == "Manual"
    newest = max(jan.pk, hook_jan.pk, v2_sched.pk, v2_hook.pk)
    assert row.locator(".wf-last-run a").get_attribute("href") == f"/runs/{newest}/"
    assert row.locator(".wf-last-run [data-status]").get_attribute("data-status") == "queued"
    assert not errors(page), errors(page)


def test_the_example_is_laid_out_with_visible_edges(signed_in):
    page = signed_in
    doc = json.loads(EXAMPLE.read_text())
    created = api(page, "POST", "/api/workflows/import/", doc)
    assert created["status"] == 201, created
    open_editor(page, created["data"]["id"])
    ids = ["receive", "analyze", "summary", "reply"]
    boxes = [page.locator(f".node[data-id={i}]").bounding_box() for i in ids]
    for left, right in zip(boxes, boxes[1:]):
        assert right["x"] - (left["x"] + left["width"]) >= 40, (left, right)  # room to see each edge
    edges = page.locator("#canvas .x6-edge")
    assert edges.count() == 3
    for i in range(3):
        box = edges.nth(i).bounding_box()
        assert box and box["width"] >= 40, box


def test_monaco_minimap_and_dark_mode(signed_in, make_workflow, tmp_path):
    page = signed_in
    wf = make_workflow("Themed", linear_definition("action.python"))
    page.evaluate("() => localStorage.removeItem('stepwell.theme')")
    open_editor(page, wf.pk)
    assert page.get_attribute("html", "data-theme") == "light"
    page.click(".node[data-id=python_1] .node-name")
    page.wait_for_selector("#code-editor .monaco-editor")
    page.wait_for_selector("#code-editor .minimap", state="attached")
    assert page.locator("#code-editor .minimap").bounding_box()["width"] > 0
    assert "vs-dark" not in page.get_attribute("#code-editor .monaco-editor", "class")
    light_bg = page.evaluate("() => getComputedStyle(document.body).backgroundColor")

    page.click("#theme-toggle")
    assert page.get_attribute("html", "data-theme") == "dark"
    assert page.get_attribute("#theme-toggle", "aria-pressed") == "true"
    page.wait_for_function("() => document.querySelector('#code-editor .monaco-editor').classList.contains('vs-dark')")
    page.wait_for_timeout(300)
    page.screenshot(path=str(tmp_path / "editor-dark.png"))  # for review by eye
    dark_bg = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert dark_bg != light_bg
    r, g, b = map(int, re.findall(r"\d+", dark_bg)[:3])
    assert r + g + b < 150, dark_bg
    panel_bg = page.evaluate("() => getComputedStyle(document.querySelector('#props')).backgroundColor")
    assert sum(map(int, re.findall(r"\d+", panel_bg)[:3])) < 200, panel_bg

    # remembered across pages
    page.goto("/workflows/")
    page.wait_for_selector(".wf-table")
    assert page.get_attribute("html", "data-theme") == "dark"
    page.screenshot(path=str(tmp_path / "list-dark.png"))
    page.click("#theme-toggle")
    assert page.get_attribute("html", "data-theme") == "light"
    assert page.evaluate("() => localStorage.getItem('stepwell.theme')") == "light"

    # without a stored choice, the system's preference decides
    page.evaluate("() => localStorage.removeItem('stepwell.theme')")
    page.emulate_media(color_scheme="dark")
    page.reload()
    page.wait_for_selector(".wf-table")
    assert page.get_attribute("html", "data-theme") == "dark"
    page.emulate_media(color_scheme="light")  # followed live while nothing is stored
    page.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
    settle(page)
    assert not errors(page), errors(page)
