"""The signed-in user's pages for secrets (add, replace, delete; values never shown) and usage
(totals per day, workflow and user, with charts drawn by Chart.js in static/governance/usage.js)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from rest_framework.exceptions import ValidationError

from governance import secret_actions
from governance.api_usage import usage_rows
from governance.secrets import Secret
from governance.usage import totals


@login_required
@require_http_methods(["GET", "POST"])
def secrets_page(request):
    if request.method == "POST":
        op, name, value = request.POST.get("op"), request.POST.get("name", ""), request.POST.get("value", "")
        try:
            if op == "add":
                secret_actions.create(request.user, name.strip(), value)
                messages.success(request, f"Secret {name.strip()} added.")
            elif op == "update":
                secret = get_object_or_404(Secret, owner=request.user, name=name)
                secret_actions.update(secret, value, request.user)
                messages.success(request, f"Secret {name} replaced.")
            elif op == "delete":
                secret_actions.delete(get_object_or_404(Secret, owner=request.user, name=name), request.user)
                messages.success(request, f"Secret {name} deleted.")
        except secret_actions.SecretInvalid as exc:
            messages.error(request, str(exc))
        return redirect("secrets-page")
    used = secret_actions.used_by(request.user.pk)
    rows = [{"secret": s, "workflows": used.get(s.name, [])} for s in Secret.objects.filter(owner=request.user)]
    return render(request, "governance/secrets.html", {"rows": rows})


@login_required
def usage_page(request):
    error = ""
    try:
        qs = usage_rows(request.user, request.GET)
        data = {g: totals(qs, g) for g in ("day", "workflow", "user")}
    except ValidationError as exc:
        error = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.detail.items())
        qs = usage_rows(request.user, {})
        data = {g: totals(qs, g) for g in ("day", "workflow", "user")}
    return render(request, "governance/usage.html", {
        "data": data, "total": data["day"]["total"], "price": data["day"]["price_per_session_second"],
        "error": error, "since": request.GET.get("since", ""), "until": request.GET.get("until", ""),
    })
