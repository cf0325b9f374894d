"""Builds for real (pip against the configured index): only enabled packages are importable in a
sandbox-like process, a rebuild of the same set is instant, a failed build changes nothing."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from runtimes import actions
from runtimes.models import AllowedPackage, Runtime
from runtimes.tasks import build_runtime
from sandbox.layers import PACKAGES_MOUNT, active_layer
from tests.runtimes.conftest import build_wheel, sandbox_python

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def empty_list(layer_env):
    AllowedPackage.objects.all().delete()
    return layer_env


def build() -> Runtime:
    runtime = Runtime.objects.create(reason="test")
    actions.do_build_runtime(runtime.pk)
    runtime.refresh_from_db()
    return runtime


def cache(layer_env) -> Path:
    return layer_env / "cache"


def test_only_enabled_packages_are_importable(empty_list, staff_api):
    actions.do_add_package("tabulate", rebuild=False)
    first = build()
    assert first.status == Runtime.Status.READY, first.log
    assert first.active and first.image_id and Path(first.image_path).stat().st_size > 0
    assert [(p["name"], p["requested"], p["source"]) for p in first.lock] == [("tabulate", True, "index")]
    assert "tabulate" in first.modules

    layer = active_layer(cache(empty_list))
    assert layer.runtime_id == first.pk and str(layer.layer_dir) == first.layer_dir
    ok = sandbox_python(layer, "import tabulate, sys; print(tabulate.__file__); print(tabulate.tabulate([[1, 2]]))")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{PACKAGES_MOUNT}/tabulate")
    # host packages (Debian's numpy, pip, ...) are not there
    for module in ("numpy", "pip", "six"):
        r = sandbox_python(layer, f"import {module}")
        assert r.returncode == 1 and f"ModuleNotFoundError: No module named '{module}'" in r.stderr

    pkg = AllowedPackage.objects.get(normalized="tabulate")
    actions.do_update_package(pkg, enabled=False, rebuild=False)
    second = build()
    assert second.status == Runtime.Status.READY and second.active and second.lock == []
    first.refresh_from_db()
    assert not first.active
    assert Path(first.layer_dir).is_dir()  # executions still on the old runtime keep their layer
    layer = active_layer(cache(empty_list))
    assert layer.runtime_id == second.pk
    r = sandbox_python(layer, "import tabulate")
    assert r.returncode == 1 and "ModuleNotFoundError: No module named 'tabulate'" in r.stderr

    d = staff_api.get(f"/api/runtimes/diff/?from={first.pk}&to={second.pk}").json()
    assert d["removed"] == [{"name": "tabulate", "version": first.lock[0]["version"], "requested": True}]
    assert d["added"] == [] and d["modules_removed"] == ["tabulate"]

    # the same set again: the layer is reused at once
    actions.do_update_package(pkg, enabled=True, rebuild=False)
    t0 = time.monotonic()
    third = build()
    assert third.status == Runtime.Status.READY and third.reused
    assert third.image_id == first.image_id and third.layer_dir == first.layer_dir
    assert time.monotonic() - t0 < 15
    assert active_layer(cache(empty_list)).runtime_id == third.pk

    # roll back through the API
    r = staff_api.post(f"/api/runtimes/{second.pk}/activate/")
    assert r.status_code == 200 and r.json()["active"]
    assert active_layer(cache(empty_list)).runtime_id == second.pk
    assert Runtime.objects.filter(active=True).get().pk == second.pk


def test_a_failed_build_keeps_the_previous_runtime_active(empty_list, staff_api):
    actions.do_add_package("tabulate", rebuild=False)
    good = build()
    pointer = (cache(empty_list) / "layers" / "active.json").read_text()
    actions.do_add_package("stepwell-no-such-package-xyz", rebuild=False)
    bad = build()
    assert bad.status == Runtime.Status.FAILED and not bad.active
    assert "pip could not resolve" in bad.error and "stepwell-no-such-package-xyz" in bad.error
    assert "No matching distribution found for stepwell-no-such-package-xyz" in bad.log
    assert "FAILED:" in bad.log
    good.refresh_from_db()
    assert good.active
    assert (cache(empty_list) / "layers" / "active.json").read_text() == pointer
    assert not list((cache(empty_list) / "layers").glob(".build-*"))  # nothing half-built left
    body = staff_api.get(f"/api/runtimes/{bad.pk}/").json()
    assert body["status"] == "failed" and "No matching distribution" in body["log"]
    assert staff_api.get("/api/runtimes/active/").json()["id"] == good.pk
    assert staff_api.post(f"/api/runtimes/{bad.pk}/activate/").status_code == 400


def test_an_uploaded_wheel_is_installed_from_the_file(empty_list):
    name, data = build_wheel(module_code="def hello():\n    return 'hi from the wheel'\n")
    actions.do_upload_wheel(name, data, rebuild=False)
    runtime = build()
    assert runtime.status == Runtime.Status.READY, runtime.log
    assert runtime.lock[0]["name"] == "stepwell-demo" and runtime.lock[0]["source"] == "wheel"
    # pip ran twice (resolve, install), wheels only, each time unprivileged in bubblewrap
    pip_lines = [ln for ln in runtime.log.splitlines() if ln.startswith("$ ") and " -m pip " in ln]
    assert len(pip_lines) == 2, runtime.log
    assert all("--only-binary=:all:" in ln and ", bubblewrap]" in ln for ln in pip_lines)
    # the layer belongs to root, not to the uid pip ran as
    site = Path(runtime.layer_dir)
    assert {p.stat().st_uid for p in [site, *site.rglob("*")]} == {0}
    assert not list((cache(empty_list) / "layers").glob(".build-*"))
    r = sandbox_python(active_layer(cache(empty_list)), "import stepwell_demo; print(stepwell_demo.hello())")
    assert r.returncode == 0 and r.stdout.strip() == "hi from the wheel", r.stderr


def test_the_worker_task_builds_a_queued_runtime(empty_list, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        runtime = actions.do_request_build(reason="test")
    assert build_runtime.call(runtime.pk) == "ready"
    runtime.refresh_from_db()
    assert runtime.status == Runtime.Status.READY and runtime.active and runtime.lock == []
    assert runtime.started and runtime.finished and "Activated" in runtime.log
    # a second delivery of the same task does nothing
    assert build_runtime.call(runtime.pk) == "ready"
    pointer = json.loads((cache(empty_list) / "layers" / "active.json").read_text())
    assert pointer["runtime_id"] == runtime.pk and pointer["modules"] == []
