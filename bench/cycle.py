"""CPU-seconds of one single-use libvirt execution, split into restore, warm-up, run and destroy.

Used by bench/sandbox_bench.py (`make bench`). Drives a pool-less LibvirtDriver's own steps one
after the other, in this thread, so each phase can be metered on its own:

- restore: the template restored under a free identity and the agent connected
  (driver._restore);
- warm-up: the full warm-up requests a pool slot replays before it is READY (warmups.WARMUPS);
- run: one `print('hello world')` execution (driver._run);
- destroy: SIGKILL of QEMU and libvirt's destroy, until the process is gone.

Per phase, three CPU sources: the VM's QEMU process (utime + stime from /proc/<pid>/stat; for
the destroy, the last reading before the process vanished, which includes most of the kernel's
memory teardown), libvirtd (same, its delta over the phase), and this process
(resource.getrusage). libvirtd's delta includes whatever other VMs on the host made it do
meanwhile: on a shared machine read it as an upper bound.
"""
from __future__ import annotations

import os
import resource
import statistics
import time

from sandbox.contract import ExecutionRequest, Status
from sandbox.libvirt.host import process_cpu_seconds
from sandbox.libvirt.warmups import WARMUPS, warm

PHASES = ("restore", "warm-up", "run", "destroy")


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _libvirtd_pid() -> int | None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as fh:
                    if fh.read().strip() in ("libvirtd", "virtqemud"):
                        return int(name)
            except OSError:
                continue
    return None


def _cpu(pid) -> float:
    return process_cpu_seconds(pid) or 0.0


def one_cycle(drv, memory_mib: int) -> dict:
    """{phase: (qemu_s, libvirtd_s, host_s, wall_ms)} of one single-use execution."""
    import sandbox.layers as layers

    lv = _libvirtd_pid()
    layer = layers.active_layer(drv.config)
    out = {}
    l0, h0, t0 = _cpu(lv), _self_cpu(), time.perf_counter()
    vm = drv._restore(memory_mib, "c", layer)
    if vm is None:
        raise RuntimeError("no template to restore")
    qpid = drv.host.qemu_pid(vm.name)
    q1, l1, h1, t1 = _cpu(qpid), _cpu(lv), _self_cpu(), time.perf_counter()
    out["restore"] = (q1, l1 - l0, h1 - h0, (t1 - t0) * 1000)
    try:
        warm(vm, drv._seq, WARMUPS)
        q2, l2, h2, t2 = _cpu(qpid), _cpu(lv), _self_cpu(), time.perf_counter()
        out["warm-up"] = (q2 - q1, l2 - l1, h2 - h1, (t2 - t1) * 1000)
        meta: dict = {}
        result = drv._run(vm, ExecutionRequest(code="print('hello world')", timeout_s=60), meta,
                          time.monotonic())
        if result.status != Status.SUCCEEDED:
            raise RuntimeError(f"cycle execution failed: {result.to_dict()}")
        q3, l3, h3, t3 = _cpu(qpid), _cpu(lv), _self_cpu(), time.perf_counter()
        out["run"] = (q3 - q2, l3 - l2, h3 - h2, (t3 - t2) * 1000)
    finally:
        q_last = _cpu(qpid)
        before = q_last
        if vm.session is not None:
            vm.session.close()
        vm.close_egress()
        drv._sigkill(vm.name)
        while True:   # the last reading before /proc/<pid> goes (a zombie still has its times)
            v = process_cpu_seconds(qpid)
            if v is None:
                break
            q_last = v
            time.sleep(0.001)
        try:
            drv.host.destroy(vm.name)
        except Exception:  # noqa: BLE001 - already gone
            pass
        q4, l4, h4, t4 = q_last, _cpu(lv), _self_cpu(), time.perf_counter()
        drv._retire(vm)   # the destroyer releases the identity (the domain is gone already)
    if "run" in out:
        out["destroy"] = (q4 - before, l4 - l3, h4 - h3, (t4 - t3) * 1000)
    return out


def measure(drv, memory_mib: int, n: int = 8) -> list[tuple]:
    """Rows (phase, qemu_s, libvirtd_s, host_s, total_s, wall_ms) with medians over n cycles,
    then a total row."""
    one_cycle(drv, memory_mib)    # the first restore of a template reads it from disk
    cycles = []
    for _ in range(n):
        time.sleep(0.5)           # let the destroyer release the identity
        cycles.append(one_cycle(drv, memory_mib))
    rows = []
    for ph in PHASES:
        cols = [statistics.median(c[ph][i] for c in cycles) for i in range(4)]
        rows.append((ph, cols[0], cols[1], cols[2], cols[0] + cols[1] + cols[2], cols[3]))
    tot = [sum(r[i] for r in rows) for i in range(1, 6)]
    rows.append(("total per execution", *tot))
    return rows


def print_rows(rows, cpus: int) -> None:
    print(f"\nSingle-use execution cycle, CPU-seconds (medians; hello world; {cpus} CPUs)")
    print(f"{'phase':<22}{'QEMU':>9}{'libvirtd':>10}{'host':>9}{'total':>9}{'wall ms':>10}")
    print("-" * 69)
    for ph, q, lv, h, t, w in rows:
        print(f"{ph:<22}{q:>9.3f}{lv:>10.3f}{h:>9.3f}{t:>9.3f}{w:>10.0f}")
    total = rows[-1][4]
    print(f"CPU bound on {cpus} cores: {cpus / total:.2f} single-use executions/s "
          f"(issue 14 target >= 4/s)")
