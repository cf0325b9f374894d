"""Workflow and WorkflowVersion now belong to the engine app (engine 0004 adds them to its state
over the same tables); this drops them from the designer's state without touching the tables,
and renames their content types so permissions and admin history follow them."""

from django.db import migrations

MOVED = ("workflow", "workflowversion")


def _relabel(apps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def forwards(apps, schema_editor):
    _relabel(apps, "designer", "engine")


def backwards(apps, schema_editor):
    _relabel(apps, "engine", "designer")


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("designer", "0001_initial"),
        ("engine", "0004_workflow_moved_from_designer"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="workflow", name="head"),
                migrations.DeleteModel(name="WorkflowVersion"),
                migrations.DeleteModel(name="Workflow"),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
