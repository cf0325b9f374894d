from django.apps import AppConfig


class AgentsConfig(AppConfig):
    """API keys for agents: hashed at rest, Bearer authentication, per-key quotas, audited."""

    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from agents import schema  # noqa: F401 - tells drf-spectacular about the Bearer scheme
