"""Hostile input: arbitrary bytes and chunkings into the parsers, broken and oversized bodies on
every POST endpoint, garbage WebSocket frames, and a client that never reads.

Schemathesis over every endpoint already runs in tests/e2e/test_api_contract.py; this module adds
what it cannot generate (bodies that are not JSON, not UTF-8, too deep, too big; frames that are
not text) and property tests of the code that sees upstream bytes and customer text first.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiclients.sse import SSEError, SSEEvent, SSEParser
from conversations.textrules import StreamingRewriter
from tests.fakes.flowise import FakeFlowise
from tests.reliability import harness
from tests.reliability.harness import Followed, follow

# Scenario fixtures below write the database; the mark makes pytest-django create the test
# database whichever of these tests run.
pytestmark = [pytest.mark.django_db]

# --- the SSE parser ----------------------------------------------------------------------------------

LINE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)
NAME = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=12)


@st.composite
def sse_streams(draw):
    """Event fields as a server writes them, with every line-ending style and comments, and the
    events the parser must return for them."""
    lines: list[str] = []
    expected: list[SSEEvent] = []
    last_id = None
    for _ in range(draw(st.integers(0, 6))):
        name = draw(NAME)
        data = draw(st.lists(LINE, min_size=1, max_size=4))
        event_id = draw(st.none() | NAME)
        retry = draw(st.none() | st.integers(0, 10**6))
        others = []
        if name:
            others.append(f"event: {name}")
        if event_id is not None:
            others.append(f"id: {event_id}")
            last_id = event_id
        if retry is not None:
            others.append(f"retry: {retry}")
        others += [f":{c}" for c in draw(st.lists(LINE, max_size=2))]  # comments
        others += draw(st.lists(st.just("message:"), max_size=1))  # Flowise's bare field
        # The other fields go anywhere between the data lines, which keep their order.
        fields = [f"data: {line}" for line in data]
        for other in others:
            fields.insert(draw(st.integers(0, len(fields))), other)
        lines += [*fields, ""]
        expected.append(SSEEvent(name or "message", "\n".join(data), last_id, retry))
    endings = draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(lines)))
    text = ""
    for i, line in enumerate(lines):
        ending = endings[i]
        # CR then LF is one line ending: after a bare CR, an empty line cannot end in LF alone.
        if text.endswith("\r") and not line and ending == "\n":
            ending = "\r\n"
        text += line + ending
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode(), expected


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300, deadline=None, database=None)
@given(stream=sse_streams(), cuts=st.lists(st.integers(0, 10**6), max_size=12))
def test_any_chunking_of_any_event_stream_gives_back_the_same_events(stream, cuts):
    data, expected = stream
    parser = SSEParser()
    events = [event for chunk in chunked(data, cuts) for event in parser.feed(chunk)]
    parser.close()
    assert events == expected


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 10**6), max_size=8))
def test_arbitrary_bytes_give_events_or_an_sse_error_never_anything_else(data, cuts):
    parser = SSEParser(max_event_bytes=1000)
    try:
        for chunk in chunked(data, cuts):
            for event in parser.feed(chunk):
                assert isinstance(event.data, str) and isinstance(event.event, str)
        parser.close()
    except SSEError:
        pass


# --- text rules -----------------------------------------------------------------------------------------

SMALL = st.text(alphabet="ab! .", max_size=4)
RULES = st.lists(
    st.one_of(
        st.fixed_dictionaries({"kind": st.just("exclamation"), "replace": SMALL}),
        st.fixed_dictionaries(
            {
                "kind": st.just("replace"),
                "find": st.text(alphabet="ab! .", min_size=1, max_size=4),
                "replace": SMALL,
            }
        ),
    ),
    max_size=4,
)


def rules_applied_to_the_whole_text(text: str, rules: list[dict]) -> str:
    for rule in rules:
        if rule["kind"] == "exclamation":
            text = text.replace("!", rule["replace"] or ".")
        else:
            text = text.replace(rule["find"], rule["replace"])
    return text


@settings(max_examples=500, deadline=None, database=None)
@given(
    text=st.text(alphabet="ab! .xé", max_size=60),
    rules=RULES,
    cuts=st.lists(st.integers(0, 200), max_size=20),
)
def test_text_rules_give_the_same_text_streamed_in_any_chunks_as_on_the_whole_answer(
    text, rules, cuts
):
    rewriter = StreamingRewriter(rules)
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    streamed = "".join(rewriter.feed(piece) for piece in pieces) + rewriter.flush()
    assert streamed == rules_applied_to_the_whole_text(text, rules)


# --- legacy import --------------------------------------------------------------------------------------

LEGACY_VALUE = st.one_of(
    st.none(),
    st.just(""),
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True),
    st.text(max_size=20),
    st.integers(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def legacy_rows(draw):
    from chatbots.transfer import LEGACY_COLUMNS

    columns = draw(
        st.lists(
            st.sampled_from([*LEGACY_COLUMNS, "id", "created_at", "x"]), unique=True, max_size=8
        )
    )
    rows = draw(
        st.lists(
            st.one_of(
                st.fixed_dictionaries({c: LEGACY_VALUE for c in ["chatbot_id", *columns]}),
                st.integers(),  # a row that is not an object at all
            ),
            max_size=5,
        )
    )
    return rows


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=legacy_rows(), as_csv=st.booleans())
def test_legacy_rows_import_or_are_rejected_with_their_row_number_never_crash(rows, as_csv):
    from chatbots.tests.factories import shop_for_tests
    from chatbots.transfer import TransferError, legacy_settings_import, legacy_settings_read

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("settings.csv" if as_csv else "settings.json")
        if as_csv:
            columns = sorted({k for r in rows if isinstance(r, dict) for k in r})
            lines = [",".join(columns)]
            for row in rows:
                values = row.values() if isinstance(row, dict) else [row]
                lines.append(
                    ",".join(json.dumps(v) if not isinstance(v, str) else v for v in values)
                )
            path.write_text("\n".join(lines) + "\n")
        else:
            path.write_text(json.dumps(rows))
        try:
            legacy = legacy_settings_read(path=path)
        except TransferError as exc:
            assert str(exc)  # refused as a whole, with a reason
            return
    with transaction.atomic():
        result = legacy_settings_import(legacy=legacy, skip_bad_rows=True, shop=shop_for_tests())
        for rejected in result.rejected:
            assert rejected.reasons and all(isinstance(r, str) and r for r in rejected.reasons)
            assert rejected.where.split()[-1].isdigit(), rejected.where
        assert len(result.rejected) + len(result.chatbots) == len(legacy.rows)
        transaction.set_rollback(True)


# --- broken bodies on every POST endpoint ---------------------------------------------------------------


def post_operations(base_url: str) -> list[tuple[str, bool]]:
    """Every POST path of the live schema (ids filled in) and whether it takes a body."""
    schema = httpx.get(f"{base_url}/api/schema/", params={"format": "json"}, timeout=30).json()
    urls = []
    for path, item in schema["paths"].items():
        if "post" not in item:
            continue
        params = {
            p["name"]: p for p in item.get("parameters", []) + item["post"].get("parameters", [])
        }
        for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
            kind = params.get(name, {}).get("schema", {}).get("format")
            path = path.replace(f"{{{name}}}", str(uuid.uuid4()) if kind == "uuid" else "demo")
        urls.append((path, "requestBody" in item["post"]))
    return sorted(urls)


BROKEN_BODIES = {
    "deeply nested": (b"[" * 50_000 + b"]" * 50_000, "application/json"),
    "nested objects": (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "application/json"),
    "not UTF-8": (b'{"message_text": "\xff\xfe\xfa", "chatbot_id": "demo"}', "application/json"),
    "not JSON": (b'{"message_text": ', "application/json"),
    "wrong content type": (b"message_text=hello", "application/x-www-form-urlencoded"),
    "NUL bytes": (b'{"message_text": "a\\u0000b", "chatbot_id": "demo\x00"}', "application/json"),
}


@pytest.mark.django_db(transaction=True)
def test_broken_and_oversized_bodies_on_every_post_endpoint_get_4xx_envelopes(rstack):
    from django.conf import settings as django_settings
    from django.contrib.auth.models import User
    from rest_framework_simplejwt.tokens import RefreshToken

    from config.middleware import body_limit_for

    harness.builtin_bot("demo")
    staff = User.objects.create_superuser("hostile-staff", password="pw-123456789")
    jwt = {"Authorization": f"Bearer {RefreshToken.for_user(staff).access_token}"}
    operations = post_operations(rstack.base_url)
    assert len(operations) >= 8, operations
    answers: dict[str, dict[str, int]] = {}
    problems = []
    with httpx.Client(base_url=rstack.base_url, timeout=60) as client:
        for url, takes_body in operations:
            answers[url] = {}
            bodies = dict(BROKEN_BODIES)
            limit = body_limit_for(url)
            bodies["oversized"] = (b'{"a": "' + b"x" * (limit + 1024) + b'"}', "application/json")
            for name, (body, content_type) in bodies.items():
                for who, headers in (("anonymous", {}), ("staff", jwt)):
                    response = client.post(
                        url, content=body, headers={"Content-Type": content_type, **headers}
                    )
                    harness.keep(response.text)
                    answers[url][f"{name}/{who}"] = response.status_code
                    if response.status_code < 300 and not takes_body:
                        continue  # an action that reads no body may ignore what was sent
                    ok = 400 <= response.status_code < 500
                    try:
                        ok = ok and bool(response.json()["error"]["code"])
                    except (ValueError, KeyError, TypeError):
                        ok = False
                    if name == "oversized" and response.status_code != 413:
                        ok = False
                    if not ok:
                        problems.append((url, name, who, response.status_code, response.text[:200]))
        # A body sent in chunks declares no length. DRF reads a request body only as far as
        # Content-Length says, so this one is seen as empty: a clear 400, never a 5xx.
        big = (
            b'{"message_text": "' + b"x" * (2 * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE) + b'"}'
        )

        def chunks():
            for start in range(0, len(big), 1 << 20):
                yield big[start : start + (1 << 20)]

        response = client.post(
            "/api/process-message", content=chunks(), headers={"Content-Type": "application/json"}
        )
        chunked_status = response.status_code
        if chunked_status not in (400, 413) or '"error"' not in response.text:
            problems.append(
                ("/api/process-message", "chunked", "", chunked_status, response.text[:300])
            )
    assert rstack.daphne.alive()
    harness.record_figures(
        "hostile_bodies",
        post_endpoints=len(operations),
        requests=sum(len(v) for v in answers.values()) + 1,
        statuses=sorted({s for v in answers.values() for s in v.values()} | {chunked_status}),
        problems=len(problems),
    )
    assert problems == [], "\n".join(map(str, problems))


# --- garbage WebSocket frames -------------------------------------------------------------------------------

GARBAGE = {
    "binary frame": b"\x00\x01\x02binary",
    "2 MB binary frame": b"\xff" * (2 * 1024 * 1024),
    "invalid JSON": "{not json",
    "deeply nested": "[" * 5000 + "]" * 5000,
    "2 MB invalid JSON": "{" + "x" * (2 * 1024 * 1024),
    "2 MB message": json.dumps({"type": "message", "message_text": "x" * (2 * 1024 * 1024)}),
    "JSON null": "null",
    "JSON list": "[1, 2, 3]",
    "JSON string": '"hello"',
    "unknown type": json.dumps({"type": "launch-missiles"}),
    "type is a list": json.dumps({"type": ["message"]}),
    "type is an object": json.dumps({"type": {"a": 1}}),
    "type is a number": json.dumps({"type": 7}),
    "message text is a list": json.dumps({"type": "message", "message_text": ["hi"]}),
    "idempotency key is a number": json.dumps(
        {"type": "message", "message_text": "hi", "idempotency_key": 5}
    ),
    "image ids is not a list": json.dumps(
        {"type": "message", "message_text": "hi", "image_ids": "nope"}
    ),
    "image data is a number": json.dumps(
        {"type": "message", "message_text": "hi", "image_data": 5}
    ),
    "resume with wrong types": json.dumps({"type": "resume", "turn_id": 5, "last_event_id": "x"}),
    "resume beyond the end": json.dumps(
        {"type": "resume", "turn_id": str(uuid.uuid4()), "last_event_id": 10**12}
    ),
    "cancel with an object": json.dumps({"type": "cancel", "turn_id": {"a": 1}}),
    "history with text limit": json.dumps({"type": "history", "limit": "abc"}),
    "auth with a number": json.dumps({"type": "auth", "token": 5}),
}
# Frames bigger than Daphne's WebSocket limit (websocket_max_message_size, 1 MiB) never reach
# the consumer: the server fails the connection (close 1009), and because the client is still
# sending, the close frame is usually lost in the reset. The widget sees a dropped socket.
OVER_THE_FRAME_LIMIT = {"2 MB binary frame", "2 MB invalid JSON", "2 MB message"}
# `type` is looked up in a dict: an unhashable one must still get an error frame.
UNHASHABLE_TYPE = {"type is a list", "type is an object"}


async def _garbage_outcome(url: str, frame) -> str:
    """Send one frame on a fresh connection; then the connection must answer a ping."""
    async with websockets.connect(url, max_size=None, open_timeout=10) as ws:
        ready = json.loads(harness.keep(await asyncio.wait_for(ws.recv(), 10)))
        assert ready["type"] == "ready"
        outcome = "no answer"
        try:
            # Inside the try: a frame over the size limit may be cut off by the server's
            # reset while it is still being sent, as well as after.
            await ws.send(frame)
            while True:
                reply = json.loads(harness.keep(await asyncio.wait_for(ws.recv(), 5)))
                if reply.get("type") == "error":
                    outcome = f"error {reply['error']['code']}"
                    break
                if reply.get("type") in ("turn", "event", "chat:history"):
                    outcome = f"accepted ({reply['type']})"
                    break
            await ws.send(json.dumps({"type": "ping"}))
            while json.loads(await asyncio.wait_for(ws.recv(), 5)).get("type") != "pong":
                pass
            return outcome + ", still serving"
        except websockets.ConnectionClosed as exc:
            return f"closed {exc.rcvd.code if exc.rcvd else 'abruptly'}"
        except TimeoutError:
            return outcome


@dataclass
class GarbageRun:
    outcomes: dict[str, str]
    crashes: int
    neighbour: Followed


@pytest.fixture(scope="module")
def garbage(rstack, django_db_setup, django_db_blocker) -> GarbageRun:
    with harness.scenario_database(django_db_blocker):
        harness.builtin_bot(
            "ws-hostile", [("Shipping", "We ship within two days to every address in Denmark.")]
        )
        reply = harness.post_message(rstack.base_url, "ws-hostile", "How fast do you ship?")
        url = reply["websocket_url"] + "?token=" + reply["conversation_token"]
        log_before = len(rstack.daphne.log_text())

        async def scenario():
            outcomes = {}
            for name, frame in GARBAGE.items():
                outcomes[name] = await _garbage_outcome(url, frame)
            # Garbage before authenticating, too.
            async with websockets.connect(reply["websocket_url"]) as ws:
                await ws.send(b"\x00binary")
                first = json.loads(await asyncio.wait_for(ws.recv(), 5))
                await ws.send("{nope")
                second = json.loads(await asyncio.wait_for(ws.recv(), 5))
                outcomes["before auth"] = (
                    f"error {first['error']['code']}, error {second['error']['code']}"
                )
            return outcomes

        outcomes = asyncio.run(scenario())
        # Afterwards the server answers other customers as usual.
        other = harness.post_message(rstack.base_url, "ws-hostile", "And the shipping price?")
        neighbour = asyncio.run(follow(other, stall=15, timeout=30))
        crashes = rstack.daphne.log_text()[log_before:].count("Exception inside application")
    harness.record_figures("hostile_websocket_frames", crashes_logged=crashes, **outcomes)
    return GarbageRun(outcomes, crashes, neighbour)


def test_garbage_websocket_frames_get_an_error_frame_and_the_connection_stays_usable(garbage):
    for name, outcome in garbage.outcomes.items():
        if name in OVER_THE_FRAME_LIMIT | UNHASHABLE_TYPE:
            continue
        assert outcome.startswith(("error ", "accepted")), (name, outcome)
        if name != "before auth":
            assert outcome.endswith("still serving"), (name, outcome)


def test_frames_over_the_size_limit_close_the_connection(garbage):
    for name in OVER_THE_FRAME_LIMIT:
        assert garbage.outcomes[name] in ("closed 1009", "closed abruptly"), name


def test_a_frame_whose_type_is_not_text_gets_an_error_frame(garbage, request):
    for name in UNHASHABLE_TYPE:
        assert garbage.outcomes[name].startswith("error VALIDATION_ERROR"), name
    assert garbage.crashes == 0


def test_the_server_keeps_serving_other_customers_after_the_garbage(garbage, rstack):
    assert garbage.neighbour.done and garbage.neighbour.text
    assert garbage.neighbour.kinds[-1] == "end"
    assert rstack.daphne.alive()


# --- a client that never reads ---------------------------------------------------------------------------

# The frames the publisher makes (STREAM_FRAME_MAX_CHARS): a replay batch of 1000 events is then
# about 2 MB, as in production, and fits under Daphne's send-buffer bound (4 MB).
BIG_TOKEN = 2_000
HELD_BOUND = 8e6  # bytes the server process may hold for one client that does not read


def tcp_send_buffer_max() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 * 1024 * 1024


# Big enough that what the kernel can hold is a small part of it: about 28 MB on Linux's
# defaults, streamed as fast as the pipeline goes (the harness raises ANSWER_MAX_CHARS for it).
BIG_TOKENS = int((tcp_send_buffer_max() + 3 * HELD_BOUND) // BIG_TOKEN)


def kernel_capacity(sock) -> int:
    """The most the kernel can hold between Daphne and this client: our receive buffer plus the
    largest send buffer Linux gives a TCP socket."""
    import socket

    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) + tcp_send_buffer_max()


def read_until_quiet(sock, quiet: float = 3.0) -> tuple[bytes, str]:
    """Everything the server still sends, and how the connection ended: `closed` (the server
    closed it), `reset`, or `open` (still open, silent for `quiet` seconds)."""
    sock.settimeout(quiet)
    data = bytearray()
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
        return bytes(data), "closed"
    except ConnectionResetError:
        return bytes(data), "reset"
    except TimeoutError:
        return bytes(data), "open"


def server_text_frames(data: bytes) -> list[str]:
    """The complete text frames in bytes a server sent (unmasked; Daphne does not fragment)."""
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length, head = data[at] & 0x0F, data[at + 1] & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(data[at + 2 : at + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(data[at + 2 : at + 10], "big"), 10
        if at + head + length > len(data):
            break  # cut off where the server stopped sending
        if opcode == 0x1:
            frames.append(data[at + head : at + head + length].decode())
        at += head + length
    return frames


@pytest.mark.django_db(transaction=True)
def test_a_client_that_never_reads_does_not_make_the_server_buffer_without_bound(rstack):
    from django.conf import settings as django_settings

    from conversations.models import Turn

    with FakeFlowise() as flowise:
        harness.flowise_bot(flowise, "slow-reader", read_timeout=30)
        flowise.scenario.update(tokens=["B" * BIG_TOKEN] * BIG_TOKENS)
        harness.builtin_bot("slow-neighbour", [("Hours", "We are open from nine to five.")])
        baseline = rstack.daphne.rss()
        log_before = len(rstack.daphne.log_text())
        reply = harness.post_message(rstack.base_url, "slow-reader", "Tell me everything")
        silent = harness.SilentWebSocket(
            reply["websocket_url"] + "?token=" + reply["conversation_token"]
        )
        try:
            silent.send_text(
                json.dumps({"type": "resume", "turn_id": reply["turn_id"], "last_event_id": 0})
            )
            peak = baseline
            deadline = time.monotonic() + 120
            unfinished = Turn.objects.filter(pk=reply["turn_id"], status__in=["pending", "running"])
            while unfinished.exists():
                assert time.monotonic() < deadline, "the big answer did not finish"
                peak = max(peak, rstack.daphne.rss())
                time.sleep(0.1)
            for _ in range(20):  # the last frames on their way through the channel layer
                peak = max(peak, rstack.daphne.rss())
                time.sleep(0.1)
            # Another customer is served meanwhile.
            other = harness.post_message(rstack.base_url, "slow-neighbour", "When are you open?")
            neighbour = asyncio.run(follow(other, stall=15, timeout=30))
            # Everything the client did not read was held by the kernel or by the server.
            data, ending = read_until_quiet(silent.sock)
            received = len(data)
            held = received - kernel_capacity(silent.sock)
        finally:
            silent.close()
        turn = Turn.objects.get(pk=reply["turn_id"])
        # The widget reconnects and resumes from the last event it got: nothing is lost.
        frames = [json.loads(harness.keep(f)) for f in server_text_frames(data)]
        seen = Followed(reply["turn_id"])
        seen.events = [f for f in frames if f.get("type") == "event"]
        seen.arrived = [0.0] * len(seen.events)
        got_before = seen.last_id
        seen.done = "end" in seen.kinds
        resumed = seen if seen.done else asyncio.run(follow(reply, state=seen, timeout=120))
        stored = harness.stored_answer(reply["turn_id"])
    answer = BIG_TOKEN * BIG_TOKENS
    log = rstack.daphne.log_text()[log_before:]
    aborted = re.search(r"is not keeping up: (\d+) bytes queued", log)
    harness.record_figures(
        "slow_client",
        answer_mb=answer / 1e6,
        bytes_received_when_finally_read_mb=round(received / 1e6, 3),
        held_by_the_server_process_at_least_mb=round(max(held, 0) / 1e6, 1),
        bound_mb=HELD_BOUND / 1e6,
        send_buffer_bound_mb=round(django_settings.WS_SEND_BUFFER_MAX_BYTES / 1e6, 1),
        daphne_held_when_it_aborted_mb=round(int(aborted.group(1)) / 1e6, 2) if aborted else None,
        connection_after_the_backlog=ending,
        daphne_rss_baseline_mb=round(baseline / 1e6, 1),
        daphne_rss_peak_growth_mb=round((peak - baseline) / 1e6, 1),
        events_received_before_the_abort=got_before,
        events_after_resuming=len(resumed.events) - got_before,
        reconnects_to_finish=resumed.reconnects,
        neighbour_served=neighbour.done,
        turn_status=turn.status,
    )
    assert neighbour.done and neighbour.text
    assert turn.status == "completed"
    assert held <= HELD_BOUND
    assert peak - baseline <= 4 * HELD_BOUND
    # The server gave up on the connection instead of buffering the rest, and said why.
    assert ending in ("closed", "reset"), ending
    assert aborted and "connection aborted" in log
    # Resuming from what the client got delivers the rest, gapless, and the stored answer is whole.
    assert resumed.done and resumed.gapless()
    assert resumed.text == "B" * answer
    assert stored == "B" * answer
