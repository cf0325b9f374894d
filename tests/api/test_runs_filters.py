"""The runs list filters by date range, trigger kind and version (beside status); the workflow
list shows each workflow's trigger kind and newest run."""
from datetime import datetime, timedelta, timezone as tz

import pytest

from designer.actions import do_create_workflow, do_save_version
from engine.actions import do_start_run, trigger_payload
from engine.models import Run


def _ids(api, wf, query=""):
    res = api.get(f"/api/workflows/{wf.pk}/runs/?limit=100{query}")
    assert res.status_code == 200, res.content
    return {r["id"] for r in res.json()["results"]}


@pytest.mark.django_db
def test_runs_filter_by_date_trigger_and_version(api, alice, definition):
    wf = do_create_workflow(alice, "Filters", definition=definition)
    old_manual = do_start_run(wf, trigger_payload({}), Run.Trigger.MANUAL, alice)
    old_http = do_start_run(wf, trigger_payload({}), Run.Trigger.HTTP)
    Run.objects.filter(pk__in=[old_manual.pk, old_http.pk]).update(
        created=datetime(2026, 1, 10, 12, 0, tzinfo=tz.utc))
    definition["nodes"][1]["parameters"]["code"] = "result = {'n': 2}"
    do_save_version(wf, definition, alice)
    wf.refresh_from_db()
    new_schedule = do_start_run(wf, trigger_payload({}), Run.Trigger.SCHEDULE)
    new_manual = do_start_run(wf, trigger_payload({}), Run.Trigger.MANUAL, alice)
    Run.objects.filter(pk__in=[new_schedule.pk, new_manual.pk]).update(
        created=datetime(2026, 1, 20, 12, 0, tzinfo=tz.utc))
    everything = {old_manual.pk, old_http.pk, new_schedule.pk, new_manual.pk}

    assert _ids(api, wf) == everything
    assert _ids(api, wf, "&trigger=http") == {old_http.pk}
    assert _ids(api, wf, "&trigger=http,schedule") == {old_http.pk, new_schedule.pk}
    assert _ids(api, wf, "&version=1") == {old_manual.pk, old_http.pk}
    assert _ids(api, wf, "&version=2&trigger=manual") == {new_manual.pk}
    assert _ids(api, wf, "&version=7") == set()
    # dates are inclusive whole days; a date-time is an instant
    assert _ids(api, wf, "&since=2026-01-20") == {new_schedule.pk, new_manual.pk}
    assert _ids(api, wf, "&until=2026-01-10") == {old_manual.pk, old_http.pk}
    assert _ids(api, wf, "&since=2026-01-11&until=2026-01-19") == set()
    assert _ids(api, wf, "&since=2026-01-10&until=2026-01-20") == everything
    assert _ids(api, wf, "&until=2026-01-10T11:59:00Z") == set()
    assert _ids(api, wf, "&until=2026-01-10T12:00:00Z") == {old_manual.pk, old_http.pk}
    assert _ids(api, wf, "&since=2026-01-20T12:00:01%2B00:00") == set()
    # combined with status
    Run.objects.filter(pk=new_manual.pk).update(status="failed")
    assert _ids(api, wf, "&status=failed&since=2026-01-15") == {new_manual.pk}


@pytest.mark.django_db
@pytest.mark.parametrize("query, field", [
    ("since=yesterday", "since"), ("until=2026-13-45", "until"), ("trigger=webhook", "trigger"),
    ("version=v2", "version"),
])
def test_bad_run_filters_are_400_in_the_error_shape(api, alice, definition, query, field):
    wf = do_create_workflow(alice, "Bad filters", definition=definition)
    res = api.get(f"/api/workflows/{wf.pk}/runs/?{query}")
    assert res.status_code == 400
    body = res.json()
    assert body["detail"] and any(field in e["path"] for e in body["errors"]), body


@pytest.mark.django_db
def test_workflow_list_shows_trigger_kind_and_last_run(api, alice, bob, definition):
    manual = do_create_workflow(alice, "Manual one", definition=definition)
    hooked_def = {**definition, "nodes": [{**definition["nodes"][0], "type": "trigger.http",
                                           "parameters": {"method": "POST"}}, definition["nodes"][1]]}
    hooked = do_create_workflow(alice, "Hooked", definition=hooked_def)
    empty = do_create_workflow(alice, "Empty")
    do_start_run(manual, trigger_payload({}), Run.Trigger.MANUAL, alice)
    newest = do_start_run(manual, trigger_payload({}), Run.Trigger.MANUAL, alice)
    Run.objects.filter(pk=newest.pk).update(status="failed")
    Run.objects.create(workflow=hooked, version=hooked.head, kind=Run.Kind.TEST, trigger=Run.Trigger.TEST)
    do_create_workflow(bob, "Not mine", definition=definition)

    rows = {w["name"]: w for w in api.get("/api/workflows/").json()["results"]}
    assert set(rows) == {"Manual one", "Hooked", "Empty"}
    assert rows["Manual one"]["trigger"] == "manual"
    assert rows["Manual one"]["last_run"] == {"id": newest.pk, "status": "failed"}
    assert rows["Hooked"]["trigger"] == "http" and rows["Hooked"]["last_run"] is None
    assert rows["Empty"]["last_run"] is None
    assert rows["Empty"]["trigger"] in (None, "manual")  # an empty workflow starts with a manual trigger
    assert empty.pk == rows["Empty"]["id"]


@pytest.mark.django_db
def test_an_http_trigger_takes_a_sample_payload(api, alice, definition):
    """The HTTP trigger's sample body (for step tests and the panel's curl line) passes validation."""
    definition["nodes"][0].update({"type": "trigger.http", "parameters": {"method": "POST", "sample_payload": {"n": 1}}})
    res = api.post("/api/workflows/", {"name": "Hook sample", "definition": definition}, format="json")
    assert res.status_code == 201, res.content
    assert res.json()["definition"]["nodes"][0]["parameters"]["sample_payload"] == {"n": 1}
    definition["nodes"][0]["parameters"]["sample"] = 1  # other names are still refused
    assert api.post("/api/workflows/", {"name": "Bad", "definition": definition}, format="json").status_code == 400
