"""Compose: the output is the `value` parameter after mapping."""
from engine.steps import Outcome


def run(ctx, params) -> Outcome:
    return Outcome(output=params.get("value"))
