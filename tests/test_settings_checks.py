"""Settings that contradict each other are reported by `manage.py check` (config/checks.py)."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks


def _ids(**kwargs) -> set[str]:
    return {m.id for m in run_checks(**kwargs) if m.id and m.id.startswith("chatbot.")}


def test_the_default_settings_contradict_nothing():
    assert _ids() == set()


def test_a_visibility_timeout_not_above_the_longest_turn_is_an_error(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
    settings.TURN_TOTAL_TIMEOUT = 600

    assert "chatbot.E001" in _ids()


def test_a_reaper_quicker_than_two_heartbeats_is_an_error(settings):
    settings.TURN_HEARTBEAT_SECONDS = 10
    settings.TURN_STALE_SECONDS = 15

    assert "chatbot.E002" in _ids()


@pytest.mark.parametrize(
    ("name", "value", "check"),
    [
        ("TOOLS_CALL_TIMEOUT", 120, "chatbot.W003"),
        ("UPSTREAM_ANSWER_TAIL_SECONDS", 20.0, "chatbot.W004"),
    ],
)
def test_tool_and_stream_timings_that_undercut_each_other_are_warnings(
    settings, name, value, check
):
    setattr(settings, name, value)

    assert check in _ids()


def test_the_deploy_checks_want_production_secrets(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    settings.SECRET_KEY = "insecure-dev-only-key-set-SECRET_KEY-in-production"
    settings.ALLOW_PRIVATE_NETWORK_URLS = True

    assert {"chatbot.E010", "chatbot.E011", "chatbot.W012"} <= _ids(include_deployment_checks=True)
    assert not {"chatbot.E010", "chatbot.E011", "chatbot.W012"} & _ids()
