"""Runtime builds cannot run code on the host: nothing but a name and a version range reaches pip
from the allow-list, pip only ever installs wheels, and pip itself runs as a fresh unprivileged
uid in bubblewrap that sees the build folder and the package index, not the service's files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from runtimes import actions, builder
from runtimes.buildbox import BuildBox
from runtimes.models import AllowedPackage, Runtime

pytestmark = pytest.mark.django_db

URL_SPECIFIERS = ["@ https://127.0.0.1:1/evil.tar.gz", "===@file:///tmp/x.tar.gz",
                  "===https://127.0.0.1:1/evil.tar.gz", ">=1 ; python_version > '3'", "==1 --index-url=http://127.0.0.1:1/"]


@pytest.mark.parametrize("specifier", URL_SPECIFIERS)
def test_the_allow_list_refuses_a_url_in_a_specifier(staff_api, specifier):
    r = staff_api.post("/api/packages/", {"name": "six", "specifier": specifier}, format="json")
    assert r.status_code == 400, r.content
    assert "not a valid version specifier" in r.json()["detail"]
    pkg = AllowedPackage.objects.get(normalized="numpy")
    before = pkg.specifier
    r = staff_api.patch(f"/api/packages/{pkg.pk}/", {"specifier": specifier}, format="json")
    assert r.status_code == 400
    pkg.refresh_from_db()
    assert pkg.specifier == before
    assert not AllowedPackage.objects.filter(normalized="six").exists() and not Runtime.objects.exists()


def test_the_admin_refuses_a_url_in_a_specifier(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "a@example.com", "pw-admin-123"),
                       backend="django.contrib.auth.backends.ModelBackend")
    r = client.post("/admin/runtimes/allowedpackage/add/",
                    {"name": "six", "specifier": "===@file:///tmp/x.tar.gz", "enabled": "on", "notes": ""})
    assert r.status_code == 200 and b"not a valid version specifier" in r.content
    assert not AllowedPackage.objects.filter(normalized="six").exists()
