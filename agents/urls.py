from django.urls import path

from agents import api, pages, pools_api, sessions_api

POOL = "api/sessionpools/<slug:pool>/"


def _both(route: str, view, name: str) -> list:
    """`route` with and without a trailing slash (the session API's clients use both)."""
    return [path(POOL + route, view, name=name), path(POOL + route + "/", view)]


urlpatterns = [
    path("keys/", pages.keys_page, name="keys-page"),
    path("api/keys/", api.KeyList.as_view(), name="api-key-list"),
    path("api/keys/<int:key_id>/", api.KeyDetail.as_view(), name="api-key-detail"),
    path("api/keys/<int:key_id>/revoke/", api.KeyRevoke.as_view(), name="api-key-revoke"),
    # session pools (staff change them) and the code-interpreter session API (agents/sessions_api.py)
    path("api/sessionpools/", pools_api.PoolList.as_view(), name="api-sessionpool-list"),
    path("api/sessionpools/<slug:name>/", pools_api.PoolDetail.as_view(), name="api-sessionpool-detail"),
    *_both("code/execute", sessions_api.code_execute, "sessionpool-code-execute"),
    *_both("python/execute", sessions_api.code_execute, "sessionpool-python-execute"),
    *_both("executions", sessions_api.executions, "sessionpool-executions"),
    *_both("files/upload", sessions_api.files_upload, "sessionpool-files-upload"),
    *_both("files", sessions_api.files, "sessionpool-files"),
    *_both("files/content/<str:name>", sessions_api.file_content, "sessionpool-file-content"),
    *_both("files/<str:name>/content", sessions_api.file_content, "sessionpool-file-content-v2"),
    *_both("files/<str:name>", sessions_api.file_item, "sessionpool-file"),
    *_both("session", sessions_api.session, "sessionpool-session"),
    *_both("sessions/<str:identifier>", sessions_api.session, "sessionpool-session-named"),
]
