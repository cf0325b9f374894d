"""The project's URLs plus two small endpoints that spend one execution of the caller's key, as
the session API will: a DRF view with agents.quotas.ExecutionThrottle, and a plain Django view
using agents.auth.authenticate_request and agents.quotas.hit_execution (the MCP server's way)."""
from django.http import JsonResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import auth, quotas
from agents.keys import Refusal
from designer.urls import urlpatterns as project_urls


class Execute(APIView):
    throttle_classes = [quotas.ExecutionThrottle]

    def post(self, request):
        return Response({"actor": request.user.audit_actor if request.auth else None})


def plain_execute(request):
    try:
        key = auth.authenticate_request(request)
    except Refusal as refusal:
        return auth.refusal_json(refusal)
    if key is None:
        return auth.refusal_json()
    try:
        quotas.hit_execution(key)
    except quotas.QuotaExceeded as exc:
        return quotas.quota_json(exc)
    return JsonResponse({"actor": request.user.audit_actor})


urlpatterns = [
    path("test-execute/", Execute.as_view()),
    path("test-plain-execute/", plain_execute),
    *project_urls,
]
