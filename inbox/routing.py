"""The staff socket's route: the admin session (cookie) authenticates it (channels' auth stack)."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from inbox.consumers import InboxConsumer

websocket_urlpatterns = [
    path("ws/inbox/", AuthMiddlewareStack(InboxConsumer.as_asgi())),
]
