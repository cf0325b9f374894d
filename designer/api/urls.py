from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from designer.api import views

router = DefaultRouter(trailing_slash=True)
router.register("workflows", views.WorkflowViewSet, basename="workflow")

urlpatterns = [
    path("schema/workflow.json", views.definition_schema, name="workflow-schema"),
    path("schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="openapi-schema"), name="api-redoc"),
    path("node-types/", views.node_types, name="node-types"),
    path("workflows/<int:pk>/versions/", views.VersionList.as_view(), name="version-list"),
    path("workflows/<int:pk>/versions/<int:number>/", views.VersionDetail.as_view(), name="version-detail"),
    path("workflows/<int:pk>/versions/<int:number>/restore/", views.VersionRestore.as_view(),
         name="version-restore"),
    *router.urls,
]
