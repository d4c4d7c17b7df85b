"""Django system checks for settings that contradict each other (`manage.py check`, which every
`./run` start, the container entrypoint and the test suite run).

Each check names the settings involved and what goes wrong at run time if they are left so —
the failures these prevent show up only under load or after hours (a turn run twice, a turn
reaped while it streams), not when the setting is changed.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


def _visibility_timeout() -> float | None:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    value = options.get("visibility_timeout")
    return float(value) if value is not None else None


@register(Tags.compatibility)
def turn_timing_settings(app_configs=None, **kwargs) -> list:
    problems = []
    visibility = _visibility_timeout()
    total = settings.TURN_TOTAL_TIMEOUT
    if visibility is not None and visibility <= total:
        problems.append(
            Error(
                f"CELERY_VISIBILITY_TIMEOUT ({visibility:g} s) is not above TURN_TOTAL_TIMEOUT "
                f"({total} s): Redis would hand a turn that is still running to a second worker.",
                hint="Keep CELERY_VISIBILITY_TIMEOUT well above TURN_TOTAL_TIMEOUT (default "
                "3600 against 600).",
                id="chatbot.E001",
            )
        )
    heartbeat, stale = settings.TURN_HEARTBEAT_SECONDS, settings.TURN_STALE_SECONDS
    if heartbeat <= 0 or stale < 2 * heartbeat:
        problems.append(
            Error(
                f"TURN_STALE_SECONDS ({stale}) is less than twice TURN_HEARTBEAT_SECONDS "
                f"({heartbeat}): the reaper would fail turns that are running normally.",
                hint="Give the reaper at least two missed heartbeats (defaults: 5 and 30).",
                id="chatbot.E002",
            )
        )
    if settings.TOOLS_CALL_TIMEOUT > settings.TOOLS_TURN_SECONDS:
        problems.append(
            Warning(
                f"TOOLS_CALL_TIMEOUT ({settings.TOOLS_CALL_TIMEOUT} s) is longer than "
                f"TOOLS_TURN_SECONDS ({settings.TOOLS_TURN_SECONDS} s): one tool call can use "
                "the whole tool time of an answer.",
                id="chatbot.W003",
            )
        )
    tail = getattr(settings, "UPSTREAM_ANSWER_TAIL_SECONDS", 0)
    if tail and tail <= 30:
        problems.append(
            Warning(
                f"UPSTREAM_ANSWER_TAIL_SECONDS ({tail:g}) is not above Flowise's 30 s heartbeat "
                "interval: a pause between heartbeats would end answers that are still coming.",
                id="chatbot.W004",
            )
        )
    return problems


@register(Tags.security, deploy=True)
def production_secrets(app_configs=None, **kwargs) -> list:
    """With --deploy: what production must set itself (./run generates these for development)."""
    problems = []
    if not settings.FIELD_ENCRYPTION_KEYS:
        problems.append(
            Error(
                "FIELD_ENCRYPTION_KEYS is empty: stored API keys can be neither written nor read.",
                hint="Set one or more Fernet keys (docs/secrets.md).",
                id="chatbot.E010",
            )
        )
    if settings.SECRET_KEY.startswith("insecure-dev-only"):
        problems.append(
            Error(
                "SECRET_KEY is the development default: conversation tokens and sessions could "
                "be forged.",
                hint="Set SECRET_KEY to a long random value (docs/deployment.md).",
                id="chatbot.E011",
            )
        )
    if getattr(settings, "ALLOW_PRIVATE_NETWORK_URLS", False):
        problems.append(
            Warning(
                "ALLOW_PRIVATE_NETWORK_URLS is on: staff-entered URLs may reach loopback, private "
                "and metadata addresses from this server.",
                hint="Leave it off in production unless the AI endpoint or shop really is on a "
                "private network (docs/access.md).",
                id="chatbot.W012",
            )
        )
    return problems
