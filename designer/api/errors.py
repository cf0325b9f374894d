"""One error shape for the whole API: {"detail": "...", "errors": [{"path": "$.x", "message": "..."}]}.

Every error answer is built here: DRF views raise (the `exception_handler` below reshapes what
DRF produces, whatever its status) or return `error_response(...)` / `bad_request(...)`; plain
Django views (the async ones DRF cannot serve) return `error_json(...)` / `validation_json(...)`.
"""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
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


class RequestTooLarge(APIException):
    """The request body is over what the API reads (413, with the limits in the message)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."


def too_large_message(size: int | None, limit: int) -> str:
    """What the editor shows when a body is refused for its size: the limits a user can act on."""
    got = f" ({size:,} bytes)" if size else ""
    return (f"The request is too large{got}: the limit is {limit:,} bytes. A workflow "
            f"definition may be up to {settings.MAX_DEFINITION_BYTES:,} bytes of JSON and a code "
            f"step's code up to {max_code_chars():,} characters.")


def max_code_chars() -> int:
    from engine.nodes import NODE_TYPES

    return NODE_TYPES["action.python"].parameters["properties"]["code"]["maxLength"]


def request_too_large_body(request=None) -> dict:
    size = None
    if request is not None:
        raw = (getattr(request, "META", None) or {}).get("CONTENT_LENGTH") or ""
        size = int(raw) if str(raw).isdigit() else None
    return error_body(too_large_message(size, settings.MAX_DEFINITION_BYTES + 65536))


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
    if isinstance(exc, RequestDataTooBig):   # Django's own cap (DATA_UPLOAD_MAX_MEMORY_SIZE)
        return Response(request_too_large_body(context.get("request")), status=413)
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
