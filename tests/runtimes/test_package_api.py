"""The allow-list API: staff only; list, search, add, disable, remove; every change queues one build."""
from __future__ import annotations

import pytest
from django_tasks_db.models import DBTaskResult

from runtimes import actions
from runtimes.models import AllowedPackage, Runtime

pytestmark = pytest.mark.django_db


def test_it_lists_the_default_data_packages(staff_api):
    r = staff_api.get("/api/packages/")
    assert r.status_code == 200
    names = {p["normalized"] for p in r.json()}
    assert {"numpy", "pandas", "matplotlib", "python-dateutil", "pytz"} <= names
    assert "scipy" not in names
    assert all(p["enabled"] and p["source"] == "index" for p in r.json())


def test_it_searches(staff_api):
    r = staff_api.get("/api/packages/?search=dateutil")  # names and notes (pandas brings it)
    assert [p["normalized"] for p in r.json()] == ["pandas", "python-dateutil"]
    r = staff_api.get("/api/packages/?search=no-such-thing")
    assert [p["normalized"] for p in r.json()] == []
    r = staff_api.get("/api/packages/?search=spreadsheets")  # notes are searched too
    assert [p["normalized"] for p in r.json()] == ["openpyxl"]


def test_it_is_staff_only(api, client):
    assert api.get("/api/packages/").status_code == 403
    assert api.post("/api/packages/", {"name": "six"}, format="json").status_code == 403
    assert api.get("/api/runtimes/").status_code == 403
    assert api.post("/api/runtimes/build/").status_code == 403
    assert client.get("/api/packages/").status_code in (401, 403)


def test_it_adds_a_package_and_queues_one_build(staff_api, staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = staff_api.post("/api/packages/", {"requirement": "SciPy>=1.11,<2", "notes": "stats"}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["name"], body["normalized"], body["specifier"], body["added_by"]) == ("SciPy", "scipy", ">=1.11,<2", staff.username)
    runtime = Runtime.objects.get()
    assert runtime.status == Runtime.Status.QUEUED and "added SciPy" in runtime.reason
    task = DBTaskResult.objects.get()
    assert task.task_path == "runtimes.tasks.build_runtime" and task.args_kwargs["args"] == [runtime.pk]


def test_changes_while_a_build_is_queued_share_it(staff_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff_api.post("/api/packages/", {"name": "six"}, format="json")
        numpy = AllowedPackage.objects.get(normalized="numpy")
        staff_api.patch(f"/api/packages/{numpy.pk}/", {"enabled": False}, format="json")
    assert Runtime.objects.count() == 1
    assert DBTaskResult.objects.count() == 1
    assert "disabled numpy" in Runtime.objects.get().reason


@pytest.mark.parametrize("payload, message", [
    ({"name": "pandas"}, "already on the list"),
    ({"name": "bad name!"}, "not a valid distribution name"),
    ({"name": "six", "specifier": ">>1"}, "not a valid version specifier"),
    ({"requirement": "six @ https://example.com/six.whl"}, "no URL"),
    ({"name": ""}, "Enter a distribution name"),
])
def test_it_explains_invalid_input(staff_api, payload, message):
    r = staff_api.post("/api/packages/", payload, format="json")
    assert r.status_code == 400
    assert message in r.json()["detail"]
    assert not Runtime.objects.exists()


def test_a_bare_version_means_exactly_that_version():
    assert actions.check_specifier("1.4.2") == "==1.4.2"
    assert actions.check_specifier(" >= 2.1 , < 3 ") == ">=2.1,<3"


def test_it_disables_edits_and_removes(staff_api):
    pkg = AllowedPackage.objects.get(normalized="pytz")
    r = staff_api.patch(f"/api/packages/{pkg.pk}/", {"enabled": False, "notes": "not needed"}, format="json")
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["notes"] == "not needed"
    r = staff_api.patch(f"/api/packages/{pkg.pk}/", {"specifier": "nope"}, format="json")
    assert r.status_code == 400
    r = staff_api.delete(f"/api/packages/{pkg.pk}/")
    assert r.status_code == 204
    assert not AllowedPackage.objects.filter(normalized="pytz").exists()
    # only the disable requested a build (removing a disabled entry changes nothing built)
    assert Runtime.objects.count() == 1


def test_notes_only_changes_do_not_rebuild(staff_api):
    pkg = AllowedPackage.objects.get(normalized="numpy")
    staff_api.patch(f"/api/packages/{pkg.pk}/", {"notes": "arrays"}, format="json")
    assert not Runtime.objects.exists()


def test_the_module_list_is_for_every_signed_in_user(api, client):
    r = api.get("/api/runtime/modules/")
    assert r.status_code == 200
    body = r.json()
    assert body["runtime_id"] is None and body["packages"] == []
    assert "json" in body["stdlib"] and "os" in body["stdlib"] and "tkinter" not in body["stdlib"]
    assert client.get("/api/runtime/modules/").status_code in (401, 403)


def test_the_page_is_staff_only(client, staff, alice):
    client.force_login(alice)
    assert client.get("/runtimes/").status_code == 302
    client.force_login(staff)
    r = client.get("/runtimes/")
    assert r.status_code == 200
    assert b"Python packages" in r.content and b"runtimes/packages.js" in r.content
