"""`ModelConnection`: a named OpenAI-compatible chat-completions endpoint staff configure (in the
Django admin) for AI agent steps (`action.agent`, whose `connection` parameter names one).

The API key is stored like a governance secret: only its Fernet token (governance.crypto, the
instance's secrets key), never the plain value; `api_key()` decrypts it for the worker's call and
nothing returns it to a client. The agent step masks it in everything it records.
"""
from __future__ import annotations

from django.core.validators import URLValidator
from django.db import models

NAME_MAX = 100


class ModelConnection(models.Model):
    name = models.CharField(max_length=NAME_MAX, unique=True,
                            help_text="What an AI agent step's `connection` parameter names.")
    base_url = models.URLField(max_length=500, validators=[URLValidator(schemes=["http", "https"])],
                               help_text="The API root, e.g. https://api.openai.com/v1 "
                                         "(requests go to <base_url>/chat/completions).")
    model = models.CharField(max_length=200, help_text="The model name sent in each request.")
    api_key_ciphertext = models.TextField(blank=True, default="", editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "engine"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name   # never the key

    def set_api_key(self, value: str) -> None:
        from governance.crypto import encrypt

        self.api_key_ciphertext = encrypt(value) if value else ""

    def api_key(self) -> str:
        """The plain key (for the worker's request; never for a response). "" when none is set."""
        if not self.api_key_ciphertext:
            return ""
        from governance.crypto import decrypt

        return decrypt(self.api_key_ciphertext)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_ciphertext)

    def completions_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def problems(definition: dict) -> list[tuple[str, str]]:
    """(path, message) for each AI agent step whose `connection` names no ModelConnection: a
    workflow is not saved with one (the run would only fail at that step)."""
    nodes = (definition or {}).get("nodes") or []
    wanted = {i: n.get("parameters", {}).get("connection") for i, n in enumerate(nodes)
              if isinstance(n, dict) and n.get("type") == "action.agent" and isinstance(n.get("parameters"), dict)}
    if not wanted:
        return []
    known = sorted(ModelConnection.objects.values_list("name", flat=True))
    choices = ", ".join(repr(k) for k in known) if known else "none yet: staff add them in the admin (Model connections)"
    return [(f"$.nodes[{i}].parameters.connection", f"no model connection named {name!r}; known: {choices}")
            for i, name in wanted.items() if name not in known]
