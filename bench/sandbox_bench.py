#!/usr/bin/env python3
"""Sandbox (libvirt driver) benchmark: prints a table of latencies and throughput.

    python bench/sandbox_bench.py [--pool 2] [--n 30] [--sustain 60] [--quick]

Measures, from the caller's side of LibvirtDriver.execute():
- warm hello world: a READY pool slot is available (the bench waits for a full pool first)
- warm pandas script: same, with a small DataFrame group-by
- cold start with an empty pool (pool_size=0): restore from the saved template, or a boot
- sustained single-use executions per second over --sustain seconds (pool refilling behind)
- host RSS of an idle, ready pooled VM (QEMU process)
- baseline: a bare `python3 -c 'print(1)'` subprocess on the host
- the CPU-seconds of one single-use execution, split into restore, warm-up, run and destroy
  (bench/cycle.py); `--cycle-only` measures just that
Needs the guest image (python manage.py sandbox_build_image) and libvirtd.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.config import SandboxConfig  # noqa: E402
from sandbox.contract import ExecutionRequest, Status  # noqa: E402
from sandbox.libvirt import LibvirtDriver  # noqa: E402

import cycle  # noqa: E402  (bench/cycle.py)

HELLO = "print('hello world')"
PANDAS = (
    "import pandas as pd\n"
    "df = pd.DataFrame({'k': ['a', 'b', 'a', 'c'] * 25, 'v': range(100)})\n"
    "result = df.groupby('k')['v'].sum().to_dict()\n"
)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def timed(drv, code: str) -> float:
    t = time.perf_counter()
    r = drv.execute(ExecutionRequest(code=code, timeout_s=60))
    dt = time.perf_counter() - t
    if r.status != Status.SUCCEEDED:
        raise RuntimeError(f"benchmark execution failed: {r.to_dict()}")
    return dt * 1000


def settle(drv, timeout=120.0) -> None:
    """Wait for a full pool and an idle destroyer, so measurements don't overlap refills."""
    drv.wait_ready(None, timeout)
    end = time.monotonic() + timeout
    while drv.status()["destroy_queue"] and time.monotonic() < end:
        time.sleep(0.05)
    while drv.status()["live_domains"] > drv.pool_size and time.monotonic() < end:
        time.sleep(0.05)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", type=int, default=None, help="pool size (default: config, min 2)")
    ap.add_argument("--n", type=int, default=30, help="samples per latency row")
    ap.add_argument("--cold-n", type=int, default=8)
    ap.add_argument("--sustain", type=float, default=60.0, help="seconds of sustained load")
    ap.add_argument("--clients", type=int, default=None, help="threads in the sustained run")
    ap.add_argument("--quick", action="store_true", help="fewer samples, 15 s sustained")
    ap.add_argument("--cycles", type=int, default=8, help="single-use cycles metered (CPU split)")
    ap.add_argument("--cycle-only", action="store_true", help="only the CPU split of the cycle")
    args = ap.parse_args()
    if args.cycle_only:
        drv = LibvirtDriver(SandboxConfig.from_env(), pool_size=0)
        drv.start()
        try:
            drv.execute(ExecutionRequest(code=HELLO, timeout_s=60))  # makes the template if needed
            cycle.print_rows(cycle.measure(drv, drv.pool_memory_mib, args.cycles), os.cpu_count())
        finally:
            drv.close()
        return 0
    if args.quick:
        args.n, args.cold_n, args.sustain = 10, 4, 15.0
    load0 = os.getloadavg()
    config = SandboxConfig.from_env()
    pool = args.pool if args.pool is not None else max(2, config.pool_size)
    rows: list[tuple[str, str, str, str]] = []

    def log(msg):
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    # baseline: the real interpreter, not a version-manager shim (a pyenv shim is a shell
    # script that adds ~100 ms and would flatter every ratio below)
    bare = os.path.realpath(shutil.which("python3", path="/usr/bin:/bin") or sys.executable)
    log(f"baseline interpreter: {bare}")
    base = []
    for _ in range(args.n):
        t = time.perf_counter()
        subprocess.run([bare, "-c", "print(1)"], capture_output=True, check=True)
        base.append((time.perf_counter() - t) * 1000)
    b50 = statistics.median(base)
    rows.append(("bare python3 -c 'print(1)' (host)", f"{b50:.1f} ms", f"{pct(base, 95):.1f} ms", "1.00x"))
    log(f"baseline p50 {b50:.1f} ms")

    drv = LibvirtDriver(config, pool_size=pool)
    t = time.monotonic()
    drv.start()
    if not drv.wait_ready(None, 600):
        print(f"pool did not become ready: {drv.status()}", file=sys.stderr)
        return 1
    log(f"pool of {pool} ready in {time.monotonic() - t:.1f} s; accel={drv.accel}")
    try:
        settle(drv)
        # idle RSS per pooled VM
        rss = []
        for slot in drv.pool._slots:
            vm = slot.vm
            pid = drv.host.qemu_pid(vm.name) if vm else None
            if pid:
                rss.append(rss_mib(pid))
        rss_row = statistics.mean(rss) if rss else float("nan")

        for label, code in (("warm hello world", HELLO), ("warm pandas script", PANDAS)):
            xs = []
            for _ in range(args.n):
                settle(drv)
                xs.append(timed(drv, code))
            rows.append((label, f"{statistics.median(xs):.1f} ms", f"{pct(xs, 95):.1f} ms",
                         f"{statistics.median(xs) / b50:.2f}x"))
            log(f"{label}: p50 {statistics.median(xs):.1f} ms p95 {pct(xs, 95):.1f} ms")

        # sustained single-use executions
        settle(drv)
        clients = args.clients or pool
        done = [0]
        failures = [0]
        stop = time.monotonic() + args.sustain
        lock = threading.Lock()

        def client():
            while time.monotonic() < stop:
                r = drv.execute(ExecutionRequest(code=HELLO, timeout_s=60))
                with lock:
                    if r.status == Status.SUCCEEDED:
                        done[0] += 1
                    else:
                        failures[0] += 1

        t = time.monotonic()
        ths = [threading.Thread(target=client) for _ in range(clients)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        rate = done[0] / (time.monotonic() - t)
        st = drv.status()["executions"]
        rows.append((f"sustained single-use executions ({clients} clients, pool {pool})",
                     f"{rate:.2f} /s", f"{done[0]} ok, {failures[0]} failed",
                     f"warm {st['warm']} cold {st['cold_restore'] + st['cold_boot']}"))
        log(f"sustained: {rate:.2f}/s")
    finally:
        drv.close()

    # cold with an empty pool
    cold = LibvirtDriver(config, pool_size=0)
    cold.start()
    try:
        timed(cold, HELLO)  # makes the template if this is the very first run
        xs = []
        for _ in range(args.cold_n):
            settle(cold)
            xs.append(timed(cold, HELLO))
        rows.append(("cold start, empty pool (restore template)", f"{statistics.median(xs):.0f} ms",
                     f"{pct(xs, 95):.0f} ms", f"{statistics.median(xs) / b50:.1f}x"))
        log(f"cold: p50 {statistics.median(xs):.0f} ms")
        settle(cold)
        cycle_rows = cycle.measure(cold, cold.pool_memory_mib, args.cycles)
    finally:
        cold.close()
    rows.append(("host RSS per idle pooled VM", f"{rss_row:.0f} MiB", "", ""))

    w = max(len(r[0]) for r in rows)
    st = drv.status()
    thp = st.get("host_thp", "?")
    qemu_thp = {True: "off", False: "on", None: "unknown"}[st.get("libvirtd_thp_disabled")]
    print(f"\nSandbox benchmark (libvirt, accel={drv.accel}, {os.cpu_count()} CPUs, pool {pool}, "
          f"host THP {thp}, THP for libvirt's QEMUs {qemu_thp}, "
          f"load average at start {load0[0]:.1f}, at end {os.getloadavg()[0]:.1f})")
    print(f"{'measurement':<{w}}  {'p50 / value':>12}  {'p95 / detail':>22}  {'vs bare':>10}")
    print("-" * (w + 52))
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:>12}  {r[2]:>22}  {r[3]:>10}")
    cycle.print_rows(cycle_rows, os.cpu_count())
    return 0


if __name__ == "__main__":
    sys.exit(main())
