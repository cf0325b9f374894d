from django.apps import AppConfig


class DesignerConfig(AppConfig):
    """The web app: workflows and their versions, REST API, pages, admin."""

    name = "designer"
    default_auto_field = "django.db.models.BigAutoField"
