"""Websocket URL routes (Channels consumers)."""
from django.urls import path

from designer.consumers import RunEventsConsumer

websocket_urlpatterns: list = [
    path("ws/workflows/<int:workflow_id>/", RunEventsConsumer.as_asgi()),
    path("ws/runs/<int:run_id>/", RunEventsConsumer.as_asgi()),
]
