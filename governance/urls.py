from django.urls import path

from governance import api, views

urlpatterns = [
    path("audit/", views.audit_page, name="audit-page"),
    path("audit/<int:pk>/", views.audit_event_page, name="audit-event-page"),
    path("policy/", views.policy_page, name="policy-page"),
    path("api/audit/", api.AuditList.as_view(), name="audit-list"),
    path("api/audit/export/", api.AuditExport.as_view(), name="audit-export"),
    path("api/audit/<int:pk>/", api.AuditDetail.as_view(), name="audit-detail"),
    path("api/policy/", api.PolicyView.as_view(), name="policy"),
]
