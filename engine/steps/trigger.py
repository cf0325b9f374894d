"""Trigger nodes (manual, HTTP request, schedule): their output is the run's trigger payload."""
from engine.steps import Outcome


def run(ctx, params) -> Outcome:
    return Outcome(output=ctx.trigger)
