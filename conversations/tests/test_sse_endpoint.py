"""GET /api/stream-events/<turn>/sse refuses exactly as polling does, in the JSON envelope.

Streaming itself (replay, live, heartbeats, resume) is exercised against Daphne in
tests/e2e/test_sse.py and with Chromium's EventSource in tests/browser/test_event_source.py.
"""

from __future__ import annotations

import uuid

import pytest

from chatbots.tests.factories import create_chatbot, create_member, create_shop
from conversations.access import conversation_token_issue
from conversations.models import StreamEvent, Turn
from conversations.sse import sse_frame
from conversations.tests.factories import create_events, create_turn

pytestmark = pytest.mark.django_db

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def turn():
    turn = create_turn()
    create_events(
        turn, events=[("start", {}), ("token", {"text": "Hi"}), ("end", {"status": "completed"})]
    )
    Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.COMPLETED, last_event_id=3)
    return Turn.objects.get(pk=turn.pk)


def token_of(turn) -> str:
    return conversation_token_issue(
        conversation_id=turn.conversation_id, chatbot_id=turn.conversation.chatbot_id
    )


def both(client, turn_id, query: str = "", **headers):
    """(polling response, SSE response) for the same credentials and resume point."""
    return (
        client.get(f"/api/stream-events/{turn_id}{query}", headers=headers),
        client.get(f"/api/stream-events/{turn_id}/sse{query}", headers={**SSE, **headers}),
    )


def test_an_outsider_gets_exactly_what_polling_gives(client, turn):
    other_turn = create_turn(
        chatbot=create_chatbot(public_id="other-shop", shop=create_shop()), text="mine"
    )
    cases = [
        ("", {}),
        ("?token=forged", {}),
        ("", {"Authorization": "Bearer forged"}),
        (f"?token={token_of(other_turn)}", {}),  # another conversation's (and shop's) token
        ("", {"Authorization": f"Bearer {token_of(other_turn)}"}),
    ]
    for query, headers in cases:
        polling, sse = both(client, turn.pk, query, **headers)
        assert polling.status_code == sse.status_code == 404, (query, headers)
        assert polling.json() == sse.json()
        assert sse.json()["error"]["code"] == "TURN_NOT_FOUND"
    polling, sse = both(client, uuid.uuid4(), f"?token={token_of(turn)}")
    assert polling.status_code == sse.status_code == 404


def test_a_member_of_another_shop_gets_the_same_404(client, turn):
    from django.contrib.auth import get_user_model

    outsider = get_user_model().objects.create_user("outsider", password="x", is_staff=True)
    create_member(user=outsider, shop=create_shop(), role="owner")
    client.force_login(outsider)
    polling, sse = both(client, turn.pk)
    assert polling.status_code == sse.status_code == 404
    assert sse.json()["error"]["code"] == "TURN_NOT_FOUND"


@pytest.mark.parametrize(
    "query, headers, status, code",
    [
        ("?last_event_id=x", {}, 400, "VALIDATION_ERROR"),
        ("", {"Last-Event-ID": "-4"}, 400, "VALIDATION_ERROR"),
        ("?last_event_id=9", {}, 400, "VALIDATION_ERROR"),  # beyond the turn's last event
    ],
)
def test_a_bad_resume_point_is_refused_in_json_like_polling(
    client, turn, query, headers, status, code
):
    polling, sse = both(client, turn.pk, query, Authorization=f"Bearer {token_of(turn)}", **headers)
    assert polling.status_code == sse.status_code == status
    assert sse["Content-Type"] == "application/json"
    assert sse.json()["error"]["code"] == code == polling.json()["error"]["code"]


def test_a_resume_point_cleaned_up_by_retention_is_410_like_polling(client, turn):
    StreamEvent.objects.filter(turn=turn).delete()
    polling, sse = both(
        client, turn.pk, "?last_event_id=1", Authorization=f"Bearer {token_of(turn)}"
    )
    assert polling.status_code == sse.status_code == 410
    assert sse.json()["error"]["code"] == "RESUME_POINT_GONE"


def test_reconnecting_after_the_end_gets_204_so_event_source_stops(client, turn):
    response = client.get(
        f"/api/stream-events/{turn.pk}/sse?token={token_of(turn)}",
        headers={**SSE, "Last-Event-ID": "3"},
    )
    assert response.status_code == 204
    assert response.content == b""


def test_a_frame_carries_the_id_the_kind_and_the_envelope():
    env = {"id": 7, "event": "token", "data": {"text": "a\nb"}, "timestamp": "t"}
    assert sse_frame(env) == (
        'id: 7\nevent: token\ndata: {"id":7,"event":"token","data":{"text":"a\\nb"},'
        '"timestamp":"t"}\n\n'
    )


def test_a_switched_off_chatbot_gets_the_same_403_as_polling(client, turn):
    turn.conversation.chatbot.__class__.objects.filter(pk=turn.conversation.chatbot_id).update(
        active=False
    )
    polling, sse = both(client, turn.pk, f"?token={token_of(turn)}")
    assert polling.status_code == sse.status_code == 403
    assert polling.json() == sse.json()
    assert sse.json()["error"]["code"] == "CHATBOT_INACTIVE"


@pytest.mark.parametrize(
    "query, headers",
    [
        ("?last_event_id=%00", {}),
        ("?last_event_id=1%00", {}),
        ("?last_event_id=%ED%A0%80", {}),  # a lone surrogate, UTF-8 encoded
        ("?last_event_id=" + "9" * 400, {}),
        ("?after=1e309", {}),
        ("", {"Last-Event-ID": "9" * 400}),
        ("?token=%00", {}),
    ],
)
def test_hostile_resume_points_and_tokens_get_a_4xx_not_a_500(client, turn, query, headers):
    for url in (f"/api/stream-events/{turn.pk}", f"/api/stream-events/{turn.pk}/sse"):
        auth = {} if "token=" in query else {"Authorization": f"Bearer {token_of(turn)}"}
        response = client.get(url + query, headers={**SSE, **auth, **headers})
        assert 400 <= response.status_code < 500, (url, query, response.status_code)
        assert response.json()["error"]["code"]


def test_past_the_cap_of_open_streams_an_address_gets_429_with_retry_after(client, turn, settings):
    from conversations import sse

    settings.SSE_MAX_STREAMS_PER_ADDRESS = 2
    sse.open_streams["127.0.0.1"] = 2
    try:
        response = client.get(
            f"/api/stream-events/{turn.pk}/sse?token={token_of(turn)}", headers=SSE
        )
    finally:
        del sse.open_streams["127.0.0.1"]
    assert response.status_code == 429
    assert response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "RATE_LIMITED"
