from django.urls import path, re_path

from agents import api, pages, pools_api, sessions_api

POOL = r"^api/sessionpools/(?P<pool>[-a-zA-Z0-9_]+)/"

urlpatterns = [
    path("keys/", pages.keys_page, name="keys-page"),
    path("api/keys/", api.KeyList.as_view(), name="api-key-list"),
    path("api/keys/<int:key_id>/", api.KeyDetail.as_view(), name="api-key-detail"),
    path("api/keys/<int:key_id>/revoke/", api.KeyRevoke.as_view(), name="api-key-revoke"),
    # session pools (staff) and the code-interpreter session API (agents/sessions_api.py)
    path("api/sessionpools/", pools_api.PoolList.as_view(), name="api-sessionpool-list"),
    path("api/sessionpools/<slug:name>/", pools_api.PoolDetail.as_view(), name="api-sessionpool-detail"),
    re_path(POOL + r"(?:code|python)/execute/?$", sessions_api.code_execute, name="sessionpool-code-execute"),
    re_path(POOL + r"executions/?$", sessions_api.executions, name="sessionpool-executions"),
    re_path(POOL + r"files/upload/?$", sessions_api.files_upload, name="sessionpool-files-upload"),
    re_path(POOL + r"files/?$", sessions_api.files, name="sessionpool-files"),
    re_path(POOL + r"files/content/(?P<name>[^/]+)/?$", sessions_api.file_content, name="sessionpool-file-content"),
    re_path(POOL + r"files/(?P<name>[^/]+)/content/?$", sessions_api.file_content, name="sessionpool-file-content2"),
    re_path(POOL + r"files/(?P<name>[^/]+)/?$", sessions_api.file_item, name="sessionpool-file"),
    re_path(POOL + r"session/?$", sessions_api.session, name="sessionpool-session"),
    re_path(POOL + r"sessions/(?P<identifier>[^/]+)/?$", sessions_api.session, name="sessionpool-session-named"),
]
