"""Input refused at the edge (config/input_guard.py): NUL bytes, lone surrogates, unsafe numbers,
offsets and dates out of range each get a 400 in the error envelope, where they were 500s.

tests/reliability/test_08_fuzz.py throws random hostile values at every endpoint of a live
server; these are the named cases, in process.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from conversations.access import conversation_token_issue
from conversations.models import Message, Turn
from conversations.services import conversation_start

pytestmark = pytest.mark.django_db


def widget(bot) -> dict:
    return {"X-Widget-Key": bot.widget_key, "Origin": bot.allowed_origins[0]}


def error_of(response) -> dict:
    return response.json()["error"]


def test_a_nul_in_a_path_parameter_is_a_400_not_a_500(client, make_chatbot):
    make_chatbot(public_id="demo")
    response = client.get("/api/conversation-config/de%00mo")
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_INPUT"
    assert error_of(response)["details"] == {"field": "path", "problem": "contains a NUL character"}


def test_a_nul_in_a_query_parameter_is_a_400(client, make_chatbot):
    bot = make_chatbot()
    conversation = conversation_start(chatbot=bot)
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=bot.pk)
    response = client.get(f"/api/sessions/{conversation.pk}/history?token={token}&limit=5%00")
    assert response.status_code == 400
    assert error_of(response)["details"]["field"] == "limit"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"message_text": "hello\x00there"}, "message_text"),
        ({"message_text": "half a pair \ud83d"}, "message_text"),
        ({"message_text": "hi", "configuration": {"deep": ["\x00"]}}, "configuration.deep[0]"),
        ({"message_text": "hi", "user_id": "\udfff"}, "user_id"),
    ],
)
def test_nul_and_lone_surrogates_anywhere_in_a_json_body_are_refused_with_the_field(
    client, make_chatbot, body, field
):
    import json

    bot = make_chatbot()
    response = client.post(
        "/api/process-message",
        json.dumps({"chatbot_id": bot.public_id, **body}),  # ensure_ascii keeps surrogates
        content_type="application/json",
        headers=widget(bot),
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_INPUT"
    assert error_of(response)["details"]["field"] == field
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "number", ["100000000000000000000", "-100000000000000000000", "NaN", "1e999"]
)
def test_numbers_json_cannot_carry_safely_are_refused(client, make_chatbot, number):
    bot = make_chatbot()
    response = client.post(
        "/api/process-message",
        f'{{"chatbot_id": "{bot.public_id}", "message_text": "hi", "x": {number}}}',
        content_type="application/json",
        headers=widget(bot),
    )
    assert response.status_code == 400
    assert error_of(response)["code"] in ("INVALID_INPUT", "MALFORMED_JSON")
    assert not Turn.objects.exists()


def test_a_huge_history_offset_is_a_400(client, make_chatbot):
    bot = make_chatbot()
    conversation = conversation_start(chatbot=bot)
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=bot.pk)
    for offset in ("100000000000000000000", "1e20", "1000001"):
        response = client.get(
            f"/api/sessions/{conversation.pk}/history?offset={offset}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 400, offset
        assert error_of(response)["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "query",
    [
        "from=0001-01-01&to=9999-12-31",
        "to=9999-12-31",
        "from=0001-01-01T00:00:00%2B05:00",
        "from=9999-12-31T23:59:59-12:00",
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_a_400_on_the_analytics_endpoints(client, query):
    staff = get_user_model().objects.create_superuser("guard-staff", "s@example.com", "pw-12345")
    client.force_login(staff)
    for path in ("/api/messages/conversations", "/api/analytics/export"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, response.content[:300])
        assert error_of(response)["code"] == "VALIDATION_ERROR"
        assert "from 1970-01-01 to 2999-12-31" in error_of(response)["message"]


def test_a_nul_in_a_header_is_a_400(client, make_chatbot):
    bot = make_chatbot()
    response = client.post(
        "/api/process-message",
        {"chatbot_id": bot.public_id, "message_text": "hi"},
        content_type="application/json",
        headers={**widget(bot), "Idempotency-Key": "k\x00"},
    )
    assert response.status_code == 400
    assert error_of(response)["details"]["field"] == "header Idempotency-Key"
