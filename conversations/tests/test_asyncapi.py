"""The AsyncAPI document is served, parses, is linked from /api/docs/, and names every WebSocket
message the consumer handles and sends (read from the consumer's code, so a new type without
docs fails here)."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
import yaml

from conversations import consumers

pytestmark = pytest.mark.django_db


def consumer_tree() -> ast.Module:
    """The consumer and ConversationRequests, which builds the replies to cancel, feedback and
    history for it."""
    classes = (consumers.ConversationConsumer, consumers.ConversationRequests)
    return ast.parse("\n".join(textwrap.dedent(inspect.getsource(c)) for c in classes))


def client_message_types() -> set[str]:
    """Keys of the handler table (`{"resume": self.on_resume, …}`) and every `kind == "…"`."""
    found: set[str] = set()
    for node in ast.walk(consumer_tree()):
        if (
            isinstance(node, ast.Dict)
            and node.values
            and all(isinstance(v, ast.Attribute) and v.attr.startswith("on_") for v in node.values)
        ):
            found |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
        if (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Name)
            and node.left.id == "kind"
        ):
            found |= {c.value for c in node.comparators if isinstance(c, ast.Constant)}
    return found


def server_message_types() -> set[str]:
    """`type` of every dict literal the consumer sends (`send_json({"type": …})`), and "error"
    for its error frames (config.errors.error_frame builds them)."""
    found: set[str] = set()
    for node in ast.walk(consumer_tree()):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "error_frame":
            found.add("error")
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "type"
                    and isinstance(value, ast.Constant)
                ):
                    found.add(value.value)
    return found


def ws_channel(doc: dict) -> dict:
    return doc["channels"]["/ws/conversations/{session_id}/"]


def message_names(doc: dict, operation: dict) -> set[str]:
    messages = doc["components"]["messages"]
    names = set()
    for ref in operation["message"]["oneOf"]:
        names.add(messages[ref["$ref"].rsplit("/", 1)[1]]["name"])
    return names


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/asyncapi.yaml")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    return yaml.safe_load(response.content)


def test_the_document_is_served_and_parses_as_asyncapi(document):
    assert document["asyncapi"].startswith("2.6")
    assert {"/ws/conversations/{session_id}/", "/api/stream-events/{turn_id}/sse"} <= set(
        document["channels"]
    )
    messages = document["components"]["messages"]
    for operation in ("publish", "subscribe"):
        for ref in ws_channel(document)[operation]["message"]["oneOf"]:
            assert ref["$ref"].rsplit("/", 1)[1] in messages, ref  # no dangling reference


def test_every_message_the_consumer_accepts_is_documented(document):
    accepted = client_message_types()
    assert {"auth", "message", "resume", "cancel", "history", "ping"} <= accepted  # the parse works
    assert accepted <= message_names(document, ws_channel(document)["publish"])


def test_every_message_the_consumer_sends_is_documented(document):
    sent = server_message_types()
    assert {"ready", "turn", "event", "error", "pong"} <= sent
    assert sent <= message_names(document, ws_channel(document)["subscribe"])


def test_every_event_kind_of_the_rest_schema_is_in_the_envelope(document, client):
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()
    event = schema["components"]["schemas"]["StreamEvent"]["properties"]["event"]
    rest_kinds = schema["components"]["schemas"][event["$ref"].rsplit("/", 1)[1]]["enum"]
    kinds = document["components"]["schemas"]["Envelope"]["properties"]["event"]["enum"]
    assert "token" in rest_kinds and set(rest_kinds) <= set(kinds)


def test_the_swagger_page_links_the_asyncapi_document(client):
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()
    assert "/api/asyncapi.yaml" in schema["info"]["description"]
