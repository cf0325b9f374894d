"""State changes and look-ups of secrets; each change is an audit event naming the secret only.

- `create`, `update`, `delete` (views call these; values are encrypted here).
- `values_for(owner_id, names)`: the plain values a run may use (the worker calls it).
- `problems(owner_id, definition)`: `settings.secrets` names the owner does not have, as
  (JSON path, message) pairs for the save-time validation.
- `used_by(owner_id)`: {secret name: [workflow ids whose head version lists it]}.
- `rotate()`: re-encrypt every secret under the newest key (MultiFernet.rotate).
"""
from __future__ import annotations

from django.db import transaction

from governance.actions import actor_of, record
from governance.crypto import encrypt, fernet
from governance.secrets import MAX_NAME, MAX_VALUE_BYTES, NAME_RE, Secret


class SecretInvalid(ValueError):
    """A name or value that cannot be stored; `field` names which."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_name(name) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME:
        raise SecretInvalid("name", "a secret name is an environment variable name: capital letters, "
                                    f"digits and _, not starting with a digit, at most {MAX_NAME} characters")
    return name


def check_value(value) -> str:
    if not isinstance(value, str) or not value:
        raise SecretInvalid("value", "the value must be a non-empty string")
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise SecretInvalid("value", f"the value is longer than {MAX_VALUE_BYTES} bytes")
    if "\0" in value:
        raise SecretInvalid("value", "the value cannot contain a NUL character (it becomes an environment variable)")
    return value


@transaction.atomic
def create(owner, name: str, value: str) -> Secret:
    """:raises SecretInvalid: bad name or value, or the owner already has this name."""
    check_name(name)
    check_value(value)
    if Secret.objects.filter(owner=owner, name=name).exists():
        raise SecretInvalid("name", f"you already have a secret named {name}")
    secret = Secret.objects.create(owner=owner, name=name, ciphertext=encrypt(value))
    record("secret.created", actor=actor_of(owner), payload={"name": name, "owner": owner.pk})
    return secret


@transaction.atomic
def update(secret: Secret, value: str, actor) -> Secret:
    check_value(value)
    secret.ciphertext = encrypt(value)
    secret.save(update_fields=["ciphertext", "updated"])
    record("secret.updated", actor=actor_of(actor), payload={"name": secret.name, "owner": secret.owner_id})
    return secret


@transaction.atomic
def delete(secret: Secret, actor) -> None:
    name, owner_id = secret.name, secret.owner_id
    secret.delete()
    record("secret.deleted", actor=actor_of(actor), payload={"name": name, "owner": owner_id})


def values_for(owner_id: int, names) -> tuple[dict[str, str], list[str]]:
    """({name: plain value}, [listed names the owner has no secret for])."""
    names = [n for n in dict.fromkeys(names or []) if isinstance(n, str)]
    if not names:
        return {}, []
    rows = {s.name: s for s in Secret.objects.filter(owner_id=owner_id, name__in=names)}
    return {n: rows[n].reveal() for n in names if n in rows}, [n for n in names if n not in rows]


def problems(owner_id: int, definition: dict) -> list[tuple[str, str]]:
    listed = ((definition or {}).get("settings") or {}).get("secrets") or []
    if not isinstance(listed, list):
        return []
    have = set(Secret.objects.filter(owner_id=owner_id, name__in=[n for n in listed if isinstance(n, str)])
               .values_list("name", flat=True))
    return [(f"$.settings.secrets[{i}]", f"no secret named {name!r}: add it on the Secrets page first")
            for i, name in enumerate(listed) if isinstance(name, str) and name not in have]


def used_by(owner_id: int) -> dict[str, list[int]]:
    from engine.models import Workflow

    out: dict[str, list[int]] = {}
    for wf in Workflow.objects.filter(owner_id=owner_id).select_related("head").only("id", "head__definition"):
        listed = ((wf.head.definition if wf.head else {}) or {}).get("settings", {}).get("secrets") or []
        for name in listed:
            if isinstance(name, str):
                out.setdefault(name, []).append(wf.pk)
    return out


def rotate() -> int:
    """Re-encrypt every secret under the newest key; returns how many were re-encrypted."""
    f = fernet()
    count = 0
    for pk in list(Secret.objects.values_list("pk", flat=True)):
        with transaction.atomic():
            secret = Secret.objects.select_for_update().filter(pk=pk).first()
            if secret is None:
                continue
            secret.ciphertext = f.rotate(secret.ciphertext.encode("ascii")).decode("ascii")
            Secret.objects.filter(pk=pk).update(ciphertext=secret.ciphertext)
            count += 1
    return count
