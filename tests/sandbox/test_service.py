"""The sandbox service as a real subprocess (`manage.py sandbox_service`, process driver)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sandbox.client import SandboxClient, execute, recv_frame, send_frame
from sandbox.contract import ContractError, ExecutionRequest, SandboxError, SandboxUnavailable, Status
from sandbox.protocol import FrameDecoder

ROOT = Path(__file__).resolve().parents[2]


def _env(sock: Path) -> dict:
    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": "designer.settings", "SANDBOX_SOCKET": str(sock),
                "SANDBOX_DRIVER": "process", "PYTHONUNBUFFERED": "1"})
    return env


def _start(sock: Path, pool_size: int = 2, wait: bool = True) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "sandbox_service", "--driver", "process",
         "--pool-size", str(pool_size), "--socket", str(sock)],
        cwd=ROOT, env=_env(sock), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if not wait:
        return proc
    client = SandboxClient(sock)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read()
            if "unavailable" in out:
                pytest.skip(f"process driver unavailable: {out.strip()}")
            raise AssertionError(f"service exited early ({proc.returncode}): {out}")
        if client.available(timeout=1):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("service did not come up within 30 s")


def _stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.fixture
def sockdir():
    d = Path(tempfile.mkdtemp(prefix="sw-svc-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def service():
    d = Path(tempfile.mkdtemp(prefix="sw-svc-"))
    sock = d / "sandbox.sock"
    proc = _start(sock, pool_size=2)
    yield SandboxClient(sock), proc
    _stop(proc)
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.timeout(60)
def test_status_reports_the_pool(service):
    client, proc = service
    st = client.status()
    assert st["driver"] == "process"
    assert st["size"] == 2 and st["busy"] == 0 and st["ready"] == 2
    assert st["service"]["pid"] == proc.pid
    mode = stat.S_IMODE(os.stat(client.socket_path).st_mode)
    assert mode == 0o660


@pytest.mark.timeout(60)
def test_execute_through_the_service(service):
    client, _ = service
    r = client.execute(ExecutionRequest(code="print('hi')\nresult = inputs['x'] + 1", inputs={"x": 1}, timeout_s=30))
    assert r.status == Status.SUCCEEDED, r
    assert r.result == 2 and r.stdout == "hi\n"
    assert r.metadata["driver"] == "process"


@pytest.mark.timeout(120)
def test_many_concurrent_clients_are_bounded_by_the_pool(service):
    client, _ = service
    results, peak = [], [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], client.status()["busy"])
            except SandboxError:
                pass
            time.sleep(0.05)

    def go(i):
        results.append(SandboxClient(client.socket_path).execute(
            ExecutionRequest(code=f"import time\ntime.sleep(1)\nresult = {i}", timeout_s=30)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    elapsed = time.monotonic() - t0
    stop.set()
    watcher.join()
    assert sorted(r.result for r in results) == list(range(6))
    assert all(r.status == Status.SUCCEEDED for r in results)
    assert peak[0] <= 2
    assert elapsed >= 2.9  # 6 one-second jobs on 2 slots


@pytest.mark.timeout(120)
def test_hostile_code_through_the_service_leaves_it_serving(service):
    client, _ = service
    r = client.execute(ExecutionRequest(code="while True: pass", timeout_s=2))
    assert r.status == Status.TIMEOUT
    r = client.execute(ExecutionRequest(code="import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
                                        timeout_s=3))
    assert r.status == Status.TIMEOUT
    assert client.execute(ExecutionRequest(code="result = 1", timeout_s=30)).result == 1


@pytest.mark.timeout(60)
def test_invalid_requests_get_clear_errors(service):
    client, _ = service
    with pytest.raises(ContractError, match="timeout_s"):
        client._call({"op": "execute", "request": {"code": "1", "timeout_s": 9999}}, 10)
    with pytest.raises(ContractError, match="unknown request fields"):
        client._call({"op": "execute", "request": {"code": "1", "evil": True}}, 10)
    with pytest.raises(ContractError, match="unknown op"):
        client._call({"op": "format_disk"}, 10)
    assert client.ping()


@pytest.mark.timeout(60)
def test_several_requests_on_one_connection_and_garbage(service):
    client, _ = service
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(client.socket_path)
    dec, pending = FrameDecoder(), []
    for _ in range(3):
        send_frame(s, {"op": "ping"})
        assert recv_frame(s, dec, pending, time.monotonic() + 10) == {"ok": True}
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    reply = recv_frame(s, dec, pending, time.monotonic() + 10)
    assert reply["ok"] is False and "bad frame" in reply["error"]
    s.close()
    # an oversized frame header is refused without reading the payload
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(client.socket_path)
    s.sendall(b"SWF1" + struct.pack(">I", 2 ** 31))
    reply = recv_frame(s, FrameDecoder(), [], time.monotonic() + 10)
    assert reply["ok"] is False and "exceeds" in reply["error"]
    s.close()
    assert client.ping()


@pytest.mark.timeout(90)
def test_an_execution_whose_client_hangs_up_is_cancelled(service):
    """A client (a worker) killed mid-execution closes its connection: the service cancels the
    execution (sandbox/hangup.py) instead of running it to its timeout for nobody."""
    client, proc = service
    req = ExecutionRequest(code="import time\ntime.sleep(60)", timeout_s=80)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(client.socket_path)
    send_frame(s, {"op": "execute", "request": req.to_dict()})
    deadline = time.monotonic() + 30
    pids = Path("/sys/fs/cgroup/pids/stepwell")
    # started: counted busy, and its sandbox's cgroup made (the count comes first)
    while client.status()["busy"] == 0 or not list(pids.glob(f"{proc.pid}-*")):
        assert time.monotonic() < deadline, "the execution never started"
        time.sleep(0.05)
    s.close()
    deadline = time.monotonic() + 20
    while client.status()["busy"] or list(pids.glob(f"{proc.pid}-*")):
        assert time.monotonic() < deadline, "the service kept running an execution nobody waits for"
        time.sleep(0.1)
    assert client.execute(ExecutionRequest(code="result = 2")).result == 2


@pytest.mark.timeout(60)
def test_a_session_keeps_its_state_across_calls_through_the_service(service):
    """Each call is its own connection, served by its own thread of the service: the session's
    sandbox must outlive the thread that started it (bubblewrap's --die-with-parent follows the
    thread that forked it; the second call found "the session's process ended")."""
    client, _ = service

    def call(code: str):
        return client.execute(ExecutionRequest(code=code, isolation="session", reuse_key="sp-service-state",
                                               session_idle_s=60.0, timeout_s=30))

    try:
        first = call("x = 6")
        assert first.status == Status.SUCCEEDED and first.metadata["session"] == "new", first.to_dict()
        time.sleep(0.3)   # the first call's thread has ended by now
        second = call("x * 7")
        assert second.status == Status.SUCCEEDED, second.to_dict()
        assert second.result == 42 and second.metadata["session"] == "resumed"
    finally:
        client.end_session("sp-service-state")


@pytest.mark.timeout(60)
def test_execute_helper_uses_the_service_when_it_answers(service):
    client, _ = service
    before = client.status()["service"]["served"]
    # the service runs the process driver: it serves callers that want that driver
    r = execute(ExecutionRequest(code="result = 7", timeout_s=30), "process", socket_path=client.socket_path)
    assert r.result == 7
    assert client.status()["service"]["served"] == before + 1


@pytest.mark.timeout(60)
def test_execute_helper_falls_back_to_a_local_driver(sockdir, monkeypatch):
    monkeypatch.setenv("SANDBOX_DRIVER", "process")
    missing = sockdir / "nobody.sock"
    assert not SandboxClient(missing).available()
    with pytest.raises(SandboxUnavailable):
        SandboxClient(missing).status()
    r = execute(ExecutionRequest(code="result = 'local'", timeout_s=30), socket_path=missing)
    assert r.status == Status.SUCCEEDED and r.result == "local"
    assert r.metadata["driver"] == "process"


@pytest.mark.timeout(90)
def test_stale_socket_is_replaced_and_sigterm_shuts_down(sockdir):
    sock = sockdir / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()  # the file stays, nobody listens: a stale socket
    assert sock.exists()
    proc = _start(sock)
    try:
        assert SandboxClient(sock).ping()
        # a second service on the same socket refuses to start
        second = _start(sock, wait=False)
        out, _ = second.communicate(timeout=30)
        assert second.returncode != 0 and "already listening" in out
        assert SandboxClient(sock).ping()
        # SIGTERM while an execution is in flight: it completes, then the service exits cleanly
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", SandboxClient(sock).execute(
            ExecutionRequest(code="import time\ntime.sleep(1)\nresult = 'finished'", timeout_s=30))))
        t.start()
        time.sleep(0.4)
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert box["r"].result == "finished"
        assert proc.wait(30) == 0
        assert not sock.exists()
    finally:
        _stop(proc)
