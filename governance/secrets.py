"""The `Secret` model: a named value owned by a user, stored only as a Fernet token.

Workflows refer to secrets by name (`settings.secrets`); code steps see them as environment
variables and HTTP-call parameters as `{{ secrets.NAME }}`. The plain value is never stored:
`ciphertext` holds it encrypted with governance.crypto, and nothing returns it to a client.
"""
from __future__ import annotations

import re

from django.conf import settings
from django.db import models

NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
MAX_NAME = 128
MAX_VALUE_BYTES = 64 * 1024


class Secret(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=MAX_NAME)
    ciphertext = models.TextField()
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="secret_unique_per_owner")]

    def __str__(self) -> str:
        return self.name   # never the value

    def reveal(self) -> str:
        """The plain value (for the worker that hands it to a step; never for a response)."""
        from governance.crypto import decrypt

        return decrypt(self.ciphertext)
