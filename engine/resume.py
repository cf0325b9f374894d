"""Resume after a lost worker: a running run whose lease expired (its worker was killed, or hung
past STEPWELL_RUN_LEASE_S) is taken over by another worker's reaper and continued from its last
finished step, instead of failing.

The reaper (`reap_lost_runs`, called by every worker's scheduler loop):

1. fences the run: a conditional UPDATE moves the expired lease forward, so of several reapers
   exactly one handles it (and a late renewal by the lost worker no longer matches: engine/
   executor.py `Leases` renews only runs still claimed by the execution's own worker id);
2. ends every step record still running or queued as failed with "worker lost" (the sandbox
   execution behind it is stopped where it ran: the process driver's sandboxes die with the
   worker, and a sandbox service cancels the execution of a client whose connection closed);
3. decides: when an interrupted step that acts outside the engine (a code step or an HTTP call,
   which may have done part of their work) has no attempt left under its node's retry policy
   (the same `max_attempts` the executor uses; no policy means one attempt), or the run was
   resumed STEPWELL_MAX_RUN_RESUMES times already, the run fails with "step 'X': worker lost".
   Steps the engine computes itself (triggers, Conditions, Compose, Response, For each) have no
   effect outside the run and always run again;
4. otherwise moves the run back to `queued` (a guarded running -> queued transition, event data
   {"resumed": true, "lost_worker": ...}) and enqueues it through django-tasks like any run.

The worker that claims it builds a `ResumePlan` from the run's own step records: a node (in a
given For each iteration) that already succeeded is not run again, its recorded output and
taken port are used and no new record is made (a Response's reply is stored if the lost worker
had not stored it yet); a node skipped before is not recorded twice; the
interrupted node runs again as its next attempt (attempt numbers continue). A For each that was
interrupted runs again, its finished iterations reused, at any depth: a record names its
iteration in every enclosing For each (`StepRun.item_path`, "2.5"). (A rerun, engine/rerun.py,
whose `ports_of` this shares, still runs nested bodies again in full.)
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from engine.graph import Graph
from engine.models import Run, StepEvent, StepRun
from engine.states import transition
from engine.status import Status

log = logging.getLogger("engine.resume")

WORKER_LOST = "worker lost"
# Node types whose interrupted attempt may have acted outside the run: only their retry policy
# lets them run again.
ACTING = frozenset({"action.python", "action.http", "action.agent"})


def index_of(item: tuple) -> int | None:
    """The innermost For each item index of an iteration path (StepRun.item_index), or None."""
    return item[-1] if item else None


def path_of(item: tuple) -> str:
    """StepRun.item_path of an iteration path: (2, 5) -> "2.5", () -> ""."""
    return ".".join(str(i) for i in item)


def max_attempts(node: dict) -> int:
    """The attempts the node's retry policy allows (as the executor counts them)."""
    policy = node.get("retry") or {}
    try:
        wanted = int(policy.get("max_attempts", 1))
    except (TypeError, ValueError):
        wanted = 1
    return max(1, min(wanted, settings.STEPWELL_MAX_RETRY_ATTEMPTS))


def resumes_of(run: Run) -> int:
    """How many times the run was put back in the queue after a lost worker."""
    return StepEvent.objects.filter(run_id=run.pk, step__isnull=True, status=Status.QUEUED,
                                    data__resumed=True).count()


class ResumePlan:
    """What a resumed run takes from its own earlier attempt."""

    def __init__(self, run: Run, graph: Graph):
        self.graph = graph
        nested = {n for n, owner in graph.owner.items() if owner and graph.owner.get(owner)}
        self.succeeded: dict[tuple[str, str], StepRun] = {}   # (node id, item path): the record
        self.skipped: set[tuple[str, str]] = set()
        self.attempts: dict[tuple[str, str], int] = {}
        for step in StepRun.objects.filter(run_id=run.pk).order_by("id"):
            if step.node_id not in graph.nodes:
                continue
            path = step.item_path
            if not path and step.item_index is not None:
                # a record from before item paths: only a one-level loop's index is its path
                if step.node_id in nested:
                    continue
                path = str(step.item_index)
            key = (step.node_id, path)
            if step.status == Status.SUCCEEDED:
                self.succeeded[key] = step
            elif step.status == Status.SKIPPED:
                self.skipped.add(key)
            else:
                self.attempts[key] = max(self.attempts.get(key, 0), step.attempt)
        self._restore_response(run)

    def _restore_response(self, run: Run) -> None:
        """A Response step recorded as succeeded whose reply the lost worker had not stored yet
        (it died between the two writes): store it now, as the executor would have."""
        if run.response is not None:
            return
        for (node_id, _), step in self.succeeded.items():
            if self.graph.nodes[node_id]["type"] == "action.response":
                from engine.executor import reply

                Run.objects.filter(pk=run.pk).update(response=step.output)
                run.response = step.output
                reply(run)
                return

    def finished(self, node_id: str, item: tuple):
        """The Outcome of a node (in iteration `item`) that already succeeded in this run, or
        None (it runs)."""
        step = self.succeeded.get((node_id, path_of(item)))
        if step is None:
            return None
        from engine.rerun import ports_of
        from engine.steps import Outcome

        return Outcome(output=step.output, ports=ports_of(self.graph.nodes[node_id], step.output))

    def was_skipped(self, node_id: str, item: tuple) -> bool:
        return (node_id, path_of(item)) in self.skipped

    def attempts_done(self, node_id: str, item: tuple) -> int:
        """Attempts of a node that has not succeeded yet (0: none)."""
        key = (node_id, path_of(item))
        if key in self.succeeded:
            return 0
        return self.attempts.get(key, 0)


def plan_for(run: Run, graph: Graph) -> ResumePlan | None:
    """The plan of a run that was resumed (None for a run on its first worker)."""
    return ResumePlan(run, graph) if resumes_of(run) else None


def _fence(run: Run, now) -> bool:
    """Take the expired run for this reaper (one reaper wins)."""
    hold = now + timedelta(seconds=settings.STEPWELL_RUN_LEASE_S)
    return bool(Run.objects.filter(pk=run.pk, status=Status.RUNNING, lease_expires__lt=now)
                .update(lease_expires=hold, worker=f"reaper:{run.worker or '?'}"[:80]))


def _interrupted(run: Run) -> list[StepRun]:
    """End the run's unfinished step records as failed ("worker lost"); returns them."""
    lost = []
    for step in StepRun.objects.filter(run=run, status__in=[Status.RUNNING, Status.QUEUED]).order_by("id"):
        if transition(step, Status.FAILED, expect=step.status, error=WORKER_LOST):
            lost.append(step)
    return lost


def _no_attempt_left(run: Run, lost: list[StepRun]) -> StepRun | None:
    """The first interrupted step of an ACTING node that allows no further attempt."""
    definition = run.definition if run.definition is not None else run.version.definition
    graph = Graph(definition)
    for step in lost:
        node = graph.nodes.get(step.node_id)
        if node is None or node["type"] not in ACTING:
            continue
        done = StepRun.objects.filter(run=run, node_id=step.node_id, item_index=step.item_index,
                                      item_path=step.item_path).count()
        if done >= max_attempts(node):
            return step
    return None


def _requeue_lost_claims(now) -> list[int]:
    """Queued runs whose task a worker claimed and never started (it died between the claim and
    the run's QUEUED -> RUNNING transition, so no lease was ever taken): enqueued again, once the
    claim is older than a lease. Running stays guarded by that transition, so a slow claimer and
    the new task cannot both run it. Returns their ids."""
    from django_tasks.base import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from engine.tasks import execute_run
    from engine.wake import poke

    cutoff = now - timedelta(seconds=settings.STEPWELL_RUN_LEASE_S)
    claims = DBTaskResult.objects.filter(task_path=execute_run.module_path, status=TaskResultStatus.RUNNING,
                                         started_at__lt=cutoff)
    handled = []
    for task in claims:
        args = (task.args_kwargs or {}).get("args") or []
        run_id = args[0] if args and isinstance(args[0], int) else None
        if run_id is None or not Run.objects.filter(pk=run_id, status=Status.QUEUED).exists():
            continue
        if DBTaskResult.objects.filter(task_path=task.task_path, status=TaskResultStatus.READY,
                                       args_kwargs__args=[run_id]).exists():
            continue   # enqueued again already
        # the claim ends: this task is failed, a new one takes its place
        if DBTaskResult.objects.filter(pk=task.pk, status=TaskResultStatus.RUNNING).update(
                status=TaskResultStatus.FAILED, finished_at=now):
            execute_run.enqueue(run_id)
            poke()
            log.warning("run %s: the worker that claimed it (%s) never started it; queued again",
                        run_id, ",".join(task.worker_ids or []) or "?")
            handled.append(run_id)
    return handled


def reap_lost_runs() -> list[int]:
    """Resume (or fail) running runs whose lease expired, and queue again runs whose claim was
    lost before they started; returns their ids."""
    from engine.executor import reply
    from engine.tasks import execute_run
    from engine.wake import poke

    now = timezone.now()
    try:
        handled = _requeue_lost_claims(now)
    except Exception:  # noqa: BLE001 - never keeps the lease reaper below from running
        log.exception("looking for lost claims")
        handled = []
    for run in Run.objects.select_related("version").filter(status=Status.RUNNING, lease_expires__lt=now):
        lost_worker = run.worker or "?"
        if not _fence(run, now):
            continue   # another reaper has it, or its worker renewed the lease after all
        lost = _interrupted(run)
        why = f"worker {lost_worker} stopped renewing its lease (it died or hung)"
        blocked = _no_attempt_left(run, lost)
        resumes = resumes_of(run)
        if blocked is None and resumes < settings.STEPWELL_MAX_RUN_RESUMES:
            if transition(run, Status.QUEUED, expect=Status.RUNNING, worker="", lease_expires=None,
                          data={"resumed": True, "lost_worker": lost_worker,
                                "interrupted": [s.node_id for s in lost]}):
                execute_run.enqueue(run.pk)
                poke()
                log.warning("run %s: %s; resumed from its last finished step", run.pk, why)
                handled.append(run.pk)
            continue
        if blocked is not None:
            item = f" (item {blocked.item_index})" if blocked.item_index is not None else ""
            error = f"step {blocked.node_id!r}{item}: {WORKER_LOST}: {why}; its node allows no further attempt"
        else:
            error = (f"{WORKER_LOST}: {why}; the run was resumed {resumes} times already "
                     "(STEPWELL_MAX_RUN_RESUMES)")
        if transition(run, Status.FAILED, expect=Status.RUNNING, lease_expires=None, error=error):
            handled.append(run.pk)
            reply(run)
    return handled
