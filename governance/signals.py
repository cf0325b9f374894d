"""Sign-ins and failed sign-ins become audit events (the user name and address; never the password)."""
from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver


def _address(request) -> str:
    return (request.META.get("REMOTE_ADDR") or "") if request is not None else ""


@receiver(user_logged_in, dispatch_uid="governance-login")
def _logged_in(sender, request, user, **kwargs) -> None:
    from governance import actions

    actions.record("login", actor=user.get_username(), payload={"address": _address(request)})


@receiver(user_login_failed, dispatch_uid="governance-login-failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    from governance import actions

    username = str((credentials or {}).get("username", ""))[:150]
    actions.record("login_failed", actor=username, payload={"address": _address(request)})
