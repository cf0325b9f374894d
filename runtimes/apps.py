from django.apps import AppConfig


class RuntimesConfig(AppConfig):
    name = "runtimes"
    verbose_name = "Python runtimes"
    default_auto_field = "django.db.models.BigAutoField"
