"""Secrets written to var/ (Django's secret key, the first admin's password) are created 0600.

Each is made in a fresh process with umask 0 and with chmod disabled: a file first written with
the umask's mode and then chmod-ed (a moment where anyone on the host can read it) fails there,
and the mode seen afterwards is the mode the file had from its creation.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import os, pathlib
os.umask(0)
def _no_chmod(*a, **k):
    raise AssertionError("a secret file was chmod-ed after it was created")
os.chmod = _no_chmod
pathlib.Path.chmod = _no_chmod
"""


def _run(var: Path, code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "designer.settings",
                "STEPWELL_VAR_DIR": str(var), **env}
    full_env.pop("DJANGO_SECRET_KEY", None)
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", PRELUDE + code], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_key_file_is_created_0600(tmp_path):
    out = _run(tmp_path, "import django; django.setup(); from django.conf import settings; print(len(settings.SECRET_KEY))")
    assert out.returncode == 0, out.stderr
    key = tmp_path / "secret_key"
    assert _mode(key) == 0o600
    assert int(out.stdout.strip().splitlines()[-1]) >= 50
    # A second start reads the same key and leaves the file alone.
    first = key.read_text()
    again = _run(tmp_path, "import django; django.setup()")
    assert again.returncode == 0, again.stderr
    assert key.read_text() == first and _mode(key) == 0o600


def test_first_admin_password_file_is_created_0600(tmp_path):
    env = {"DJANGO_SECRET_KEY": "test-secret-key-not-for-production-0123456789"}
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                             env={**os.environ, "STEPWELL_VAR_DIR": str(tmp_path), **env},
                             capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr
    note = tmp_path / "initial_admin_password.txt"
    note.write_text("stale note left world-readable\n")
    note.chmod(0o644)
    out = _run(tmp_path, "import django; django.setup(); from django.core.management import call_command;"
                         "call_command('ensure_admin')", **env)
    assert out.returncode == 0, out.stderr
    assert _mode(note) == 0o600
    text = note.read_text()
    assert text.startswith("username: admin\npassword: ") and "stale" not in text
