"""`STEPWELL_HTTPS=true` is the one production switch: with it, DEBUG off and a real secret key,
Django's deployment checklist (`manage.py check --deploy`) has nothing to say."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check_deploy(tmp_path, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "STEPWELL_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": "stepwell.example.com",
            **env}
    full.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=full, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_silent_with_the_https_switch(tmp_path):
    out = _check_deploy(tmp_path, STEPWELL_HTTPS="true")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout, out.stdout + out.stderr
    assert "WARNING" not in out.stderr + out.stdout


def test_without_the_switch_the_checklist_complains(tmp_path):
    out = _check_deploy(tmp_path, STEPWELL_HTTPS="false")
    text = out.stdout + out.stderr
    assert out.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in text, text


def test_the_switch_is_parsed_strictly(tmp_path):
    out = _check_deploy(tmp_path, STEPWELL_HTTPS="maybe")
    assert out.returncode != 0 and "STEPWELL_HTTPS" in out.stderr


def test_https_settings_and_headers(tmp_path):
    """Through the real middleware: plain http is redirected, https (as the proxy says) gets HSTS
    and the session and CSRF cookies are marked Secure."""
    code = (
        "import django; django.setup();"
        "from django.conf import settings; from django.test import Client;"
        "c = Client(SERVER_NAME='stepwell.example.com');"
        "r = c.get('/login/'); print('plain', r.status_code, r['Location']);"
        "r = c.get('/login/', headers={'X-Forwarded-Proto': 'https'}, secure=False);"
        "print('https', r.status_code, r.headers.get('Strict-Transport-Security'));"
        "print('cookie', r.cookies['csrftoken']['secure']);"
        "print('session', settings.SESSION_COOKIE_SECURE)"
    )
    env = {**os.environ, "STEPWELL_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "false", "STEPWELL_HTTPS": "true",
           "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": "stepwell.example.com",
           "DJANGO_SETTINGS_MODULE": "designer.settings", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert lines["plain"] == "301 https://stepwell.example.com/login/"
    assert lines["https"].startswith("200 max-age=31536000; includeSubDomains")
    assert lines["cookie"] == "True" and lines["session"] == "True"
