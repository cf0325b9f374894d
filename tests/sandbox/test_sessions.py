"""Stateful sessions on the libvirt driver (real libvirtd, real guest image, a real sandbox
service on a unix socket): executions with one session key run in one held VM and one Python
process, like a REPL; keys never share a VM; timeouts, the idle reaper and end_session destroy
it; concurrent executions of one key never get two VMs.
"""
from __future__ import annotations

import base64
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sandbox.client import SandboxClient
from sandbox.contract import ContractError, ExecutionRequest, Status
from sandbox.service import SandboxService

from .conftest import make_libvirt_driver, make_process_driver

libvirt = pytest.mark.libvirt


def sreq(code: str, key: str, **kw) -> ExecutionRequest:
    kw.setdefault("timeout_s", 60)
    return ExecutionRequest(code=code, isolation="session", reuse_key=key, **kw)


@pytest.fixture(scope="module")
def stack():  # libvirt tests only (the fixture starts VMs)
    drv = make_libvirt_driver(pool_size=1)
    assert drv.wait_ready(None, 600)
    sockdir = tempfile.mkdtemp(prefix="stepwell-sessions-")
    svc = SandboxService(drv, Path(sockdir) / "sandbox.sock").start()
    yield drv, SandboxClient(svc.socket_path)
    svc.stop(grace=5)     # closes the driver too


def ok(r):
    assert r.status == Status.SUCCEEDED, r.to_dict()
    return r


def test_contract_validates_session_fields():
    r = sreq("1", "k", session_idle_s=2)
    assert ExecutionRequest.from_dict(r.to_dict()) == r
    assert r.to_dict()["session_idle_s"] == 2
    assert ExecutionRequest(code="1").session_idle_s == 300
    with pytest.raises(ContractError, match="reuse_key"):
        ExecutionRequest(code="1", isolation="session")
    for bad in (0, -1, 86401, "x"):
        with pytest.raises(ContractError, match="session_idle_s"):
            sreq("1", "k", session_idle_s=bad)


@libvirt
def test_state_survives_between_calls_like_a_repl(stack):
    drv, client = stack
    a = ok(client.execute(sreq(
        "import math\nx = 6\ndef f(n):\n    return n * 7\n"
        "open('/mnt/data/notes.txt', 'w').write('kept')\nimport os\nos.mkdir('/mnt/data/sub')\n"
        "os.chdir('/mnt/data/sub')\nprint('hello')", "s1")))
    assert a.metadata["session"] == "new" and a.stdout == "hello\n" and a.result is None
    assert [f.name for f in a.files] == ["notes.txt"]
    b = ok(client.execute(sreq("f(x)", "s1")))
    assert b.metadata["session"] == "resumed" and b.result == 42
    assert b.metadata["domain"] == a.metadata["domain"]
    assert b.stdout == "" and b.files == ()          # an unchanged file is not returned again
    c = ok(client.execute(sreq("import os\n(math.pi > 3, open('/mnt/data/notes.txt').read(), "
                               "os.getcwd())", "s1")))
    assert c.result == [True, "kept", "/mnt/data/sub"]
    d = ok(client.execute(sreq("result = {'v': x + 1}\ny = 2", "s1")))
    assert d.result == {"v": 7}
    e = ok(client.execute(sreq("z = y", "s1")))      # `result` from before is not this call's
    assert e.result is None
    # an exception fails the call but keeps the state
    f = client.execute(sreq("print('before')\nundefined_name", "s1"))
    assert f.status == Status.FAILED and "NameError" in f.stderr and f.stdout == "before\n"
    assert f.metadata["session"] == "resumed"
    g = ok(client.execute(sreq("x", "s1")))
    assert g.result == 6 and g.metadata["session"] == "resumed"
    h = ok(client.execute(sreq("object()", "s1")))   # not JSON: its repr
    assert h.result.startswith("<object object at")


@libvirt
def test_matplotlib_figure_is_the_result(stack):
    _drv, client = stack
    r = ok(client.execute(sreq("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
                               "fig")))
    assert r.result["type"] == "image" and r.result["format"] == "png"
    png = base64.b64decode(r.result["base64_data"])
    assert png.startswith(b"\x89PNG")
    assert [f.name for f in r.files] == ["figure_1.png"]
    left = ok(client.execute(sreq("plt.figure(); plt.bar([1], [2]); n = 1", "fig")))  # left open
    assert left.result["type"] == "image"
    closed = ok(client.execute(sreq("len(plt.get_fignums())", "fig")))
    assert closed.result == 0


@libvirt
def test_keys_never_share_a_vm_or_state(stack):
    _drv, client = stack
    a = ok(client.execute(sreq("secret = 'a'\nopen('/mnt/data/a.txt', 'w').write('a')", "iso-a")))
    b = ok(client.execute(sreq("import os\n('secret' in globals(), sorted(os.listdir('/mnt/data')))",
                               "iso-b")))
    assert b.metadata["session"] == "new" and b.result == [False, []]
    assert a.metadata["domain"] != b.metadata["domain"]


@libvirt
def test_timeout_ends_the_session(stack):
    _drv, client = stack
    ok(client.execute(sreq("x = 1", "t1")))
    t = client.execute(sreq("import time\ntime.sleep(60)", "t1", timeout_s=2))
    assert t.status == Status.TIMEOUT
    again = ok(client.execute(sreq("'x' in globals()", "t1")))
    assert again.metadata["session"] == "new" and again.result is False


@libvirt
def test_dead_session_process_ends_the_session(stack):
    _drv, client = stack
    ok(client.execute(sreq("x = 1", "dead")))
    d = client.execute(sreq("import os\nos._exit(3)", "dead"))
    assert d.status == Status.FAILED and "state is gone" in d.message
    again = ok(client.execute(sreq("'x' in globals()", "dead")))
    assert again.metadata["session"] == "new" and again.result is False
    # the code kills the worker that relays for it (same uid): the VM is not kept either
    k = client.execute(sreq("import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\n"
                            "time.sleep(5)", "dead", timeout_s=20))
    assert k.status != Status.SUCCEEDED, k.to_dict()
    last = ok(client.execute(sreq("'x' in globals()", "dead")))
    assert last.metadata["session"] == "new" and last.metadata["domain"] != again.metadata["domain"]


@libvirt
def test_idle_reaper_and_end_session(stack):
    drv, client = stack
    a = ok(client.execute(sreq("v = 1", "idle", session_idle_s=1.5)))
    held = client.status()["sessions_held"]
    assert held >= 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and drv.sessions.counts()["held"] >= held:
        time.sleep(0.1)
    assert drv.sessions.counts()["held"] == held - 1      # reaped by the service itself
    b = ok(client.execute(sreq("'v' in globals()", "idle")))
    assert b.metadata["session"] == "new" and b.result is False
    assert b.metadata["domain"] != a.metadata["domain"]
    assert client.end_session("idle") is True
    assert client.end_session("idle") is False
    c = ok(client.execute(sreq("1", "idle")))
    assert c.metadata["session"] == "new"
    assert client.end_session("idle") is True


@libvirt
def test_concurrent_calls_of_one_key_share_one_vm(stack):
    _drv, client = stack
    results = []

    def go(i):
        results.append(client.execute(sreq(
            f"import time\ntry:\n    n += 1\nexcept NameError:\n    n = 1\ntime.sleep(0.5)\n(n, {i})",
            "conc")))
    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        ok(r)
    assert len({r.metadata["domain"] for r in results}) == 1
    assert sorted(r.result[0] for r in results) == [1, 2, 3]
    assert sorted(r.metadata["session"] for r in results) == ["new", "resumed", "resumed"]
    client.end_session("conc")


@libvirt
def test_session_cap_and_warm_latency(stack):
    drv, client = stack
    ok(client.execute(sreq("1", "lat")))
    drv.wait_ready(None, 120)   # the slot this session took is refilled: no restore meanwhile
    times = []
    for _ in range(30):
        t = time.perf_counter()
        r = drv.execute(sreq("1 + 1", "lat"))
        times.append((time.perf_counter() - t) * 1000)
        assert r.result == 2
    p50 = statistics.median(times)
    print(f"session 1 + 1 round trip (driver): p50 {p50:.2f} ms, max {max(times):.2f} ms")
    assert p50 < 50
    cap = drv.sessions.max_sessions
    drv.sessions.max_sessions = drv.sessions.counts()["held"]
    try:
        full = client.execute(sreq("1", "one-too-many"))
        assert full.status == Status.ERROR and "no free session slot" in full.message
        assert ok(client.execute(sreq("1 + 1", "lat"))).result == 2   # live sessions go on
    finally:
        drv.sessions.max_sessions = cap
    assert client.end_session("lat") is True


def test_process_driver_sessions():
    """`make run` without libvirt: the same semantics in a held bubblewrap sandbox."""
    drv = make_process_driver(pool_size=2)
    try:
        def run(code, key="p", **kw):
            return drv.execute(sreq(code, key, **kw))
        a = ok(run("x = 6\ndef f(n):\n    return n * 7\nopen('a.txt', 'w').write('kept')\nprint('hi')"))
        assert a.metadata["session"] == "new" and a.stdout == "hi\n" and [f.name for f in a.files] == ["a.txt"]
        b = ok(run("f(x)"))
        assert b.result == 42 and b.metadata["session"] == "resumed" and b.files == ()
        c = run("undefined_name")
        assert c.status == Status.FAILED and "NameError" in c.stderr
        assert ok(run("x, open('/mnt/data/a.txt').read()")).result == [6, "kept"]
        other = ok(run("'x' in globals(), __import__('os').listdir('/mnt/data')", "p2"))
        assert other.metadata["session"] == "new" and other.result == [False, []]
        t = run("import time\ntime.sleep(30)", timeout_s=1)
        assert t.status == Status.TIMEOUT
        again = ok(run("'x' in globals()"))
        assert again.metadata["session"] == "new" and again.result is False
        assert drv.status()["sessions"]["held"] == 2
        assert drv.end_session("p") is True and drv.end_session("p") is False
        ok(run("y = 1", "p3", session_idle_s=0.5))
        deadline = time.monotonic() + 10
        while drv.status()["sessions"]["held"] > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert drv.status()["sessions"]["held"] == 1        # p3 reaped, p2 held
    finally:
        drv.close()
