"""Usage API: `GET /api/usage/?group_by=workflow|user|day&since=&until=` (own rows; staff: all)."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api import in_period
from governance.usage import GROUPS, Usage, totals


def usage_rows(user, params):
    """The usage rows `user` may see (all for staff), filtered by since/until (dates or date-times)."""
    qs = Usage.objects.all() if user.is_staff else Usage.objects.filter(user=user)
    return in_period(qs, params)


class _Totals(serializers.Serializer):
    executions = serializers.IntegerField()
    session_s = serializers.FloatField()
    cpu_s = serializers.FloatField(allow_null=True)
    peak_memory_bytes = serializers.IntegerField(allow_null=True)
    egress_bytes = serializers.IntegerField()
    cost = serializers.CharField(help_text="session_s x price, as a decimal string")


class _Group(_Totals):
    key = serializers.JSONField(help_text="workflow id, user name or day (YYYY-MM-DD)")


class UsageSerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=sorted(GROUPS))
    price_per_session_second = serializers.CharField()
    groups = _Group(many=True)
    total = _Totals()


class UsageView(APIView):
    """Sandbox usage grouped by workflow, user or day, with totals and cost."""

    @extend_schema(parameters=[OpenApiParameter("group_by", str, enum=sorted(GROUPS)),
                               OpenApiParameter("since", OpenApiTypes.DATETIME),
                               OpenApiParameter("until", OpenApiTypes.DATETIME)],
                   responses=UsageSerializer)
    def get(self, request):
        group_by = request.query_params.get("group_by", "day")
        if group_by not in GROUPS:
            raise ValidationError({"group_by": f"one of {', '.join(sorted(GROUPS))}"})
        return Response(totals(usage_rows(request.user, request.query_params), group_by))
