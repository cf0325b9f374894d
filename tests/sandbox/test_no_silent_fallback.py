"""Isolation never degrades silently: the driver is the configured one (SANDBOX_DRIVER, default
libvirt). When it is unavailable the sandbox service still serves, its status says so, every
execution ends with status `error` and a message naming the driver, and GET /healthz answers
503 with the same facts (and nothing sensitive). Before, a service or a CLI whose libvirt was
only the default fell back to the process driver and ran the code there."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sandbox.client import Chooser, SandboxClient, execute
from sandbox.contract import ExecutionRequest, SandboxUnavailable, Status

ROOT = Path(__file__).resolve().parents[2]
CODE = "import os\nresult = 'ran'"


@pytest.fixture
def broken_libvirt(monkeypatch):
    """The environment of a host whose libvirtd went away: libvirt is the default driver (no
    SANDBOX_DRIVER) and its socket answers nothing."""
    d = Path(tempfile.mkdtemp(prefix="sw-nofb-"))
    monkeypatch.delenv("SANDBOX_DRIVER", raising=False)
    monkeypatch.setenv("SANDBOX_LIBVIRT_URI", f"qemu+unix:///system?socket={d}/gone.sock")
    monkeypatch.setenv("SANDBOX_SOCKET", str(d / "sandbox.sock"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _service(sock: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_DRIVER"}
    env.update({"DJANGO_SETTINGS_MODULE": "designer.settings", "PYTHONUNBUFFERED": "1",
                "SANDBOX_POOL_SIZE": "0"})
    proc = subprocess.Popen([sys.executable, "manage.py", "sandbox_service", "--socket", str(sock)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = SandboxClient(sock)
    deadline = time.monotonic() + 60
    while not client.available(timeout=1):
        if proc.poll() is not None:
            raise AssertionError(f"the service exited: {proc.stdout.read()}")
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    return proc


def _assert_refused(r) -> None:
    assert r.status == Status.ERROR, r.to_dict()
    assert r.result is None and "libvirt" in r.message and "unavailable" in r.message, r.to_dict()
    assert r.metadata.get("driver") == "libvirt", r.to_dict()


@pytest.mark.timeout(120)
def test_the_service_does_not_fall_back_and_says_so(broken_libvirt):
    sock = broken_libvirt / "sandbox.sock"
    proc = _service(sock)
    try:
        client = SandboxClient(sock)
        st = client.status()
        assert st["driver"] == "libvirt" and st["available"] is False, st
        _assert_refused(client.execute(ExecutionRequest(code=CODE, timeout_s=30)))
        # the engine's way in (the service answers and runs the configured driver)
        _assert_refused(Chooser(keep_local=True).execute(ExecutionRequest(code=CODE, timeout_s=30)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    out = proc.stdout.read()
    assert "unavailable" in out and "falling back" not in out


@pytest.mark.timeout(120)
def test_without_a_service_local_executions_do_not_fall_back(broken_libvirt):
    request = ExecutionRequest(code=CODE, timeout_s=30)
    with pytest.raises(SandboxUnavailable, match="libvirt|unavailable|connect"):
        execute(request)                                          # a CLI: it exits 1
    _assert_refused(Chooser().execute(request))                   # a driver per call
    _assert_refused(Chooser(keep_local=True).execute(request))   # a worker: one kept driver


@pytest.mark.timeout(120)
@pytest.mark.django_db
def test_healthz_reports_the_configured_driver(broken_libvirt, client, monkeypatch):
    r = client.get("/healthz")       # no service at all
    assert r.status_code == 503
    body = r.json()
    assert body == {"status": "degraded", "sandbox": {
        "driver": "libvirt", "service": False, "available": False,
        "pool": {"size": 0, "ready": 0, "busy": 0}}}
    sock = broken_libvirt / "sandbox.sock"
    proc = _service(sock)            # a service whose libvirt is down
    try:
        r = client.get("/healthz")
        assert r.status_code == 503, r.content
        body = r.json()
        assert body["sandbox"]["service"] is True and body["sandbox"]["available"] is False
        text = json.dumps(body)
        assert str(broken_libvirt) not in text and "gone.sock" not in text and "/" not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    # a service of the configured driver that works
    monkeypatch.setenv("SANDBOX_DRIVER", "process")
    env_sock = broken_libvirt / "ok.sock"
    monkeypatch.setenv("SANDBOX_SOCKET", str(env_sock))
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "sandbox_service", "--pool-size", "2", "--socket", str(env_sock)],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "designer.settings"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not SandboxClient(env_sock).available(timeout=1):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        r = client.get("/healthz")
        assert r.status_code == 200, r.content
        assert r.json() == {"status": "ok", "sandbox": {
            "driver": "process", "service": True, "service_driver": "process", "available": True,
            "pool": {"size": 2, "ready": 2, "busy": 0}}}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
