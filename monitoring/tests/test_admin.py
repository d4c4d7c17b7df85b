"""The operators' page in the admin: workers, queues, running turns, failed tasks, jobs."""

from __future__ import annotations

import pytest

from conversations.models import Turn
from monitoring import tasks
from monitoring.services import task_failure_record
from monitoring.tests.factories import create_turn

pytestmark = pytest.mark.django_db

PAGE = "/admin/monitoring/workersoverview/"


def test_staff_find_the_operators_page_on_the_admin_index(staff_client):
    index = staff_client.get("/admin/")
    assert index.status_code == 200
    assert PAGE.encode() in index.content
    assert b"Workers and queues" in index.content


def test_the_operators_page_summarises_workers_queues_turns_failures_and_jobs(
    staff_client, lonely_broker, make_chatbot
):
    bot = make_chatbot(public_id="wineshop")
    running = create_turn(chatbot=bot, status=Turn.Status.RUNNING, worker="turns@host:12")
    task_failure_record(
        task_name="analytics.tasks.analyse_turn", task_id="t-1", exc=RuntimeError("boom")
    )
    tasks.cache_cleanup.apply()
    response = staff_client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "none answering" in html  # no worker listens on this broker
    for queue in ("turns", "analytics", "maintenance", "celery"):
        assert f"<td>{queue}</td>" in html
    assert str(running.pk) in html and "wineshop" in html and "turns@host:12" in html
    assert "analytics.tasks.analyse_turn" in html
    assert "cache-cleanup" in html and "<td>ok</td>" in html
    assert response.context["celery"]["status"] == "down"


def test_the_operators_page_is_closed_to_everyone_else(client, member_client):
    for who in (client, member_client):
        response = who.get(PAGE)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
