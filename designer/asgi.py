"""ASGI entry point: the MCP server at /mcp/ (agents.mcp_server, behind its API-key check; it
also takes the lifespan events, which start its session manager), HTTP through Django (bodies
capped before Django reads them), websockets through Channels (authenticated, origin-checked)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "designer.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from agents import mcp_server  # noqa: E402
from designer.middleware import BodyTooLarge  # noqa: E402
from designer.routing import websocket_urlpatterns  # noqa: E402

django_and_channels = ProtocolTypeRouter({
    "http": BodyTooLarge(django_asgi_app),
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})


async def application(scope, receive, send):
    """Path routing ahead of Django: /mcp, /mcp/... and the lifespan to the MCP app."""
    if mcp_server.handles(scope):
        return await mcp_server.app(scope, receive, send)
    return await django_and_channels(scope, receive, send)
