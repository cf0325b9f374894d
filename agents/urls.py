from django.urls import path

from agents import api, pages

urlpatterns = [
    path("keys/", pages.keys_page, name="keys-page"),
    path("api/keys/", api.KeyList.as_view(), name="api-key-list"),
    path("api/keys/<int:key_id>/", api.KeyDetail.as_view(), name="api-key-detail"),
    path("api/keys/<int:key_id>/revoke/", api.KeyRevoke.as_view(), name="api-key-revoke"),
]
