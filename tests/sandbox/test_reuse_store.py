"""The request contract's isolation fields, the libvirt driver's store of reusable VMs
(sandbox/libvirt/reuse.py: keys, use and idle limits, what is never kept) with plain objects
standing for VMs, and the process driver accepting `workflow` isolation while still giving each
execution a fresh sandbox."""
from __future__ import annotations

import pytest

from sandbox.contract import ContractError, ExecutionRequest, ExecutionResult, Status
from sandbox.libvirt.reuse import ReuseStore, key_of

from .conftest import make_process_driver


class FakeVM:
    def __init__(self, name):
        self.name, self.broken = name, False


def ok(status=Status.SUCCEEDED, forked=True):
    return ExecutionResult(status=status, metadata={"isolation": "workflow"} if forked else {})


def test_contract_isolation_fields():
    r = ExecutionRequest(code="", isolation="workflow", reuse_key="wf1.v2.o3")
    assert ExecutionRequest.from_dict(r.to_dict()) == r
    assert ExecutionRequest(code="").isolation == "execution"
    with pytest.raises(ContractError, match="isolation"):
        ExecutionRequest(code="", isolation="host")
    with pytest.raises(ContractError, match="reuse_key"):
        ExecutionRequest(code="", isolation="workflow")
    assert key_of(ExecutionRequest(code=""), "nolayer") is None
    assert key_of(r, "nolayer") == ("wf1.v2.o3", 512, "nolayer")
    assert key_of(r, "nolayer") != key_of(ExecutionRequest(code="", isolation="workflow",
                                                           reuse_key="wf1.v2.o3", memory_mib=256), "nolayer")


def test_store_keeps_per_key_and_applies_the_limits():
    retired = []
    store = ReuseStore(retired.append, max_uses=3, idle_s=100.0, max_idle=3)
    try:
        a, b = FakeVM("a"), FakeVM("b")
        assert store.done(("k1",), a, ok()) is True
        assert store.take(("k2",)) is None               # never across keys
        assert store.take(("k1",)) is a
        assert store.done(("k1",), a, ok(Status.FAILED)) is True    # a failure of the code: kept
        assert store.take(("k1",)) is a
        assert store.done(("k1",), a, ok()) is False      # third use: destroyed
        assert retired == [a]
        for res in (ok(Status.TIMEOUT), ok(Status.KILLED), ok(Status.ERROR), ok(forked=False), None):
            assert store.done(("k1",), b, res) is False   # never kept after these
        b.broken = True
        assert store.done(("k1",), FakeVM("c"), ok()) is True
        assert store.done(("k1",), b, ok()) is False
        # at most max_idle in all: the longest idle goes
        for name in ("d", "e", "f"):
            store.done(("k3",), FakeVM(name), ok())
        assert store.counts()["idle"] == 3
        assert retired[-1].name == "c"
        # idle limit
        assert store.reap(now=10**9) == 3
        assert store.counts()["idle"] == 0 and store.take(("k3",)) is None
    finally:
        store.close()


def test_process_driver_accepts_workflow_isolation_with_fresh_sandboxes():
    drv = make_process_driver(pool_size=2)
    try:
        code = ("import os\nseen = os.path.exists('/tmp/left')\nopen('/tmp/left', 'w').write('x')\n"
                "os.environ['LEFT'] = '1'\nresult = seen")
        req = ExecutionRequest(code=code, isolation="workflow", reuse_key="wf1.v1.o1", timeout_s=30)
        first, second = drv.execute(req), drv.execute(req)
        assert first.status == second.status == Status.SUCCEEDED, (first.to_dict(), second.to_dict())
        assert first.result is False and second.result is False
    finally:
        drv.close()
