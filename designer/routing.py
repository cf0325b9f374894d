"""Websocket URL routes (Channels consumers)."""
websocket_urlpatterns: list = []
