from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from designer.api import drafts, node_data, runs, views

router = DefaultRouter(trailing_slash=True)
router.register("workflows", views.WorkflowViewSet, basename="api-workflow")

urlpatterns = [
    path("schema/workflow.json", views.definition_schema, name="workflow-schema"),
    path("schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    # The split view serves its start-up script as a file: the pages' CSP allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="openapi-schema"), name="api-redoc"),
    path("node-types/", views.node_types, name="node-types"),
    path("python/check/", drafts.PythonSyntaxCheck.as_view(), name="python-check"),
    path("workflows/<int:pk>/versions/", views.VersionList.as_view(), name="version-list"),
    path("workflows/<int:pk>/versions/diff/", drafts.VersionDiff.as_view(), name="version-diff"),
    path("workflows/<int:pk>/versions/<int:number>/", views.VersionDetail.as_view(), name="version-detail"),
    path("workflows/<int:pk>/versions/<int:number>/restore/", views.VersionRestore.as_view(),
         name="version-restore"),
    path("workflows/<int:pk>/runs/", runs.WorkflowRuns.as_view(), name="workflow-runs"),
    path("workflows/<int:pk>/schemas/", runs.WorkflowSchemas.as_view(), name="workflow-schemas"),
    path("workflows/<int:pk>/pins/", runs.WorkflowPins.as_view(), name="workflow-pins"),
    path("workflows/<int:pk>/hook/", runs.WorkflowHook.as_view(), name="workflow-hook"),
    path("workflows/<int:pk>/hook/rotate/", runs.WorkflowHookRotate.as_view(), name="workflow-hook-rotate"),
    path("workflows/<int:pk>/nodes/<str:node_id>/test/", runs.node_test, name="node-test"),
    path("workflows/<int:pk>/nodes/<str:node_id>/pin/", runs.NodePin.as_view(), name="node-pin"),
    path("workflows/<int:pk>/nodes/<str:node_id>/runs/", node_data.NodeRuns.as_view(), name="node-runs"),
    path("workflows/<int:pk>/latest-run/", node_data.LatestRunData.as_view(), name="workflow-latest-run"),
    path("runs/<int:pk>/", runs.RunDetail.as_view(), name="run-detail"),
    path("runs/<int:pk>/cancel/", runs.RunCancel.as_view(), name="run-cancel"),
    path("runs/<int:pk>/rerun/", runs.RunRerun.as_view(), name="run-rerun"),
    path("runs/<int:pk>/events/", runs.RunEvents.as_view(), name="run-events"),
    path("runs/<int:pk>/steps/<int:step_id>/files/<path:name>", runs.StepFileDownload.as_view(),
         name="run-step-file"),
    *router.urls,
]
