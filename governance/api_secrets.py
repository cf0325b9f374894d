"""Secrets API: list and create (`/api/secrets/`), replace and delete (`/api/secrets/{name}/`).

Values are write-only: no response carries one, not even to the owner. Another user's secret
answers 404, like a name that does not exist.
"""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import secret_actions
from governance.secrets import MAX_NAME, MAX_VALUE_BYTES, Secret


class SecretSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    created = serializers.DateTimeField(read_only=True)
    updated = serializers.DateTimeField(read_only=True)
    workflows = serializers.ListField(child=serializers.IntegerField(), read_only=True,
                                      help_text="ids of the workflows whose current version lists this secret")


class SecretCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME)
    value = serializers.CharField(write_only=True, max_length=MAX_VALUE_BYTES, trim_whitespace=False)


class SecretValueSerializer(serializers.Serializer):
    value = serializers.CharField(write_only=True, max_length=MAX_VALUE_BYTES, trim_whitespace=False)


def _shape(secret: Secret, used: dict) -> dict:
    return SecretSerializer({"name": secret.name, "created": secret.created, "updated": secret.updated,
                             "workflows": used.get(secret.name, [])}).data


def _apply(fn, *args):
    try:
        return fn(*args)
    except secret_actions.SecretInvalid as exc:
        raise ValidationError({exc.field: [str(exc)]}) from None


class SecretList(APIView):
    """Your secrets (names and dates only), and adding one."""

    @extend_schema(responses=SecretSerializer(many=True))
    def get(self, request):
        used = secret_actions.used_by(request.user.pk)
        return Response([_shape(s, used) for s in Secret.objects.filter(owner=request.user)])

    @extend_schema(request=SecretCreateSerializer, responses={201: SecretSerializer})
    def post(self, request):
        s = SecretCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        secret = _apply(secret_actions.create, request.user, s.validated_data["name"], s.validated_data["value"])
        return Response(_shape(secret, secret_actions.used_by(request.user.pk)), status=status.HTTP_201_CREATED)


class SecretDetail(APIView):
    """Replace a secret's value, or delete it."""

    def _get(self, request, secret_name: str) -> Secret:
        return get_object_or_404(Secret, owner=request.user, name=secret_name)

    @extend_schema(request=SecretValueSerializer, responses=SecretSerializer)
    def put(self, request, secret_name: str):
        secret = self._get(request, secret_name)
        s = SecretValueSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        _apply(secret_actions.update, secret, s.validated_data["value"], request.user)
        return Response(_shape(secret, secret_actions.used_by(request.user.pk)))

    @extend_schema(responses={204: None})
    def delete(self, request, secret_name: str):
        secret_actions.delete(self._get(request, secret_name), request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
