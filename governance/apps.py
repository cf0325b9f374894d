from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    """Audit log (hash-chained, append-only), instance policies, encrypted secrets and metering."""

    name = "governance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from governance import signals  # noqa: F401 - connects the login / login_failed receivers
