"""ASGI entry point: HTTP through Django, WebSocket through Channels (conversations.routing)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from conversations.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin checks happen per chatbot inside the consumer (each bot has its own origins).
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
