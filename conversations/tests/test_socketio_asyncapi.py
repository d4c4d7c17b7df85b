"""The AsyncAPI document names every Socket.IO event the server handles and emits (read from
conversations/socketio_server.py, so an undocumented new event fails here)."""

from __future__ import annotations

import ast
import inspect

import pytest
import yaml

from conversations import socketio_server

pytestmark = pytest.mark.django_db

LIFECYCLE = {"connect", "disconnect", "*"}


def emitted_events() -> set[str]:
    """The event name of every `_emit(client, "<name>", …)` and `_emit_room(…)` in the module."""
    found = set()
    for node in ast.walk(ast.parse(inspect.getsource(socketio_server))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("_emit", "_emit_room")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
        ):
            found.add(node.args[1].value)
    return found


def names(document: dict, operation: str) -> set[str]:
    messages = document["components"]["messages"]
    channel = document["channels"]["/socket.io"][operation]
    return {messages[ref["$ref"].rsplit("/", 1)[1]]["name"] for ref in channel["message"]["oneOf"]}


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/asyncapi.yaml")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_every_socketio_event_the_server_handles_is_documented(document):
    handled = set(socketio_server.sio.handlers["/"]) - LIFECYCLE
    assert {"chat:message", "chat:history"} <= handled
    assert handled == names(document, "publish")


def test_every_socketio_event_the_server_emits_is_documented(document):
    emitted = emitted_events() | {"error"}  # `_error` emits `error`
    assert {"chat:turn", "chat:token", "chat:response", "chat:history", "session:joined"} <= emitted
    assert emitted == names(document, "subscribe")
