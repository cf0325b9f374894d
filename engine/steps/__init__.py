"""Step types: one module per node type, each with `run(ctx, params) -> Outcome`.

`params` are the node's parameters after mapping. A step never changes statuses itself: it
returns an Outcome and the executor records it through `engine.states.transition`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from engine.status import Status


@dataclass
class Outcome:
    status: str = Status.SUCCEEDED
    output: Any = None
    ports: tuple[str, ...] = ("out",)     # output ports that carry on
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    sandbox: dict = field(default_factory=dict)
    files: tuple = ()                    # sandbox OutputFile objects

    @classmethod
    def failed(cls, error: str, **kw) -> "Outcome":
        return cls(status=Status.FAILED, error=error, ports=(), **kw)


@dataclass
class StepContext:
    """What a step may know about the run it is part of."""

    run_id: int
    workflow_id: int
    node: dict
    settings: dict              # the definition's "settings", already capped by server limits
    trigger: Any
    cancel: threading.Event
    item_index: int | None = None
    secrets: dict = field(default_factory=dict, repr=False)   # the settings.secrets values (code steps' env)
    live: Any = None            # engine.live_output.LiveOutput of a code step (None: no live output)


def handler(node_type: str):
    """The `run` function of a node type."""
    from engine.steps import agent, compose, condition, http_call, python, response, trigger

    return {
        "trigger.manual": trigger.run, "trigger.http": trigger.run, "trigger.schedule": trigger.run,
        "action.python": python.run, "action.http": http_call.run, "action.compose": compose.run,
        "action.response": response.run, "control.condition": condition.run, "action.agent": agent.run,
    }[node_type]
