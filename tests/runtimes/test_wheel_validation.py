"""Uploaded wheels: real wheels for CPython 3.11 manylinux x86_64 (or pure Python) only."""
from __future__ import annotations

import hashlib
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from runtimes.models import AllowedPackage, Runtime
from runtimes.wheels import WheelError, validate_wheel
from tests.runtimes.conftest import build_wheel

pytestmark = pytest.mark.django_db


def test_it_accepts_a_pure_python_wheel_and_records_its_sha256():
    name, data = build_wheel()
    info = validate_wheel(name, data)
    assert info.name == "stepwell-demo" and info.version == "1.0"
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)


@pytest.mark.parametrize("tag", [
    "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp311-cp311-manylinux_2_28_x86_64",
    "cp38-abi3-manylinux2014_x86_64",
    "py2.py3-none-any",
])
def test_it_accepts_tags_that_fit_the_sandbox(tag):
    name, data = build_wheel(tag=tag)
    assert validate_wheel(name, data).tags


@pytest.mark.parametrize("tag, why", [
    ("cp312-cp312-manylinux_2_17_x86_64", "cp312"),
    ("cp311-cp311-win_amd64", "win_amd64"),
    ("cp311-cp311-macosx_11_0_arm64", "macosx"),
    ("cp311-cp311-manylinux_2_17_aarch64", "aarch64"),
    ("cp311-cp311-manylinux_2_39_x86_64", "manylinux_2_39"),
    ("py2-none-any", "py2"),
])
def test_it_refuses_tags_that_do_not_fit(tag, why):
    name, data = build_wheel(tag=tag)
    with pytest.raises(WheelError, match="does not fit the sandbox") as exc:
        validate_wheel(name, data)
    assert why in str(exc.value)


def test_it_refuses_files_that_are_not_wheels():
    with pytest.raises(WheelError, match="must end in .whl"):
        validate_wheel("thing.tar.gz", b"x")
    with pytest.raises(WheelError, match="not a valid wheel file name"):
        validate_wheel("nonsense.whl", b"x")
    with pytest.raises(WheelError, match="not a zip archive"):
        validate_wheel("demo-1.0-py3-none-any.whl", b"definitely not a zip")


def test_it_checks_the_dist_info():
    name, data = build_wheel(omit=["{info}/METADATA"])
    with pytest.raises(WheelError, match="missing .*METADATA"):
        validate_wheel(name, data)
    name, data = build_wheel(omit=["{info}/WHEEL"])
    with pytest.raises(WheelError, match="missing .*WHEEL"):
        validate_wheel(name, data)
    name, data = build_wheel(metadata_name="something-else")
    with pytest.raises(WheelError, match="METADATA names 'something-else'"):
        validate_wheel(name, data)
    name, data = build_wheel(metadata_version="2.0")
    with pytest.raises(WheelError, match="METADATA has version '2.0'"):
        validate_wheel(name, data)
    name, data = build_wheel(wheel_tag="cp311-cp311-win_amd64")
    with pytest.raises(WheelError, match="do not match the file name"):
        validate_wheel(name, data)
    name, _ = build_wheel()
    _, other = build_wheel(name="other", version="3.0")
    with pytest.raises(WheelError, match="no .dist-info directory for stepwell-demo 1.0"):
        validate_wheel(name, other)


def test_it_refuses_unsafe_paths():
    name, data = build_wheel(extra={"../evil.py": b"x"})
    with pytest.raises(WheelError, match="unsafe path"):
        validate_wheel(name, data)


def test_it_enforces_the_size_cap():
    name, data = build_wheel(extra={"stepwell_demo_data.bin": b"\0" * 4096})
    with pytest.raises(WheelError, match="the limit is"):
        validate_wheel(name, data, max_bytes=1000)


def _upload(client, name, data):
    return client.post("/api/packages/upload/", {"file": SimpleUploadedFile(name, data)}, format="multipart")


def test_a_bad_upload_is_refused_with_a_clear_message_and_nothing_changes(staff_api, layer_env):
    before = (AllowedPackage.objects.count(), Runtime.objects.count())
    name, data = build_wheel(tag="cp311-cp311-win_amd64")
    r = _upload(staff_api, name, data)
    assert r.status_code == 400
    assert "does not fit the sandbox (CPython 3.11, manylinux x86_64)" in r.json()["detail"]
    assert r.json()["errors"][0]["path"] == "$.file"
    r = _upload(staff_api, "notes.txt", b"hello")
    assert r.status_code == 400 and "is not a wheel" in r.json()["detail"]
    assert (AllowedPackage.objects.count(), Runtime.objects.count()) == before
    assert not (layer_env / "wheels").exists() or not any((layer_env / "wheels").iterdir())


def test_an_oversized_upload_is_stopped(staff_api, layer_env, settings):
    settings.STEPWELL_MAX_WHEEL_BYTES = 2000
    name, data = build_wheel(extra={"stepwell_demo_data.bin": os.urandom(8000)})
    r = _upload(staff_api, name, data)
    assert r.status_code == 400
    assert "limit" in r.json()["detail"]
    assert not AllowedPackage.objects.filter(normalized="stepwell-demo").exists()


def test_a_good_upload_is_stored_listed_and_queues_a_build(staff_api, layer_env, django_capture_on_commit_callbacks):
    name, data = build_wheel()
    with django_capture_on_commit_callbacks(execute=False):
        r = _upload(staff_api, name, data)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["source"] == "wheel" and body["wheel_filename"] == name
    assert body["wheel_sha256"] == hashlib.sha256(data).hexdigest()
    assert (layer_env / "wheels" / body["wheel_sha256"] / name).read_bytes() == data
    assert Runtime.objects.filter(status=Runtime.Status.QUEUED).count() == 1


def test_uploading_requires_staff(api):
    name, data = build_wheel()
    assert _upload(api, name, data).status_code == 403


def wheel_requiring(*requires: str, provides_extra: str = "") -> tuple[str, bytes]:
    """A real wheel whose METADATA declares `requires` (Requires-Dist lines)."""
    meta = "Metadata-Version: 2.1\nName: stepwell_demo\nVersion: 1.0\n"
    meta += f"Provides-Extra: {provides_extra}\n" if provides_extra else ""
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    return build_wheel(extra={"stepwell_demo-1.0.dist-info/METADATA": meta.encode()})


@pytest.mark.parametrize("requires, extra", [
    ("evil @ https://127.0.0.1:1/evil.tar.gz", ""),
    ("evil @ file:///tmp/x.tar.gz", ""),
    ("evil@git+https://127.0.0.1:1/evil.git", ""),
    ("evil @ https://127.0.0.1:1/evil.tar.gz ; extra == 'fast'", "fast"),
])
def test_a_wheel_with_a_direct_reference_is_refused_at_upload(staff_api, layer_env, requires, extra):
    """Attack: pip would fetch and build the referenced sdist (running its setup.py) on the host."""
    name, data = wheel_requiring("six>=1", requires, provides_extra=extra)
    r = _upload(staff_api, name, data)
    assert r.status_code == 400, r.content
    detail = r.json()["detail"]
    assert "direct reference" in detail and "evil" in detail
    assert r.json()["errors"][0]["path"] == "$.file"
    assert not AllowedPackage.objects.filter(normalized="stepwell-demo").exists()
    assert not Runtime.objects.exists()
    assert not (layer_env / "wheels").exists() or not any((layer_env / "wheels").iterdir())


def test_a_wheel_with_an_unreadable_requirement_is_refused():
    name, data = wheel_requiring("evil >>> 1 !!")
    with pytest.raises(WheelError, match="cannot be read"):
        validate_wheel(name, data)


def test_dependencies_by_name_are_accepted():
    name, data = wheel_requiring("six>=1.16", "numpy ; extra == 'arrays'", "tzdata ; python_version >= '3.9'",
                                 provides_extra="arrays")
    info = validate_wheel(name, data)
    assert len(info.requires) == 3
