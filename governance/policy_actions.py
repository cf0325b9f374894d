"""Changing the instance policy and deciding with it; every change and decision is an audit event.

`check_save` and `check_run` evaluate governance.rules against the current policy, record one
`policy` audit event (allowed or denied, at save or at run, with the rules broken) and return the
violations; the caller (designer or engine) turns them into its own error.
"""
from __future__ import annotations

from django.db import transaction

from governance.actions import actor_of, record
from governance.policies import Policy, PolicyValues, current, load
from governance.rules import Violation, changed_code_nodes, evaluate

FIELDS = ("max_timeout_s", "max_memory_mib", "egress_ceiling", "code_steps_group", "allow_process_driver",
          "output_retention_days", "allow_workflow_isolation")


def _values(policy: Policy) -> dict:
    return {f: getattr(policy, f) for f in FIELDS}


@transaction.atomic
def change(values: dict, user) -> Policy:
    """Set the policy fields given in `values`; record `policy.changed` with before and after."""
    policy = Policy.objects.select_for_update().filter(pk=1).first() or load()
    before = _values(policy)
    for field in FIELDS:
        if field in values:
            setattr(policy, field, values[field])
    policy.updated_by = actor_of(user)
    policy.save()
    record("policy.changed", actor=actor_of(user), payload={"before": before, "after": _values(policy)})
    return policy


def may_add_code(user, policy: PolicyValues) -> bool:
    if not policy.code_steps_group:
        return True
    if user is None:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return user.groups.filter(name=policy.code_steps_group).exists()


def _decide(stage: str, violations: list[Violation], *, actor: str, workflow: int | None,
            run: int | None, policy: PolicyValues) -> list[Violation]:
    record("policy", actor=actor, workflow=workflow, run=run, payload={
        "stage": stage, "decision": "denied" if violations else "allowed",
        "rules": sorted({v.rule for v in violations}),
        "violations": [v.to_dict() for v in violations],
        "policy": {"max_timeout_s": policy.max_timeout_s, "max_memory_mib": policy.max_memory_mib,
                   "egress_ceiling": list(policy.egress_ceiling), "code_steps_group": policy.code_steps_group,
                   "allow_process_driver": policy.allow_process_driver,
                   "allow_workflow_isolation": policy.allow_workflow_isolation},
    })
    return violations


def check_save(definition: dict, user, *, workflow: int | None = None,
               previous: dict | None = None) -> list[Violation]:
    """The policy's verdict on saving `definition` (by `user`, over the `previous` version)."""
    policy = current()
    violations = evaluate(definition, policy, may_add_code=may_add_code(user, policy),
                          new_code_nodes=changed_code_nodes(definition, previous))
    return _decide("save", violations, actor=actor_of(user), workflow=workflow, run=None, policy=policy)


def check_run(definition: dict, owner, *, actor: str = "", workflow: int | None = None, run: int | None = None,
              driver: str | None = None) -> list[Violation]:
    """The policy's verdict on running `definition` now (its owner's rights, the sandbox `driver`)."""
    policy = current()
    violations = evaluate(definition, policy, may_add_code=may_add_code(owner, policy), driver=driver)
    return _decide("run", violations, actor=actor, workflow=workflow, run=run, policy=policy)


def describe(violations: list[Violation]) -> str:
    """One line for a run's error: each broken rule with its path."""
    return "; ".join(f"{v.path}: {v.message} [policy rule {v.rule}]" for v in violations)
