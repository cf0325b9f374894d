"""Pinned data in manual runs ("use pinned data", as n8n does): which nodes of a run take their
pinned output instead of executing, and the step record such a node leaves.

A run started with pins stores them as `Run.test_upstream = {"pinned": {node_id: output}}`
(kind=run; a step test keeps its namespace there). Only top-level nodes whose output is data use
a pin: actions (Python, HTTP call, Compose) and For each; the executor records such a node as a
succeeded step with sandbox {"pinned": true} and no inputs; triggers, Conditions (their taken port
is not data) and Responses (what the caller gets) always run.
"""
from __future__ import annotations

from engine.models import PinnedOutput, Run

PINNABLE = frozenset({"action.python", "action.http", "action.compose", "control.foreach"})


def pins_for_run(workflow, definition: dict) -> dict:
    """{node_id: output} of the workflow's pins that a run of `definition` would use."""
    nodes = {n["id"]: n for n in (definition or {}).get("nodes", [])}
    return {p.node_id: p.output for p in PinnedOutput.objects.filter(workflow=workflow).order_by("node_id")
            if p.node_id in nodes and nodes[p.node_id]["type"] in PINNABLE and not nodes[p.node_id].get("parent")}


def pinned_of(run: Run) -> dict:
    """The pinned outputs a run was started with ({} for most runs)."""
    if run.kind != Run.Kind.RUN or not isinstance(run.test_upstream, dict):
        return {}
    pinned = run.test_upstream.get("pinned")
    return pinned if isinstance(pinned, dict) else {}



def do_start_run_with_pins(workflow, payload: dict, user, trigger: str = Run.Trigger.MANUAL) -> Run:
    """Start a run of the head in which pinned nodes take their pins (see the module docstring).

    :raises RunRefused, TooManyRuns: as engine.actions.do_start_run.
    """
    from engine.actions import do_start_run

    pinned = pins_for_run(workflow, workflow.definition)
    return do_start_run(workflow, payload, trigger, user, test_upstream={"pinned": pinned} if pinned else None)
