"""The admin pages of packages and runtimes render and act through runtimes.actions."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from runtimes.models import AllowedPackage, Runtime
from tests.runtimes.conftest import build_wheel

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("admin", "a@example.com", "pw-admin-123")
    client.force_login(user)
    return client


def test_the_pages_render(admin_client):
    rt = Runtime.objects.create(status="failed", error="pip could not resolve", log="ERROR: nope",
                                lock=[{"name": "six", "version": "1.0", "requested": True}])
    assert admin_client.get("/admin/runtimes/allowedpackage/").status_code == 200
    assert admin_client.get("/admin/runtimes/allowedpackage/?q=pandas").status_code == 200
    assert admin_client.get("/admin/runtimes/allowedpackage/add/").status_code == 200
    pkg = AllowedPackage.objects.get(normalized="numpy")
    assert admin_client.get(f"/admin/runtimes/allowedpackage/{pkg.pk}/change/").status_code == 200
    r = admin_client.get(f"/admin/runtimes/runtime/{rt.pk}/change/")
    assert r.status_code == 200 and b"ERROR: nope" in r.content


def test_adding_in_the_admin_requests_a_build(admin_client, layer_env, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        r = admin_client.post("/admin/runtimes/allowedpackage/add/",
                              {"name": "six", "specifier": ">=1.16", "enabled": "on", "notes": ""})
    assert r.status_code == 302, r.content[:2000]
    assert AllowedPackage.objects.get(normalized="six").specifier == ">=1.16"
    assert Runtime.objects.filter(status="queued").count() == 1


def test_a_bad_wheel_in_the_admin_is_refused(admin_client, layer_env):
    name, data = build_wheel(tag="cp312-cp312-manylinux_2_17_x86_64")
    r = admin_client.post("/admin/runtimes/allowedpackage/add/",
                          {"name": "", "specifier": "", "enabled": "on", "notes": "",
                           "wheel": SimpleUploadedFile(name, data)})
    assert r.status_code == 200 and b"does not fit the sandbox" in r.content
    assert not AllowedPackage.objects.filter(normalized="stepwell-demo").exists()


def test_disable_action(admin_client, layer_env):
    pkg = AllowedPackage.objects.get(normalized="pytz")
    r = admin_client.post("/admin/runtimes/allowedpackage/", {"action": "disable", "_selected_action": [pkg.pk]})
    assert r.status_code == 302
    pkg.refresh_from_db()
    assert not pkg.enabled
