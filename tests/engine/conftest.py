"""A real app stack for worker-driven tests: a database of its own (SQLite file or PostgreSQL),
uvicorn and `run_worker` as subprocesses (process sandbox driver), spoken to over HTTP like any
client would."""
from __future__ import annotations

import atexit
import http.cookiejar
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """JSON over HTTP with token authentication."""

    def __init__(self, base: str, token: str | None):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None, raw: bool = False, timeout: float = 60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, content, headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as err:
            status, content, headers = err.code, err.read(), err.headers
        if raw:
            return status, content, headers
        return status, (json.loads(content) if content.strip() else None)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, {} if body is None else body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def create_workflow(self, definition: dict, name: str = "wf") -> dict:
        status, body = self.post("/api/workflows/", {"name": name, "definition": definition})
        assert status == 201, body
        return body

    def start(self, wf_id: int, payload=None) -> dict:
        status, body = self.post(f"/api/workflows/{wf_id}/runs/", {"payload": payload or {}})
        assert status == 201, body
        return body

    def wait(self, run_id: int, timeout: float = 30, until=None) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, run = self.get(f"/api/runs/{run_id}/")
            assert status == 200, run
            if (until(run) if until else run["status"] not in ("queued", "running")):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {run['status']} after {timeout} s: {run}")
            time.sleep(0.05)


_redis_dbs_in_use: set[int] = set()


@dataclass(frozen=True)
class _Template:
    """A migrated database with alice and bob (passwords pw-<name>-123, API tokens) and an
    instance policy whose egress ceiling is open (the workflows' own allow-lists decide;
    tests/governance closes it again): a SQLite file in `dir`, or the PostgreSQL database `name`."""

    dir: Path
    name: str
    tokens: dict


_templates: dict[str, _Template] = {}

TEMPLATE_SETUP = (
    "import json; from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token;"
    "from governance.policies import Policy;"
    "Policy.objects.update_or_create(pk=1, defaults={'egress_ceiling': ['*']});"
    "print(json.dumps({n: Token.objects.create(user=User.objects.create_user(n, password=f'pw-{n}-123')).key"
    " for n in ('alice', 'bob')}))")


def _template(base_url: str, env: dict) -> _Template:
    """The test session's template database for `base_url` (migrated once; every stack starts
    from a copy: a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL)."""
    kind = base_url if base_url.startswith(("postgres://", "postgresql://")) else ""
    if kind in _templates:
        return _templates[kind]
    folder = Path(tempfile.mkdtemp(prefix="stepwell-template-"))
    env = {**env, "STEPWELL_VAR_DIR": str(folder)}
    name = ""
    if kind:
        import psycopg

        name = f"stepwell_template_{os.urandom(6).hex()}"
        with psycopg.connect(kind, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = kind.rsplit("/", 1)[0] + "/" + name
    for args in (["migrate", "--noinput", "-v0"], ["shell", "-v0", "-c", TEMPLATE_SETUP]):
        out = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"template database: manage.py {args[0]} failed: {out.stderr}")
    _templates[kind] = _Template(folder, name, json.loads(out.stdout.strip().splitlines()[-1]))
    atexit.register(_drop_template, kind, _templates[kind])
    return _templates[kind]


def _drop_template(kind: str, template: _Template) -> None:
    shutil.rmtree(template.dir, ignore_errors=True)
    if kind:
        import psycopg

        with psycopg.connect(kind, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{template.name}" WITH (FORCE)')


class Stack:
    """A database of its own: a file in its folder on SQLite; with a PostgreSQL DATABASE_URL, a
    database created on that server and dropped at close. With REDIS_URL, a Redis database number
    of its own (1-63; the test process keeps 0), flushed first, so stacks neither share channel
    groups nor rate-limit counters."""

    def __init__(self, workers: int = 1, env: dict | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="stepwell-stack-"))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.pg_db = self.redis_db = None
        services = {}
        base_url = (env or {}).get("DATABASE_URL", os.environ.get("DATABASE_URL", ""))
        if base_url.startswith(("postgres://", "postgresql://")):
            self.pg_admin_url, self.pg_db = base_url, f"stepwell_stack_{os.urandom(6).hex()}"
            services["DATABASE_URL"] = base_url.rsplit("/", 1)[0] + "/" + self.pg_db
        redis_url = (env or {}).get("REDIS_URL", os.environ.get("REDIS_URL", ""))
        if redis_url:
            import redis

            self.redis_db = min(set(range(1, 64)) - _redis_dbs_in_use)
            _redis_dbs_in_use.add(self.redis_db)
            services["REDIS_URL"] = redis_url.rsplit("/", 1)[0] + f"/{self.redis_db}"
            redis.Redis.from_url(services["REDIS_URL"]).flushdb()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "designer.settings",
            "STEPWELL_VAR_DIR": str(self.dir),
            "DJANGO_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
            "SANDBOX_DRIVER": "process",
            "SANDBOX_SOCKET": str(self.dir / "no-sandbox-service.sock"),
            "STEPWELL_RUN_LEASE_S": "2",
            "STEPWELL_SCHEDULER_INTERVAL_MS": "300",
            "STEPWELL_WORKER_INTERVAL_MS": "500",
            "LOG_LEVEL": "WARNING",
            **(env or {}),
            **services,
        }
        self.procs: dict[str, subprocess.Popen] = {}
        template = _template(base_url, self.env)
        if self.pg_db:
            self._pg_admin(f'CREATE DATABASE "{self.pg_db}" TEMPLATE "{template.name}"')
        else:
            for suffix in ("", "-wal"):
                if (template.dir / f"db.sqlite3{suffix}").exists():
                    shutil.copyfile(template.dir / f"db.sqlite3{suffix}", self.dir / f"db.sqlite3{suffix}")
        self.tokens = dict(template.tokens)
        self.start_web()
        for i in range(workers):
            self.start_worker(f"worker{i}")

    def _pg_admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def manage(self, *args, check=True) -> str:
        out = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if check and out.returncode:
            raise RuntimeError(f"manage.py {args} failed: {out.stderr}")
        return out.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-v0", "-c", code)

    def set_policy(self, **values) -> None:
        """Set fields of the instance policy (governance.policies.Policy) in the stack's database."""
        self.shell("from governance.policies import Policy;"
                   f"Policy.objects.update_or_create(pk=1, defaults={values!r})")

    def session_key(self, username: str = "alice") -> str:
        """A signed-in session of `username` in the stack's database (for websocket cookies)."""
        return self.shell(
            "from django.contrib.auth.models import User;"
            "from django.contrib.sessions.backends.db import SessionStore;"
            f"u=User.objects.get(username={username!r}); s=SessionStore();"
            "s['_auth_user_id']=str(u.pk);"
            "s['_auth_user_backend']='django.contrib.auth.backends.ModelBackend';"
            "s['_auth_user_hash']=u.get_session_auth_hash(); s.create(); print(s.session_key)"
        ).strip().splitlines()[-1]

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "a")
        proc = subprocess.Popen(args, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_web(self, name: str = "web", port: int | None = None) -> str:
        """uvicorn (another one: a name and a port of its own); returns its base URL."""
        port = port or self.port
        self._spawn(name, [PY, "-m", "uvicorn", "designer.asgi:application", "--host", "127.0.0.1",
                           "--port", str(port), "--no-access-log"])
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/api/schema/workflow.json", timeout=1).read()
                return base
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("uvicorn did not start: " + (self.dir / f"{name}.log").read_text())

    def host_env(self, host: str) -> dict:
        """The environment of one simulated host: its own sandbox socket, process-driver folder
        and worker wake socket (for start_sandbox and start_worker)."""
        d = self.dir / host
        d.mkdir(exist_ok=True)
        for p in (self.dir, d):   # the sandboxes' unprivileged uids reach their folders through these
            os.chmod(p, 0o711)
        return {"SANDBOX_SOCKET": str(d / "sandbox.sock"), "SANDBOX_PROCESS_DIR": str(d / "process"),
                "STEPWELL_WAKE_SOCKET": str(d / "wake.sock")}

    def start_sandbox(self, name: str, env: dict, pool_size: int = 4, driver: str = "process",
                      timeout: float = 60) -> subprocess.Popen:
        """A sandbox service (`driver`: process or libvirt) on env's SANDBOX_SOCKET."""
        sock = Path(env["SANDBOX_SOCKET"])
        proc = self._spawn(name, [PY, "manage.py", "sandbox_service", "--driver", driver,
                                  "--pool-size", str(pool_size)], env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(sock))
                    return proc
                except OSError:
                    pass
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("sandbox service did not start: " + (self.dir / f"{name}.log").read_text()
                           + f" ({sock})")

    def start_worker(self, name: str = "worker0", *extra, env: dict | None = None):
        log = self.dir / f"{name}.log"
        seen = log.read_text().count("claim loops") if log.exists() else 0
        proc = self._spawn(name, [PY, "manage.py", "run_worker", "--concurrency", "4", *extra], env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.read_text().count("claim loops") > seen:
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("worker did not start: " + (self.dir / f"{name}.log").read_text())

    def kill(self, name: str, sig=signal.SIGKILL, timeout: float = 30):
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)
        del self.procs[name]   # only once it is gone: close() can still SIGKILL a slow one

    def api(self, user: str | None = "alice") -> Api:
        return Api(self.base, self.tokens.get(user) if user else None)

    def close(self):
        for name in list(self.procs):
            try:   # a teardown waits for no graceful shutdown (uvicorn's waits for open websockets)
                self.kill(name, signal.SIGTERM, timeout=5)
            except Exception:
                try:
                    self.kill(name, signal.SIGKILL)
                except Exception:
                    pass
        if self.pg_db:
            self._pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
            self.pg_db = None
        if self.redis_db is not None:
            _redis_dbs_in_use.discard(self.redis_db)
            self.redis_db = None
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    """One shared stack (web + one worker) for the engine tests that do not kill anything."""
    s = Stack()
    yield s
    s.close()


@pytest.fixture(scope="session")
def loopback_stack():
    """A shared stack whose instance lets HTTP steps reach 127.0.0.1 (and only that address), for
    tests that call a loopback test server (the `http_server` fixture). Its lease is long: these
    tests count calls, and a loaded test machine must not reap (and resume) their runs."""
    s = Stack(env={"STEPWELL_EGRESS_PRIVATE_NETWORKS": "127.0.0.1/32", "STEPWELL_RUN_LEASE_S": "30"})
    yield s
    s.close()


@pytest.fixture
def private_stack():
    """A stack of one's own, for tests that kill processes."""
    stacks = []

    def make(**kw):
        s = Stack(**kw)
        stacks.append(s)
        return s

    yield make
    for s in stacks:
        s.close()


def node(node_id: str, type_: str, parameters: dict | None = None, **extra) -> dict:
    return {"id": node_id, "type": type_, "name": node_id, "parameters": parameters or {},
            "position": {"x": 0, "y": 0}, **extra}


def edge(source: str, target: str, port: str = "out") -> dict:
    return {"source": source, "source_port": port, "target": target, "target_port": "in"}


def definition(nodes: list, edges: list, **settings) -> dict:
    return {"version": 1, "nodes": nodes, "edges": edges,
            "settings": {"variables": [], "allowed_hosts": [], **settings}}


@pytest.fixture
def wf():
    """Builders for definitions: wf.node, wf.edge, wf.definition."""
    class B:
        pass

    b = B()
    b.node, b.edge, b.definition = node, edge, definition
    return b
