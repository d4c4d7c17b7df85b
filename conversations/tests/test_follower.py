"""TurnFollower without a socket: a fake channel layer, a fake client (emit), the turn's real
Redis stream and a PostgreSQL log held in a dict. What every push transport relies on: where a
client stands (the next id), frames held while earlier ones are missing, duplicates dropped,
gaps repaired from the logs, and the subscription made before the replay."""

from __future__ import annotations

import asyncio
import json
import uuid

from conversations import streaming
from conversations.follower import TurnFollower


def env(seq: int, event: str = "token") -> dict:
    return streaming.envelope(seq, event, {"text": f"t{seq}"} if event == "token" else {})


class FakeLayer:
    def __init__(self, journal: list) -> None:
        self.journal = journal
        self.groups: set[str] = set()
        self.sent: list[dict] = []
        self.on_group_add = None

    async def group_add(self, group: str, channel: str) -> None:
        self.journal.append("subscribe")
        self.groups.add(group)
        if self.on_group_add is not None:
            await self.on_group_add()

    async def group_discard(self, group: str, channel: str) -> None:
        self.journal.append("unsubscribe")
        self.groups.discard(group)

    async def send(self, channel: str, message: dict) -> None:
        self.sent.append(message)


class Logs:
    """The turn's two logs: its real Redis stream, and "PostgreSQL" as a dict of rows read
    through the follower's read_db, as the consumers' database executor would."""

    def __init__(self, journal: list) -> None:
        self.journal = journal
        self.db: dict[int, dict] = {}
        self.redis_down = False
        self.during_read = None  # awaited inside the next Redis read (frames arriving meanwhile)

    def to_redis(self, turn_id: str, *envs: dict) -> None:
        key, redis = streaming.stream_key(turn_id), streaming.event_redis(turn_id)
        for one in envs:
            redis.xadd(key, {"e": json.dumps(one)}, id=f"0-{one['id']}")
        redis.expire(key, 60)

    def to_db(self, *envs: dict) -> None:
        self.db.update({one["id"]: one for one in envs})

    def redis(self, turn_id: str):
        logs = self

        class Reading:
            async def xrange(self, *args, **kwargs):
                logs.journal.append("read redis")
                if logs.redis_down:
                    raise ConnectionError("Redis away")
                if logs.during_read is not None:
                    hook, logs.during_read = logs.during_read, None
                    await hook()
                return await streaming.loop_event_redis(turn_id).xrange(*args, **kwargs)

        return Reading()

    async def read_db(self, turn_id: str, after: int, limit: int) -> list[dict]:
        self.journal.append("read db")
        return [self.db[seq] for seq in sorted(self.db) if seq > after][:limit]


class Setup:
    def __init__(self) -> None:
        self.turn_id = str(uuid.uuid4())
        self.journal: list = []
        self.layer = FakeLayer(self.journal)
        self.logs = Logs(self.journal)
        self.emitted: list[int] = []
        self.follower = TurnFollower(
            channel_layer=self.layer,
            channel_name="client-1",
            emit=self.emit,
            read_db=self.logs.read_db,
            redis=self.logs.redis,
        )

    async def emit(self, turn_id: str, env: dict) -> None:
        assert turn_id == self.turn_id
        self.emitted.append(env["id"])

    def next_id(self) -> int:
        return self.follower.following[self.turn_id]["next"]


def test_the_follower_subscribes_before_it_reads_the_logs_so_nothing_published_between_is_lost():
    s = Setup()
    s.logs.to_redis(s.turn_id, *[env(i) for i in range(1, 4)])
    asyncio.run(s.follower.follow(s.turn_id, 0))
    assert s.journal[:2] == ["subscribe", "read redis"]
    assert streaming.turn_group(s.turn_id) in s.layer.groups


def test_replay_sends_the_events_after_the_clients_id_and_the_next_id_follows_them():
    s = Setup()
    s.logs.to_redis(s.turn_id, *[env(i) for i in range(1, 6)])

    async def scenario():
        await s.follower.follow(s.turn_id, 2)
        assert s.next_id() == 6
        await s.follower.deliver(s.turn_id, env(6))
        return s.next_id()

    assert asyncio.run(scenario()) == 7
    assert s.emitted == [3, 4, 5, 6]
    assert "read db" not in s.journal  # Redis held the next event


def test_a_live_frame_the_replay_already_sent_is_dropped():
    s = Setup()
    s.logs.to_redis(s.turn_id, *[env(i) for i in range(1, 4)])

    async def scenario():
        await s.follower.follow(s.turn_id, 0)
        await s.follower.deliver(s.turn_id, env(2))
        await s.follower.deliver(s.turn_id, env(3))
        await s.follower.deliver(s.turn_id, env(4))
        await s.follower.deliver(s.turn_id, env(4))

    asyncio.run(scenario())
    assert s.emitted == [1, 2, 3, 4]


def test_live_frames_arriving_during_the_replay_are_held_and_sent_after_it_in_order():
    s = Setup()
    s.logs.to_redis(s.turn_id, *[env(i) for i in range(1, 4)])

    async def frames_meanwhile():
        await s.follower.deliver(s.turn_id, env(5))
        await s.follower.deliver(s.turn_id, env(4))

    s.logs.during_read = frames_meanwhile

    async def scenario():
        await s.follower.follow(s.turn_id, 0)
        return s.follower.following[s.turn_id]["held"]

    assert asyncio.run(scenario()) == {}
    assert s.emitted == [1, 2, 3, 4, 5]


def test_a_gap_in_the_live_frames_is_held_then_repaired_from_the_logs():
    s = Setup()
    s.logs.to_redis(s.turn_id, *[env(i) for i in range(1, 4)])

    async def scenario():
        await s.follower.follow(s.turn_id, 0)
        await s.follower.deliver(s.turn_id, env(5))  # 4 was lost on the bus
        assert s.emitted == [1, 2, 3]
        await asyncio.sleep(0.3)  # the gap check the follower scheduled for itself
        assert s.layer.sent == [{"type": "gap.check", "turn_id": s.turn_id}]
        s.logs.to_redis(s.turn_id, env(4), env(5))
        await s.follower.gap_check(s.turn_id)
        return s.next_id()

    assert asyncio.run(scenario()) == 6
    assert s.emitted == [1, 2, 3, 4, 5]


def test_a_gap_the_logs_cannot_fill_yet_is_checked_again_later():
    s = Setup()
    s.logs.to_redis(s.turn_id, env(1))

    async def scenario():
        await s.follower.follow(s.turn_id, 0)
        await s.follower.deliver(s.turn_id, env(3))
        await asyncio.sleep(0.3)
        await s.follower.gap_check(s.turn_id)
        assert s.emitted == [1]
        await asyncio.sleep(0.4)
        return len(s.layer.sent)

    assert asyncio.run(scenario()) == 2


def test_postgresql_fills_what_redis_no_longer_holds_and_answers_when_redis_is_away():
    s = Setup()
    s.logs.to_db(*[env(i) for i in range(1, 6)])
    s.logs.to_redis(s.turn_id, env(4), env(5), env(6))  # the start trimmed or expired
    asyncio.run(s.follower.follow(s.turn_id, 0))
    assert s.emitted == [1, 2, 3, 4, 5, 6]

    away = Setup()
    away.logs.to_db(*[env(i) for i in range(1, 4)])
    away.logs.redis_down = True
    asyncio.run(away.follower.follow(away.turn_id, 1))
    assert away.emitted == [2, 3]


def test_a_replay_longer_than_a_batch_is_read_batch_after_batch():
    s = Setup()
    s.follower.REPLAY_BATCH = 2
    s.logs.to_redis(s.turn_id, *[env(i) for i in range(1, 6)])
    asyncio.run(s.follower.follow(s.turn_id, 0))
    assert s.emitted == [1, 2, 3, 4, 5]
    assert s.journal.count("read redis") == 3


def test_the_end_event_is_sent_and_the_follower_unsubscribes_and_lets_the_turn_go():
    s = Setup()
    s.logs.to_redis(s.turn_id, env(1), env(2, "end"))

    async def scenario():
        await s.follower.follow(s.turn_id, 0)
        await s.follower.deliver(s.turn_id, env(3))

    asyncio.run(scenario())
    assert s.emitted == [1, 2]
    assert s.follower.following == {}
    assert s.layer.groups == set()


def test_following_a_followed_turn_from_its_start_sends_nothing_twice():
    s = Setup()
    s.logs.to_redis(s.turn_id, env(1), env(2))

    async def scenario():
        await s.follower.follow(s.turn_id, 0)
        await s.follower.follow_new(s.turn_id)

    asyncio.run(scenario())
    assert s.emitted == [1, 2]
    assert s.journal.count("subscribe") == 1


def test_a_follower_stopped_while_it_subscribes_leaves_no_subscription_and_sends_nothing():
    s = Setup()
    s.logs.to_redis(s.turn_id, env(1))
    s.layer.on_group_add = s.follower.stop
    asyncio.run(s.follower.follow(s.turn_id, 0))
    assert s.emitted == []
    assert s.layer.groups == set()
    assert "read redis" not in s.journal
