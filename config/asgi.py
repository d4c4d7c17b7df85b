"""ASGI entry point: HTTP through Django, WebSocket through Channels (conversations.routing),
Socket.IO at /socket.io through python-socketio (conversations/socketio_server.py)."""

import importlib.util
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from asgiref.sync import sync_to_async  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import re_path  # noqa: E402

from config.client_address import ProxiedClientMiddleware  # noqa: E402
from config.errors import ErrorCode, error_body, error_json  # noqa: E402
from config.request_threads import RequestThreads  # noqa: E402
from config.socket_limits import AddressSockets, SocketLimitMiddleware  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402
from inbox.routing import websocket_urlpatterns as inbox_websocket_urlpatterns  # noqa: E402

if importlib.util.find_spec("daphne") is not None:
    # Daphne keeps unsent frames without limit; bound them (uvicorn bounds its own buffer).
    from config.daphne_ws import install as install_daphne_send_bound

    install_daphne_send_bound()
    # Deadlines for reading a request: a slow trickle cannot hold a connection for good.
    from config.daphne_http import install as install_daphne_request_deadlines

    install_daphne_request_deadlines()


class ApiASGIHandler(ASGIHandler):
    """Django's handler, but requests it cannot even build (a body that is not valid for its
    content type, or too big) are answered in the API's error envelope, not an empty 400;
    and each request's sync code runs on a kept thread instead of a new one
    (config/request_threads.py)."""

    threads = RequestThreads()

    def __init__(self):
        # The middleware chain runs in sync mode, entered once per request on the request's
        # thread (get_response_async below). In async mode Django crossed between the event
        # loop and that thread at every MiddlewareMixin hook and at each of our sync-only
        # middlewares (about 16 crossings a request), and under load each crossing queued
        # behind every WebSocket frame waiting on the loop (#23: POST p50 2 s at 200 streams).
        super(ASGIHandler, self).__init__()
        self.load_middleware(is_async=False)

    async def get_response_async(self, request):
        """The whole sync chain in one hop; an async view (polling) is called back on the
        loop by Django's async_to_sync, and streaming responses still go out asynchronously
        (ASGIHandler.send_response)."""
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)  # Django's own refusal
        async with self.threads.context():
            await self.handle(scope, receive, send)

    def create_request(self, scope, body_file):
        request, response = super().create_request(scope, body_file)
        if response is not None and scope.get("path", "").startswith("/api/"):
            if response.status_code == 413:
                response = error_json(ErrorCode.PAYLOAD_TOO_LARGE, "The request body is too large.")
            else:
                response = JsonResponse(
                    error_body(
                        ErrorCode.VALIDATION_ERROR,
                        "The request could not be read (its body does not match its content type).",
                    ),
                    status=response.status_code,
                )
        return request, response


async def refuse_websocket(scope, receive, send) -> None:
    """A WebSocket on a path no route serves: refused at the handshake (the server answers
    403; Daphne's access log says WSREJECT). Without it Channels' router raises, and every stray
    client costs a 500 and a logged traceback."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


# One count per process for every kind of socket (the plain WebSocket and Socket.IO's), so an
# address cannot hold each cap twice.
ADDRESS_SOCKETS = AddressSockets()


def _engineio_upgrade(scope) -> bool:
    """An Engine.IO WebSocket upgrade names its session (`sid=`): the session connected over
    long-polling first, and Socket.IO closes sessions that never authenticate by itself."""
    return b"sid=" in scope.get("query_string", b"")


channels_application = ProtocolTypeRouter(
    {
        "http": ApiASGIHandler(),
        # Origin checks happen per chatbot inside the consumer (each bot has its own origins).
        # Per-address caps on open and unauthenticated sockets come first (socket_limits).
        "websocket": SocketLimitMiddleware(
            URLRouter(
                [
                    *websocket_urlpatterns,
                    *inbox_websocket_urlpatterns,  # the staff inbox (admin session)
                    re_path(r"^", refuse_websocket),
                ]
            ),
            ADDRESS_SOCKETS,
        ),
    }
)


class SocketIOMount:
    """`/socket.io/` (seed 003's clients: Engine.IO long-polling and its WebSocket upgrade) to
    python-socketio's ASGI app, under the same per-address socket caps; the rest to Channels."""

    def __init__(self, other) -> None:
        from conversations.socketio_server import asgi_app

        self.other = other
        self.socketio_http = asgi_app()
        self.socketio_websocket = SocketLimitMiddleware(
            self.socketio_http, ADDRESS_SOCKETS, authenticated_at_open=_engineio_upgrade
        )

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if path == "/socket.io" or path.startswith("/socket.io/"):
            if scope["type"] == "websocket":
                return await self.socketio_websocket(scope, receive, send)
            if scope["type"] == "http":
                return await self.socketio_http(scope, receive, send)
        return await self.other(scope, receive, send)


# Outermost: every HTTP request and WebSocket below sees the client's address in scope["client"]
# (the visitor's when the peer is one of TRUSTED_PROXIES; config/client_address.py).
application = ProxiedClientMiddleware(SocketIOMount(channels_application))
