"""The turns' event logs sharded over several Redis servers with the channel layer
(EVENT_REDIS_URLS; conversations.streaming "Where a turn's log lives").

A turn's stream must live on the server channels-redis puts the turn's group channel on, so that
one script appends and announces each event atomically. The first test pins channels-redis's
naming and its choice of server: it fails if the library changes either."""

from __future__ import annotations

import uuid

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer

from conversations import streaming


def test_our_choice_of_server_and_channel_name_are_channels_redis_own(settings):
    hosts = [f"redis://127.0.0.1:{6390 + i}/0" for i in range(3)]
    settings.CHANNEL_LAYERS = {
        "default": {**settings.CHANNEL_LAYERS["default"], "CONFIG": {"hosts": hosts, "prefix": "x"}}
    }
    # The per-loop layer RedisPubSubChannelLayer hands each event loop (no connection is made).
    layer = RedisPubSubLoopLayer(
        hosts=hosts, prefix="x", channel_layer=RedisPubSubChannelLayer(hosts=hosts, prefix="x")
    )
    seen = set()
    for _ in range(300):
        turn_id = str(uuid.uuid4())
        channel = streaming.group_channel(turn_id)
        assert channel == layer._get_group_channel_name(streaming.turn_group(turn_id))
        shard = layer._shards.index(layer._get_shard(channel))
        assert streaming.event_host(turn_id) == hosts[shard]
        seen.add(shard)
    assert seen == {0, 1, 2}  # every server takes turns


def test_the_configured_channel_layer_names_a_turns_group_channel_as_we_do():
    """The layer the settings configure, not one built here: another backend or a prefix of
    its own would have the worker announce every event on a channel no client listens to."""
    import asyncio

    from channels.layers import get_channel_layer

    async def both_names() -> tuple[str, str]:
        turn_id = str(uuid.uuid4())
        layer = get_channel_layer()._get_layer()  # the running loop's (no connection is made)
        return (
            layer._get_group_channel_name(streaming.turn_group(turn_id)),
            streaming.group_channel(turn_id),
        )

    theirs, ours = asyncio.run(both_names())
    assert theirs == ours


def test_one_server_is_redis_url_itself(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": "x"},
        }
    }
    from config.redis import get_redis

    assert streaming.event_redis(str(uuid.uuid4())) is get_redis()


@pytest.mark.django_db(transaction=True)
def test_a_turns_events_go_to_its_server_and_are_read_back_from_it(settings):
    """Two 'servers' as two databases of the test Redis: streams are per database, so each
    turn's log must be found in its own one and nowhere else."""
    import asyncio

    from config.redis import get_redis, new_async_redis
    from conversations import selectors
    from conversations.tests.test_polling_fast import _turn

    base = settings.REDIS_URL.rsplit("/", 1)[0]
    hosts = [f"{base}/13", f"{base}/14"]
    settings.CHANNEL_LAYERS = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "hosts": hosts},
        }
    }
    turns = [_turn()[0] for _ in range(8)]
    keys = [streaming.stream_key(str(t.pk)) for t in turns]

    async def publish_all():
        writer = streaming.frame_writer_for_hosts(new_async_redis())
        assert isinstance(writer, streaming.ShardedFrameWriter)

        async def save_rows(rows):
            return None

        for turn in turns:
            publisher = streaming.TurnPublisher(
                turn_id=str(turn.pk), redis=None, save_rows=save_rows, frames=writer
            )
            await publisher.emit("start", {"conversation_id": str(turn.conversation_id)})
            await publisher.token("hello")
        for w in writer.writers:
            await w.redis.aclose()

    try:
        asyncio.run(publish_all())
        servers = [get_redis(host) for host in hosts]
        used = set()
        for turn, key in zip(turns, keys, strict=True):
            home = hosts.index(streaming.event_host(str(turn.pk)))
            assert servers[home].exists(key) == 1
            assert servers[1 - home].exists(key) == 0
            used.add(home)
            page = selectors.stream_events_after(turn=turn, after=0, limit=10)
            assert [e["event"] for e in page["events"]] == ["start", "token"]
        assert used == {0, 1}, "8 turns all hashed to one server: pick other ids"
    finally:
        for host in hosts:
            get_redis(host).delete(*keys)
