from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from designer import load, run_pages, views
from designer.api.health import health as health_view
from designer.api.hooks import hook as hook_view

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("workflows/", views.workflow_list, name="workflow-list"),
    path("workflows/<int:pk>/edit", views.workflow_edit, name="workflow-edit"),
    path("api/", include("designer.api.urls")),
    path("hooks/<str:token>/", hook_view, name="hook"),
    path("healthz", health_view, name="health"),
    path("metrics", load.metrics, name="metrics"),
    path("status/", load.status_page, name="status-page"),
    path("workflows/<int:pk>/runs", run_pages.workflow_runs, name="workflow-runs-page"),
    path("runs/<int:pk>/", run_pages.run_detail, name="run-page"),
    path("admin/", admin.site.urls),
    path("", include("runtimes.urls")),
    path("", include("governance.urls")),
    path("", include("agents.urls")),
]
