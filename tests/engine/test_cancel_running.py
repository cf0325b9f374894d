"""A running step stops when it should (issue 10, finding 7): an HTTP call ends at its total
deadline although the server trickles bytes; cancelling a run stops its HTTP call and its code
step's sandbox execution (process driver here; libvirt in tests/sandbox/test_cancel.py)."""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path


class Trickler:
    """A loopback server that answers every request with headers promising 10 kB and then sends
    one byte every `every_s` seconds: each read gets data, so a per-read timeout never fires."""

    def __init__(self, every_s: float = 0.2):
        self.every_s = every_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.served = 0
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.served += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10000\r\n\r\n")
                for _ in range(10000):
                    if self.closed.wait(self.every_s):
                        return
                    conn.sendall(b"x")
            except OSError:
                return

    def close(self):
        self.closed.set()
        self.sock.close()


def _http_flow(wf, url: str, timeout_s: float):
    return wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("call", "action.http", {"method": "GET", "url": url, "timeout_s": timeout_s}),
         wf.node("after", "action.compose", {"value": "never"})],
        [wf.edge("trigger", "call"), wf.edge("call", "after")],
        allowed_hosts=[f"127.0.0.1:{url.split(':')[2].split('/')[0]}"])


def _running(node_id):
    return lambda r: any(s["node_id"] == node_id and s["status"] == "running" for s in r["steps"])


def test_an_http_call_ends_at_its_total_deadline(loopback_stack, wf):
    srv = Trickler()
    try:
        api = loopback_stack.api()
        w = api.create_workflow(_http_flow(wf, srv.url("/slow"), 2))
        t0 = time.monotonic()
        run = api.wait(api.start(w["id"])["id"], timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        srv.close()
    assert run["status"] == "timed_out", run
    call = next(s for s in run["steps"] if s["node_id"] == "call")
    assert call["status"] == "timed_out"
    assert "did not finish within 2 s" in call["error"], call["error"]
    assert elapsed < 8, elapsed
    assert srv.served == 1


def test_cancel_stops_a_running_http_call(loopback_stack, wf):
    srv = Trickler()
    try:
        api = loopback_stack.api()
        w = api.create_workflow(_http_flow(wf, srv.url("/slow"), 30))
        run = api.start(w["id"])
        api.wait(run["id"], until=_running("call"), timeout=30)
        time.sleep(0.5)  # the call is reading the trickle
        t0 = time.monotonic()
        status, body = api.post(f"/api/runs/{run['id']}/cancel/")
        assert status == 200, body
        run = api.wait(run["id"], timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        srv.close()
    assert run["status"] == "cancelled", run
    st = {s["node_id"]: s["status"] for s in run["steps"]}
    assert st == {"trigger": "succeeded", "call": "cancelled"}, st
    assert elapsed < 2.5, elapsed


def _sandbox_groups(worker_pid: int) -> list[str]:
    """The process driver's cgroups of executions started by the worker process `worker_pid`."""
    parent = Path("/sys/fs/cgroup/pids/stepwell")
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith(f"{worker_pid}-"))


def test_cancel_stops_a_running_code_step_and_its_sandbox(stack, wf):
    api = stack.api()
    worker_pid = stack.procs["worker0"].pid
    d = wf.definition(
        [wf.node("trigger", "trigger.manual"),
         wf.node("sleep", "action.python", {"code": "import time\nprint('before the nap', flush=True)\n"
                                                    "time.sleep(60)\nresult = 'woke'"})],
        [wf.edge("trigger", "sleep")])
    w = api.create_workflow(d)
    run = api.start(w["id"])
    api.wait(run["id"], until=_running("sleep"), timeout=30)
    deadline = time.monotonic() + 20
    while not _sandbox_groups(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sandbox_groups(worker_pid), "the execution never started"
    time.sleep(1.0)  # it printed and sleeps
    t0 = time.monotonic()
    status, body = api.post(f"/api/runs/{run['id']}/cancel/")
    assert status == 200, body
    run = api.wait(run["id"], timeout=30)
    assert run["status"] == "cancelled", run
    assert time.monotonic() - t0 < 5
    step = next(s for s in run["steps"] if s["node_id"] == "sleep")
    assert step["status"] == "cancelled"
    assert "before the nap" in step["stdout"], step
    assert "cancel" in step["error"]
    # the sandbox execution itself is gone, not left to sleep out its minute
    while _sandbox_groups(worker_pid) and time.monotonic() - t0 < 5:
        time.sleep(0.1)
    assert _sandbox_groups(worker_pid) == [], "the sandbox execution outlived the cancel"
    assert os.path.isdir("/sys/fs/cgroup/pids/stepwell")
