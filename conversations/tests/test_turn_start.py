"""The turn start in written-out SQL (conversations/turn_start.py, #23) stores what the ORM path
stores, numbers concurrent messages without a gap or a clash, and gives way to the router
whenever a person might take the message."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from conversations import hooks, services
from conversations.models import Conversation, Message, Turn
from conversations.tests.factories import create_conversation

# What differs between two rows of the same content: their own ids and times.
UNCOMPARED = {"id", "conversation", "user_message", "created_at"}


def _stored(turn: Turn) -> tuple[dict, dict]:
    row = Turn.objects.get(pk=turn.pk)
    message = Message.objects.get(pk=row.user_message_id)
    return (
        {k: v for k, v in model_to_dict(row).items() if k not in UNCOMPARED},
        {k: v for k, v in model_to_dict(message).items() if k not in UNCOMPARED},
    )


def _submit(conversation: Conversation, text: str, **kwargs) -> Turn:
    turn, created = services.message_submit(conversation=conversation, text=text, **kwargs)
    assert created
    return turn


@pytest.mark.django_db
def test_the_short_path_stores_the_rows_the_orm_path_stores(make_chatbot, monkeypatch):
    short = create_conversation(chatbot=make_chatbot(public_id="short"))
    routed = create_conversation(chatbot=make_chatbot(public_id="routed"))
    fields = {"idempotency_key": "k-1", "client_ip": "203.0.113.9"}
    fields["metadata"] = {"image_ids": ["a"], "lang": "da"}
    # The router's "might a person take it?" is cached per bot; asked once here, as every
    # message after a bot's first finds it.
    hooks.message_may_route(chatbot_id=short.chatbot_id, handling="bot")
    with CaptureQueriesContext(connection) as short_queries:
        short_turn = _submit(short, "Where is my order?", **fields)
    # As when a person might take the message: the router is asked, and gives it to the bot.
    monkeypatch.setattr(hooks, "message_may_route", lambda **kwargs: True)
    with CaptureQueriesContext(connection) as routed_queries:
        routed_turn = _submit(routed, "Where is my order?", **fields)
    assert _stored(short_turn) == _stored(routed_turn)
    # The returned turns agree too: what the API answers with.
    for name in ("status", "kind", "idempotency_key", "client_ip", "user_message_id"):
        stored = Turn.objects.get(pk=short_turn.pk)
        assert (name, getattr(short_turn, name)) == (name, getattr(stored, name))
    assert short_turn.user_message.sequence == 1
    for conversation in (short, routed):
        conversation.refresh_from_db()
        assert (conversation.message_count, conversation.status) == (1, "active")
    # In the transaction: lock and store, against the ORM path's lock, read, number, insert,
    # (ask the router), insert, update.
    assert len(_in_transaction(short_queries)) == 2
    assert len(_in_transaction(routed_queries)) >= 6


def _in_transaction(queries: CaptureQueriesContext) -> list[str]:
    sqls = [q["sql"] for q in queries]
    begin = next(i for i, sql in enumerate(sqls) if sql.startswith("SAVEPOINT"))
    end = next(i for i, sql in enumerate(sqls) if sql.startswith("RELEASE SAVEPOINT"))
    return sqls[begin + 1 : end]


@pytest.mark.django_db
def test_messages_are_numbered_in_order_and_a_resolved_conversation_reopens(make_chatbot):
    conversation = create_conversation(chatbot=make_chatbot(public_id="shop"))
    turns = [_submit(conversation, f"message {n}") for n in range(3)]
    Conversation.objects.filter(pk=conversation.pk).update(status="resolved", is_resolved=True)
    turns.append(_submit(conversation, "back again"))
    sequences = list(
        Message.objects.filter(conversation=conversation).values_list("sequence", flat=True)
    )
    assert sequences == [1, 2, 3, 4]
    assert [t.user_message.sequence for t in turns] == [1, 2, 3, 4]
    conversation.refresh_from_db()
    assert (conversation.status, conversation.is_resolved, conversation.message_count) == (
        "active",
        False,
        4,
    )


@pytest.mark.django_db(transaction=True)
def test_concurrent_messages_get_distinct_sequences(make_chatbot):
    """The lock is its own statement: the numbering statement, started after it, sees what the
    request that held the lock committed (one statement would number from a stale snapshot)."""
    conversation = create_conversation(chatbot=make_chatbot(public_id="shop"))
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def send(n: int) -> None:
        try:
            start.wait()
            for i in range(5):
                _submit(Conversation.objects.get(pk=conversation.pk), f"m{n}-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    sequences = sorted(
        Message.objects.filter(conversation=conversation).values_list("sequence", flat=True)
    )
    assert sequences == list(range(1, 31))
    conversation.refresh_from_db()
    assert conversation.message_count == 30
    assert Turn.objects.filter(conversation=conversation, status="pending").count() == 30


@pytest.mark.django_db
def test_an_ended_conversation_stores_nothing(make_chatbot):
    conversation = create_conversation(chatbot=make_chatbot(public_id="shop"))
    Conversation.objects.filter(pk=conversation.pk).update(status="ended")
    with pytest.raises(services.ConversationClosed):
        services.message_submit(conversation=conversation, text="hello?")
    assert not Message.objects.filter(conversation=conversation).exists()
