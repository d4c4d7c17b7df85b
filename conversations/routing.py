"""WebSocket routes."""

from django.urls import path

from conversations.consumers import ConversationConsumer

websocket_urlpatterns = [
    path("ws/conversations/<uuid:session_id>/", ConversationConsumer.as_asgi()),
]
