"""The error log: every category with its suggestion, redaction, failed turns and tasks, admin."""

from __future__ import annotations

import pytest
from celery import shared_task
from django.contrib.auth import get_user_model

from chatbots.secrets import SecretValue
from conversations.models import AICall, Turn
from conversations.services import turn_finished
from monitoring.models import ErrorLog, JobRun
from monitoring.services import ERRORS_KEY, error_record
from monitoring.suggestions import SUGGESTIONS, suggestion_for
from monitoring.tests.factories import create_turn

pytestmark = pytest.mark.django_db


@shared_task(name="monitoring.tests.failing_task")
def failing_task(order: str) -> None:
    raise RuntimeError(f"could not sync order {order} with token=abc123secretvalue")


@shared_task(name="monitoring.tests.counting_task")
def counting_task() -> int:
    return 7


@pytest.mark.parametrize("category", ErrorLog.Category.values)
def test_every_category_is_recorded_with_a_suggestion_and_the_system_state(
    category, make_chatbot, django_capture_on_commit_callbacks
):
    bot = make_chatbot()
    turn = create_turn(chatbot=bot, status=Turn.Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        entry = error_record(
            category=category,
            code="SOMETHING_BROKE",
            message="It broke.",
            chatbot_id=bot.pk,
            turn_id=turn.pk,
            context={"attempt": 2},
        )
    stored = ErrorLog.objects.get(pk=entry.pk)
    assert stored.category == category
    assert stored.suggestion == SUGGESTIONS[category][""]
    assert stored.chatbot_id == bot.pk and stored.turn_id == turn.pk
    assert stored.context == {"attempt": 2}
    assert stored.system_state["active_streams"] == 1
    assert stored.system_state["rss_bytes"] > 0
    assert stored.system_state["uptime_seconds"] > 0
    from config.redis import get_redis

    assert int(get_redis().hget(ERRORS_KEY, category)) == 1


@pytest.mark.parametrize(
    ("category", "code", "words"),
    [
        ("upstream_ai", "UPSTREAM_AUTH", "API key"),
        ("upstream_ai", "UPSTREAM_RATE_LIMITED", "rate limit"),
        ("network", "UPSTREAM_CONNECT_TIMEOUT", "connect timeout"),
        ("streaming", "WORKER_LOST", "heartbeats"),
        ("streaming", "NOT_STARTED", "`turns`"),
        ("template", "NO_ANSWER_FLOW", "main flow"),
    ],
)
def test_known_codes_get_their_own_suggestion(category, code, words):
    entry = error_record(category=category, code=code, message="x")
    assert words in entry.suggestion
    assert entry.suggestion != SUGGESTIONS[category][""]


def test_a_chatbot_can_be_named_by_its_public_id(make_chatbot):
    bot = make_chatbot(public_id="vinhuset")
    entry = error_record(category="order_tracking", code="X", message="m", chatbot_id="vinhuset")
    assert entry.chatbot_id == bot.pk


def test_secrets_never_reach_the_error_log(make_endpoint):
    key = "sk-live-0123456789abcdefSECRET"
    make_endpoint(name="Leaky", api_key=SecretValue.from_plaintext(key))
    try:
        raise ConnectionError(f"refused with key {key}")
    except ConnectionError as exc:
        entry = error_record(
            category="upstream_ai",
            code="UPSTREAM_AUTH",
            message=f"the upstream said: Incorrect API key provided: {key}",
            context={
                "api_key": "anything",
                "headers": {"Authorization": "Bearer abc.def.ghi"},
                "detail": f"sent {key} to the server",
                "note": "password=hunter2xyz in the url",
                "routing_key": "product",
            },
            exc=exc,
        )
    stored = ErrorLog.objects.get(pk=entry.pk)
    everything = " ".join([stored.message, str(stored.context), stored.stack])
    for secret in (key, "abc.def.ghi", "hunter2xyz", "anything"):
        assert secret not in everything
    assert "ConnectionError" in stored.stack
    assert stored.context["routing_key"] == "product"


def test_an_unknown_category_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown error category"):
        error_record(category="cosmic_rays", code="X", message="m")


def test_a_failed_turn_is_recorded_once_with_its_code_category_and_failed_call(make_chatbot):
    bot = make_chatbot()
    turn = create_turn(
        chatbot=bot,
        status=Turn.Status.FAILED,
        error_code="UPSTREAM_AUTH",
        error_category="upstream_ai",
        error_message="The assistant is not set up correctly.",
    )
    AICall.objects.create(
        chatbot=bot,
        turn=turn,
        endpoint_kind="flowise",
        endpoint_name="Prod",
        flow="main",
        purpose="answer",
        status="error",
        error_code="UPSTREAM_AUTH",
        http_status=401,
        attempts=1,
    )
    turn_finished.send(sender=Turn, turn_id=str(turn.pk), status="failed")
    turn_finished.send(sender=Turn, turn_id=str(turn.pk), status="failed")
    entry = ErrorLog.objects.get(turn=turn)
    assert entry.category == "upstream_ai" and entry.code == "UPSTREAM_AUTH"
    assert entry.chatbot_id == bot.pk
    assert entry.message == "The assistant is not set up correctly."
    assert entry.context["ai_call"]["http_status"] == 401
    assert "API key" in entry.suggestion


def test_a_reaped_turn_with_an_unlisted_category_is_filed_under_streaming(make_chatbot):
    turn = create_turn(
        chatbot=make_chatbot(),
        status=Turn.Status.FAILED,
        error_code="SOMETHING_NEW",
        error_category="quantum",
    )
    turn_finished.send(sender=Turn, turn_id=str(turn.pk), status="failed")
    entry = ErrorLog.objects.get(turn=turn)
    assert entry.category == "streaming" and entry.context["turn_category"] == "quantum"


def test_completed_and_cancelled_turns_are_not_errors(make_chatbot):
    bot = make_chatbot()
    for status in (Turn.Status.COMPLETED, Turn.Status.CANCELLED):
        turn = create_turn(chatbot=bot, status=status)
        turn_finished.send(sender=Turn, turn_id=str(turn.pk), status=status)
    assert not ErrorLog.objects.exists()


def test_a_failing_task_is_recorded_as_a_failed_task_with_its_stack():
    failing_task.apply(args=["A-1001"])
    entry = ErrorLog.objects.get(category="worker")
    assert entry.code == "TASK_FAILED"
    assert entry.context["task"] == "monitoring.tests.failing_task"
    assert "RuntimeError" in entry.stack and "A-1001" in entry.message
    assert "abc123secretvalue" not in entry.message + entry.stack


def test_a_task_started_by_beat_gets_a_job_run():
    counting_task.apply(headers={"periodic_task_name": "count-things"})
    run = JobRun.objects.get(job="count-things")
    assert run.outcome == "ok" and run.rows_affected == 7
    assert run.task == "monitoring.tests.counting_task"
    assert run.finished_at is not None and run.duration_ms is not None
    counting_task.apply()  # not from beat: no run recorded
    assert JobRun.objects.count() == 1


def test_the_admin_lists_errors_with_counts_per_category(client, make_chatbot):
    admin = get_user_model().objects.create_superuser("root", password="pw")
    client.force_login(admin)
    bot = make_chatbot(public_id="wine")
    for category, n in (("network", 3), ("upstream_ai", 2), ("image", 1)):
        for _ in range(n):
            error_record(category=category, code="C", message="m", chatbot_id=bot.pk)
    response = client.get("/admin/monitoring/errorlog/")
    assert response.status_code == 200
    counts = {c["label"]: c["count"] for c in response.context["category_counts"]}
    assert counts == {"Network": 3, "AI service": 2, "Image": 1}
    assert b"6 errors" in response.content
    filtered = client.get("/admin/monitoring/errorlog/?category__exact=network")
    assert filtered.context["cl"].result_count == 3
    detail = client.get(f"/admin/monitoring/errorlog/{ErrorLog.objects.first().pk}/change/")
    assert detail.status_code == 200
    assert (
        suggestion_for("image").encode()[:40]
        in client.get(
            f"/admin/monitoring/errorlog/{ErrorLog.objects.get(category='image').pk}/change/"
        ).content
    )


def test_the_error_log_admin_is_closed_to_non_staff(client, member_client):
    for who in (client, member_client):
        response = who.get("/admin/monitoring/errorlog/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
