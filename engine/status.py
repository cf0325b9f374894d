"""The status vocabulary of runs and steps: the closed `Status` set, the terminal statuses, the
allowed moves between them, and the one mapping from a sandbox execution's outcome to a step's
status. Pure: no models and no database; `engine.states` is what changes stored statuses.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.db import models

from sandbox.contract import Status as SandboxStatus


class Status(models.TextChoices):
    """Closed set of statuses shared by runs and steps. Stored values are never renamed."""

    QUEUED = "queued", "Queued"            # created, waiting for a worker (or for its inputs)
    RUNNING = "running", "Running"         # a worker is executing it
    SUCCEEDED = "succeeded", "Succeeded"   # finished normally
    FAILED = "failed", "Failed"            # an error (step error, mapping error, worker lost)
    CANCELLED = "cancelled", "Cancelled"   # stopped on request
    TIMED_OUT = "timed_out", "Timed out"   # a time limit was reached
    SKIPPED = "skipped", "Skipped"         # steps only: on a branch that was not taken


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT, Status.SKIPPED})

# from-status -> statuses it may move to
ALLOWED: dict[str, frozenset[str]] = {
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED, Status.SKIPPED, Status.FAILED}),
    # running -> queued: a run whose worker was lost, put back in the queue (engine/resume.py)
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT,
                               Status.QUEUED}),
}


class TransitionError(RuntimeError):
    """The record is not in a status from which the requested move is allowed."""


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def sources(allowed: Mapping[str, Iterable[str]], to: str, expect: str | Iterable[str] | None = None) -> set[str]:
    """The from-statuses of a move to `to` under the table `allowed` (from -> reachable statuses):
    `expect` (one status or several; default every status in the table) minus those from which
    `to` is not allowed. Shared by every guarded status change (runs, steps, runtime builds).

    :raises TransitionError: `to` is not reachable from any of them.
    """
    froms = {expect} if isinstance(expect, str) else set(expect or allowed)
    froms = {f for f in froms if to in allowed.get(f, ())}
    if not froms:
        raise TransitionError(f"no transition to {str(to)!r} from {expect!r}")
    return froms


# The one translation from a sandbox execution's outcome (sandbox.contract.Status) to a step's
# status. Everything the sandbox reports other than success or a time limit fails the step.
_FROM_SANDBOX: dict[SandboxStatus, Status] = {
    SandboxStatus.SUCCEEDED: Status.SUCCEEDED,
    SandboxStatus.TIMEOUT: Status.TIMED_OUT,
    SandboxStatus.FAILED: Status.FAILED,
    SandboxStatus.OUT_OF_MEMORY: Status.FAILED,
    SandboxStatus.KILLED: Status.FAILED,
    SandboxStatus.ERROR: Status.FAILED,
}


def step_status_for(sandbox_status: SandboxStatus | str) -> Status:
    """The step status an execution with this sandbox outcome ends in (an outcome this table does
    not know yet fails the step)."""
    return _FROM_SANDBOX.get(SandboxStatus(sandbox_status), Status.FAILED)
