from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    """Audit log (hash-chained, append-only) and instance policies; secrets and metering later."""

    name = "governance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from governance import signals  # noqa: F401 - connects the login / login_failed receivers
