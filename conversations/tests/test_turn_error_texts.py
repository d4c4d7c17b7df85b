"""What a customer reads when a turn fails comes from one registry (config.errors.TURN_ERRORS),
in the bot's language, whoever ends the turn: the runner, an AI client's error, the reaper."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from aiclients.errors import CODES
from chatbots.models import AIEndpoint
from config.errors import TURN_ERRORS, TurnErrorCode, turn_error_text
from conversations.models import StreamEvent, Turn
from conversations.runner import turn_run
from conversations.runtime import get_runtime
from conversations.services import turns_reap_stale
from monitoring.tests.factories import create_turn
from tests.fakes.flowise import FakeFlowise


def test_every_code_has_a_text_in_english_and_in_danish_and_other_languages_read_english():
    assert set(TURN_ERRORS) == set(TurnErrorCode)
    for code, error in TURN_ERRORS.items():
        assert error.text.strip(), code
        assert turn_error_text(code, "en") == error.text, code
        # The Danish catalogue (locale/da/LC_MESSAGES) has every text.
        assert turn_error_text(code, "da") not in ("", error.text), code
    assert turn_error_text("UPSTREAM_TIMEOUT", "fr") == TURN_ERRORS["UPSTREAM_TIMEOUT"].text


def test_the_ai_clients_defaults_are_the_registrys_english_texts():
    # The clients stay free of Django with their own English defaults: they must agree.
    for code, (retryable, category, message) in CODES.items():
        error = TURN_ERRORS[code]
        assert (error.retryable, error.category, error.text) == (
            retryable,
            category,
            message,
        ), code


def error_event(turn: Turn) -> dict:
    return StreamEvent.objects.get(turn_id=turn.pk, event="error").data


@pytest.mark.django_db(transaction=True)
def test_an_ai_service_outage_reaches_a_danish_customer_in_danish(
    make_chatbot, make_endpoint, make_flow
):
    with FakeFlowise() as flowise:
        flowise.scenario.status = 503
        endpoint = make_endpoint(
            kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url, read_timeout=5, total_timeout=20
        )
        bot = make_chatbot(language="da", with_main_flow=False)
        make_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
        turn = create_turn(chatbot=bot)
        runtime = get_runtime()
        assert runtime.submit(turn_run(runtime, str(turn.pk))).result(60) == "failed"

    turn.refresh_from_db()
    expected = "Assistenten er midlertidigt utilgængelig. Prøv igen om lidt."
    assert (turn.error_code, turn.error_message) == ("UPSTREAM_UNAVAILABLE", expected)
    assert error_event(turn)["message"] == expected


@pytest.mark.django_db(transaction=True)
def test_a_bot_without_an_answer_flow_tells_its_customer_in_the_bot_s_language(make_chatbot):
    bot = make_chatbot(language="da", with_main_flow=False)
    turn = create_turn(chatbot=bot)
    runtime = get_runtime()
    assert runtime.submit(turn_run(runtime, str(turn.pk))).result(60) == "failed"

    assert error_event(turn) == {
        "code": "NO_ANSWER_FLOW",
        "message": "Chatbotten er ikke sat op endnu.",
        "retryable": False,
    }


@pytest.mark.django_db
def test_the_reaper_tells_each_customer_in_their_bot_s_language(make_chatbot, settings):
    old = timezone.now() - dt.timedelta(hours=1)
    danish = create_turn(chatbot=make_chatbot(language="da"), status=Turn.Status.RUNNING)
    english = create_turn(chatbot=make_chatbot(language="en"))
    Turn.objects.filter(pk=danish.pk).update(heartbeat_at=old)
    Turn.objects.filter(pk=english.pk).update(created_at=old)
    settings.TURN_PENDING_REDISPATCH_SECONDS = 0

    assert turns_reap_stale() == 2

    assert error_event(danish) == {
        "code": "WORKER_LOST",
        "message": "Svaret blev afbrudt. Spørg venligst igen.",
        "retryable": True,
    }
    assert error_event(english)["message"] == "We could not start answering. Please ask again."
    assert Turn.objects.get(pk=english.pk).error_code == "NOT_STARTED"
