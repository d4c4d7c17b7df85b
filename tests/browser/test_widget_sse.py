"""The widget's second transport: Server-Sent Events (EventSource) before polling."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_widget import (
    RECORD_ANSWER_LENGTHS,
    finished_answer,
    flowise_bot,
    open_widget,
    send,
    stored_answer,
    widget_info,
    words,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_turns_settle"),
]


def test_when_websockets_keep_failing_the_answer_streams_over_sse(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(24)
    flowise.scenario.tokens_per_second = 20
    streams = []
    page.on("request", lambda r: "/sse?" in r.url and streams.append(r.url))
    page.route_web_socket(re.compile(r"/ws/conversations/"), lambda ws: ws.close(code=1011))
    open_widget(page, stack, bot)
    page.evaluate(RECORD_ANSWER_LENGTHS)
    send(page, "Are you there?")
    turn_id, shown = finished_answer(page)
    assert shown == stored_answer(turn_id) == words(24)
    info = widget_info(page)
    assert info["transport"] == "sse" and info["websocket_connects"] == 3
    assert info["sse_connects"] >= 1 and streams
    assert "token=" in streams[0] and turn_id in streams[0]
    # Token by token, not all at once (the stream is live, not a replay at the end).
    partial = {n for n in page.evaluate("window.__answerLengths") if 0 < n < len(shown)}
    assert len(partial) >= 2, partial


def test_a_second_answer_follows_over_sse_and_nothing_is_shown_twice(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(10)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    open_widget(page, stack, bot, "?transport=sse")
    send(page, "First question")
    first_turn, first = finished_answer(page)
    flowise.scenario.answer = words(14)
    send(page, "Second question")
    expect(page.locator(".cbw-msg[data-turn-id]")).to_have_count(2)
    second_turn, second = finished_answer(page)
    assert first_turn != second_turn
    assert (first, second) == (stored_answer(first_turn), stored_answer(second_turn))
    assert second == words(14)
    assert sockets == [] and widget_info(page)["transport"] == "sse"


def test_a_dropped_event_stream_mid_answer_ends_with_the_whole_answer_once(stack, flowise, page):
    bot = flowise_bot(flowise, stack)
    flowise.scenario.answer = words(40)
    flowise.scenario.tokens_per_second = 20
    streams = []
    page.on("request", lambda r: "/sse?" in r.url and streams.append(r.url))
    open_widget(page, stack, bot, "?transport=sse")
    send(page, "Tell me a long story")
    text = page.locator(".cbw-msg[data-turn-id]").last.locator(".cbw-text")
    for seen in ("word3 ", "word20 "):
        expect(text).to_contain_text(seen, timeout=20_000)
        assert page.evaluate("window.__chatWidget.dropStreams()") is True
    turn_id, shown = finished_answer(page)
    assert shown == stored_answer(turn_id) == words(40)
    assert page.locator(".cbw-log").inner_text().count(shown) == 1
    # Three streams: the first from 0, each later one from the last event shown.
    resumed_from = [int(re.search(r"last_event_id=(\d+)", url).group(1)) for url in streams]
    assert len(resumed_from) == 3 and resumed_from[0] == 0
    assert 0 < resumed_from[1] < resumed_from[2]
