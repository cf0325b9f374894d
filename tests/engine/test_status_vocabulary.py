"""One mapping from a sandbox execution's outcome to a step status (engine.status.step_status_for)."""
import pytest

from engine.status import Status, step_status_for
from sandbox.contract import Status as SandboxStatus


@pytest.mark.parametrize("outcome, step", [
    (SandboxStatus.SUCCEEDED, Status.SUCCEEDED),
    (SandboxStatus.TIMEOUT, Status.TIMED_OUT),
    (SandboxStatus.FAILED, Status.FAILED),
    (SandboxStatus.OUT_OF_MEMORY, Status.FAILED),
    (SandboxStatus.KILLED, Status.FAILED),
    (SandboxStatus.ERROR, Status.FAILED),
])
def test_each_sandbox_outcome_has_one_step_status(outcome, step):
    assert step_status_for(outcome) == step
    assert step_status_for(outcome.value) == step  # the wire value names the same outcome


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError):
        step_status_for("exploded")
