"""One error shape for the whole API: {"detail": "...", "errors": [{"path": "$.x", "message": "..."}]}.

Every error answer is built here: DRF views raise (the `exception_handler` below reshapes what
DRF produces, whatever its status) or return `error_response(...)` / `bad_request(...)`; plain
Django views (the async ones DRF cannot serve) return `error_json(...)` / `validation_json(...)`.
"""
from __future__ import annotations

from django.http import JsonResponse
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from engine.validation import DefinitionInvalid


class DefinitionRejected(APIException):
    """A definition (or a request carrying one) failed validation."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The workflow definition is invalid."

    def __init__(self, problems: list[dict]):
        super().__init__(detail=self.default_detail)
        self.problems = problems


def prefixed(exc: DefinitionInvalid, prefix: str) -> DefinitionRejected:
    """Re-root each problem's path under `prefix` (e.g. `$.definition`)."""
    out = []
    for p in exc.problems:
        d = p.to_dict()
        d["path"] = prefix + d["path"][1:]
        out.append(d)
    return DefinitionRejected(out)


def _flatten(detail, path: str) -> list[dict]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            sub = path if key == "non_field_errors" else f"{path}.{key}"
            out.extend(_flatten(value, sub))
        return out
    if isinstance(detail, list):
        if all(not isinstance(d, (dict, list)) for d in detail):
            return [{"path": path, "message": str(d)} for d in detail]
        out = []
        for i, d in enumerate(detail):
            out.extend(_flatten(d, f"{path}[{i}]"))
        return out
    return [{"path": path, "message": str(detail)}]


def exception_handler(exc, context):
    if isinstance(exc, DefinitionInvalid):   # raised by an action (the instance policy at save)
        exc = prefixed(exc, "$.definition")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, DefinitionRejected):
        response.data = {"detail": str(exc.detail), "errors": exc.problems}
    elif isinstance(exc, ValidationError):
        response.data = validation_body(exc.detail)
    else:
        detail = response.data.get("detail", "Bad request.") if isinstance(response.data, dict) else str(response.data)
        response.data = error_body(str(detail))
    return response


def validation_body(detail) -> dict:
    """The body for field errors as DRF serializers give them ({field: [messages]}, nested)."""
    errors = _flatten(detail, "$")
    return {"detail": errors[0]["message"] if len(errors) == 1 else "Invalid input.", "errors": errors}


def error_body(message: str, path: str = "$") -> dict:
    """The body of an error about one thing (at `path`, `$` for the request as a whole)."""
    return {"detail": message, "errors": [{"path": path, "message": message}]}


def error_response(status_code: int, message: str, path: str = "$") -> Response:
    """A DRF Response carrying one error."""
    return Response(error_body(message, path), status=status_code)


def bad_request(message: str, path: str = "$") -> Response:
    return error_response(400, message, path)


def error_json(status_code: int, message: str, path: str = "$") -> JsonResponse:
    """The same error for plain Django views (no DRF Response)."""
    return JsonResponse(error_body(message, path), status=status_code)


def validation_json(detail, status_code: int = 400) -> JsonResponse:
    """Field errors (a serializer's `.errors`) for plain Django views."""
    return JsonResponse(validation_body(detail), status=status_code)
