"""Hostile values in every field of the inbox's JSON actions and queries (#18 item 6).

The inbox's endpoints live under /admin/inbox/api/ (the admin's session), outside the OpenAPI
schema the reliability fuzz test walks, so they get their own: NUL, lone surrogates, huge and
negative numbers, deep nesting and wrong types in every body field of every action and in every
query parameter. Each answer is a 2xx or a 4xx in the error envelope, never a 5xx.
"""

from __future__ import annotations

import json
import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile import NUL, SURROGATE, nested

ACTIONS = ["take", "assign", "reply", "typing", "hand-back", "resolve", "labels", "note", NUL]
FIELDS = ["text", "user_id", "typing", "labels", "reason"]


HOSTILE = st.one_of(
    st.sampled_from(
        [
            NUL,
            SURROGATE,
            10**20,
            -(10**20),
            -1,
            2**63,
            1e308,
            True,
            None,
            [],
            {},
            "",
            nested(40),
            [NUL],
            [SURROGATE, "ok"],
            {NUL: 1},
            "x" * 5000,
            ["x" * 100] * 50,
        ]
    ),
    st.text(max_size=20),
    st.integers(),
    st.lists(st.text(max_size=10), max_size=5),
)
HOSTILE_QUERY = ["a%00b", "%ED%A0%80", "%FF", "1e20", "100000000000000000000", "-1", "x" * 3000]


STATUSES: dict[int, int] = {}


def answer_problem(response) -> str | None:
    """What is wrong with an answer (a 5xx, or a 4xx outside the envelope), or None."""
    STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
    if response.status_code >= 500:
        return f"{response.status_code}"
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            assert error["code"] and isinstance(error["message"], str)
        except (ValueError, KeyError, TypeError, AssertionError):
            return f"{response.status_code} outside the envelope"
    return None


def test_hostile_bodies_and_queries_on_every_inbox_endpoint_never_make_a_server_error(
    client, customer, online
):
    customer.say("Hello")
    customer.post("person", {})
    client.force_login(online)
    client.raise_request_exception = False
    base = f"/admin/inbox/api/conversations/{customer.session_id}"
    problems: list[tuple] = []
    sent = 0

    @given(
        action=st.sampled_from(ACTIONS),
        body=st.one_of(
            st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), HOSTILE, max_size=3),
            HOSTILE,
        ),
    )
    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def act(action, body):
        nonlocal sent
        path = f"{base}/{urllib.parse.quote(action)}"
        response = client.post(path, json.dumps(body), content_type="application/json")
        sent += 1
        if problem := answer_problem(response):
            problems.append((action, repr(body)[:120], problem))

    act()
    # Every field of every action once with each of the worst values, and a body that is no JSON.
    for action in ACTIONS[:-1]:
        for field in FIELDS:
            for value in (NUL, SURROGATE, 10**20, nested(40), {"a": [1]}, True, None):
                response = client.post(
                    f"{base}/{action}", json.dumps({field: value}), content_type="application/json"
                )
                sent += 1
                if problem := answer_problem(response):
                    problems.append((action, field, repr(value)[:60], problem))
        response = client.post(f"{base}/{action}", b"\xff{", content_type="application/json")
        sent += 1
        if problem := answer_problem(response):
            problems.append((action, "not JSON", problem))
    for path, params in (
        ("/admin/inbox/api/conversations", ["view", "label", "x"]),
        ("/admin/inbox/api/figures", ["days", "x"]),
        ("/admin/inbox/api/canned", ["x"]),
        (base, ["x"]),
    ):
        for param in params:
            for value in HOSTILE_QUERY:
                response = client.get(f"{path}?{param}={value}")
                sent += 1
                if problem := answer_problem(response):
                    problems.append((path, param, value[:30], problem))
    assert sent > 400
    # Answered by the views themselves (not a login redirect): some actions went through.
    assert STATUSES.get(200) and not STATUSES.get(302), STATUSES
    assert problems == [], "\n".join(map(repr, problems[:30]))
