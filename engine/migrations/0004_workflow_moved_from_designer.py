"""Workflow and WorkflowVersion move from the designer app to the engine (state only: the tables
keep their names, designer_workflow and designer_workflowversion). The engine's foreign keys are
re-pointed at engine.Workflow / engine.WorkflowVersion, again without touching the database;
designer 0002 then drops the old models from the designer's state."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _workflow_fk(on_delete, related_name, one_to_one=False):
    field = models.OneToOneField if one_to_one else models.ForeignKey
    return field(on_delete=on_delete, related_name=related_name, to="engine.workflow")


class Migration(migrations.Migration):

    dependencies = [
        ("designer", "0001_initial"),
        ("engine", "0003_steprun_runtime_id"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Workflow",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=200)),
                        ("description", models.TextField(blank=True, default="")),
                        ("created", models.DateTimeField(auto_now_add=True)),
                        ("updated", models.DateTimeField(auto_now=True)),
                        ("owner", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="workflows", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "db_table": "designer_workflow",
                        "ordering": ["-updated", "-id"],
                        "indexes": [models.Index(fields=["owner", "-updated"], name="designer_wo_owner_i_b5f00e_idx")],
                    },
                ),
                migrations.CreateModel(
                    name="WorkflowVersion",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("number", models.PositiveIntegerField()),
                        ("definition", models.JSONField()),
                        ("message", models.CharField(blank=True, default="", max_length=500)),
                        ("restored_from", models.PositiveIntegerField(blank=True, null=True)),
                        ("created", models.DateTimeField(auto_now_add=True)),
                        ("author", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                        ("workflow", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="versions", to="engine.workflow")),
                    ],
                    options={
                        "db_table": "designer_workflowversion",
                        "ordering": ["-number"],
                        "constraints": [models.UniqueConstraint(fields=("workflow", "number"), name="unique_version_number")],
                    },
                ),
                migrations.AddField(
                    model_name="workflow",
                    name="head",
                    field=models.ForeignKey(blank=True, help_text="The latest version.", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="engine.workflowversion"),
                ),
                migrations.AlterField(
                    model_name="run",
                    name="workflow",
                    field=_workflow_fk(django.db.models.deletion.CASCADE, "runs"),
                ),
                migrations.AlterField(
                    model_name="run",
                    name="version",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="runs", to="engine.workflowversion"),
                ),
                migrations.AlterField(
                    model_name="nodeschema",
                    name="workflow",
                    field=_workflow_fk(django.db.models.deletion.CASCADE, "node_schemas"),
                ),
                migrations.AlterField(
                    model_name="pinnedoutput",
                    name="workflow",
                    field=_workflow_fk(django.db.models.deletion.CASCADE, "pins"),
                ),
                migrations.AlterField(
                    model_name="hooktoken",
                    name="workflow",
                    field=_workflow_fk(django.db.models.deletion.CASCADE, "hook", one_to_one=True),
                ),
                migrations.AlterField(
                    model_name="scheduletick",
                    name="workflow",
                    field=_workflow_fk(django.db.models.deletion.CASCADE, "ticks"),
                ),
            ],
            database_operations=[],
        ),
    ]
