from django.urls import path

from governance import api, api_secrets, api_usage, pages, views

urlpatterns = [
    path("audit/", views.audit_page, name="audit-page"),
    path("audit/<int:pk>/", views.audit_event_page, name="audit-event-page"),
    path("policy/", views.policy_page, name="policy-page"),
    path("api/audit/", api.AuditList.as_view(), name="audit-list"),
    path("api/audit/export/", api.AuditExport.as_view(), name="audit-export"),
    path("api/audit/<int:pk>/", api.AuditDetail.as_view(), name="audit-detail"),
    path("api/policy/", api.PolicyView.as_view(), name="policy"),
    # secrets and metering (governance/secrets.py, governance/usage.py)
    path("secrets/", pages.secrets_page, name="secrets-page"),
    path("usage/", pages.usage_page, name="usage-page"),
    path("api/secrets/", api_secrets.SecretList.as_view(), name="secret-list"),
    path("api/secrets/<str:secret_name>/", api_secrets.SecretDetail.as_view(), name="secret-detail"),
    path("api/usage/", api_usage.UsageView.as_view(), name="usage"),
]
