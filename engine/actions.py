"""State changes of runs. Views and the worker call these; each ends in one notification
(the StepEvent appended by `engine.states.transition`, or a wake-up of the worker)."""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from engine.drafts import definition_hash
from engine.governance_hooks import actor_of_user, record_run
from engine.models import HookToken, PinnedOutput, Run, ScheduleTick, StepRun, Workflow
from engine.states import begin, transition
from engine.status import Status
from engine.tasks import execute_run
from engine.wake import poke

log = logging.getLogger("engine.actions")


class RunRefused(ValueError):
    """The run cannot start (e.g. the workflow has no saved version, or the node does not exist)."""


class TooManyRuns(RunRefused):
    """The workflow's owner already has STEPWELL_MAX_ACTIVE_RUNS_PER_USER runs queued or running
    (hooks answer 429 with Retry-After: `retry_after_s`)."""

    retry_after_s = 5


def _check_active_runs(owner_id: int) -> None:
    """:raises TooManyRuns: the owner is at the cap. Locks the owner's row (PostgreSQL) so that
    concurrent starts of one user count one after the other."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    cap = settings.STEPWELL_MAX_ACTIVE_RUNS_PER_USER
    list(get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk", flat=True))
    active = Run.objects.filter(workflow__owner_id=owner_id, status__in=[Status.QUEUED, Status.RUNNING]).count()
    if active >= cap:
        raise TooManyRuns(f"too many runs at once: {active} of this user's runs are queued or running "
                          f"(limit {cap}, STEPWELL_MAX_ACTIVE_RUNS_PER_USER); retry when one has finished")


def node_params_hash(node: dict) -> str:
    """Fingerprint of what a node does (type + parameters); pins go stale when it changes."""
    raw = json.dumps({"type": node.get("type"), "parameters": node.get("parameters")}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def trigger_payload(body=None, *, headers=None, query=None, method="API", **extra) -> dict:
    """The trigger's output: every trigger puts its JSON under `body`."""
    payload = {"body": body if body is not None else {}, "headers": headers or {}, "query": query or {},
               "method": method}
    payload.update(extra)
    return payload


def _holds_nul(value) -> bool:
    """Whether a JSON value holds U+0000 in a key or string (PostgreSQL's json/text cannot)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


@transaction.atomic
def do_start_run(workflow, payload: dict, trigger: str = Run.Trigger.MANUAL, started_by=None, *,
                 version=None, rerun_of=None, reply_socket: str = "", kind: str = Run.Kind.RUN,
                 test_node: str = "", test_upstream: dict | None = None, draft: dict | None = None) -> Run:
    """Create a queued run of `version` (default: the head) and enqueue it. With `draft` (an
    unsaved definition, already validated), the run executes it and records its hash; `version`
    is then the version the draft is based on.

    :raises RunRefused: the workflow has no version, or the payload holds a NUL character.
    :raises TooManyRuns: the workflow's owner has STEPWELL_MAX_ACTIVE_RUNS_PER_USER runs active.
    """
    version = version or workflow.head
    if version is None:
        raise RunRefused("the workflow has no saved version")
    if _holds_nul(payload):
        raise RunRefused("the payload holds a NUL character (\\u0000), which a run cannot store")
    _check_active_runs(workflow.owner_id)
    run = begin(Run, Status.QUEUED, data={"trigger": trigger, "kind": kind},
                workflow=workflow, version=version, payload=payload, trigger=trigger,
                started_by=started_by, actor=actor_of_user(started_by), rerun_of=rerun_of, reply_socket=reply_socket,
                kind=kind, test_node=test_node, test_upstream=test_upstream,
                definition=draft, draft_hash=definition_hash(draft) if draft is not None else "")
    execute_run.enqueue(run.pk)
    transaction.on_commit(poke)
    record_run(run, "run.started")
    return run


def do_cancel_run(run: Run) -> Run:
    """Ask a run to stop: a queued run is cancelled at once, a running one at its next check."""
    if Run.objects.filter(pk=run.pk, status__in=[Status.QUEUED, Status.RUNNING]).update(cancel_requested=True):
        record_run(run, "run.cancelled")
    run.refresh_from_db()
    if run.status == Status.QUEUED:
        transition(run, Status.CANCELLED, expect=Status.QUEUED, error="cancelled before it started")
    run.refresh_from_db()
    return run


def do_rerun(run: Run, user, same_version: bool = False) -> Run:
    """Start a new run with the same trigger payload (on the current head unless `same_version`)."""
    return do_start_run(run.workflow, run.payload, Run.Trigger.RERUN, user,
                        version=run.version if same_version else None, rerun_of=run)


def latest_outputs(workflow) -> tuple[dict | None, dict]:
    """(trigger payload, {node_id: {"output", "status"}}) of the newest finished run."""
    run = workflow.runs.filter(kind=Run.Kind.RUN, status__in=[Status.SUCCEEDED, Status.FAILED,
                                                              Status.TIMED_OUT]).order_by("-id").first()
    if run is None:
        return None, {}
    steps = {}
    for s in StepRun.objects.filter(run=run, item_index__isnull=True, status=Status.SUCCEEDED).order_by("id"):
        steps[s.node_id] = {"output": s.output, "status": s.status}
    return run.payload, steps


def test_namespace(workflow, node_id: str, sample: dict | None, use_latest: bool,
                   definition: dict | None = None) -> dict:
    """The mapping namespace a step test runs with: latest run outputs, then pins, then `sample`
    (nodes and the trigger's sample payload from `definition`, default the saved one)."""
    definition = definition if definition is not None else (workflow.definition or {})
    nodes = {n["id"]: n for n in definition.get("nodes", [])}
    ns: dict = {"trigger": None, "steps": {}}
    if use_latest:
        trigger, steps = latest_outputs(workflow)
        ns["trigger"], ns["steps"] = trigger, steps
    for pin in PinnedOutput.objects.filter(workflow=workflow):
        if pin.node_id in nodes and pin.node_id != node_id:
            ns["steps"][pin.node_id] = {"output": pin.output, "status": "succeeded", "pinned": True}
    trigger_node = next((n for n in nodes.values() if n["type"].startswith("trigger.")), None)
    if trigger_node is not None:
        if ns["trigger"] is None and trigger_node["id"] in ns["steps"]:
            ns["trigger"] = ns["steps"][trigger_node["id"]]["output"]
        if ns["trigger"] is None and "sample_payload" in trigger_node.get("parameters", {}):
            ns["trigger"] = trigger_payload(trigger_node["parameters"]["sample_payload"])
    if sample:
        for key in ("trigger", "item", "index"):
            if key in sample:
                ns[key] = sample[key]
        for sid, value in (sample.get("steps") or {}).items():
            ns["steps"][sid] = value if isinstance(value, dict) and "output" in value else {
                "output": value, "status": "succeeded"}
    if ns["trigger"] is None:
        ns["trigger"] = trigger_payload({})
    return ns


def do_test_node(workflow, node_id: str, user, sample: dict | None = None, use_latest: bool = False,
                 reply_socket: str = "", draft: dict | None = None) -> Run:
    """Queue a step test: a Run of kind=test that executes only `node_id`, of the saved head or
    of `draft` (the editor's unsaved definition, validated by the caller; nothing is saved).

    :raises RunRefused: no such node in the head version (or the draft).
    """
    definition = draft if draft is not None else (workflow.definition or {})
    if not any(n["id"] == node_id for n in definition.get("nodes", [])):
        where = "draft" if draft is not None else "workflow's latest version"
        raise RunRefused(f"node {node_id!r} is not in the {where}")
    ns = test_namespace(workflow, node_id, sample, use_latest, definition)
    return do_start_run(workflow, ns["trigger"], Run.Trigger.TEST, user, kind=Run.Kind.TEST,
                        test_node=node_id, test_upstream=ns, reply_socket=reply_socket, draft=draft)


def do_pin_output(workflow, node_id: str, output, source_run: Run | None = None) -> PinnedOutput:
    """Pin `output` as the node's sample data (stale once the node's parameters change).

    :raises RunRefused: no such node in the head version.
    """
    # a step test of a draft pins what the draft's node did
    definition = (source_run.definition if source_run is not None and source_run.definition is not None
                  else workflow.definition) or {}
    node = next((n for n in definition.get("nodes", []) if n["id"] == node_id), None)
    if node is None:
        raise RunRefused(f"node {node_id!r} is not in the workflow's latest version")
    pin, _ = PinnedOutput.objects.update_or_create(
        workflow=workflow, node_id=node_id,
        defaults={"output": output, "params_hash": node_params_hash(node), "source_run": source_run})
    return pin


def do_unpin_output(workflow, node_id: str) -> bool:
    return PinnedOutput.objects.filter(workflow=workflow, node_id=node_id).delete()[0] > 0


def hook_for(workflow) -> HookToken:
    """The workflow's hook token, created on first use."""
    hook, _ = HookToken.objects.get_or_create(workflow=workflow)
    return hook


def do_rotate_hook(workflow) -> HookToken:
    """Replace the hook token; the old URL stops working."""
    HookToken.objects.filter(workflow=workflow).delete()
    return HookToken.objects.create(workflow=workflow)


def _schedule_trigger(definition: dict | None) -> dict | None:
    for n in (definition or {}).get("nodes", []):
        if n.get("type") == "trigger.schedule":
            return n
    return None


def due_time(cron: str, tz: str | None, now: datetime) -> datetime:
    """The latest due time at or before `now` (UTC)."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    zone = ZoneInfo(tz) if tz else ZoneInfo("UTC")
    it = croniter(cron, (now + timedelta(microseconds=1)).astimezone(zone))
    return it.get_prev(datetime).astimezone(ZoneInfo("UTC"))


def do_start_due_schedules(now: datetime | None = None, grace_s: float = 600.0) -> list[Run]:
    """Start one run per due schedule time not started yet (any number of schedulers may call this)."""
    now = now or timezone.now()
    started = []
    for wf in Workflow.objects.select_related("head").exclude(head=None):
        node = _schedule_trigger(wf.head.definition)
        if node is None:
            continue
        params = node.get("parameters", {})
        try:
            due = due_time(params["cron"], params.get("timezone"), now)
        except Exception as exc:
            log.warning("workflow %s: bad schedule %r: %s", wf.pk, params.get("cron"), exc)
            continue
        if due < wf.head.created or (now - due).total_seconds() > grace_s:
            continue  # before this version existed, or missed long ago: no backfill
        try:
            with transaction.atomic():
                tick = ScheduleTick.objects.create(workflow=wf, due=due)
                run = do_start_run(wf, trigger_payload({}, method="SCHEDULE", scheduled_for=due.isoformat()),
                                   Run.Trigger.SCHEDULE)
                tick.run = run
                tick.save(update_fields=["run"])
        except IntegrityError:
            continue  # another scheduler started it
        except RunRefused as exc:  # the owner is at the runs cap: this time is tried again next pass
            log.warning("workflow %s: schedule not started: %s", wf.pk, exc)
            continue
        started.append(run)
    return started
