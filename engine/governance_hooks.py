"""The engine's side of governance: the instance policy at save and at run, and the audit events
of runs and sandbox executions (governance.actions records them; governance imports no engine).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from engine.validation import DefinitionInvalid, Problem

log = logging.getLogger("engine.governance")


@dataclass(frozen=True)
class PolicyProblem(Problem):
    """A validation problem that comes from the instance policy; `rule` names the rule."""

    rule: str = ""

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["rule"] = self.rule
        return d


def check_save(workflow, definition: dict, author) -> None:
    """Record the policy's decision on saving `definition`; raise DefinitionInvalid when denied.

    Call it outside the saving transaction, so that a denial stays recorded.
    """
    from governance.policy_actions import check_save as decide

    previous = workflow.head.definition if workflow is not None and workflow.head_id else None
    violations = decide(definition, author, workflow=workflow.pk if workflow is not None else None,
                        previous=previous)
    if violations:
        raise DefinitionInvalid([PolicyProblem(v.path, f"{v.message} [policy rule {v.rule}]", v.node_id, v.rule)
                                 for v in violations])


def _code_driver() -> str | None:
    """The sandbox driver code steps would run on now (process, libvirt, ...), when known."""
    from engine.steps.python import _chooser

    try:
        kind, obj = _chooser.backend(settings.STEPWELL_SANDBOX_DRIVER)
        if kind == "service":
            return str(obj.status().get("driver") or "") or None
        return obj.name if obj is not None else (settings.STEPWELL_SANDBOX_DRIVER or None)
    except Exception:  # the service did not answer: the step will say so itself
        log.debug("driver lookup", exc_info=True)
        return None


def run_refusal(run, definition: dict, effective: dict) -> str:
    """The error a run fails with when the current policy refuses it ("" when allowed).

    Also lowers `effective` (the run's settings) to the policy's timeout and memory ceilings, so
    steps that rely on the server's defaults stay within them.
    """
    from governance.policies import current
    from governance.policy_actions import check_run, describe

    has_code = any(n.get("type") == "action.python" for n in definition.get("nodes") or [])
    violations = check_run(definition, run.workflow.owner, actor=actor_of_run(run), workflow=run.workflow_id,
                           run=run.pk, driver=_code_driver() if has_code else None)
    if violations:
        return "refused by the instance policy: " + describe(violations)
    policy = current()
    defaults = (("default_timeout_s", policy.max_timeout_s, settings.STEPWELL_DEFAULT_STEP_TIMEOUT_S),
                ("default_memory_mib", policy.max_memory_mib, settings.STEPWELL_DEFAULT_STEP_MEMORY_MIB))
    for key, limit, server_default in defaults:
        if limit is not None:
            effective[key] = min(effective.get(key) or server_default, limit)
    return ""


def actor_of_user(user) -> str:
    """The audit's name of `user`: the API key's actor (`owner/key`, agents.auth) when the
    request came with one, else the username; "" for no user."""
    if user is None:
        return ""
    return getattr(user, "audit_actor", "") or user.get_username()


def actor_of_run(run) -> str:
    """Who a run acts for: who started it (as recorded at its start, so the worker names the
    same actor), else its trigger (`trigger:hook`, ...)."""
    if getattr(run, "actor", ""):
        return run.actor
    user = getattr(run, "started_by", None)
    if user is not None:
        return actor_of_user(user)
    return f"trigger:{run.trigger}"


def record_run(run, kind: str, **payload) -> None:
    """`run.started` / `run.cancelled` (inside the caller's transaction)."""
    from governance.actions import record

    record(kind, actor=actor_of_run(run), workflow=run.workflow_id, run=run.pk,
           payload={"trigger": run.trigger, "kind": run.kind, "version": run.version.number if run.version_id else None,
                    **payload})


def record_step(run, step, node: dict, params: dict, outcome) -> None:
    """The `execution` audit event of a code step's sandbox execution (a step that never reached
    a sandbox records none); for an AI agent step, one event with the code of all its tool calls.
    Never fails the run: a lost event is logged."""
    if node.get("type") == "action.agent":
        turns = (outcome.output or {}).get("turns") if isinstance(outcome.output, dict) else None
        code = "\n\n".join(str(t.get("code") or "") for t in turns or [] if isinstance(t, dict) and t.get("role") == "tool")
        inputs = {k: (params or {}).get(k) for k in ("connection", "system_prompt", "prompt")}
        if not (outcome.sandbox or {}).get("executions"):
            return
    elif node.get("type") == "action.python" and outcome.sandbox:
        code, inputs = str((node.get("parameters") or {}).get("code", "")), (params or {}).get("inputs")
    else:
        return
    from governance.actions import record_execution

    try:
        record_execution(
            code=code, inputs=inputs,
            output=outcome.output, stdout=outcome.stdout, stderr=outcome.stderr, status=str(outcome.status),
            error=outcome.error, sandbox=outcome.sandbox, workflow=run.workflow_id,
            version=run.version.number if run.version_id else None, run=run.pk, step=step.pk,
            node_id=node.get("id", ""), actor=actor_of_run(run), trigger=run.trigger)
    except Exception:
        log.exception("audit event of step %s of run %s", step.pk, run.pk)
