from django.apps import AppConfig


class EngineConfig(AppConfig):
    """Workflow definitions (schema, validation) and, later, runs."""

    name = "engine"
    default_auto_field = "django.db.models.BigAutoField"
