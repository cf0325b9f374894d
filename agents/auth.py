"""`Authorization: Bearer <key>`: a DRF authentication class for the API views, and
`key_from_header` / `authenticate_request` for views DRF does not serve (the MCP server).

A request authenticated by a key gets the key's owner as its user, with `user.audit_actor` set
to the key's actor (`owner/key name`), which governance.actions.actor_of records in audit events;
`request.auth` is the `ApiKey`. A bad, revoked or expired key is a 401 in the API's error shape
with `WWW-Authenticate: Bearer`, and an `api_key.auth_failed` audit event.
"""
from __future__ import annotations

from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import APIException

from agents.keys import Refusal, verify
from agents.models import ApiKey

CHALLENGE = 'Bearer realm="stepwell"'


class InvalidApiKey(APIException):
    """401 with a Bearer challenge. Not DRF's AuthenticationFailed, which DRF turns into a 403
    when the first authentication class (the session's) has no challenge of its own."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Invalid, revoked or expired API key."
    default_code = "authentication_failed"
    auth_header = CHALLENGE + ', error="invalid_token"'


def _address(request) -> str:
    meta = getattr(request, "META", None) or {}
    return meta.get("REMOTE_ADDR") or ""


def key_from_header(value: str | bytes | None, address: str = "") -> ApiKey | None:
    """The key an Authorization header value carries: None when it is not a Bearer header;
    raises `Refusal` (after recording `api_key.auth_failed`) when the key does not authenticate.
    It uses the ORM: from async code (an ASGI app such as the MCP server) call it through
    `asgiref.sync.sync_to_async`."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, token = (value or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        key = verify(token.strip())
    except Refusal as refusal:
        from agents.actions import record_refusal

        record_refusal(refusal, address)
        raise
    key.user.audit_actor = key.actor
    return key


def authenticate_request(request) -> ApiKey | None:
    """For a plain Django view: the request's key (its user also set as `request.user`), None
    without a Bearer header; raises `Refusal`, which the view answers with `refusal_json`."""
    key = key_from_header(request.META.get("HTTP_AUTHORIZATION"), _address(request))
    if key is not None:
        request.user = key.user
        request.api_key = key
    return key


def refusal_json(refusal: Refusal | None = None):
    """The 401 answer of a plain Django view to a missing or refused key."""
    from designer.api.errors import error_json

    response = error_json(401, str(refusal) if refusal else "An API key is required (Authorization: Bearer <key>).")
    response["WWW-Authenticate"] = CHALLENGE
    return response


class BearerKeyAuthentication(BaseAuthentication):
    """DRF: `Authorization: Bearer <key>`; other schemes are left to the other classes."""

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header[:7].lower().startswith(b"bearer"):
            return None
        try:
            key = key_from_header(header, _address(request))
        except Refusal:
            raise InvalidApiKey() from None
        return (key.user, key) if key is not None else None

    def authenticate_header(self, request):
        return CHALLENGE


def is_key_request(request) -> bool:
    return isinstance(getattr(request, "auth", None), ApiKey)
