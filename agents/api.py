"""API keys API: list and create (`/api/keys/`), read, rename and revoke (`/api/keys/{id}/`,
`DELETE` or `POST .../revoke/`). Users see and change their own keys, staff everyone's; another
user's key answers 404. The plain key is in the create answer only. A request authenticated by
an API key cannot manage keys (a leaked key must not be able to mint more)."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import actions
from agents.auth import is_key_request
from agents.models import NAME_MAX, STATUSES, ApiKey


class ApiKeySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    prefix = serializers.CharField(read_only=True, help_text="the key starts with sw_<prefix>_")
    user = serializers.CharField(source="user.username", read_only=True)
    status = serializers.ChoiceField(choices=STATUSES, read_only=True)
    created = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    max_concurrent_sessions = serializers.IntegerField(read_only=True)
    executions_per_minute = serializers.IntegerField(read_only=True)
    session_seconds_per_day = serializers.IntegerField(read_only=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["status"] = instance.status()
        return data


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="the plain key: shown this once, never again")


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_MAX)
    expires_days = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                            max_value=actions.MAX_EXPIRES_DAYS,
                                            help_text="days until the key expires; empty: never")


class ApiKeyRenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_MAX)


class NotWithApiKey(permissions.BasePermission):
    message = "API keys cannot manage API keys: sign in to do this."

    def has_permission(self, request, view):
        return not is_key_request(request)


def _apply(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except actions.KeyInvalid as exc:
        raise ValidationError({exc.field: [str(exc)]}) from None


def _visible(request):
    qs = ApiKey.objects.select_related("user")
    return qs if request.user.is_staff else qs.filter(user=request.user)


class KeyViewBase(APIView):
    permission_classes = [permissions.IsAuthenticated, NotWithApiKey]


class KeyList(KeyViewBase):
    """Your API keys (never the keys themselves), and making one."""

    @extend_schema(parameters=[OpenApiParameter("all", bool, description="staff: every user's keys")],
                   responses=ApiKeySerializer(many=True))
    def get(self, request):
        qs = _visible(request)
        if not (request.user.is_staff and request.query_params.get("all") in ("1", "true", "True")):
            qs = qs.filter(user=request.user)
        return Response(ApiKeySerializer(qs, many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request):
        s = ApiKeyCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        key, plain = _apply(actions.create, request.user, s.validated_data["name"],
                            s.validated_data.get("expires_days"))
        key.key = plain
        return Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)


class KeyDetail(KeyViewBase):
    """One key: read it, rename it, or revoke it (DELETE)."""

    def _get(self, request, key_id: int) -> ApiKey:
        return get_object_or_404(_visible(request), pk=key_id)

    @extend_schema(responses=ApiKeySerializer)
    def get(self, request, key_id: int):
        return Response(ApiKeySerializer(self._get(request, key_id)).data)

    @extend_schema(request=ApiKeyRenameSerializer, responses=ApiKeySerializer)
    def patch(self, request, key_id: int):
        key = self._get(request, key_id)
        s = ApiKeyRenameSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        _apply(actions.rename, key, s.validated_data["name"], request.user)
        return Response(ApiKeySerializer(key).data)

    @extend_schema(responses={204: None})
    def delete(self, request, key_id: int):
        actions.revoke(self._get(request, key_id), request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyRevoke(KeyViewBase):
    """Revoke a key: it stops working at once (revoking twice is harmless)."""

    @extend_schema(request=None, responses=ApiKeySerializer)
    def post(self, request, key_id: int):
        key = actions.revoke(get_object_or_404(_visible(request), pk=key_id), request.user)
        return Response(ApiKeySerializer(key).data)
