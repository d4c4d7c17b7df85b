"""GET /api/conversation-config/<chatbot_id>: what the widget may know, and nothing secret."""

import pytest

from chatbots.models import AIEndpoint, KnowledgeBase

pytestmark = pytest.mark.django_db


def test_it_returns_the_widget_configuration(client, make_chatbot):
    chatbot = make_chatbot(public_id="vinhuset", language="da", image_upload_enabled=True)
    response = client.get("/api/conversation-config/vinhuset")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["configuration"]["chatbot_id"] == "vinhuset"
    assert body["configuration"]["image_enabled"] is True
    assert body["configuration"]["language"] == "danish"
    assert body["configuration"]["name"] == chatbot.name


def test_it_never_reveals_keys_or_endpoint_urls(client, make_chatbot, make_endpoint, make_flow):
    chatbot = make_chatbot(public_id="secretive", with_main_flow=False)
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.FLOWISE,
        base_url="https://flowise.internal.example",
        api_key="flowise-key-4f8a9c2e7d",
    )
    kb = KnowledgeBase.objects.create(
        chatbot=chatbot,
        name="kb",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="vinhuset-alt",
        api_key="pcsk_pinecone_5e1d2c3b4a",
    )
    make_flow(chatbot=chatbot, name="main", is_main=True, endpoint=endpoint, knowledge_base=kb)
    text = client.get("/api/conversation-config/secretive").content.decode()
    for secret in (
        "flowise-key-4f8a9c2e7d",
        "pcsk_pinecone_5e1d2c3b4a",
        "flowise.internal",
        "vinhuset-alt",
    ):
        assert secret not in text


@pytest.mark.parametrize("public_id", ["nope", "inactive-bot"])
def test_it_answers_404_for_unknown_or_inactive_bots(client, make_chatbot, public_id):
    make_chatbot(public_id="inactive-bot", active=False)
    response = client.get(f"/api/conversation-config/{public_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "CHATBOT_NOT_FOUND"


def test_cache_is_invalidated_when_staff_save(client, make_chatbot):
    chatbot = make_chatbot(public_id="cached", language="en")
    assert (
        client.get("/api/conversation-config/cached").json()["configuration"]["language"]
        == "english"
    )
    chatbot.language = "da"
    chatbot.save()
    assert (
        client.get("/api/conversation-config/cached").json()["configuration"]["language"]
        == "danish"
    )


def test_config_cache_counts_hits_and_misses(client, make_chatbot):
    from chatbots.selectors import cache_stats

    make_chatbot(public_id="counted")
    client.get("/api/conversation-config/counted")
    client.get("/api/conversation-config/counted")
    stats = cache_stats()["config"]
    assert stats["misses"] == 1
    assert stats["hits"] == 1
    assert stats["size"] == 1


def test_unknown_api_path_gets_the_error_envelope(client):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
