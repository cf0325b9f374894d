"""The run history pages: the runs of a workflow and one run, owner only, with their boot data."""
import json

import pytest
from django.test import Client

from designer.actions import do_create_workflow
from engine.actions import do_start_run, trigger_payload


def _boot(html: str, element_id: str) -> dict:
    tag = f'<script id="{element_id}" type="application/json">'
    start = html.index(tag) + len(tag)
    return json.loads(html[start:html.index("</script>", start)])


def _owner_only(url: str, owner, other) -> tuple[Client, str]:
    """The page at `url` asks to sign in first and is 404 for `other`: the owner's client and HTML."""
    c = Client()
    assert c.get(url).status_code == 302  # sign in first
    c.force_login(other)
    assert c.get(url).status_code == 404
    c.force_login(owner)
    page = c.get(url)
    assert page.status_code == 200
    return c, page.content.decode()


@pytest.mark.django_db
def test_it_lists_runs_for_the_owner_only(alice, bob, definition):
    wf = do_create_workflow(alice, "Nightly report", definition=definition)
    c, html = _owner_only(f"/workflows/{wf.pk}/runs", alice, bob)
    assert "designer/runs-list.js" in html and "designer/runs.css" in html and "Nightly report" in html
    boot = _boot(html, "runs-boot")
    assert boot["workflow"] == {"id": wf.pk, "name": "Nightly report"}
    statuses = [s["value"] for s in boot["statuses"]]
    assert "failed" in statuses and "skipped" not in statuses
    assert c.get("/workflows/999999/runs").status_code == 404


@pytest.mark.django_db
def test_it_shows_the_run_with_its_pinned_definition(alice, bob, definition):
    wf = do_create_workflow(alice, "Charts", definition=definition)
    run = do_start_run(wf, trigger_payload({"x": 1}))
    c, html = _owner_only(f"/runs/{run.pk}/", alice, bob)
    assert f"Run {run.pk}" in html and 'class="badge queued"' in html
    assert "designer/run-detail.js" in html and f'href="/workflows/{wf.pk}/runs"' in html
    assert c.get(f"/api/runs/{run.pk}/").json()["page"] == f"/runs/{run.pk}/"
    assert f'href="/workflows/{wf.pk}/edit"' in html
    boot = _boot(html, "run-boot")
    assert boot["id"] == run.pk and boot["workflow"] == wf.pk and boot["version"] == run.version.number
    assert [n["id"] for n in boot["definition"]["nodes"]] == ["trigger", "python_1"]
    assert boot["nodeTypes"]["action.python"]["outputs"] == ["out"]


@pytest.mark.django_db
def test_the_run_page_keeps_the_version_the_run_pinned(alice, definition):
    from designer.actions import do_save_version

    wf = do_create_workflow(alice, "Pinned", definition=definition)
    run = do_start_run(wf, trigger_payload({}))
    changed = json.loads(json.dumps(definition))
    changed["nodes"][1]["name"] = "Renamed later"
    do_save_version(wf, changed, alice)
    c = Client()
    c.force_login(alice)
    boot = _boot(c.get(f"/runs/{run.pk}/").content.decode(), "run-boot")
    assert boot["definition"]["nodes"][1]["name"] == "Add"
