#!/usr/bin/env python3
"""Code-interpreter session benchmark: the dynamic-sessions API over HTTP on a live session.

Starts its own stack on loopback (engine_bench.Stack: fresh database, uvicorn, worker and the
sandbox service with a warm pool), creates an API key, then measures:
  1. `code/execute` of `1 + 1` on one live session (after a warm-up call that starts it):
     p50, p95, min, max over N calls on one keep-alive HTTP connection;
  2. session creation: the first `code/execute` of a new identifier (a warm VM taken from the
     pool), p50 and p95 over M sessions (each deleted after, so the pool refills between them);
  3. the baseline, in the same run: a bare `python3 -c "1 + 1"` process, p50 and p95.
Target: p50 of (1) at most 10 ms.

    .venv/bin/python bench/session_bench.py [--driver libvirt|process] [-n 200] [-m 8] [--pool 2]
"""
from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_bench import Stack, pct  # noqa: E402

API_VERSION = "2024-02-02-preview"


class Client:
    def __init__(self, port: int, key: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body=None) -> tuple[int, dict | None]:
        self.conn.request(method, path, None if body is None else json.dumps(body), self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data.strip() else None)

    def execute(self, identifier: str, code: str) -> dict:
        status, body = self.call(
            "POST", f"/api/sessionpools/default/code/execute?identifier={identifier}&api-version={API_VERSION}",
            {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code}})
        if status != 200 or body["properties"]["status"] != "Success":
            raise SystemExit(f"code/execute answered {status}: {body}")
        return body["properties"]

    def end(self, identifier: str) -> None:
        self.call("DELETE", f"/api/sessionpools/default/session?identifier={identifier}&api-version={API_VERSION}")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def line(name: str, ms: list[float]) -> str:
    return (f"{name:<34} n={len(ms):<4} p50 {pct(ms, 50):8.2f} ms  p95 {pct(ms, 95):8.2f} ms  "
            f"min {min(ms):8.2f}  max {max(ms):8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--driver", default="libvirt")
    ap.add_argument("-n", type=int, default=200, help="executions on the live session")
    ap.add_argument("-m", type=int, default=8, help="sessions created")
    ap.add_argument("--pool", type=int, default=2, help="warm pool size of the sandbox service")
    args = ap.parse_args()

    stack = Stack(args.driver, service=True, concurrency=1, pool=args.pool)
    try:
        stack.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                    "User.objects.get_or_create(username='bench')")
        key = stack.manage("create_api_key", "bench", "--name", "bench").strip().splitlines()[-1].split()[-1]
        stack.manage("shell", "-c", "from agents.models import ApiKey; "   # a benchmark is above the default quotas
                                    "ApiKey.objects.filter(name='bench').update(executions_per_minute=1000000, "
                                    "session_seconds_per_day=1000000)")
        client = Client(stack.port, key)

        live = f"bench-{uuid.uuid4().hex[:8]}"
        assert client.execute(live, "x = 1")  # starts the session
        for _ in range(5):
            client.execute(live, "1 + 1")
        execute = [timed(lambda: client.execute(live, "1 + 1")) for _ in range(args.n)]
        client.end(live)

        create = []
        for _ in range(args.m):
            ident = f"bench-{uuid.uuid4().hex[:8]}"
            time.sleep(1.0)   # the warm pool refills between sessions
            create.append(timed(lambda: client.execute(ident, "1 + 1")))
            client.end(ident)

        bare = [timed(lambda: subprocess.run([sys.executable, "-c", "1 + 1"], check=True))
                for _ in range(max(20, args.n // 10))]

        print(f"driver={args.driver} pool={args.pool}")
        print(line("code/execute 1 + 1 (live session)", execute))
        print(line("session creation (first execute)", create))
        print(line("bare python3 -c '1 + 1'", bare))
        print(f"ratio live-session p50 / bare python p50: {pct(execute, 50) / pct(bare, 50):.2f}")
        print(f"target p50 <= 10 ms: {'met' if pct(execute, 50) <= 10 else 'NOT met'}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
