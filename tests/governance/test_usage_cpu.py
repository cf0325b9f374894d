"""CPU-seconds and peak memory for metering. The process driver puts each execution in its own
cpuacct group (when that controller is mounted) and reports the group's CPU time as `cpu_s`;
a busy loop counts, sleeping does not, and the group is removed afterwards (real bubblewrap +
cgroups). The libvirt driver reads the VM's QEMU CPU time on the host around the execution, and
the guest tells the code's peak memory (kept only within the VM's memory)."""
from __future__ import annotations

import pytest

from sandbox.contract import ExecutionRequest, Status
from sandbox.process_driver import CGROUP_PARENT, CGROUP_ROOT
from tests.sandbox.conftest import make_libvirt_driver, make_process_driver

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6:\n    pass\n"


@pytest.fixture(scope="module")
def driver():
    if not (CGROUP_ROOT / "cpuacct" / "cgroup.procs").exists():
        pytest.skip("the cpuacct controller is not mounted here")
    drv = make_process_driver(pool_size=2)
    yield drv
    drv.close()


@pytest.mark.timeout(90)
def test_cpu_seconds_count_work_not_waiting(driver):
    busy = driver.execute(ExecutionRequest(
        code=BUSY, timeout_s=30))
    idle = driver.execute(ExecutionRequest(code="import time\ntime.sleep(1.0)\n", timeout_s=30))
    assert busy.status == Status.SUCCEEDED and idle.status == Status.SUCCEEDED, (busy, idle)
    assert busy.metadata["cpu_s"] >= 0.55, busy.metadata
    assert idle.metadata["cpu_s"] < busy.metadata["cpu_s"] - 0.3, (idle.metadata, busy.metadata)
    assert idle.duration_ms >= 1000
    for r in (busy, idle):
        assert not (CGROUP_ROOT / "cpuacct" / CGROUP_PARENT / r.metadata["execution_id"]).exists()


@pytest.mark.timeout(60)
def test_usage_rows_take_cpu_and_peak_memory_from_the_driver(driver, db, alice):
    from governance.usage import record

    r = driver.execute(ExecutionRequest(code="x = bytearray(30 * 1024 * 1024)\n", timeout_s=30))
    meta = {**r.metadata, "session_s": r.duration_ms / 1000 + 0.01,
            "egress": [{"host": "a", "bytes_out": 10, "bytes_in": 32}, {"host": "b", "bytes_out": 0, "bytes_in": 0}]}
    row = record(meta=meta, user_id=alice.pk, workflow_id=1, run_id=2, step_id=3)
    assert row.cpu_s == r.metadata["cpu_s"] and row.cpu_s > 0
    assert row.peak_memory_bytes == r.metadata["memory_max_usage_bytes"] >= 30 * 1024 * 1024
    assert row.egress_bytes == 42 and row.driver == "process"


@pytest.mark.libvirt
@pytest.mark.timeout(300)
def test_the_libvirt_driver_meters_the_vms_cpu_and_the_codes_peak_memory():
    drv = make_libvirt_driver(pool_size=0)
    try:
        busy = drv.execute(ExecutionRequest(code=BUSY, timeout_s=60))
        idle = drv.execute(ExecutionRequest(code="import time\ntime.sleep(1.0)\n", timeout_s=60))
        big = drv.execute(ExecutionRequest(code="x = bytearray(60 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])\n",
                                           timeout_s=60))
    finally:
        drv.close()
    assert all(r.status == Status.SUCCEEDED for r in (busy, idle, big)), (busy, idle, big)
    assert busy.metadata["cpu_s"] >= 0.5, busy.metadata
    assert idle.metadata["cpu_s"] < busy.metadata["cpu_s"] - 0.3, (idle.metadata, busy.metadata)
    assert big.metadata["peak_memory_bytes"] >= 60 * 1024 * 1024, big.metadata
    assert idle.metadata["peak_memory_bytes"] < big.metadata["peak_memory_bytes"] - 40 * 1024 * 1024
