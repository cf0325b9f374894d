from django.apps import AppConfig


class SandboxAppConfig(AppConfig):
    """Django app for the sandbox: only management commands (sandbox_exec, sandbox_service)."""

    name = "sandbox"
    label = "sandbox"
    verbose_name = "Sandbox"
    default_auto_field = "django.db.models.BigAutoField"
