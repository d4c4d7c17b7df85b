"""Past one Redis server (#23 item 3): the channel layer and the turns' event logs spread over
two real Redis servers (EVENT_REDIS_URLS); Daphne and the worker each find a turn's log on the
server its group channel lives on, and every answer arrives whole over WebSocket and polling."""

from __future__ import annotations

import asyncio

import pytest
import redis
from django.conf import settings

from devstack.services import EmbeddedServices, start_redis
from tests.e2e.client import answer_text, assert_gapless, poll_events, post_message, ws_events
from tests.e2e.conftest import ARTIFACTS, running_stack, stack_env
from tests.e2e.test_pipeline import flowise_bot
from tests.fakes.flowise import FakeFlowise

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ANSWER = "Two servers, one answer."


@pytest.fixture(scope="module")
def second_redis(tmp_path_factory):
    services = EmbeddedServices(data_dir=tmp_path_factory.mktemp("second-redis"))
    url = start_redis(services, private=True)
    try:
        yield url
    finally:
        services.stop()


@pytest.fixture(scope="module")
def sharded_stack(django_db_setup, django_db_blocker, second_redis):
    ARTIFACTS.mkdir(exist_ok=True)
    env = stack_env(EVENT_REDIS_URLS=f"{settings.REDIS_URL},{second_redis}")
    with running_stack(env, ARTIFACTS, "sharded", "turns,celery", 8) as running:
        yield running


def test_answers_stream_whole_with_their_logs_on_two_servers(sharded_stack, second_redis):
    with FakeFlowise() as flowise:
        flowise_bot(flowise)
        flowise.scenario.answer = ANSWER
        replies = [
            post_message(sharded_stack.base_url, "vinhuset", f"Question {i}") for i in range(8)
        ]

        async def follow_all():
            return await asyncio.gather(*(ws_events(r) for r in replies[:4]))

        by_socket = asyncio.run(follow_all())
        by_polling = [poll_events(sharded_stack.base_url, r) for r in replies[4:]]
    for events in [*by_socket, *by_polling]:
        assert_gapless(events)
        assert events[-1]["event"] == "end"
        assert events[-1]["data"]["status"] == "completed"
        assert answer_text(events) == ANSWER
    servers = [redis.Redis.from_url(settings.REDIS_URL), redis.Redis.from_url(second_redis)]
    homes = []
    for reply in replies:
        key = f"cb:turn:{reply['turn_id']}:events"
        homes.append([bool(server.exists(key)) for server in servers])
    assert all(sum(home) == 1 for home in homes), homes  # each log on exactly one server
    assert any(home[1] for home in homes), "no turn's log on the second server"
    assert any(home[0] for home in homes), "no turn's log on the first server"
