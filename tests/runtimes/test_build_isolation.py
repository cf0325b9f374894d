"""Runtime builds cannot run code on the host: nothing but a name and a version range reaches pip
from the allow-list, pip only ever installs wheels, and pip itself runs as a fresh unprivileged
uid in bubblewrap that sees the build folder and the package index, not the service's files."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from django.conf import settings

from runtimes import builder
from runtimes.buildbox import BoxError, BuildBox
from runtimes.models import AllowedPackage, Runtime
from tests.runtimes.conftest import build_wheel

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


# ------------------------------------------------------------------------------- the box pip runs in
@pytest.fixture
def box(tmp_path):
    built = BuildBox.create(tmp_path / "box")
    yield built


def run_in(box: BuildBox, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(box.command(["/bin/sh", "-c", script]), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, cwd="/", timeout=120)


def test_pip_runs_as_a_fresh_unprivileged_uid(box):
    r = run_in(box, "id -u; id -g; id -G; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; touch made-here && echo wrote")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == lines[1] == lines[2] == str(box.uid) and box.uid >= 1_000_000
    caps = dict(zip(lines[3:9:2], lines[4:9:2]))
    assert caps == {"CapPrm:": "0000000000000000", "CapEff:": "0000000000000000", "CapBnd:": "0000000000000000"}
    assert "wrote" in r.stdout and (box.root / "made-here").stat().st_uid == box.uid


def test_the_service_files_are_not_in_the_box(box, tmp_path):
    secret = Path(settings.VAR_DIR) / "secret_key"
    assert secret.exists()  # the attack target is real
    visible_to_all = tmp_path / "world-readable.txt"
    visible_to_all.write_text("host file")
    os.chmod(visible_to_all, 0o644)
    for p in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        os.chmod(p, 0o755)
    targets = [secret, Path(settings.VAR_DIR) / "db.sqlite3", visible_to_all, Path.home() / ".bash_history",
               Path(settings.BASE_DIR) / "designer" / "settings.py"]
    for target in targets:
        r = run_in(box, f"cat '{target}'")
        assert r.returncode != 0 and "No such file or directory" in r.stderr, (target, r.stdout[:200])
    r = run_in(box, f"ls '{settings.VAR_DIR}' '{Path.home() / '.cache'}'; env")
    assert "secret_key" not in r.stdout and "db.sqlite3" not in r.stdout
    env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert env["HOME"] == str(box.root / "home") and "DJANGO_SETTINGS_MODULE" not in env
    assert not any(k.startswith(("STEPWELL_", "DATABASE")) for k in env)
    # the Python that runs pip and the package index configuration are there, read-only
    r = run_in(box, f"{sys.executable} -I -m pip --version && touch '{sys.prefix}/x'")
    assert "pip " in r.stdout and r.returncode != 0 and "Read-only file system" in r.stderr


def test_without_bubblewrap_the_build_fails_instead_of_running_pip_as_root(layer_env, monkeypatch):
    monkeypatch.setenv("PATH", str(layer_env))  # neither bwrap nor setpriv on it
    with pytest.raises(builder.BuildError, match="cannot isolate pip: bwrap and setpriv not installed"):
        builder.build_layer(["tabulate"], [], layer_env / "cache", with_image=False)
    assert not list((layer_env / "cache" / "layers").glob(".build-*"))


# ------------------------------------------------------------------------------- no sdist is ever built
def evil_sdist(folder: Path, marker: Path) -> Path:
    """An sdist whose setup.py (run whenever pip prepares it) writes `marker`."""
    setup = f"open({str(marker)!r}, 'w').write('setup.py ran')\nfrom setuptools import setup\nsetup(name='evil', version='1.0')\n"
    path = folder / "evil-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in {"evil-1.0/setup.py": setup.encode(),
                           "evil-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    os.chmod(path, 0o644)
    return path


def wheel_needing(folder: Path, sdist: Path) -> Path:
    meta = f"Metadata-Version: 2.1\nName: stepwell_demo\nVersion: 1.0\nRequires-Dist: evil @ {sdist.as_uri()}\n"
    name, data = build_wheel(extra={"stepwell_demo-1.0.dist-info/METADATA": meta.encode()})
    path = folder / name
    path.write_bytes(data)
    os.chmod(path, 0o644)
    return path


def test_a_stored_wheel_that_needs_an_sdist_by_url_never_reaches_pip(layer_env, tmp_path):
    """Attack: a wheel stored before uploads were checked; on the old code pip ran the sdist's
    setup.py on the host, as root."""
    for p in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        os.chmod(p, 0o755)  # even a place anyone could read is not enough
    marker = tmp_path / "pwned"
    wheel = wheel_needing(tmp_path, evil_sdist(tmp_path, marker))
    with pytest.raises(builder.BuildError, match="direct reference"):
        builder.build_layer([], [wheel], layer_env / "cache", with_image=False)
    assert not marker.exists()


def test_the_resolution_is_checked_again_and_pip_stays_in_the_box(box):
    """If pip meets an sdist anyway (pip ignores --only-binary for direct references), whatever it
    runs runs in the box, and the resolution is refused."""
    marker = box.root / "pwned"
    (box.root / "wheels").mkdir()
    wheel = wheel_needing(box.root / "wheels", evil_sdist(box.root, marker))
    lines: list[str] = []
    with pytest.raises(builder.BuildError, match="evil resolved to a non-wheel file"):
        builder.resolve([], [wheel], lines.append, box)
    assert all("--only-binary=:all:" in ln for ln in lines if ln.startswith("$ "))
    if marker.exists():
        assert marker.stat().st_uid == box.uid


@pytest.mark.parametrize("requirement", ["six @ https://127.0.0.1:1/six.tar.gz", "six==1; os_name == 'posix'",
                                         "--index-url=http://127.0.0.1:1/", "six===@file:///tmp/x"])
def test_the_builder_refuses_requirements_that_are_not_a_name_and_a_range(box, requirement):
    with pytest.raises(builder.BuildError):
        builder.resolve([requirement], [], lambda line: None, box)


def test_a_silent_hung_command_is_killed_at_the_deadline(box):
    lines: list[str] = []
    t0 = time.monotonic()
    rc = builder._run(["/bin/sh", "-c", "sleep 300 & sleep 300"], lines.append, 2, box)
    assert rc == -9 and time.monotonic() - t0 < 30 and lines[-1] == "(killed after 2 s)"
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-u", str(box.uid)], capture_output=True, text=True).stdout
    assert left == ""


def test_what_the_box_wrote_is_given_back_to_root_and_links_are_refused(box):
    r = run_in(box, "mkdir -p site/pkg && echo x > site/pkg/m.py && mkdir other && ln -s /etc/shadow other/link")
    assert r.returncode == 0, r.stderr
    box.reclaim(box.root / "site")
    assert {p.stat().st_uid for p in [box.root / "site", *(box.root / "site").rglob("*")]} == {0}
    with pytest.raises(BoxError, match="symbolic link"):
        box.reclaim(box.root / "other")
