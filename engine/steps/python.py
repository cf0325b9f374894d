"""Execute Python Code: one single-use sandbox per execution (`settings.isolation: execution`,
the default), or a sandbox VM reused across executions of the same workflow version and owner,
each in a fresh process (`workflow`; the process driver always uses a fresh sandbox).

The sandbox service is used when its socket answers (it owns the warm pool); otherwise this
process keeps one started local driver (SANDBOX_DRIVER, or STEPWELL_SANDBOX_DRIVER). User code
never runs in the web process: steps run in the worker.

Each execution carries an id; when the run is cancelled the step asks the sandbox to cancel that
execution (the process driver kills its cgroup, the libvirt driver destroys its VM), waits a
moment for what it printed so far, and ends as cancelled.
"""
from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout

from django.conf import settings

from engine.status import Status, step_status_for
from engine.steps import Outcome
from sandbox.client import Chooser
from sandbox.contract import ContractError, ExecutionRequest, SandboxError

log = logging.getLogger("engine.steps.python")

_calls = ThreadPoolExecutor(max_workers=64, thread_name_prefix="sandbox-call")
SERVICE_RECHECK_S = 10.0
_chooser = Chooser(recheck_s=SERVICE_RECHECK_S, keep_local=True, status_timeout=1.0)
# How long a cancelled step waits for the stopped execution's result (its output so far).
CANCEL_WAIT_S = 10.0


def backend_name() -> str:
    return _chooser.describe(settings.STEPWELL_SANDBOX_DRIVER)


def _execute(request: ExecutionRequest, execution_id: str, live=None):
    """The result and the session's seconds, from requesting a sandbox to its release (metering).
    `live`: an engine.live_output.LiveOutput fed with the output while the code runs."""
    started = time.monotonic()
    result = _chooser.execute(request, settings.STEPWELL_SANDBOX_DRIVER, execution_id=execution_id,
                              on_output=live.add if live is not None else None)
    return result, time.monotonic() - started


def effective_allowed_hosts(workflow_settings: dict, params: dict) -> list[str]:
    """The hosts this step's code may reach: the workflow's `settings.allowed_hosts`, narrowed by
    the node's own `allowed_hosts` when it has one (entries the workflow does not cover are
    dropped here too, so a step can never widen the list)."""
    from engine.validation import host_entry_covered

    workflow = [str(h) for h in (workflow_settings.get("allowed_hosts") or [])]
    if params.get("allowed_hosts") is None:
        return workflow
    return [str(h) for h in params["allowed_hosts"] if host_entry_covered(workflow, str(h))]


def reuse_key(run_id: int) -> str:
    """What a sandbox VM may be reused across (`settings.isolation: workflow`): the run's workflow
    version (and its unsaved draft, for a test of one) and the workflow's owner."""
    from engine.models import Run

    run = Run.objects.select_related("workflow").only(
        "version_id", "draft_hash", "workflow__owner_id").get(pk=run_id)
    key = f"wf{run.workflow_id}.v{run.version_id}.o{run.workflow.owner_id}"
    return key + (f".d{run.draft_hash[:32]}" if run.draft_hash else "")


def _cancel(execution_id: str) -> None:
    try:
        _chooser.cancel(execution_id)
    except SandboxError as exc:
        log.warning("cancelling sandbox execution %s: %s", execution_id, exc)


def build_request(ctx, params) -> ExecutionRequest:
    s = ctx.settings
    timeout = params.get("timeout_s") or s.get("default_timeout_s") or settings.STEPWELL_DEFAULT_STEP_TIMEOUT_S
    memory = params.get("memory_mib") or s.get("default_memory_mib") or settings.STEPWELL_DEFAULT_STEP_MEMORY_MIB
    env = {v["name"]: v["value"] for v in s.get("variables", [])}
    env.update(getattr(ctx, "secrets", None) or {})   # secrets win over variables of the same name
    inputs = params.get("inputs", {})
    isolation = s.get("isolation") or "execution"
    return ExecutionRequest(
        code=params.get("code", ""), inputs={} if inputs is None else inputs, env=env,
        allowed_hosts=effective_allowed_hosts(s, params),
        isolation=isolation, reuse_key=reuse_key(ctx.run_id) if isolation == "workflow" else "",
        timeout_s=min(float(timeout), settings.STEPWELL_MAX_STEP_TIMEOUT_S),
        memory_mib=min(int(memory), settings.STEPWELL_MAX_STEP_MEMORY_MIB),
    )


def run(ctx, params) -> Outcome:
    try:
        request = build_request(ctx, params)
    except (ContractError, TypeError, ValueError) as exc:
        return Outcome.failed(f"invalid sandbox request: {exc}")
    execution_id = f"run{ctx.run_id}-{ctx.node.get('id', '')[:40]}-{uuid.uuid4().hex[:16]}"
    live = getattr(ctx, "live", None)
    future = _calls.submit(_execute, request, execution_id, live)
    cancelled = False
    while True:  # stay responsive to cancellation while the sandbox works
        try:
            result, session_s = future.result(timeout=CANCEL_WAIT_S if cancelled else 0.05)
            break
        except FutureTimeout:
            if live is not None:
                live.pump()
            if cancelled:   # no result in time: the step ends anyway, with the output seen live
                out, err = live.text() if live is not None else ("", "")
                return Outcome(status=Status.CANCELLED, ports=(), stdout=out, stderr=err,
                               error="cancelled while the code was running; the sandbox execution was told to stop")
            if ctx.cancel.is_set():
                cancelled = True
                _cancel(execution_id)
        except SandboxError as exc:
            if cancelled:
                out, err = live.text() if live is not None else ("", "")
                return Outcome(status=Status.CANCELLED, ports=(), stdout=out, stderr=err,
                               error=f"cancelled while the code was running ({exc})")
            return Outcome.failed(f"sandbox unavailable: {exc}")
    meta = dict(result.metadata)
    meta.update({"status": result.status.value, "exit_code": result.exit_code,
                 "duration_ms": result.duration_ms, "message": result.message,
                 "stdout_truncated": result.stdout_truncated, "stderr_truncated": result.stderr_truncated,
                 "timeout_s": request.timeout_s, "memory_mib": request.memory_mib,
                 "session_s": round(session_s, 6), "egress": list(result.egress)})
    if live is not None:
        live.pump(force=True)   # the last lines before the step's record takes over
    stdout, stderr = result.stdout, result.stderr
    if cancelled and live is not None:   # what was seen live, when the stopped sandbox kept less
        seen_out, seen_err = live.text()
        stdout = seen_out if len(seen_out) > len(stdout) else stdout
        stderr = seen_err if len(seen_err) > len(stderr) else stderr
    common = dict(stdout=stdout, stderr=stderr, sandbox=meta, files=result.files)
    if cancelled:
        return Outcome(status=Status.CANCELLED, ports=(), error="cancelled while the code was running; "
                       f"the sandbox execution was stopped ({result.status.value}: {result.message})",
                       **{**common, "files": ()})
    status = step_status_for(result.status)
    if status == Status.SUCCEEDED:
        return Outcome(output=result.result, **common)
    if status == Status.TIMED_OUT:
        return Outcome(status=status, ports=(), error=result.message or
                       f"the code ran longer than {request.timeout_s:g} s", **common)
    last = (result.stderr.strip().splitlines() or [""])[-1].strip()
    message = "; ".join(m for m in (last, result.message) if m) or "failed"
    return Outcome.failed(f"{result.status.value}: {message}", **common)
