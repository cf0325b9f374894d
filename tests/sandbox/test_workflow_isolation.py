"""Workflow isolation on the libvirt driver (real libvirtd, real guest image): a VM is reused for
executions with the same reuse key only, each execution in a fresh forked process, and nothing
one execution leaves (files in /tmp, /mnt/data and /dev/shm, processes, environment, module
state, System V IPC, RNG state) is visible to the next. The use and idle limits destroy it.
"""
from __future__ import annotations

import time

import pytest

from sandbox.contract import ExecutionRequest, Status

from .conftest import make_libvirt_driver

pytestmark = [pytest.mark.libvirt]

# Execution 1 leaves everything it can behind.
DIRTY = r'''
import ctypes, json, os, random, subprocess, sys, time
open('/tmp/leftover.txt', 'w').write('x')
os.makedirs('/tmp/locked/deeper', exist_ok=True)
open('/tmp/locked/deeper/f', 'w').write('x')
os.chmod('/tmp/locked', 0)
open('/mnt/data/leftover.txt', 'w').write('x')
open('/dev/shm/leftover', 'w').write('x')
os.environ['LEAKED_VAR'] = 'yes'
json.LEAKED = 'yes'
sys.modules['leaked_module'] = json
import random as r2
p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', 'stepwell-leftover-marker'],
                     start_new_session=True)
if os.fork() == 0:          # a daemonised grandchild too
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)',
                                  'stepwell-leftover-marker'])
    os._exit(0)
os.wait()
libc = ctypes.CDLL(None, use_errno=True)
shmid = libc.shmget(0x5eed, 4096, 0o1000 | 0o600)   # IPC_CREAT
time.sleep(0.3)
result = {'rand': random.getrandbits(64), 'urandom': os.urandom(8).hex(), 'pid': os.getpid(),
          'shmid': shmid, 'procs': p.pid}
'''

CHECK = r'''
import json, os, random, sys
marker = 0
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            marker += b'stepwell-leftover-marker' in open(f'/proc/{pid}/cmdline', 'rb').read()
        except OSError:
            pass
result = {
    'tmp': sorted(os.listdir('/tmp')), 'data': sorted(os.listdir('/mnt/data')),
    'shm': sorted(os.listdir('/dev/shm')), 'env': os.environ.get('LEAKED_VAR'),
    'json_attr': getattr(json, 'LEAKED', None), 'module': 'leaked_module' in sys.modules,
    'marker_procs': marker, 'sysv_shm': open('/proc/sysvipc/shm').read().count('\n') - 1,
    'rand': random.getrandbits(64), 'urandom': os.urandom(8).hex(), 'pid': os.getpid(),
    'uid': os.getuid(), 'cwd': os.getcwd(), 'secret': os.environ.get('STEP_SECRET'),
}
'''


def req(code: str, key: str, **kw) -> ExecutionRequest:
    return ExecutionRequest(code=code, isolation="workflow", reuse_key=key, timeout_s=60, **kw)


@pytest.fixture(scope="module")
def drv():
    d = make_libvirt_driver(pool_size=1)
    assert d.wait_ready(None, 600)
    yield d
    d.close()


def ok(r):
    assert r.status == Status.SUCCEEDED, r.to_dict()
    return r


def test_state_of_one_execution_is_not_visible_to_the_next(drv):
    first = ok(drv.execute(req(DIRTY, "wf1.v1.o1", env={"STEP_SECRET": "one"})))
    assert first.metadata["isolation"] == "workflow"
    assert first.result["shmid"] >= 0
    second = ok(drv.execute(req(CHECK, "wf1.v1.o1")))
    # the same VM served both (reused), in another process
    assert second.metadata["path"] == "reuse"
    assert second.metadata["domain"] == first.metadata["domain"]
    got = second.result
    assert got["pid"] != first.result["pid"]
    assert got["tmp"] == [".mpl"] or got["tmp"] == []          # matplotlib's config, copied anew
    assert got["data"] == [] and got["shm"] == []
    assert got["env"] is None and got["secret"] is None
    assert got["json_attr"] is None and got["module"] is False
    assert got["marker_procs"] == 0
    assert got["sysv_shm"] == 0
    assert got["rand"] != first.result["rand"] and got["urandom"] != first.result["urandom"]
    assert got["uid"] == 65534 and got["cwd"] == "/mnt/data"
    third = ok(drv.execute(req(CHECK, "wf1.v1.o1")))
    assert third.metadata["domain"] == first.metadata["domain"]
    assert third.result["rand"] != got["rand"]


def test_an_execution_after_one_streamed_live_reads_its_own_answer(drv, monkeypatch):
    """Live output: the host asks the agent for output so far while code runs; with the interval
    at 0 an ask is always outstanding when the result arrives, so its late answer waits on the
    wire in front of the next execution's (the engine bench failed on exactly that, "unexpected
    reply from the guest agent: 'partial'")."""
    from sandbox import streaming

    monkeypatch.setattr(streaming, "PARTIAL_INTERVAL_S", 0.0)
    seen = []
    first = ok(drv.execute(req("import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)",
                               "wf5.live"), on_output=lambda out, err: seen.append(out)))
    assert first.stdout == "0\n1\n2\n" and seen
    second = ok(drv.execute(req("result = 6 * 7", "wf5.live")))
    assert second.metadata["path"] == "reuse" and second.metadata["domain"] == first.metadata["domain"]
    assert second.result == 42


def test_vms_are_never_shared_between_keys(drv):
    a = ok(drv.execute(req("result = 1", "wf2.v1.o1")))
    b = ok(drv.execute(req("result = 2", "wf2.v2.o1")))      # another version
    c = ok(drv.execute(req("result = 3", "wf2.v1.o2")))      # another owner
    plain = ok(drv.execute(ExecutionRequest(code="result = 4", timeout_s=60)))
    domains = {a.metadata["domain"], b.metadata["domain"], c.metadata["domain"], plain.metadata["domain"]}
    assert len(domains) == 4
    again = ok(drv.execute(req("result = 5", "wf2.v2.o1")))
    assert again.metadata["domain"] == b.metadata["domain"]


def test_failures_keep_and_timeouts_destroy(drv):
    a = drv.execute(req("raise ValueError('boom')", "wf3"))
    assert a.status == Status.FAILED and "boom" in a.stderr
    b = ok(drv.execute(req("import os; os._exit(0)", "wf3")))     # the child died early: fine
    assert b.metadata["domain"] == a.metadata["domain"]
    t = drv.execute(ExecutionRequest(code="import time; time.sleep(60)", isolation="workflow",
                                     reuse_key="wf3", timeout_s=2))
    assert t.status == Status.TIMEOUT
    c = ok(drv.execute(req("result = 1", "wf3")))
    assert c.metadata["domain"] != a.metadata["domain"]


def test_use_and_idle_limits_destroy_the_vm(drv):
    drv.reuse.max_uses = 2
    try:
        a = ok(drv.execute(req("result = 1", "wf4")))
        b = ok(drv.execute(req("result = 1", "wf4")))
        c = ok(drv.execute(req("result = 1", "wf4")))
        assert a.metadata["domain"] == b.metadata["domain"] != c.metadata["domain"]
    finally:
        drv.reuse.max_uses = 100
    drv.reuse.idle_s = 1.0
    try:
        deadline = time.monotonic() + 30
        while drv.reuse.counts()["idle"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert drv.reuse.counts()["idle"] == 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
                name == c.metadata["domain"] for name, _ in drv.host.list_domains(c.metadata["domain"])):
            time.sleep(0.2)
        assert not drv.host.list_domains(c.metadata["domain"])
    finally:
        drv.reuse.idle_s = 300.0
    d = ok(drv.execute(req("result = 1", "wf4")))
    assert d.metadata["path"] != "reuse"
