"""`python manage.py sandbox_exec` as a subprocess (process driver, no service unless started)."""
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

from sandbox.client import SandboxClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def env():
    d = Path(tempfile.mkdtemp(prefix="sw-cli-"))
    e = dict(os.environ)
    e.update({"DJANGO_SETTINGS_MODULE": "designer.settings", "SANDBOX_DRIVER": "process",
              "SANDBOX_SOCKET": str(d / "none.sock")})
    yield e
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _needs_process_driver(process_driver):
    return process_driver


def sandbox_exec(env, *args, stdin: str | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "manage.py", "sandbox_exec", *args], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def one_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


@pytest.fixture
def script(tmp_path):
    def make(code: str) -> str:
        p = tmp_path / "step.py"
        p.write_text(code)
        return str(p)
    return make


@pytest.mark.timeout(120)
def test_success_prints_one_json_result(env, script):
    p = sandbox_exec(env, script("print('hello')\nresult = {'n': inputs['n'] + 1}"), "--input", '{"n": 41}')
    assert p.returncode == 0, p.stderr
    r = one_json(p.stdout)
    assert r["status"] == "succeeded" and r["result"] == {"n": 42} and r["stdout"] == "hello\n"
    assert r["metadata"]["driver"] == "process"


@pytest.mark.timeout(120)
def test_failing_code_still_exits_zero(env, script):
    p = sandbox_exec(env, script("import os\nos._exit(3)"))
    assert p.returncode == 0, p.stderr
    r = one_json(p.stdout)
    assert r["status"] == "failed" and r["exit_code"] == 3


@pytest.mark.timeout(120)
def test_timeout_and_memory_options(env, script):
    t0 = time.monotonic()
    p = sandbox_exec(env, script("while True: pass"), "--timeout", "2", "--driver", "process")
    assert p.returncode == 0, p.stderr
    assert one_json(p.stdout)["status"] == "timeout"
    assert time.monotonic() - t0 < 30
    p = sandbox_exec(env, script("x = b'x' * (300 * 1024 * 1024)"), "--memory", "128")
    assert p.returncode == 0, p.stderr
    assert one_json(p.stdout)["status"] == "out_of_memory"


@pytest.mark.timeout(120)
def test_code_from_stdin(env):
    p = sandbox_exec(env, "-", stdin="import json\nprint(json.dumps([1, 2]))\n")
    assert p.returncode == 0, p.stderr
    assert one_json(p.stdout)["result"] == [1, 2]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args, message", [
    (["--input", "{not json"], "--input is not valid JSON"),
    (["--timeout", "601"], "--timeout"),
    (["--timeout", "0"], "--timeout"),
    (["--memory", "1"], "--memory"),
])
def test_bad_arguments_exit_2(env, script, args, message):
    p = sandbox_exec(env, script("print(1)"), *args)
    assert p.returncode == 2
    assert message in p.stderr
    assert p.stdout.strip() == ""


@pytest.mark.timeout(60)
def test_missing_file_exits_2(env, tmp_path):
    p = sandbox_exec(env, str(tmp_path / "nope.py"))
    assert p.returncode == 2
    assert "nope.py" in p.stderr and p.stdout.strip() == ""


@pytest.mark.timeout(60)
def test_unknown_driver_exits_2(env, script):
    p = sandbox_exec(env, script("print(1)"), "--driver", "docker")
    assert p.returncode == 2


@pytest.mark.timeout(120)
def test_uses_the_service_when_it_answers(env, script):
    d = Path(tempfile.mkdtemp(prefix="sw-cli-svc-"))
    sock = d / "s.sock"
    e = dict(env, SANDBOX_SOCKET=str(sock))
    svc = subprocess.Popen([sys.executable, "manage.py", "sandbox_service", "--driver", "process",
                            "--socket", str(sock)], cwd=ROOT, env=e,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = SandboxClient(sock)
        deadline = time.monotonic() + 30
        while not client.available(timeout=1):
            assert svc.poll() is None and time.monotonic() < deadline, "service did not start"
            time.sleep(0.05)
        p = sandbox_exec(e, script("result = 'via service'"))
        assert p.returncode == 0, p.stderr
        assert one_json(p.stdout)["result"] == "via service"
        assert client.status()["service"]["served"] == 1
    finally:
        svc.send_signal(signal.SIGTERM)
        svc.wait(30)
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.timeout(120)
def test_default_libvirt_unavailable_is_an_error_not_a_fallback(env, script, tmp_path):
    e = {k: v for k, v in env.items() if k != "SANDBOX_DRIVER"}
    e["SANDBOX_CACHE_DIR"] = str(tmp_path / "empty-cache")  # no guest image there
    p = sandbox_exec(e, script("result = 'fallback'"))
    assert p.returncode == 1 and p.stdout.strip() == "", p.stdout
    assert "unavailable" in p.stderr and "guest image" in p.stderr, p.stderr


@pytest.mark.timeout(120)
def test_an_explicit_unavailable_driver_is_an_error(env, script, tmp_path):
    e = dict(env, SANDBOX_DRIVER="libvirt", SANDBOX_CACHE_DIR=str(tmp_path / "empty-cache"))
    p = sandbox_exec(e, script("print(1)"))
    assert p.returncode == 1
    assert "unavailable" in p.stderr and p.stdout.strip() == ""
