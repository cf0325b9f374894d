"""POST /api/runs/{id}/rerun/ with a `from_node`: rerun from one step (engine/rerun.py).

Body: {"from_node": "node id", "item_index": i | null (For each iteration), "same_version": bool
(the run's recorded version; default the latest saved one), "definition": {...} (optional: the
editor's unsaved draft, which the run executes without saving it)}. Answers 201 with the new
run; 400 (one error shape) when the node, the item index or the draft does not fit; 409 while
the source run is still active.
"""
from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.response import Response

from designer.api.errors import DefinitionRejected, bad_request, error_response
from engine import actions
from engine.rerun import RerunRefused, do_rerun_from


class RerunRequest(serializers.Serializer):
    """The body of POST /api/runs/{id}/rerun/ (for the OpenAPI schema; checked by rerun_from_step)."""

    same_version = serializers.BooleanField(required=False, default=False,
                                            help_text="Run the version this run used (default: the latest saved one).")
    from_node = serializers.CharField(required=False, help_text="Rerun from this step: the steps upstream reuse "
                                      "this run's recorded outputs (marked reused), this step and what follows run.")
    item_index = serializers.IntegerField(required=False, allow_null=True, min_value=0,
                                          help_text="With from_node inside a For each: rerun only this iteration.")
    definition = serializers.JSONField(required=False, help_text="With from_node: the editor's unsaved draft to run.")


def rerun_from_step(request, run, serialize, too_many) -> Response:
    """The answer to a rerun-from-step request of `run` (its body has `from_node`)."""
    body = request.data
    draft = body.get("definition")
    if draft is not None:
        from designer.api.serializers import validate_definition_field

        if not isinstance(draft, dict):
            return bad_request("definition must be a workflow definition (an object)", "$.definition")
        try:
            validate_definition_field(draft, owner=request.user)
        except DefinitionRejected as exc:
            return Response({"detail": str(exc.detail), "errors": exc.problems}, status=400)
    same = body.get("same_version", False)
    if not isinstance(same, bool):
        return bad_request("same_version must be true or false", "$.same_version")
    if not run.is_finished:
        return error_response(409, f"run {run.pk} is still {run.status}; rerun it from a step once it ended")
    try:
        new = do_rerun_from(run, request.user, body.get("from_node"), body.get("item_index"),
                            same_version=same, draft=draft)
    except RerunRefused as exc:
        return bad_request(str(exc), exc.path)
    except actions.TooManyRuns as exc:
        return too_many(exc)
    except actions.RunRefused as exc:
        return bad_request(str(exc))
    return Response(serialize(new), status=status.HTTP_201_CREATED)
