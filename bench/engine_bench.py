#!/usr/bin/env python3
"""End-to-end engine benchmark: HTTP trigger -> one Python step -> Response.

Starts its own stack on loopback (fresh database in a temp dir): uvicorn, `run_worker`, and,
with --service, the sandbox service (`sandbox_service --driver D`, warm pool when the driver has
one); without --service the worker keeps one local driver. Then:
  1. sequential latency over N requests (p50, p95, min, max), after a few warm-up requests;
  2. throughput with C concurrent callers (runs/s), each caller waiting for its reply.
Also prints where the time goes (queue pickup, Python step, run total) from the stored runs.
With --isolation both, the workflow's `settings.isolation` "execution" (a fresh VM per
execution) and "workflow" (VMs reused for the workflow's version and owner) are measured one
after the other on the same stack, side by side.

    .venv/bin/python bench/engine_bench.py [--driver process|libvirt] [--service] [-n 60] [-c 8]
        [--isolation execution|workflow|both] [--duration 20]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable

WORKFLOW = {
    "version": 1,
    "nodes": [
        {"id": "hook", "type": "trigger.http", "name": "Hook", "parameters": {"method": "POST"},
         "position": {"x": 0, "y": 0}},
        {"id": "py", "type": "action.python", "name": "Python",
         "parameters": {"code": "result = {'n': inputs['n'] + 1}", "inputs": {"n": "{{ trigger.body.n }}"},
                        "timeout_s": 30},
         "position": {"x": 200, "y": 0}},
        {"id": "reply", "type": "action.response", "name": "Reply",
         "parameters": {"status_code": 200, "body": "{{ steps.py.output }}"}, "position": {"x": 400, "y": 0}},
    ],
    "edges": [{"source": "hook", "target": "py"}, {"source": "py", "target": "reply"}],
    "settings": {"variables": [], "allowed_hosts": []},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


class Stack:
    def __init__(self, driver: str, service: bool, concurrency: int, pool: int):
        self.dir = Path(tempfile.mkdtemp(prefix="stepwell-bench-"))
        self.port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "designer.settings",
                    "STEPWELL_VAR_DIR": str(self.dir), "SANDBOX_DRIVER": driver, "LOG_LEVEL": "WARNING",
                    "DJANGO_SECRET_KEY": "bench-secret-key-0123456789-0123456789-0123456789",
                    "SANDBOX_SOCKET": str(self.dir / "sandbox.sock"), "SANDBOX_POOL_SIZE": str(pool),
                    # a benchmark calls one hook far above the default 120/min per hook
                    "STEPWELL_HOOK_RATE": "100000/min"}
        self.procs = []
        self.manage("migrate", "--noinput", "-v0")
        if service:
            self.spawn("sandbox", [PY, "manage.py", "sandbox_service", "--driver", driver])
            self.wait_for(lambda: (self.dir / "sandbox.sock").exists(), 600, "sandbox service")
        self.spawn("worker", [PY, "manage.py", "run_worker", "--concurrency", str(concurrency)])
        self.wait_for(lambda: "claim loops" in (self.dir / "worker.log").read_text(), 60, "worker")
        self.spawn("web", [PY, "-m", "uvicorn", "designer.asgi:application", "--host", "127.0.0.1",
                           "--port", str(self.port), "--no-access-log", "--log-level", "warning"])
        self.wait_for(self.web_up, 60, "uvicorn")

    def manage(self, *args) -> str:
        out = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{out.stderr}")
        return out.stdout

    def spawn(self, name, args):
        log = open(self.dir / f"{name}.log", "w")
        self.procs.append(subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def web_up(self) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            c.request("GET", "/api/schema/workflow.json")
            return c.getresponse().status == 200
        except OSError:
            return False

    def wait_for(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.1)
        logs = "\n".join(f"--- {f.name}\n{f.read_text()[-2000:]}" for f in self.dir.glob("*.log"))
        self.close()
        raise SystemExit(f"{what} did not start\n{logs}")

    def close(self):
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def setup_workflow(stack: Stack, isolation: str = "execution", user: str = "bench") -> str:
    definition = json.loads(json.dumps(WORKFLOW))
    if isolation != "execution":
        definition["settings"]["isolation"] = isolation
    code = (
        "import json\nfrom django.contrib.auth.models import User\n"
        "from designer.actions import do_create_workflow\nfrom engine.actions import hook_for\n"
        f"u, _ = User.objects.get_or_create(username={user!r})\n"
        f"wf = do_create_workflow(u, 'bench {isolation}', definition=json.loads({json.dumps(json.dumps(definition))}))\n"
        "print(hook_for(wf).token)\n")
    return stack.manage("shell", "-v0", "-c", code).strip().splitlines()[-1]


def call(conn: http.client.HTTPConnection, path: str, n: int) -> tuple[float, int]:
    body = json.dumps({"n": n})
    t = time.perf_counter()
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    ms = (time.perf_counter() - t) * 1000
    if resp.status != 200 or json.loads(data) != {"n": n + 1}:
        raise RuntimeError(f"unexpected reply {resp.status}: {data[:300]!r}")
    return ms, int(resp.getheader("X-Stepwell-Run"))


def breakdown(stack: Stack, run_ids: list[int]) -> dict:
    code = (
        "import json\nfrom engine.models import Run, StepRun\n"
        f"ids = {run_ids!r}\nout = []\n"
        "for r in Run.objects.filter(pk__in=ids):\n"
        "    py = StepRun.objects.get(run=r, node_id='py')\n"
        "    out.append([(r.started - r.created).total_seconds() * 1000,"
        " (py.finished - py.started).total_seconds() * 1000, (py.sandbox or {}).get('duration_ms') or 0,"
        " (r.finished - r.created).total_seconds() * 1000])\n"
        "print(json.dumps(out))\n")
    rows = json.loads(stack.manage("shell", "-v0", "-c", code).strip().splitlines()[-1])
    cols = list(zip(*rows))
    return {name: statistics.median(col) for name, col in
            zip(["queue pickup (created->started)", "python step (recorded)", "sandbox duration_ms",
                 "run total (created->finished)"], cols)}


def measure(stack: Stack, path: str, args) -> dict:
    """Sequential latency, then C concurrent callers (for --duration seconds, else --per-caller
    requests each) against one hook."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=120)
    for i in range(5):  # warm-up: driver start, first imports
        call(conn, path, i)
    lat, ids = [], []
    for i in range(args.n):
        if args.pace:
            time.sleep(args.pace)
        ms, rid = call(conn, path, i)
        lat.append(ms)
        ids.append(rid)
    conn.close()
    if args.pause:
        time.sleep(args.pause)   # a single-use pool refills before the load

    errors, done = [], []
    lock = threading.Lock()
    stop = time.perf_counter() + args.duration if args.duration else None

    def caller(k):
        c = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=120)
        try:
            i = 0
            while (time.perf_counter() < stop) if stop else (i < args.per_caller):
                ms, _ = call(c, path, k * 100000 + i)
                i += 1
                with lock:
                    done.append(ms)
        except Exception as exc:
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(args.c)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"lat": lat, "done": done, "errors": errors, "wall": wall, "parts": breakdown(stack, ids)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--driver", choices=("process", "libvirt"), default="process")
    ap.add_argument("--service", action="store_true", help="run executions through the sandbox service")
    ap.add_argument("-n", type=int, default=60, help="sequential requests (default 60)")
    ap.add_argument("-c", type=int, default=8, help="concurrent callers (default 8)")
    ap.add_argument("--per-caller", type=int, default=10, help="requests per concurrent caller")
    ap.add_argument("--duration", type=float, default=0.0,
                    help="seconds of concurrent load (instead of --per-caller requests each)")
    ap.add_argument("--pool", type=int, default=4, help="sandbox pool size (and worker concurrency)")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="worker concurrency (default: the pool size)")
    ap.add_argument("--isolation", choices=("execution", "workflow", "both"), default="execution",
                    help="the workflow's settings.isolation; both: each, one after the other, same stack")
    ap.add_argument("--pace", type=float, default=0.0,
                    help="seconds between sequential requests (a single-use VM pool refills in ~1 s per slot)")
    ap.add_argument("--pause", type=float, default=0.0, help="seconds between the sequential and the load phase")
    ap.add_argument("--no-python", action="store_true",
                    help="replace the Python step with a Compose step (measures the engine alone)")
    args = ap.parse_args()
    if args.no_python:
        WORKFLOW["nodes"][1] = {"id": "py", "type": "action.compose", "name": "Compose",
                                "parameters": {"value": {"n": "{{ sum([trigger.body.n, `1`]) }}"}},
                                "position": {"x": 200, "y": 0}}
    levels = ("execution", "workflow") if args.isolation == "both" else (args.isolation,)
    concurrency = args.concurrency or args.pool

    print(f"starting stack: driver={args.driver} via {'sandbox service' if args.service else 'worker-local driver'}, "
          f"pool={args.pool}, worker concurrency={concurrency} ...", flush=True)
    load0 = os.getloadavg()
    stack = Stack(args.driver, args.service, concurrency, args.pool)
    results = {}
    try:
        paths = {level: f"/hooks/{setup_workflow(stack, level)}/" for level in levels}
        for level in levels:
            print(f"measuring isolation={level} ...", flush=True)
            results[level] = measure(stack, paths[level], args)
    finally:
        stack.close()

    bare = os.path.realpath(shutil.which("python3", path="/usr/bin:/bin") or sys.executable)
    base = []
    for _ in range(30):
        t = time.perf_counter()
        subprocess.run([bare, "-c", "print(1)"], capture_output=True, check=True)
        base.append((time.perf_counter() - t) * 1000)

    print()
    print(f"HTTP trigger -> {'Compose' if args.no_python else 'Python'} step -> Response   (driver: {args.driver}, "
          f"{'sandbox service' if args.service else 'worker-local driver'}, pool {args.pool}, worker concurrency "
          f"{concurrency}, {os.cpu_count()} CPUs, load average {load0[0]:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end)")
    width = 14
    print(f"{'metric':<46}" + "".join(f"{'isolation=' + lv:>{width + 6}}" for lv in levels))
    print("-" * (46 + (width + 6) * len(levels)))

    def row(label, fn):
        print(f"{label:<46}" + "".join(f"{fn(results[lv]):>{width + 6}}" for lv in levels))

    row("sequential requests", lambda r: f"{len(r['lat'])}" + (f" (1/{args.pace:g}s)" if args.pace else ""))
    row("sequential p50 latency (ms)", lambda r: f"{statistics.median(r['lat']):.1f}")
    row("sequential p95 latency (ms)", lambda r: f"{pct(r['lat'], 95):.1f}")
    row("sequential min / max (ms)", lambda r: f"{min(r['lat']):.0f} / {max(r['lat']):.0f}")
    row("concurrent callers", lambda r: f"{args.c}" + (f" for {r['wall']:.0f} s" if args.duration else ""))
    row("requests completed / errors", lambda r: f"{len(r['done'])} / {len(r['errors'])}")
    row("throughput under load (runs/s)", lambda r: f"{len(r['done']) / r['wall']:.1f}")
    row("p50 latency under load (ms)", lambda r: f"{statistics.median(r['done']):.1f}" if r["done"] else "-")
    row("p95 latency under load (ms)", lambda r: f"{pct(r['done'], 95):.1f}" if r["done"] else "-")
    for k in results[levels[0]]["parts"]:
        row(f"median {k} (ms)", lambda r, k=k: f"{r['parts'][k]:.1f}")
    print(f"baseline: bare python3 -c 'print(1)' p50 {statistics.median(base):.1f} ms")
    if "workflow" in results:
        print("target (issue 14), isolation=workflow: 8 callers >= 20 runs/s with p95 <= 500 ms")
    for lv in levels:
        if results[lv]["errors"]:
            print(f"first error ({lv}):", results[lv]["errors"][0])


if __name__ == "__main__":
    main()
