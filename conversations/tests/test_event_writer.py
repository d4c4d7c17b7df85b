"""The worker's shared event-row writer: many turns' rows per transaction, none lost."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from conversations import services
from conversations.models import StreamEvent, Turn
from conversations.runtime import _db_call
from conversations.streaming import EventRowWriter
from conversations.tests.factories import create_turn, token_envelopes

pytestmark = pytest.mark.django_db(transaction=True)


class CountingRunDb:
    """Runs the sync write in a thread of its own, as the worker's database threads do (and
    returns the connection to the pool afterwards, as they do)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, fn, *args):
        self.calls += 1
        return await sync_to_async(_db_call, thread_sensitive=False)(fn, args, {})


def test_rows_of_many_turns_saved_at_once_share_transactions_and_all_arrive():
    turns = [str(create_turn().pk) for _ in range(30)]
    run_db = CountingRunDb()

    async def scenario():
        writer = EventRowWriter(run_db, services.stream_rows_save_many)
        await asyncio.gather(*(writer.save(t, token_envelopes(1, 5)) for t in turns))
        await asyncio.gather(*(writer.save(t, token_envelopes(6, 3)) for t in turns))
        return writer

    asyncio.run(scenario())
    # The first save goes alone, everything handed in meanwhile shares the next write.
    assert run_db.calls <= 4
    for turn_id in turns:
        seqs = list(
            StreamEvent.objects.filter(turn_id=turn_id)
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        assert seqs == list(range(1, 9))
    assert set(Turn.objects.filter(pk__in=turns).values_list("last_event_id", flat=True)) == {8}
    assert not Turn.objects.filter(pk__in=turns, heartbeat_at=None).exists()


def test_last_event_id_never_goes_back_when_an_older_batch_commits_later():
    turn_id = str(create_turn().pk)
    services.stream_rows_save_many([(turn_id, token_envelopes(1, 10))])
    services.stream_rows_save_many([(turn_id, token_envelopes(3, 2))])
    assert Turn.objects.get(pk=turn_id).last_event_id == 10


def test_one_turn_s_bad_rows_do_not_hold_back_the_others():
    good = [str(create_turn().pk) for _ in range(3)]
    gone = create_turn()
    gone_id = str(gone.pk)
    gone.conversation.delete()  # its rows now break the foreign key
    run_db = CountingRunDb()

    async def scenario():
        writer = EventRowWriter(run_db, services.stream_rows_save_many)
        first = asyncio.ensure_future(writer.save(good[0], token_envelopes(1, 2)))
        await asyncio.sleep(0)  # the first write is in flight; the rest queue behind it
        rest = [writer.save(t, token_envelopes(1, 2)) for t in [*good[1:], gone_id]]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(scenario())
    assert results[:3] == [None, None, None]
    assert isinstance(results[3], Exception)
    for turn_id in good:
        assert StreamEvent.objects.filter(turn_id=turn_id).count() == 2
    assert not StreamEvent.objects.filter(turn_id=gone_id).exists()


def test_frames_of_many_turns_share_writes_and_survive_a_forgotten_script():
    from config.redis import new_async_redis
    from conversations.streaming import FrameWriter, stream_key

    async def scenario():
        redis = new_async_redis()
        writer = FrameWriter(redis)
        keys = [stream_key(f"frame-writer-test-{n}") for n in range(20)]
        await redis.delete(*keys)
        await redis.script_flush()  # as after a Redis restart: the script must be loaded again

        async def frames_of(key: str) -> None:
            for seq in range(1, 4):
                await writer.append([key, "frame-writer-test"], [1000, f"0-{seq}", "x", 60, "m"])

        await asyncio.gather(*(frames_of(k) for k in keys))
        lengths = [await redis.xlen(k) for k in keys]
        ttls = [await redis.ttl(k) for k in keys]
        # A repeated id (an earlier attempt whose reply was lost) fails that frame alone.
        with pytest.raises(Exception, match="equal or smaller"):
            await writer.append([keys[0], "frame-writer-test"], [1000, "0-3", "x", 0, "m"])
        await redis.delete(*keys)
        await redis.aclose()
        return lengths, ttls, writer.writes

    lengths, ttls, writes = asyncio.run(scenario())
    assert writes < 30  # 61 frames, sent together while a round trip was in flight
    assert lengths == [3] * 20
    assert all(0 < ttl <= 60 for ttl in ttls)
