"""Hostile values in every field a client controls: every REST endpoint's JSON body, query
parameters and path parameters, and every WebSocket message type, against a live Daphne.

The values are what a hostile or broken client sends (NUL bytes, lone surrogates, huge and
negative numbers, dates at the ends of the calendar, deep nesting, wrong types). Whatever it
is, the answer is a 2xx or a 4xx in the error envelope, never a 5xx, and a WebSocket answers
with an error frame and keeps serving, never closes.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import uuid

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile import NUL, SURROGATE, nested
from tests.reliability import harness

pytestmark = [pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_OPERATION = 12
WS_EXAMPLES = 120


HOSTILE_JSON = st.one_of(
    st.sampled_from(
        [
            NUL,
            "\x00",
            SURROGATE,
            "\udfff",
            10**20,
            -(10**20),
            -1,
            0,
            2**63,
            1e308,
            -1e308,
            True,
            None,
            [],
            {},
            "",
            "0001-01-01",
            "9999-12-31",
            "1e20",
            nested(20),
            nested(40),
            {"a": {"b": [NUL]}},
            [SURROGATE],
            {NUL: 1},
            "x" * 5000,
        ]
    ),
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
# Query and path values arrive percent-encoded: a lone surrogate can only be sent as its
# (invalid) UTF-8 bytes.
HOSTILE_QUERY = st.one_of(
    st.sampled_from(
        [
            "a%00b",
            "%00",
            "%ED%A0%80",
            "%FF%FE",
            "1e20",
            "100000000000000000000",
            "-100000000000000000000",
            "-1",
            "0",
            "NaN",
            "0001-01-01",
            "9999-12-31",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-12:00",
            "",
            "x" * 3000,
        ]
    ),
    st.text(max_size=12).map(urllib.parse.quote),
)


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def operations(base_url: str) -> list[dict]:
    """Every operation of the live schema: method, path, path and query parameters, and the
    JSON body's field names."""
    schema = httpx.get(f"{base_url}/api/schema/", params={"format": "json"}, timeout=30).json()
    found = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = item.get("parameters", []) + op.get("parameters", [])
            body = op.get("requestBody", {}).get("content", {})
            fields: list[str] = []
            if "application/json" in body:
                fields = list(
                    resolve(schema, body["application/json"]["schema"]).get("properties", {})
                )
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "path_params": {
                        p["name"]: p.get("schema", {}).get("format")
                        for p in params
                        if p["in"] == "path"
                    },
                    "query": [p["name"] for p in params if p["in"] == "query"],
                    "fields": fields,
                    "takes_json": "application/json" in body,
                }
            )
    return found


def envelope_ok(response: httpx.Response) -> bool:
    try:
        error = response.json()["error"]
        return bool(error["code"]) and isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError):
        return False


@pytest.fixture
def fuzz_target(rstack):
    from django.contrib.auth.models import User
    from rest_framework_simplejwt.tokens import RefreshToken

    harness.builtin_bot("fuzz", [("Shipping", "We ship within two days.")])
    staff = User.objects.create_superuser("fuzz-staff", password="pw-123456789")
    reply = harness.post_message(rstack.base_url, "fuzz", "How fast do you ship?")
    return {
        "sent": 0,
        "reply": reply,
        "valid": {
            "chatbot_id": "fuzz",
            "message_text": "hello",
            "message": "hello",
            "session_id": reply["session_id"],
            "sessionId": reply["session_id"],
            "conversation_token": reply["conversation_token"],
            "turn_id": reply["turn_id"],
            "session": reply["session_id"],
            "user_id": "fuzz-user",
        },
        "personas": {
            "staff": {"Authorization": f"Bearer {RefreshToken.for_user(staff).access_token}"},
            "token": {
                "X-Conversation-Token": reply["conversation_token"],
                **harness.widget_headers("fuzz"),
            },
        },
    }


def path_for(operation: dict, target: dict, hostile: str | None) -> str:
    path = operation["path"]
    for name, fmt in operation["path_params"].items():
        if hostile is not None and fmt != "uuid":
            value = hostile
        elif fmt == "uuid":
            value = target["reply"]["turn_id" if "turn" in name else "session_id"]
        else:
            value = {"chatbot_id": "fuzz", "user_id": "fuzz-user"}.get(name, "fuzz")
        path = path.replace(f"{{{name}}}", value)
    return path


# Every field and parameter of every operation gets each of these once, besides the random mix.
SWEEP_JSON = [NUL, SURROGATE, 10**20, -(10**20), nested(40), {"a": [1]}, True]
SWEEP_QUERY = ["a%00b", "%ED%A0%80", "1e20", "100000000000000000000", "-1", "0001-01-01"]


def request_once(
    client: httpx.Client,
    operation: dict,
    target: dict,
    persona: str,
    *,
    body_fields: dict,
    query: dict,
    path_value: str | None,
) -> tuple | None:
    """One request; what went wrong (a 5xx, or a 4xx outside the envelope), or None."""
    url = path_for(operation, target, path_value)
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    headers = dict(target["personas"][persona])
    content = None
    if operation["method"] != "GET":
        body = {k: v for k, v in target["valid"].items() if k in operation["fields"]}
        body.update(body_fields)
        content = json.dumps(body).encode()  # ensure_ascii: lone surrogates survive
        headers["Content-Type"] = "application/json"
    response = client.request(operation["method"], url, content=content, headers=headers)
    target["sent"] += 1
    harness.keep(response.text[:2000])
    if degraded_health_report(response):
        return None
    if response.status_code >= 500 or (response.status_code >= 400 and not envelope_ok(response)):
        return (operation["method"], url[:200], persona, body_fields, response.status_code)
    return None


def degraded_health_report(response: httpx.Response) -> bool:
    """A health endpoint's documented 503: a dependency (a worker, say) is down on this busy
    stack. It answers the same whatever the input, and says so in its own report shape."""
    if response.status_code != 503:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and body.get("status") == "degraded"
        and ("dependencies" in body or "problems" in body)
    )


def sweep_operation(client: httpx.Client, operation: dict, target: dict) -> list[tuple]:
    cases = [
        {"body_fields": {f: v}, "query": {}, "path_value": None}
        for f in operation["fields"]
        for v in SWEEP_JSON
    ]
    cases += [
        {"body_fields": {}, "query": {q: v}, "path_value": None}
        for q in [*operation["query"], "x"]
        for v in SWEEP_QUERY
    ]
    if any(fmt != "uuid" for fmt in operation["path_params"].values()):
        cases += [{"body_fields": {}, "query": {}, "path_value": v} for v in SWEEP_QUERY]
    problems = []
    for case in cases:
        for persona in sorted(target["personas"]):
            problem = request_once(client, operation, target, persona, **case)
            if problem:
                problems.append(problem)
    return problems


def fuzz_operation(client: httpx.Client, operation: dict, target: dict) -> list[tuple]:
    """Hostile bodies, query and path values for one operation; the requests that got a 5xx
    or a 4xx outside the envelope."""
    problems: list[tuple] = []

    @given(
        persona=st.sampled_from(sorted(target["personas"])),
        body_fields=st.dictionaries(
            st.sampled_from(operation["fields"] or ["x"]) | st.text(max_size=5),
            HOSTILE_JSON,
            max_size=4,
        ),
        query=st.dictionaries(
            st.sampled_from(operation["query"] or ["x"]), HOSTILE_QUERY, max_size=3
        ),
        path_value=st.none() | HOSTILE_QUERY,
    )
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(persona, body_fields, query, path_value):
        problem = request_once(
            client,
            operation,
            target,
            persona,
            body_fields=body_fields,
            query=query,
            path_value=path_value,
        )
        if problem:
            problems.append(problem)

    run()
    return problems


def test_hostile_values_in_any_field_of_any_endpoint_never_make_a_server_error(rstack, fuzz_target):
    ops = operations(rstack.base_url)
    assert len(ops) >= 25, [o["path"] for o in ops]
    problems: list[tuple] = []
    with httpx.Client(base_url=rstack.base_url, timeout=60) as client:
        for operation in ops:
            problems += sweep_operation(client, operation, fuzz_target)
            problems += fuzz_operation(client, operation, fuzz_target)
    assert rstack.daphne.alive()
    harness.record_figures(
        "hostile_fields",
        operations=len(ops),
        requests=fuzz_target["sent"],
        problems=len(problems),
    )
    assert problems == [], "\n".join(map(repr, problems[:40]))


WS_TYPES = ["message", "chat:message", "resume", "cancel", "history", "chat:history", "ping"]
WS_FIELDS = [
    "message_text",
    "content",
    "message",
    "idempotency_key",
    "turn_id",
    "last_event_id",
    "limit",
    "image_ids",
    "image_data",
    "token",
]


def test_hostile_values_in_any_websocket_message_get_an_error_frame_never_a_closed_socket(
    rstack, fuzz_target
):
    reply = fuzz_target["reply"]
    url = reply["websocket_url"] + "?token=" + reply["conversation_token"]
    outcomes: dict[str, int] = {}
    problems: list[tuple] = []
    frames = []

    @given(
        kind=st.sampled_from(WS_TYPES) | HOSTILE_JSON,
        fields=st.dictionaries(st.sampled_from(WS_FIELDS), HOSTILE_JSON, min_size=1, max_size=3),
    )
    @settings(
        max_examples=WS_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def collect(kind, fields):
        frames.append(json.dumps({"type": kind, **fields}))

    collect()
    # Besides the random mix, the known crashes: NUL and surrogates in the message text itself.
    frames += [
        json.dumps({"type": "message", "message_text": NUL}),
        json.dumps({"type": "message", "message_text": SURROGATE}),
        json.dumps({"type": "message", "message_text": "hi", "idempotency_key": NUL}),
        json.dumps({"type": "resume", "turn_id": reply["turn_id"], "last_event_id": 10**20}),
        json.dumps({"type": "history", "limit": 10**20}),
    ]

    async def scenario():
        ws = await websockets.connect(url, open_timeout=10)
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
        for frame in frames:
            try:
                await ws.send(frame)
                await ws.send(json.dumps({"type": "ping", "n": str(uuid.uuid4())}))
                outcome = "no error"
                while True:
                    answer = json.loads(harness.keep(await asyncio.wait_for(ws.recv(), 15)))
                    if answer.get("type") == "error":
                        outcome = answer["error"]["code"]
                    if answer.get("type") == "pong":
                        break
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            except websockets.ConnectionClosed as exc:
                problems.append((frame[:200], f"closed {exc.rcvd.code if exc.rcvd else '?'}"))
                ws = await websockets.connect(url, open_timeout=10)
                await asyncio.wait_for(ws.recv(), 10)
            except TimeoutError:
                problems.append((frame[:200], "no pong"))
        await ws.close()

    log_before = len(rstack.daphne.log_text())
    asyncio.run(scenario())
    crashes = rstack.daphne.log_text()[log_before:].count("Exception inside application")
    harness.record_figures(
        "hostile_websocket_fields",
        frames=len(frames),
        crashes_logged=crashes,
        closed=len(problems),
        **outcomes,
    )
    assert problems == [], "\n".join(map(repr, problems[:40]))
    assert crashes == 0
