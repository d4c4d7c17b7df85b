"""Polling speaks seed 000's names too: `data.token`, `markers`, `last_event_id`, `Last-Event-ID`."""

from __future__ import annotations

import pytest

from conversations.models import StreamEvent
from conversations.tests.factories import create_events, create_turn

pytestmark = pytest.mark.django_db


@pytest.fixture
def turn():
    turn = create_turn()
    create_events(
        turn,
        events=[
            ("start", {"turn_id": str(turn.pk)}),
            ("token", {"text": "Hel"}),
            ("token", {"text": "lo"}),
            ("token", {"text": "!"}),
        ],
    )
    return turn


def poll(client, turn, query: str = "", **headers):
    token = services_token(turn)
    return client.get(
        f"/api/stream-events/{turn.pk}{query}",
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def services_token(turn) -> str:
    from conversations.access import conversation_token_issue

    return conversation_token_issue(
        conversation_id=turn.conversation_id, chatbot_id=turn.conversation.chatbot_id
    )


def test_token_events_carry_the_text_under_the_seeds_name_too(client, turn):
    events = poll(client, turn).json()["events"]
    assert [e["data"] for e in events[1:]] == [
        {"text": "Hel", "token": "Hel", "markers": {}},
        {"text": "lo", "token": "lo", "markers": {}},
        {"text": "!", "token": "!", "markers": {}},
    ]
    assert "token" not in events[0]["data"]  # only token events


def test_the_seed_names_are_added_on_the_way_out_not_stored(client, turn):
    poll(client, turn)
    assert StreamEvent.objects.get(turn=turn, seq=2).data == {"text": "Hel"}


@pytest.mark.parametrize(
    "query, headers",
    [
        ("?after=2", {}),
        ("?last_event_id=2", {}),
        ("", {"Last-Event-ID": "2"}),
        # The header wins over the query (EventSource reconnects with it, URL unchanged) …
        ("?after=0&last_event_id=0", {"Last-Event-ID": "2"}),
        # … and `after` over `last_event_id`.
        ("?after=2&last_event_id=0", {}),
        ("?last_event_id=2&after=", {"Last-Event-ID": " "}),  # empty ones are absent
    ],
)
def test_after_last_event_id_and_the_header_mean_the_same(client, turn, query, headers):
    body = poll(client, turn, query, **headers).json()
    assert [e["id"] for e in body["events"]] == [3, 4]
    assert body["last_event_id"] == 4


@pytest.mark.parametrize(
    "query, headers, parameter",
    [
        ("?last_event_id=x", {}, "last_event_id"),
        ("?last_event_id=-1", {}, "last_event_id"),
        ("?last_event_id=²", {}, "last_event_id"),
        ("", {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ("?after=99999999999999999999999", {}, "after"),
    ],
)
def test_a_bad_last_event_id_is_a_400_naming_it(client, turn, query, headers, parameter):
    response = poll(client, turn, query, **headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["details"] == {"parameter": parameter}


def test_an_outsider_gets_the_same_404_whatever_name_they_use(client, turn):
    for query, headers in (("?last_event_id=1", {}), ("", {"Last-Event-ID": "1"})):
        response = client.get(f"/api/stream-events/{turn.pk}{query}", headers=headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "TURN_NOT_FOUND"
