"""The event log's reader: merging the two logs, gapless, ordered, deduplicated."""

from conversations.eventlog import merge_contiguous


def ev(i):
    return {"id": i, "event": "token", "data": {"text": str(i)}}


def test_redis_and_postgresql_events_merge_without_duplicates():
    merged = merge_contiguous(2, [ev(3), ev(4), ev(5)], [ev(1), ev(2), ev(3)], limit=100)
    assert [e["id"] for e in merged] == [3, 4, 5]


def test_merge_stops_at_a_gap_rather_than_skipping_an_event():
    merged = merge_contiguous(0, [ev(1), ev(2), ev(4)], [], limit=100)
    assert [e["id"] for e in merged] == [1, 2]


def test_merge_respects_the_limit():
    assert len(merge_contiguous(0, [ev(i) for i in range(1, 50)], [], limit=10)) == 10
