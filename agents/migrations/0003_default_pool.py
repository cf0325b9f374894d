"""The session pool `default` (the code-interpreter session API's pool out of the box)."""
from django.db import migrations


def create_default(apps, schema_editor):
    SessionPool = apps.get_model("agents", "SessionPool")
    SessionPool.objects.get_or_create(name="default")


class Migration(migrations.Migration):

    dependencies = [("agents", "0002_sessionpools")]

    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]
