"""GET /healthz: is the sandbox this deployment is configured for there? Public, so it says
only the configured driver, whether the sandbox service answers and runs that driver, and its
pool counts (sandbox.client.health); 503 when executions would end with status error."""
from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from sandbox.client import health as sandbox_health


@require_GET
def health(request):
    sandbox = sandbox_health()
    ok = sandbox["available"]
    response = JsonResponse({"status": "ok" if ok else "degraded", "sandbox": sandbox},
                            status=200 if ok else 503)
    response["Cache-Control"] = "no-store"
    return response
