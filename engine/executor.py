"""Run orchestration, in the worker: walk the pinned definition, run each step, record outcomes.

- Steps of one scope run in topological order. A node runs when at least one incoming edge is
  active (its source succeeded and, for a Condition, the edge leaves the taken port); a node all
  of whose incoming edges are inactive is skipped, so untaken branches are skipped transitively
  while nodes also reachable from a taken branch still run.
- A For each runs its body (nodes reachable from its `each` port, or with parent=<id>) once per
  item, up to `concurrency` items at a time, and outputs the list of per-item outputs. For eaches
  nest at most STEPWELL_MAX_FOREACH_DEPTH deep.
- Fan-out is bounded: one thread pool per run (STEPWELL_RUN_THREADS) runs every For each item and
  parallel branch of the run, at every nesting level. Work that finds no free pool thread runs
  inline in the thread that wanted it, so nested loops cannot starve the pool (a thread only ever
  waits for work that is already running). A run creates at most STEPWELL_MAX_STEPS_PER_RUN step
  records; the next one fails the run.
- A failed step is retried by the node's retry policy (a new StepRun per attempt; defaults when a
  policy is given without them: backoff_s=1, backoff_factor=2; no policy = one attempt; attempts
  capped by STEPWELL_MAX_RETRY_ATTEMPTS, each wait by STEPWELL_MAX_RETRY_DELAY_S); when it
  still fails the run fails (timed_out when the last attempt timed out). A mapping error is not
  retried: the same inputs would fail the same way.
- A lease (Run.lease_expires) is renewed while the run executes; `reap_lost_runs` resumes (or
  fails) runs whose worker stopped renewing it (engine/resume.py); an execution whose run was
  taken over meanwhile stops without touching the run. Cancellation is a flag polled by the
  same heartbeat, which sets the run's cancel Event: steps wait on it (an HTTP call closes its
  socket, a code step asks the sandbox to cancel its execution).
"""
from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from engine import storable
from engine.graph import Graph
from engine.mapping import MappingError, resolve_parameters
from engine.models import NodeSchema, Run, StepFile, StepRun
from engine.resume import index_of, path_of
from engine.states import begin, transition
from engine.status import Status
from engine.steps import Outcome, StepContext, handler
from engine.wake import address

log = logging.getLogger("engine.executor")


class Cancelled(Exception):
    pass


class StepFailed(Exception):
    def __init__(self, message: str, status: str = Status.FAILED):
        super().__init__(message)
        self.status = status


class LimitReached(StepFailed):
    """The run reached a server-wide limit (steps per run); it fails with this message."""


class RunPool:
    """The one bounded thread pool of a run. `try_submit` hands work to a free pool thread or
    answers None, and the caller then runs it inline: nothing ever queues behind a busy pool, so
    nested For eaches (whose items wait for their own inner items) cannot deadlock it."""

    def __init__(self, size: int, name: str):
        self.size = size
        self.name = name
        self._free = threading.Semaphore(size)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def try_submit(self, fn, *args) -> Future | None:
        if not self._free.acquire(blocking=False):
            return None
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=self.name)

        def task():
            try:
                return fn(*args)
            finally:
                connection.close()
                self._free.release()

        try:
            return self._executor.submit(task)
        except BaseException:
            self._free.release()
            raise

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


def effective_settings(definition: dict) -> dict:
    """The definition's settings with server-wide caps applied."""
    s = copy.deepcopy(definition.get("settings") or {})
    s.setdefault("variables", [])
    s.setdefault("allowed_hosts", [])
    if s.get("default_timeout_s"):
        s["default_timeout_s"] = min(float(s["default_timeout_s"]), settings.STEPWELL_MAX_STEP_TIMEOUT_S)
    if s.get("default_memory_mib"):
        s["default_memory_mib"] = min(int(s["default_memory_mib"]), settings.STEPWELL_MAX_STEP_MEMORY_MIB)
    return s


def reply(run: Run) -> None:
    """Wake the HTTP request waiting for this run's response, if any."""
    if not run.reply_socket:
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(b"r", address(run.reply_socket))
    except OSError:
        pass
    finally:
        s.close()


class Leases:
    """One thread per worker process renews the leases of every run it executes and watches their
    cancel flags (one query each per tick, whatever the number of runs)."""

    POLL_S = 0.2

    def __init__(self):
        self.active: dict[int, threading.Event] = {}
        self.owners: dict[int, tuple[str, threading.Event]] = {}   # run -> (worker id, lost flag)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, run_id: int, cancel: threading.Event, worker: str = "",
            lost: threading.Event | None = None) -> None:
        """`lost` is set (with `cancel`) when the run is no longer claimed by `worker`: a reaper
        took it over after the lease expired (engine/resume.py)."""
        with self.lock:
            self.active[run_id] = cancel
            if worker and lost is not None:
                self.owners[run_id] = (worker, lost)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="leases", daemon=True)
                self.thread.start()

    def remove(self, run_id: int) -> None:
        with self.lock:
            self.active.pop(run_id, None)
            self.owners.pop(run_id, None)

    def _loop(self):
        last = 0.0
        while True:
            time.sleep(self.POLL_S)
            with self.lock:
                active, owners = dict(self.active), dict(self.owners)
            if not active:
                connection.close()   # idle: hold no database session (a no-op when none is open)
                continue
            try:
                mine = []
                for run_id, cancel, status, worker in Run.objects.filter(pk__in=list(active)).values_list(
                        "pk", "cancel_requested", "status", "worker"):
                    owner = owners.get(run_id)
                    if owner is not None and (status != Status.RUNNING or worker != owner[0]):
                        owner[1].set()   # taken over by a reaper: stop, touch nothing more
                        active[run_id].set()
                        continue
                    mine.append(run_id)
                    if cancel:
                        active[run_id].set()
                lease = settings.STEPWELL_RUN_LEASE_S
                if mine and time.monotonic() - last >= max(lease / 3, 0.2):
                    Run.objects.filter(pk__in=mine, status=Status.RUNNING).update(
                        lease_expires=timezone.now() + timedelta(seconds=lease))
                    last = time.monotonic()
            except Exception:  # a locked database must not stop the renewals
                log.exception("lease renewal")
                connection.close()


leases = Leases()


class Execution:
    """Executes one claimed run."""

    def __init__(self, run: Run):
        self.run = run
        self.definition = run.definition if run.definition is not None else run.version.definition  # a draft test
        self.graph = Graph(self.definition)
        self.settings = effective_settings(self.definition)
        self.cancel = threading.Event()
        self.trigger_payload = run.payload
        self.outputs: list[tuple[str, object]] = []   # successful outputs, for schema inference
        self.outputs_lock = threading.Lock()
        self.pool = RunPool(settings.STEPWELL_RUN_THREADS, f"run{run.pk}-")
        self.steps_created = 0
        self.steps_lock = threading.Lock()
        self.limit_error: str = ""
        # secrets (governance): values for code steps' env and HTTP-call parameters only, and a
        # masker that hides them in everything a step records
        from governance.masking import Masker
        from governance.secret_actions import values_for

        self.owner_id = run.workflow.owner_id
        self.secrets, self.secrets_error = {}, ""   # the error fails the steps that would use them
        try:
            self.secrets, missing = values_for(self.owner_id, self.settings.get("secrets") or [])
            if missing:
                self.secrets_error = (f"secret(s) {', '.join(missing)} listed in settings.secrets no longer "
                                      "exist for the workflow's owner")
        except Exception as exc:   # e.g. a key that is not the one they were stored with
            log.exception("secrets of run %s", run.pk)
            self.secrets_error = (f"the workflow's secrets cannot be decrypted ({exc.__class__.__name__}); "
                                  "is STEPWELL_SECRETS_KEY (or var/secrets_key) the key they were stored with?")
        self.masker = Masker(self.secrets)
        from engine.pinned import pinned_of

        self.pinned = pinned_of(run)   # "use pinned data": {node_id: output} taken instead of running
        from engine.rerun import plan_for

        self.rerun = plan_for(run, self.graph)   # rerun from a step: engine/rerun.py
        from engine import resume

        self.resume = resume.plan_for(run, self.graph)   # resumed after a lost worker: engine/resume.py
        self.lost = threading.Event()

    # --- recording --------------------------------------------------------------------------
    def _new_step(self, node_id: str, item: tuple, attempt: int, status=Status.RUNNING) -> StepRun:
        """:raises LimitReached: the run already has STEPWELL_MAX_STEPS_PER_RUN step records."""
        cap = settings.STEPWELL_MAX_STEPS_PER_RUN
        with self.steps_lock:
            if self.steps_created >= cap:
                self.limit_error = (f"the run reached the limit of {cap} steps (STEPWELL_MAX_STEPS_PER_RUN); "
                                    "nothing more was started")
                raise LimitReached(self.limit_error)
            self.steps_created += 1
        node = self.graph.nodes[node_id]
        return begin(StepRun, status, run=self.run, node_id=node_id, node_type=node["type"],
                     item_index=index_of(item), item_path=path_of(item), attempt=attempt)

    def _skip(self, node_id: str, item: tuple) -> None:
        if self.resume is not None and self.resume.was_skipped(node_id, item):
            return
        self._new_step(node_id, item, 1, Status.SKIPPED)

    def _record_schemas(self) -> None:
        """Merge this run's successful outputs into the workflow's inferred schemas (one transaction)."""
        from engine.inference import merge

        with self.outputs_lock:
            outputs, self.outputs = self.outputs, []
        if not outputs or self.run.kind != Run.Kind.RUN:
            return
        for _ in range(3):
            try:
                with transaction.atomic():
                    rows = {r.node_id: r for r in NodeSchema.objects.select_for_update().filter(
                        workflow_id=self.run.workflow_id, node_id__in={n for n, _ in outputs})}
                    for node_id, output in outputs:
                        row = rows.get(node_id)
                        if row is None:
                            row = rows[node_id] = NodeSchema(workflow_id=self.run.workflow_id, node_id=node_id,
                                                             schema=merge(None, output), samples=0)
                        else:
                            row.schema = merge(row.schema, output)
                        row.samples += 1
                    for row in rows.values():
                        row.save()
                return
            except Exception:  # a concurrent first insert; try again as an update
                log.debug("schema merge retry", exc_info=True)
        log.warning("could not record the output schemas of run %s", self.run.pk)

    # --- one node ---------------------------------------------------------------------------
    def run_node(self, node_id: str, ns: dict, item: tuple = ()) -> Outcome:
        """Run one node with its retry policy; returns the successful Outcome. `item`: the
        iteration of each enclosing For each, outermost first (() outside loops).

        :raises StepFailed: the last attempt did not succeed.
        :raises Cancelled: the run was cancelled.
        """
        node = self.graph.nodes[node_id]
        item_index = index_of(item)
        finished = self.resume.finished(node_id, item) if self.resume is not None else None
        if finished is not None:   # a resumed run's own finished step: not run again
            return finished
        reused = self.rerun.reused(node_id, item_index) if self.rerun is not None else None
        if reused is not None:
            return self._reuse(node_id, item, reused)
        if not item and node_id in self.pinned:   # engine/pinned.py
            step = self._new_step(node_id, (), 1)
            transition(step, Status.SUCCEEDED, data={"pinned": True}, output=self.pinned[node_id],
                       sandbox={"pinned": True})
            return Outcome(output=self.pinned[node_id])
        policy = node.get("retry") or {}
        max_attempts = min(int(policy.get("max_attempts", 1)), settings.STEPWELL_MAX_RETRY_ATTEMPTS)
        max_delay = float(settings.STEPWELL_MAX_RETRY_DELAY_S)
        delay = min(float(policy.get("backoff_s", 1.0)), max_delay)
        factor = float(policy.get("backoff_factor", 2.0))
        first = 1 + (self.resume.attempts_done(node_id, item) if self.resume is not None else 0)
        for attempt in range(first, max(max_attempts, first) + 1):
            if self.cancel.is_set():
                raise Cancelled()
            step = self._new_step(node_id, item, attempt)
            try:
                params = resolve_parameters(node, ns)  # a code step's source is never templated
            except MappingError as exc:
                transition(step, Status.FAILED, error=f"mapping error at {exc.path}: {exc.message}")
                raise StepFailed(f"step {node_id!r}: mapping error at {exc.path}: {exc.message}") from None
            if node["type"] == "control.foreach":
                outcome = self.run_foreach(node_id, params, ns, item)
            elif self.secrets_error and node["type"] in ("action.python", "action.http"):
                outcome = Outcome.failed(self.secrets_error)
            else:
                ctx = StepContext(run_id=self.run.pk, workflow_id=self.run.workflow_id, node=node,
                                  settings=self.settings, trigger=self.trigger_payload, cancel=self.cancel,
                                  item_index=item_index,
                                  secrets=self.secrets if node["type"] == "action.python" else {})
                if node["type"] == "action.python":
                    ctx.live = self._live_output(step)
                try:
                    call_params = params   # `params` (stored) keeps {{ secrets.NAME }} as written
                    if node["type"] == "action.http" and self.secrets:
                        call_params = resolve_parameters(node, {**ns, "secrets": self.secrets})
                    outcome = handler(node["type"])(ctx, call_params)
                except MappingError as exc:
                    outcome = Outcome.failed(f"mapping error at {exc.path}: {exc.message}")
                except Exception as exc:  # a bug in a step type must not leave the step running
                    log.exception("step %s of run %s crashed", node_id, self.run.pk)
                    outcome = Outcome.failed(f"internal error: {exc.__class__.__name__}: {exc}")
            # before anything is stored or sent: secrets masked, NUL made storable
            outcome = storable.outcome(self.masker.outcome(outcome))
            self._store_files(step, outcome)
            final = outcome.status
            retrying = final in (Status.FAILED, Status.TIMED_OUT) and attempt < max_attempts
            fields = dict(inputs=params, output=outcome.output, stdout=outcome.stdout, stderr=outcome.stderr,
                          error=outcome.error, sandbox=outcome.sandbox,
                          runtime_id=(outcome.sandbox or {}).get("runtime_id"),
                          files=[{"name": f.name, "size": f.size, "truncated": f.truncated} for f in outcome.files])
            data = {"retry_in_s": delay, "next_attempt": attempt + 1} if retrying else {}
            if outcome.error:
                data["error"] = outcome.error[:500]
            transition(step, final, data=data, **fields)
            from engine.governance_hooks import record_step   # the execution's audit event

            record_step(self.run, step, node, params, outcome)
            self._record_usage(step, outcome)
            if final == Status.SUCCEEDED:
                if node["type"] == "action.response":
                    Run.objects.filter(pk=self.run.pk).update(response=outcome.output)
                    reply(self.run)
                if outcome.output is not None:
                    with self.outputs_lock:
                        self.outputs.append((node_id, outcome.output))
                return outcome
            if final == Status.CANCELLED:
                raise Cancelled()
            if self.limit_error:
                raise LimitReached(self.limit_error)
            if not retrying:
                raise StepFailed(f"step {node_id!r}: {outcome.error or final}", final)
            if self.cancel.wait(delay):
                raise Cancelled()
            delay = min(delay * factor, max_delay)
        raise AssertionError("unreachable")

    def _reuse(self, node_id: str, item: tuple, record: StepRun) -> Outcome:
        """A step of a rerun that takes `record` (the source run's) instead of running: a
        succeeded step with the record's data and sandbox {"reused": {run, step}} (engine/rerun.py)."""
        from engine.rerun import ports_of

        step = self._new_step(node_id, item, 1)
        for f in StepFile.objects.filter(step=record):
            StepFile.objects.create(step=step, name=f.name, size=f.size, truncated=f.truncated, content=f.content)
        transition(step, Status.SUCCEEDED, data={"reused": True, "reused_step": record.pk},
                   inputs=record.inputs, output=record.output, stdout=record.stdout, stderr=record.stderr,
                   files=record.files, runtime_id=record.runtime_id,
                   sandbox={"reused": {"run": record.run_id, "step": record.pk}})
        return Outcome(output=record.output, ports=ports_of(self.graph.nodes[node_id], record.output))

    def _live_output(self, step: StepRun):
        """The LiveOutput of a running code step: its batches become step.output events, masked
        like everything the step records (engine/live_output.py)."""
        from engine.events import step_output
        from engine.live_output import LiveOutput

        masker = self.masker

        def emit(out: str, err: str, truncated: bool) -> None:
            try:
                step_output(step, storable.text(masker.text(out) if masker else out),
                            storable.text(masker.text(err) if masker else err), truncated)
            except Exception:   # live output is a preview: never fail the step for it
                log.exception("live output of step %s", step.pk)

        return LiveOutput(emit, whole_lines=bool(masker))

    def _record_usage(self, step: StepRun, outcome: Outcome) -> None:
        """The metering row of a sandbox execution (governance.usage); never fails the run."""
        if (outcome.sandbox or {}).get("session_s") is None:
            return
        from governance.usage import record

        try:
            record(meta=outcome.sandbox, user_id=self.owner_id, workflow_id=self.run.workflow_id,
                   run_id=self.run.pk, step_id=step.pk)
        except Exception:
            log.exception("usage of step %s of run %s", step.pk, self.run.pk)

    def _store_files(self, step: StepRun, outcome: Outcome) -> None:
        for f in outcome.files:
            StepFile.objects.create(step=step, name=f.name, size=f.size, truncated=f.truncated, content=f.content)

    # --- scopes -----------------------------------------------------------------------------
    def run_scope(self, foreach_id: str | None, ns: dict, item: tuple = ()):
        """Run the nodes of one scope; returns ({node_id: output}, {node_id: (status, ports)}).

        Nodes whose in-scope predecessors are all done are ready; independent ready nodes (parallel
        branches) run at the same time, up to STEPWELL_MAX_BRANCH_CONCURRENCY, on the run's pool
        (or inline when it has no free thread). A single ready node runs in this thread. After a
        failure nothing new starts; running siblings are awaited.
        """
        members = self.graph.scope(foreach_id)
        member_set = set(members)
        done: dict[str, tuple[str, tuple]] = {}   # node -> (status, ports)
        outputs: dict[str, object] = {}
        pending = list(members)                   # topological order
        ready: list[str] = []                     # may start, not started yet
        running: dict = {}                        # future -> node id
        error: BaseException | None = None
        limit = settings.STEPWELL_MAX_BRANCH_CONCURRENCY

        def finish(node_id: str, outcome: Outcome) -> None:
            ports = outcome.ports if self.graph.nodes[node_id]["type"] != "control.foreach" else ("done",)
            done[node_id] = (Status.SUCCEEDED, ports)
            outputs[node_id] = outcome.output
            ns["steps"][node_id] = {"output": outcome.output, "status": Status.SUCCEEDED.value}

        try:
            while running or ((pending or ready) and error is None):
                if error is not None:
                    ready.clear()
                for node_id in (list(pending) if error is None else []):
                    inner = [(src, port) for src, port in self.graph.in_edges[node_id] if src in member_set]
                    if any(src not in done for src, _ in inner):
                        continue
                    pending.remove(node_id)
                    active = not inner or any(
                        done[src][0] == Status.SUCCEEDED and port in done[src][1] for src, port in inner)
                    if foreach_id is None and node_id == self.graph.trigger:
                        active = True
                    if active:
                        ready.append(node_id)
                        continue
                    try:
                        self._skip(node_id, item)
                    except StepFailed as exc:
                        error = error or exc
                        break
                    done[node_id] = (Status.SKIPPED, ())
                # parallel branches go to free pool threads (never the last ready node when
                # nothing else runs: the common, linear case needs no thread)
                while error is None and ready and len(running) < limit and (running or len(ready) > 1):
                    local_ns = {**ns, "steps": dict(ns["steps"])}
                    fut = self.pool.try_submit(self.run_node, ready[0], local_ns, item)
                    if fut is None:
                        break
                    running[fut] = ready.pop(0)
                if error is None and ready and len(running) < limit:
                    node_id = ready.pop(0)   # inline: only this thread changes `ns`
                    try:
                        finish(node_id, self.run_node(node_id, ns, item))
                    except (StepFailed, Cancelled) as exc:
                        error = error or exc
                    continue
                if not running:
                    if (pending or ready) and error is None:
                        raise AssertionError(f"no progress possible in scope {foreach_id!r}: {pending}")
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    node_id = running.pop(fut)
                    try:
                        finish(node_id, fut.result())
                    except (StepFailed, Cancelled) as exc:
                        error = error or exc
        finally:
            if running:
                wait(running)
        if error is not None:
            raise error
        return outputs, done

    def run_foreach(self, foreach_id: str, params: dict, ns: dict, outer: tuple = ()) -> Outcome:
        """The loop's items, `concurrency` at a time; `outer`: the iteration it runs in, when it
        is itself inside a For each."""
        from engine.validation import foreach_depth

        depth, max_depth = foreach_depth(self.graph, foreach_id), settings.STEPWELL_MAX_FOREACH_DEPTH
        if depth > max_depth:
            return Outcome.failed(f"For each nested {depth} deep; the limit is {max_depth} "
                                  "(STEPWELL_MAX_FOREACH_DEPTH)")
        items = params.get("items")
        if not isinstance(items, list):
            return Outcome.failed(f"items must be an array, got {type(items).__name__}")
        if len(items) > settings.STEPWELL_MAX_FOREACH_ITEMS:
            return Outcome.failed(f"{len(items)} items; the limit is {settings.STEPWELL_MAX_FOREACH_ITEMS}")
        concurrency = max(1, min(int(params.get("concurrency") or 4), settings.STEPWELL_MAX_FOREACH_CONCURRENCY))
        body = self.graph.scope(foreach_id)
        body_set = set(body)
        sinks = [n for n in body if not any(dst in body_set for _, dst in self.graph.out_edges[n])]

        def one(index: int, item):
            local = {**ns, "steps": dict(ns["steps"]), "item": item, "index": index}
            outputs, done = self.run_scope(foreach_id, local, item=(*outer, index))
            ran = [s for s in sinks if done.get(s, ("",))[0] == Status.SUCCEEDED]
            if len(sinks) == 1:
                return outputs.get(sinks[0])
            return {s: outputs[s] for s in ran}

        if not body:
            return Outcome(output=list(items), ports=("done",))
        results: list = [None] * len(items)
        errors: list[tuple[int, BaseException]] = []
        running: dict = {}   # future -> item index
        nxt = 0

        def collect(fut, i):
            try:
                results[i] = fut.result()
            except (StepFailed, Cancelled) as exc:
                errors.append((i, exc))

        try:
            # up to `concurrency` items at once: on free pool threads, else one inline here
            while nxt < len(items) or running:
                while nxt < len(items) and len(running) < concurrency - 1:
                    fut = self.pool.try_submit(one, nxt, items[nxt])
                    if fut is None:
                        break
                    running[fut] = nxt
                    nxt += 1
                if nxt < len(items) and len(running) < concurrency:
                    try:
                        results[nxt] = one(nxt, items[nxt])
                    except (StepFailed, Cancelled) as exc:
                        errors.append((nxt, exc))
                    nxt += 1
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    collect(fut, running.pop(fut))
        finally:
            if running:
                wait(running)
                for fut, i in running.items():
                    collect(fut, i)
        errors.sort(key=lambda e: e[0])
        if any(isinstance(e, Cancelled) for _, e in errors):
            return Outcome(status=Status.CANCELLED, error="cancelled", ports=())
        if self.limit_error:
            return Outcome.failed(self.limit_error, output=results)
        if errors:
            first = errors[0][1]
            return Outcome(status=Status.FAILED, ports=(), output=results,
                           error=f"{len(errors)} of {len(items)} items failed; first: {first}")
        return Outcome(output=results, ports=("done",))

    # --- the run ----------------------------------------------------------------------------
    def namespace(self) -> dict:
        return {"trigger": self.trigger_payload, "steps": {},
                "vars": {v["name"]: v["value"] for v in self.settings.get("variables", [])}}

    def execute(self) -> None:
        run = self.run
        leases.add(run.pk, self.cancel, run.worker, self.lost)
        status, error = Status.SUCCEEDED, ""
        try:
            from engine.governance_hooks import run_refusal   # the instance policy, checked again at run

            refusal = run_refusal(run, self.definition, self.settings)
            if refusal:
                raise StepFailed(refusal)
            if run.kind == Run.Kind.TEST:
                self.execute_test()
            else:
                self.run_scope(None, self.namespace())
        except Cancelled:
            status, error = Status.CANCELLED, "cancelled on request"
        except StepFailed as exc:
            status, error = (Status.TIMED_OUT if exc.status == Status.TIMED_OUT else Status.FAILED), str(exc)
            error = self.limit_error or error
        except Exception as exc:
            log.exception("run %s crashed", run.pk)
            status, error = Status.FAILED, f"internal error: {exc.__class__.__name__}: {exc}"
        finally:
            leases.remove(run.pk)
            self.pool.shutdown()
        if self.lost.is_set():   # another worker resumes (or failed) the run: engine/resume.py
            log.warning("run %s was taken over after its lease expired; this execution stops", run.pk)
            return
        if status != Status.CANCELLED and self.cancel.is_set():
            status, error = Status.CANCELLED, "cancelled on request"
        transition(run, status, expect=Status.RUNNING, error=error, lease_expires=None)
        reply(run)
        try:
            self._record_schemas()
        except Exception:
            log.exception("schema inference for run %s", run.pk)

    def execute_test(self) -> None:
        """Kind=test: run only `test_node`, with the namespace stored in `test_upstream`."""
        ns = copy.deepcopy(self.run.test_upstream or {})
        ns.setdefault("trigger", self.trigger_payload)
        ns.setdefault("steps", {})
        ns.setdefault("vars", {v["name"]: v["value"] for v in self.settings.get("variables", [])})
        node_id = self.run.test_node
        if self.graph.nodes[node_id]["type"] == "control.foreach":
            # a For each test runs its body too
            self.run_node(node_id, ns)
        else:
            index = ns.get("index") if "item" in ns else None   # a step inside a For each: its item
            self.run_node(node_id, ns, (index,) if isinstance(index, int) and not isinstance(index, bool) else ())


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def execute_run(run_id: int) -> str:
    """Claim a queued run and execute it to the end; returns the final status."""
    run = Run.objects.select_related("version").filter(pk=run_id).first()
    if run is None:
        return "missing"
    lease = timezone.now() + timedelta(seconds=settings.STEPWELL_RUN_LEASE_S)
    if not transition(run, Status.RUNNING, expect=Status.QUEUED, worker=worker_id(), lease_expires=lease):
        return run.status  # cancelled (or claimed) before we got to it
    Execution(run).execute()
    return run.status


def reap_lost_runs() -> list[int]:
    """Resume (or fail) running runs whose lease expired: engine/resume.py."""
    from engine.resume import reap_lost_runs as reap

    return reap()
