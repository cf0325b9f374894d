"""Staff pages: the audit log (filters, newest first, one page per event) and the policy form."""
from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404, redirect, render
from rest_framework.exceptions import ValidationError

from governance import policy_actions
from governance.api import filtered
from governance.audit import AuditEvent
from governance.policies import load
from governance.rules import ceiling_errors

PAGE = 50
KINDS = ["execution", "policy", "policy.changed", "workflow.*", "run.*", "package.*", "runtime.*",
         "secret.*", "api_key.*", "login", "login_failed", "checkpoint"]


@staff_member_required
def audit_page(request):
    params = request.GET
    error = ""
    try:
        qs = filtered(params).order_by("-id")
        before = params.get("before")
        if before and before.isdigit() and len(before) < 19:
            qs = qs.filter(id__lt=int(before))
        events = list(qs[:PAGE + 1])
    except ValidationError as exc:
        events, error = [], "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.detail.items())
    more = len(events) > PAGE
    events = events[:PAGE]
    query = params.copy()
    query.pop("before", None)
    if more:
        query["before"] = str(events[-1].id)
    return render(request, "governance/audit.html", {
        "events": events, "filters": {k: params.get(k, "") for k in ("kind", "workflow", "run", "step", "actor", "since", "until")},
        "kinds": KINDS, "next_query": query.urlencode() if more else "", "error": error,
        "export_query": params.copy().urlencode(),
    })


@staff_member_required
def audit_event_page(request, pk: int):
    event = get_object_or_404(AuditEvent, pk=pk)
    return render(request, "governance/audit_event.html", {
        "event": event, "payload": json.dumps(event.payload, indent=2, ensure_ascii=False, sort_keys=True),
        "hash_ok": event.compute_hash() == event.hash,
    })


class PolicyForm(forms.Form):
    max_timeout_s = forms.IntegerField(required=False, min_value=1, max_value=86_400, label="Maximum timeout (s) of a code step")
    max_memory_mib = forms.IntegerField(required=False, min_value=1, max_value=1_048_576, label="Maximum memory (MiB) of a code step")
    egress_ceiling = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}),
                                     label="Egress ceiling (one host, host:port, *.domain or * per line)")
    code_steps_group = forms.CharField(required=False, max_length=150,
                                       label="Only this group may add code steps (empty: everyone)")
    allow_process_driver = forms.BooleanField(required=False, label="The process driver may run code steps")
    allow_workflow_isolation = forms.BooleanField(
        required=False, label="Workflows may choose workflow isolation (VMs reused across one workflow's executions)")
    output_retention_days = forms.IntegerField(required=False, min_value=1, max_value=36_500, label="Output retention (days)")

    def clean_egress_ceiling(self):
        entries = [line.strip() for line in self.cleaned_data["egress_ceiling"].splitlines() if line.strip()]
        errors = ceiling_errors(entries)
        if errors:
            raise DjangoValidationError(errors)
        return entries


@staff_member_required
def policy_page(request):
    policy = load()
    if request.method == "POST":
        form = PolicyForm(request.POST)
        if form.is_valid():
            policy_actions.change(form.cleaned_data, request.user)
            messages.success(request, "Policy saved.")
            return redirect("policy-page")
    else:
        initial = {f: getattr(policy, f) for f in policy_actions.FIELDS}
        initial["egress_ceiling"] = "\n".join(policy.egress_ceiling or [])
        form = PolicyForm(initial=initial)
    return render(request, "governance/policy.html", {"form": form, "policy": policy})
