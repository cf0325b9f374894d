"""Staff REST API: audit events (read-only, cursor-paginated, streaming export) and the policy."""
from __future__ import annotations

import csv
import io
import json
from datetime import timezone as dt_timezone

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import policy_actions
from governance.audit import AuditEvent, canonical_json
from governance.policies import Policy, load

FILTERS = [
    OpenApiParameter("kind", str, description="exact kind, or a prefix ending in * (package.*)"),
    OpenApiParameter("workflow", int), OpenApiParameter("run", int), OpenApiParameter("step", int),
    OpenApiParameter("actor", str),
    OpenApiParameter("since", OpenApiTypes.DATETIME), OpenApiParameter("until", OpenApiTypes.DATETIME),
]


def _when(name: str, raw: str):
    value = parse_datetime(raw)
    if value is None and parse_date(raw) is not None:
        value = parse_datetime(raw + "T00:00:00+00:00")
    if value is None:
        raise ValidationError({name: f"not an ISO date or date-time: {raw!r}"})
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    return value


def _int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: f"not an id: {raw!r}"}) from None
    if not 0 <= value < 2**63:
        raise ValidationError({name: f"not an id: {raw!r}"})
    return value


def filtered(params) -> "AuditEvent.objects":
    """Audit events matching the query parameters (kind, workflow, run, step, actor, since, until)."""
    qs = AuditEvent.objects.all()
    kind = params.get("kind")
    if kind:
        qs = qs.filter(kind__startswith=kind[:-1]) if kind.endswith("*") else qs.filter(kind=kind)
    for name in ("workflow", "run", "step"):
        if params.get(name):
            qs = qs.filter(**{f"{name}_id": _int(name, params[name])})
    if params.get("actor"):
        qs = qs.filter(actor=params["actor"])
    return in_period(qs, params)


def in_period(qs, params):
    """`qs` narrowed to rows `created` from `since` (inclusive) until `until` (exclusive), when the
    query parameters give them (dates or date-times; 400 otherwise)."""
    if params.get("since"):
        qs = qs.filter(created__gte=_when("since", params["since"]))
    if params.get("until"):
        qs = qs.filter(created__lt=_when("until", params["until"]))
    return qs


class AuditEventSerializer(serializers.ModelSerializer):
    workflow = serializers.IntegerField(source="workflow_id", allow_null=True)
    run = serializers.IntegerField(source="run_id", allow_null=True)
    step = serializers.IntegerField(source="step_id", allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "created", "kind", "actor", "workflow", "run", "step", "payload", "prev_hash", "hash"]
        read_only_fields = fields


class AuditCursor(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@extend_schema(parameters=FILTERS)
class AuditList(generics.ListAPIView):
    """Audit events, newest first."""

    permission_classes = [IsAdminUser]
    serializer_class = AuditEventSerializer
    pagination_class = AuditCursor

    def get_queryset(self):
        return filtered(self.request.query_params)


class AuditDetail(generics.RetrieveAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.all()


EXPORT_FIELDS = ["id", "created", "kind", "actor", "workflow", "run", "step", "payload", "prev_hash", "hash"]
EXPORT_CHUNK = 1000


def _row(event: AuditEvent) -> dict:
    return {"id": event.id, "created": event.created.isoformat(), "kind": event.kind, "actor": event.actor,
            "workflow": event.workflow_id, "run": event.run_id, "step": event.step_id,
            "payload": event.payload, "prev_hash": event.prev_hash, "hash": event.hash}


def _header(fmt: str) -> str:
    if fmt != "csv":
        return ""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(EXPORT_FIELDS)
    return buffer.getvalue()


def _render(chunk: list[AuditEvent], fmt: str) -> str:
    if fmt != "csv":
        return "".join(json.dumps(_row(e), ensure_ascii=False, separators=(",", ":")) + "\n" for e in chunk)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for event in chunk:
        row = _row(event)
        row["payload"] = canonical_json(row["payload"])
        writer.writerow([("" if row[f] is None else row[f]) for f in EXPORT_FIELDS])
    return buffer.getvalue()


def _chunk(qs, after: int) -> list[AuditEvent]:
    """The next events after id `after` (keyset pages: each query reads one bounded chunk)."""
    return list(qs.filter(id__gt=after).order_by("id")[:EXPORT_CHUNK])


async def _stream(qs, fmt: str):
    """The export for ASGI (uvicorn): one chunk of events at a time, memory stays flat."""
    if fmt == "csv":
        yield _header(fmt)
    last = 0
    while chunk := await sync_to_async(_chunk)(qs, last):
        last = chunk[-1].id
        yield _render(chunk, fmt)


def _stream_sync(qs, fmt: str):
    """The same for WSGI servers and the test client."""
    if fmt == "csv":
        yield _header(fmt)
    last = 0
    while chunk := _chunk(qs, last):
        last = chunk[-1].id
        yield _render(chunk, fmt)


class AuditExport(APIView):
    """The matching events as JSON lines (?format=jsonl, default) or CSV, streamed oldest first."""

    permission_classes = [IsAdminUser]

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), "application/json"  # ?format= names the export format, not a renderer

    @extend_schema(parameters=[*FILTERS, OpenApiParameter("format", str, enum=["jsonl", "csv"])],
                   responses={(200, "application/x-ndjson"): OpenApiTypes.STR, (200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in ("jsonl", "csv"):
            raise ValidationError({"format": "jsonl or csv"})
        qs = filtered(request.query_params)
        content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
        asgi = isinstance(request._request, ASGIRequest)   # Django buffers the other kind of iterator
        response = StreamingHttpResponse(_stream(qs, fmt) if asgi else _stream_sync(qs, fmt),
                                         content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
        return response


class PolicySerializer(serializers.ModelSerializer):
    egress_ceiling = serializers.ListField(child=serializers.CharField(max_length=300), max_length=1000,
                                           required=False)

    class Meta:
        model = Policy
        fields = ["max_timeout_s", "max_memory_mib", "egress_ceiling", "code_steps_group",
                  "allow_process_driver", "allow_workflow_isolation", "output_retention_days", "updated",
                  "updated_by"]
        read_only_fields = ["updated", "updated_by"]
        extra_kwargs = {"max_timeout_s": {"min_value": 1, "max_value": 86_400},
                        "max_memory_mib": {"min_value": 1, "max_value": 1_048_576},
                        "output_retention_days": {"min_value": 1, "max_value": 36_500}}

    def validate_egress_ceiling(self, value):
        from governance.rules import ceiling_errors

        errors = ceiling_errors(value)
        if errors:
            raise ValidationError(errors)
        return value


class PolicyView(APIView):
    """The instance policy (staff): read it, or replace it (every change is an audit event)."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=PolicySerializer)
    def get(self, request):
        return Response(PolicySerializer(load()).data)

    @extend_schema(request=PolicySerializer, responses=PolicySerializer)
    def put(self, request):
        serializer = PolicySerializer(load(), data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = policy_actions.change(serializer.validated_data, request.user)
        return Response(PolicySerializer(policy).data)
