"""State changes of workflows. Views parse input and call one of these; nothing else writes."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from engine.models import Workflow, WorkflowVersion
from engine.validation import DefinitionInvalid, Problem, check_definition, empty_definition


def _next_number(workflow: Workflow) -> int:
    return (workflow.versions.aggregate(n=Max("number"))["n"] or 0) + 1


def do_save_version(workflow: Workflow, definition: dict, author, message: str = "",
                    restored_from: int | None = None, policy_checked: bool = False) -> WorkflowVersion:
    """Validate `definition` and store it as the workflow's next version.

    :raises engine.validation.DefinitionInvalid: nothing is saved.
    """
    check_definition(definition)
    from governance.secret_actions import problems as secret_problems   # names the owner has

    from engine.agent_connections import problems as connection_problems   # names staff configured

    missing = secret_problems(workflow.owner_id, definition) + connection_problems(definition)
    if missing:
        raise DefinitionInvalid([Problem(path, message) for path, message in missing])
    if not policy_checked:   # the instance policy, outside the transaction so a denial stays recorded
        from engine.governance_hooks import check_save

        check_save(workflow, definition, author)
    return _store_version(workflow, definition, author, message, restored_from)


@transaction.atomic
def _store_version(workflow: Workflow, definition: dict, author, message: str,
                   restored_from: int | None) -> WorkflowVersion:
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=_next_number(workflow), definition=definition,
        author=author, message=message, restored_from=restored_from,
    )
    workflow.head = version
    workflow.save(update_fields=["head", "updated"])
    from governance.actions import actor_of, record

    record("workflow.saved", actor=actor_of(author), workflow=workflow.pk, payload={
        "version": version.number, "name": workflow.name, "message": message, "restored_from": restored_from})
    return version


def do_create_workflow(owner, name: str, description: str = "", definition: dict | None = None) -> Workflow:
    """Create a workflow with its first version (an empty one when no definition is given).

    :raises engine.validation.DefinitionInvalid: nothing is saved.
    """
    definition = definition if definition is not None else empty_definition()
    check_definition(definition)
    from engine.governance_hooks import check_save

    check_save(None, definition, owner)   # outside the transaction: a denial stays recorded
    return _create_workflow(owner, name, description, definition)


@transaction.atomic
def _create_workflow(owner, name: str, description: str, definition: dict) -> Workflow:
    workflow = Workflow.objects.create(owner=owner, name=name, description=description)
    do_save_version(workflow, definition, author=owner, message="created", policy_checked=True)
    workflow.refresh_from_db()
    return workflow


def do_restore_version(workflow: Workflow, number: int, author) -> WorkflowVersion:
    """Save an old version's definition as a new version."""
    old = workflow.versions.get(number=number)
    return do_save_version(workflow, old.definition, author, message=f"restored v{number}",
                           restored_from=number)


def do_rename_workflow(workflow: Workflow, name: str | None = None, description: str | None = None) -> Workflow:
    """Change name/description without creating a version."""
    fields = ["updated"]
    if name is not None:
        workflow.name = name
        fields.append("name")
    if description is not None:
        workflow.description = description
        fields.append("description")
    workflow.save(update_fields=fields)
    return workflow


def do_delete_workflow(workflow: Workflow, user) -> None:
    """Delete a workflow with its versions and runs (recorded as `workflow.deleted`)."""
    from governance.actions import actor_of, record

    with transaction.atomic():
        record("workflow.deleted", actor=actor_of(user), workflow=workflow.pk,
               payload={"name": workflow.name, "owner": workflow.owner.get_username(),
                        "version": workflow.head.number if workflow.head_id else None})
        workflow.delete()


EXPORT_FORMAT = "stepwell.workflow/v1"


def export_workflow(workflow: Workflow) -> dict:
    """A self-contained JSON document that `do_import_workflow` turns back into a workflow."""
    return {
        "format": EXPORT_FORMAT,
        "name": workflow.name,
        "description": workflow.description,
        "definition": workflow.definition,
    }


def do_import_workflow(owner, document: dict) -> Workflow:
    """Create a workflow from an export document.

    :raises engine.validation.DefinitionInvalid: nothing is saved.
    """
    return do_create_workflow(owner, document["name"], document.get("description", ""),
                              document["definition"])
