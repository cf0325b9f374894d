"""Session pools API: `/api/sessionpools/` (list: any signed-in user or key; create: staff) and
`/api/sessionpools/{name}/` (read; change and delete: staff). Changes are audited
(agents.pool_actions)."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import pool_actions
from agents.sessionpools import SessionPool


class SessionPoolSerializer(serializers.ModelSerializer):
    open_sessions = serializers.SerializerMethodField()

    class Meta:
        model = SessionPool
        fields = ["name", "max_sessions", "memory_mib", "timeout_s", "cooldown_s", "allowed_hosts", "runtime",
                  "created", "open_sessions"]
        read_only_fields = ["created", "open_sessions"]
        extra_kwargs = {"runtime": {"error_messages": {"does_not_exist": "there is no runtime #{pk_value}"}}}

    def get_open_sessions(self, pool) -> int:
        """Sessions not ended and not idle past the pool's cooldown (those end at the next call)."""
        from django.utils import timezone

        return pool.live_sessions(timezone.now()).count()

    def validate_allowed_hosts(self, value):
        from sandbox.egress.policy import EntryError, parse_entry

        if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
            raise ValidationError("a list of host entries (host, host:port, *.domain)")
        for h in value:
            try:
                parse_entry(h)
            except EntryError as exc:
                raise ValidationError(f"{h!r}: {exc}") from None
        return value


class StaffWrites(permissions.BasePermission):
    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return bool(request.user and request.user.is_staff)


def _save(pool, user, before=None):
    try:
        return pool_actions.save(pool, user, before)
    except DjangoValidationError as exc:
        raise ValidationError(exc.message_dict) from None


class PoolList(APIView):
    """The session pools; staff make new ones."""

    permission_classes = [StaffWrites]

    @extend_schema(responses=SessionPoolSerializer(many=True))
    def get(self, request):
        return Response(SessionPoolSerializer(SessionPool.objects.all(), many=True).data)

    @extend_schema(request=SessionPoolSerializer, responses={201: SessionPoolSerializer})
    def post(self, request):
        s = SessionPoolSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        pool = _save(SessionPool(**s.validated_data), request.user)
        return Response(SessionPoolSerializer(pool).data, status=status.HTTP_201_CREATED)


class PoolDetail(APIView):
    """One session pool: read it; staff change (PATCH) or delete it."""

    permission_classes = [StaffWrites]

    @extend_schema(responses=SessionPoolSerializer)
    def get(self, request, name: str):
        return Response(SessionPoolSerializer(get_object_or_404(SessionPool, name=name)).data)

    @extend_schema(request=SessionPoolSerializer, responses=SessionPoolSerializer)
    def patch(self, request, name: str):
        pool = get_object_or_404(SessionPool, name=name)
        before = pool_actions.values(pool)
        s = SessionPoolSerializer(pool, data=request.data, partial=True)
        s.is_valid(raise_exception=True)
        for k, v in s.validated_data.items():
            setattr(pool, k, v)
        return Response(SessionPoolSerializer(_save(pool, request.user, before)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, name: str):
        pool_actions.delete(get_object_or_404(SessionPool, name=name), request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
