"""The SSE parser gives the same events however the bytes are cut, and notices cut-off events."""

import pytest

from aiclients.sse import SSEEvent, SSEEventTooLarge, SSEParser, SSETruncated

# Flowise framing (no space, `message:` lines, heartbeat comment, pre-3.1.2 bare `message` end
# frame), OpenAI framing (one space), CRLF and lone CR line endings, multibyte characters, a BOM,
# multi-line data, id/retry/event fields.
STREAM = (
    "\ufeff"
    'message:\ndata:{"event":"start","data":"Grüße"}\n\n'
    'message:\ndata:{"event":"token","data":"Grüße"}\n\n'
    ":heartbeat\n\n"
    'message:\r\ndata:{"event":"token","data":" 你好 🎉"}\r\n\r\n'
    'data: {"choices":[]}\r\rdata:line one\ndata: line two\n\n'
    "event: custom\nid: 42\nretry: 1500\ndata:x\n\n"
    "event: ignored-without-data\n\n"
    'message\ndata:{"event":"end","data":"[DONE]"}\n\n'
).encode()

EXPECTED = [
    SSEEvent(data='{"event":"start","data":"Grüße"}'),
    SSEEvent(data='{"event":"token","data":"Grüße"}'),
    SSEEvent(data='{"event":"token","data":" 你好 🎉"}'),
    SSEEvent(data='{"choices":[]}'),
    SSEEvent(data="line one\nline two"),
    SSEEvent(event="custom", data="x", id="42", retry=1500),
    SSEEvent(data='{"event":"end","data":"[DONE]"}', id="42"),
]


def parse_in_pieces(pieces: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for piece in pieces:
        events += parser.feed(piece)
    parser.close()
    return events


def test_it_parses_flowise_and_openai_framing():
    assert parse_in_pieces([STREAM]) == EXPECTED


def test_every_single_split_point_gives_identical_events():
    for i in range(len(STREAM) + 1):
        assert parse_in_pieces([STREAM[:i], STREAM[i:]]) == EXPECTED, f"split at byte {i}"


def test_every_pair_of_split_points_gives_identical_events():
    # Two cuts cover CR|LF and a multibyte character cut twice; step keeps it fast.
    n = len(STREAM)
    for i in range(0, n, 3):
        for j in range(i, n, 7):
            assert parse_in_pieces([STREAM[:i], STREAM[i:j], STREAM[j:]]) == EXPECTED, (i, j)


def test_one_byte_at_a_time_gives_identical_events():
    assert parse_in_pieces([bytes([b]) for b in STREAM]) == EXPECTED


def test_a_cr_at_the_end_of_a_chunk_does_not_make_an_extra_blank_line():
    parser = SSEParser()
    assert parser.feed(b"data:a\r") == []
    assert parser.feed(b"\ndata:b\r\n\r\n") == [SSEEvent(data="a\nb")]


def test_an_event_without_its_blank_line_is_reported_as_truncated():
    parser = SSEParser()
    assert parser.feed(b'message:\ndata:{"event":"token","data":"a"}\n\nmessage:\ndata:{"ev') == [
        SSEEvent(data='{"event":"token","data":"a"}')
    ]
    with pytest.raises(SSETruncated):
        parser.close()


def test_data_line_without_the_final_blank_line_is_truncated():
    parser = SSEParser()
    parser.feed(b"data:complete line\n")
    with pytest.raises(SSETruncated):
        parser.close()


def test_a_character_cut_by_eof_is_truncated():
    parser = SSEParser()
    parser.feed(b"data:ok\n\n" + "é".encode()[:1])
    with pytest.raises(SSETruncated):
        parser.close()


def test_clean_end_after_comments_is_not_truncated():
    parser = SSEParser()
    assert parser.feed(b"data:a\n\n:heartbeat\n\n") == [SSEEvent(data="a")]
    parser.close()


def test_an_oversized_event_raises_instead_of_buffering_forever():
    parser = SSEParser(max_event_bytes=1000)
    parser.feed(b"data:" + b"x" * 900)
    with pytest.raises(SSEEventTooLarge):
        parser.feed(b"x" * 200)


def test_many_data_lines_count_towards_the_cap():
    parser = SSEParser(max_event_bytes=1000)
    with pytest.raises(SSEEventTooLarge):
        for _ in range(100):
            parser.feed(b"data:" + b"y" * 50 + b"\n")


def test_a_big_event_under_the_cap_arrives_whole():
    big = "é" * 300_000
    payload = f"data:{big}\n\n".encode()
    parser = SSEParser()
    events = []
    for i in range(0, len(payload), 4096):
        events += parser.feed(payload[i : i + 4096])
    assert events == [SSEEvent(data=big)]
