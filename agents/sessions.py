"""The code-interpreter session service: run code, shell commands and file operations in a
caller's stateful sandbox session (sandbox isolation "session"). The HTTP API
(agents/sessions_api.py, Azure Container Apps dynamic sessions compatible) and the MCP server
call these functions; each takes (user, key or None, pool name, identifier, ...) and raises a
`SessionApiError` (its `status` is the HTTP status to answer) or `agents.quotas.QuotaExceeded`.

- A session is (pool, owner, identifier) -> a `PoolSession` row with a random sandbox key; an
  open session idle longer than the pool's cooldown_s counts as ended (marked on the next call,
  and the sandbox destroys the VM itself after the same idle time).
- New sessions are refused (429, Retry-After) when the pool holds max_sessions open sessions,
  when the key has its max_concurrent_sessions open, or when the sandbox has no free session
  slot; every call counts one execution of the key (executions per minute) and is refused once
  the key spent its session-seconds of the day.
- Calls on one session run one at a time (a lease on the row, `busy_until`): a second call
  waits up to BUSY_WAIT_S, then answers 429.
- File operations are small executions in the session: an upload places the files through the
  request's input files, list/download/delete evaluate one expression whose value is the
  answer and which binds no name in the user's namespace.
- Every execution is an `execution` audit event (actor: the key's) and a usage row tied to the key.
"""
from __future__ import annotations

import base64
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from agents import quotas
from agents.quotas import QuotaExceeded
from agents.sessionpools import IDENTIFIER_MAX, PoolSession, SessionPool

log = logging.getLogger("agents.sessions")

IDENTIFIER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~@:-]{0,%d}" % (IDENTIFIER_MAX - 1))
FILENAME_RE = re.compile(r"[^/\\\x00-\x1f]{1,255}")
BUSY_WAIT_S = 30.0          # how long a call waits for the one running in its session
BUSY_POLL_S = 0.05
LEASE_SLACK_S = 150.0       # a session's lease outlives its call's timeout by this much
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
WORKDIR = "/mnt/data"
SLOT_RETRY_S = 5


class SessionApiError(Exception):
    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequest(SessionApiError):
    status = 400


class NotFound(SessionApiError):
    status = 404


class SandboxDown(SessionApiError):
    status = 503


@dataclass
class Execution:
    """What one execution in a session answered."""

    status: str            # the sandbox's status: succeeded, failed, timeout, ...
    stdout: str
    stderr: str
    result: object
    duration_ms: float
    exit_code: int | None
    message: str
    session: str           # "new" or "resumed"


# --- validation -----------------------------------------------------------------------------
def check_identifier(identifier) -> str:
    if not isinstance(identifier, str) or not identifier:
        raise BadRequest("the 'identifier' query parameter is required (the session's name)")
    if not IDENTIFIER_RE.fullmatch(identifier):
        raise BadRequest(f"identifier must be 1 to {IDENTIFIER_MAX} characters: letters, digits and . _ ~ @ : -, "
                         "starting with a letter or digit")
    return identifier


def check_filename(name) -> str:
    """A plain file name under /mnt/data (a leading /mnt/data/ is dropped)."""
    name = name if isinstance(name, str) else ""
    if name.startswith(WORKDIR + "/"):
        name = name[len(WORKDIR) + 1:]
    if not FILENAME_RE.fullmatch(name) or name in (".", ".."):
        raise BadRequest(f"{name!r} is not a plain file name of /mnt/data (no folders)")
    return name


def get_pool(pool_name: str) -> SessionPool:
    pool = (SessionPool.objects.select_related("runtime").filter(name=pool_name).first()
            if isinstance(pool_name, str) else None)
    if pool is None:
        raise NotFound(f"no session pool named {pool_name!r}")
    return pool


# --- the sandbox ----------------------------------------------------------------------------
def _client():
    from sandbox.client import SandboxClient

    return SandboxClient()


def _end_sandbox(sandbox_key: str) -> None:
    from sandbox.contract import SandboxError

    try:
        _client().end_session(sandbox_key)
    except SandboxError as exc:
        log.warning("ending sandbox session %s: %s", sandbox_key[:8], exc)


def _policy_limits(pool: SessionPool, policy) -> tuple[float, float, int, list[str]]:
    """(default timeout, longest timeout, memory, hosts) of the pool's executions, within the
    server's and the instance `policy`'s limits."""
    from engine.validation import host_entry_covered

    cap = float(settings.STEPWELL_MAX_STEP_TIMEOUT_S)
    memory = min(int(pool.memory_mib), int(settings.STEPWELL_MAX_STEP_MEMORY_MIB))
    if policy.max_timeout_s is not None:
        cap = min(cap, float(policy.max_timeout_s))
    if policy.max_memory_mib is not None:
        memory = min(memory, int(policy.max_memory_mib))
    ceiling = list(policy.egress_ceiling)
    hosts = [str(h) for h in (pool.allowed_hosts or []) if host_entry_covered(ceiling, str(h))]
    return min(float(pool.timeout_s), cap), cap, memory, hosts


def _check_policy(user):
    """The instance policy's "who may run code" (code_steps_group) holds here as for code steps;
    returns the policy."""
    from governance.policies import current
    from governance.policy_actions import may_add_code

    policy = current()
    if not may_add_code(user, policy):
        raise SessionApiError(f"the instance policy lets only members of the group {policy.code_steps_group!r} "
                              "run code", 403)
    return policy


# --- sessions -------------------------------------------------------------------------------
def _expire_idle(pool: SessionPool, now) -> None:
    """Mark the pool's sessions idle past cooldown_s as ended (and tell the sandbox)."""
    stale = list(pool.idle_sessions(now).values_list("pk", "sandbox_key"))
    if not stale:
        return
    PoolSession.objects.filter(pk__in=[pk for pk, _ in stale], ended__isnull=True).update(ended=now)
    for _, key in stale:
        _end_sandbox(key)


def _retry_after(pool: SessionPool, now) -> float:
    """Seconds until the pool's least recently used open session reaches its cooldown."""
    oldest = PoolSession.objects.filter(pool=pool, ended__isnull=True).order_by("last_used").first()
    if oldest is None:
        return 1
    return max(1.0, pool.cooldown_s - (now - oldest.last_used).total_seconds())


def _open_session(user, key, pool: SessionPool, identifier: str) -> PoolSession:
    """The caller's open session, or a new one. Only a new session needs the pool's idle
    sessions swept first (they must not count against max_sessions); a call on a live session
    checks just its own idle time (one query less on the hot path)."""
    now = timezone.now()
    session = PoolSession.objects.filter(pool=pool, owner=user, identifier=identifier, ended__isnull=True).first()
    if session is not None:
        session.pool = pool   # (is_live reads its cooldown)
        if session.is_live(now):
            return session
    # the sweep ends the caller's own idle session too (when a concurrent call took it
    # meanwhile, the sweep leaves it and the create below meets it and answers it)
    _expire_idle(pool, now)
    with transaction.atomic():
        SessionPool.objects.select_for_update().filter(pk=pool.pk).first()   # serialise the counting
        open_in_pool = PoolSession.objects.filter(pool=pool, ended__isnull=True).count()
        if open_in_pool >= pool.max_sessions:
            raise QuotaExceeded(f"session pool {pool.name!r} is full ({pool.max_sessions} open sessions); "
                                "end a session or wait for an idle one to expire", _retry_after(pool, now))
        if key is not None:
            mine = PoolSession.objects.filter(api_key=key, ended__isnull=True)
            for other in SessionPool.objects.filter(pk__in=mine.values("pool")).exclude(pk=pool.pk):
                _expire_idle(other, now)   # idle sessions in other pools do not count either
            quotas.check_sessions(key, mine.count())
        try:
            with transaction.atomic():
                return PoolSession.objects.create(pool=pool, owner=user, api_key=key, identifier=identifier,
                                                  created=now, last_used=now)
        except IntegrityError:   # the same session opened by a concurrent call
            pass
    return PoolSession.objects.get(pool=pool, owner=user, identifier=identifier, ended__isnull=True)


def _lease(session: PoolSession, timeout_s: float) -> None:
    """Take the session's lease (one call at a time); 429 when it stays busy for BUSY_WAIT_S."""
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        now = timezone.now()
        taken = PoolSession.objects.filter(pk=session.pk, ended__isnull=True).exclude(busy_until__gt=now).update(
            busy_until=now + timedelta(seconds=timeout_s + LEASE_SLACK_S))
        if taken:
            return
        if not PoolSession.objects.filter(pk=session.pk, ended__isnull=True).exists():
            raise SessionApiError("the session ended meanwhile; call again to start a new one", 409)
        if time.monotonic() >= deadline:
            raise QuotaExceeded("the session is busy with another call", SLOT_RETRY_S)
        time.sleep(BUSY_POLL_S)


def _run(user, key, pool_name: str, identifier: str, code: str, *, timeout_s=None, files=(),
         kind: str = "code") -> Execution:
    """One execution in the caller's session (opened when there is none)."""
    from sandbox.contract import ContractError, ExecutionRequest, InputFile, SandboxError, SandboxUnavailable, Status

    identifier = check_identifier(identifier)
    pool = get_pool(pool_name)
    policy = _check_policy(user)
    if key is not None:
        quotas.check_session_seconds(key)
        quotas.hit_execution(key)
    timeout, cap, memory, hosts = _policy_limits(pool, policy)
    if timeout_s is not None:
        try:
            timeout = float(timeout_s)
        except (TypeError, ValueError):
            raise BadRequest("timeoutInSeconds must be a number of seconds") from None
        if not timeout > 0:
            raise BadRequest("timeoutInSeconds must be more than 0")
        timeout = min(timeout, cap)
    try:
        request = ExecutionRequest(code=code, isolation="session", timeout_s=timeout, memory_mib=memory,
                                   allowed_hosts=hosts, files=tuple(InputFile(n, c) for n, c in files),
                                   reuse_key="pending", session_idle_s=float(pool.cooldown_s), layer=pool.layer())
    except ContractError as exc:
        raise BadRequest(f"invalid request: {exc}") from None
    session = _open_session(user, key, pool, identifier)
    _lease(session, timeout)
    started = time.monotonic()
    result = None
    try:
        from dataclasses import replace

        result = _client().execute(replace(request, reuse_key=session.sandbox_key))
    except SandboxUnavailable as exc:
        raise SandboxDown(f"the sandbox service is unavailable: {exc}") from None
    except SandboxError as exc:
        raise SandboxDown(f"the sandbox failed: {exc}") from None
    finally:
        session_s = time.monotonic() - started
        now = timezone.now()
        changes = {"busy_until": None, "last_used": now, "executions": F("executions") + 1}
        if result is None or result.status not in (Status.SUCCEEDED, Status.FAILED):
            changes["ended"] = now   # the sandbox ended the session (or never started it)
        # (an `end` meanwhile stays: `ended` is never cleared here)
        with transaction.atomic():   # one commit: the session's row, then (below) audit and usage
            PoolSession.objects.filter(pk=session.pk).update(**changes)
            if result is not None:
                _account(user, key, pool, session, code, kind, result, request, session_s)
    refused = result.status == Status.ERROR and ("no free session slot" in result.message
                                                 or "session is busy" in result.message)
    if refused:
        raise QuotaExceeded(f"the sandbox has no room for another session: {result.message}", SLOT_RETRY_S)
    return Execution(status=result.status.value, stdout=result.stdout, stderr=result.stderr, result=result.result,
                     duration_ms=result.duration_ms, exit_code=result.exit_code, message=result.message,
                     session=str(result.metadata.get("session") or ""))


def _account(user, key, pool, session, code, kind, result, request, session_s) -> None:
    """The execution's audit event and usage row (never fails the call)."""
    from governance.actions import actor_of, record_execution

    meta = dict(result.metadata)
    meta.update({"status": result.status.value, "exit_code": result.exit_code, "duration_ms": result.duration_ms,
                 "timeout_s": request.timeout_s, "memory_mib": request.memory_mib,
                 "session_s": round(session_s, 6), "egress": list(result.egress)})
    try:
        with transaction.atomic():   # a savepoint: a failure here leaves the caller's transaction usable
            record_execution(code=code, inputs={"pool": pool.name, "identifier": session.identifier, "kind": kind},
                             output=result.result, stdout=result.stdout, stderr=result.stderr,
                             status=result.status.value, error=result.message, sandbox=meta,
                             node_id=f"sessionpool:{pool.name}", trigger="session_api",
                             actor=key.actor if key is not None else actor_of(user))
    except Exception:
        log.exception("audit event of a session execution")
    try:
        with transaction.atomic():
            if key is not None:
                quotas.record_usage(key, meta)
            else:
                from governance.usage import record

                record(meta=meta, user_id=user.pk, workflow_id=None, run_id=None, step_id=None)
    except Exception:
        log.exception("usage of a session execution")


# --- the operations -------------------------------------------------------------------------
def execute(user, key, pool_name: str, identifier: str, code: str, timeout_s=None) -> Execution:
    """Run Python `code` in the session; `result` is its last expression's value."""
    if not isinstance(code, str) or not code.strip():
        raise BadRequest("'code' must be a non-empty string of Python")
    return _run(user, key, pool_name, identifier, code, timeout_s=timeout_s)


SHELL_CODE = ("(lambda __r: {'exitCode': __r.returncode, 'stdout': __r.stdout, 'stderr': __r.stderr})("
              "__import__('subprocess').run(%r, shell=True, capture_output=True, text=True, cwd=%r, "
              "timeout=%r))")


def execute_shell(user, key, pool_name: str, identifier: str, command: str, timeout_s=None) -> Execution:
    """Run a shell command in the session (through subprocess, in /mnt/data); the answer's
    stdout/stderr/exit_code are the command's."""
    if not isinstance(command, str) or not command.strip():
        raise BadRequest("'shellCommand' must be a non-empty string")
    budget = float(timeout_s) if isinstance(timeout_s, (int, float)) and timeout_s > 0 else None
    pool = get_pool(pool_name)
    inner = max(1.0, (budget or pool.timeout_s) - 1.0)
    ex = _run(user, key, pool_name, identifier, SHELL_CODE % (command, WORKDIR, inner), timeout_s=timeout_s,
              kind="shell")
    if ex.status == "succeeded" and isinstance(ex.result, dict):
        out = ex.result
        return Execution(status=ex.status, stdout=str(out.get("stdout") or ""), stderr=str(out.get("stderr") or ""),
                         result=None, duration_ms=ex.duration_ms, exit_code=out.get("exitCode"),
                         message=ex.message, session=ex.session)
    return ex


def _file_entry(d: dict) -> dict:
    mtime = datetime.fromtimestamp(float(d.get("mtime") or 0), tz=dt_timezone.utc)
    return {"filename": d["name"], "size": int(d["size"]), "lastModifiedTime": mtime.isoformat().replace("+00:00", "Z")}


LIST_CODE = ("sorted([{'name': __e.name, 'size': __e.stat().st_size, 'mtime': __e.stat().st_mtime} "
             "for __e in __import__('os').scandir(%r) if __e.is_file()], key=lambda __d: __d['name'])")


def _expect(ex: Execution, what: str):
    if ex.status != "succeeded":
        detail = (ex.stderr.strip().splitlines() or [ex.message or ex.status])[-1]
        raise SessionApiError(f"{what} failed in the session ({ex.status}): {detail}", 500)
    return ex.result


def list_files(user, key, pool_name: str, identifier: str) -> list[dict]:
    """The files of the session's /mnt/data: [{"filename", "size", "lastModifiedTime"}]."""
    ex = _run(user, key, pool_name, identifier, LIST_CODE % WORKDIR, kind="files.list")
    return [_file_entry(d) for d in (_expect(ex, "listing the files") or [])]


def upload(user, key, pool_name: str, identifier: str, files: list[tuple[str, bytes]]) -> list[dict]:
    """Place `files` [(name, content)] in the session's /mnt/data; their entries as list_files gives them."""
    if not files:
        raise BadRequest("no file in the request (multipart field 'file')")
    named = [(check_filename(n), bytes(c)) for n, c in files]
    if sum(len(c) for _, c in named) > MAX_UPLOAD_BYTES:
        raise SessionApiError(f"the files exceed {MAX_UPLOAD_BYTES} bytes", 413)
    names = [n for n, _ in named]
    code = ("[{'name': __n, 'size': __import__('os').stat(%r + '/' + __n).st_size, "
            "'mtime': __import__('os').stat(%r + '/' + __n).st_mtime} for __n in %r]") % (WORKDIR, WORKDIR, names)
    ex = _run(user, key, pool_name, identifier, code, files=named, kind="files.upload")
    return [_file_entry(d) for d in (_expect(ex, "uploading the files") or [])]


READ_CODE = ("(lambda __p: {'b64': __import__('base64').b64encode(open(__p, 'rb').read()).decode()} "
             "if __import__('os').path.isfile(__p) else None)(%r)")
DELETE_CODE = ("(lambda __p: (__import__('os').remove(__p), True)[1] "
               "if __import__('os').path.isfile(__p) else False)(%r)")


def download(user, key, pool_name: str, identifier: str, name: str) -> bytes:
    """The content of /mnt/data/<name> in the session; NotFound when there is no such file."""
    name = check_filename(name)
    ex = _run(user, key, pool_name, identifier, READ_CODE % f"{WORKDIR}/{name}", kind="files.download")
    value = _expect(ex, "reading the file")
    if not isinstance(value, dict):
        raise NotFound(f"no file {name!r} in the session")
    return base64.b64decode(value["b64"])


def delete_file(user, key, pool_name: str, identifier: str, name: str) -> None:
    name = check_filename(name)
    ex = _run(user, key, pool_name, identifier, DELETE_CODE % f"{WORKDIR}/{name}", kind="files.delete")
    if _expect(ex, "deleting the file") is not True:
        raise NotFound(f"no file {name!r} in the session")


def end(user, key, pool_name: str, identifier: str) -> bool:
    """End the caller's session (its sandbox VM is destroyed); False when none was open."""
    identifier = check_identifier(identifier)
    pool = get_pool(pool_name)
    now = timezone.now()
    _expire_idle(pool, now)
    session = PoolSession.objects.filter(pool=pool, owner=user, identifier=identifier, ended__isnull=True).first()
    if session is None:
        return False
    PoolSession.objects.filter(pk=session.pk, ended__isnull=True).update(ended=now)
    _end_sandbox(session.sandbox_key)
    return True
