"""The conversation index (seed 004): sync, merge across syncs, late commits, overlapping
syncs, reset/delete, and the staff API over it."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from analytics.models import ConversationSummary, SyncState
from analytics.services.conversation_index import (
    conversation_index_delete,
    conversation_index_init,
    conversation_index_reset,
    conversation_index_sync,
)
from analytics.tests.conftest import ai_call
from conversations.models import AICall, Conversation

T0 = dt.datetime(2025, 11, 8, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def shop(make_chatbot):
    return make_chatbot(public_id="vinhuset")


def call(conversation: Conversation, question: str, *, minutes: float, **fields) -> AICall:
    fields.setdefault("user_id", conversation.user_id)
    fields.setdefault("total_tokens", 10)
    row = ai_call(
        chatbot_id=conversation.chatbot_id, conversation=conversation, question=question, **fields
    )
    # created_at is auto_now_add: set the time the call "happened" afterwards.
    AICall.objects.filter(pk=row.pk).update(created_at=T0 + dt.timedelta(minutes=minutes))
    return row


def summary_of(conversation: Conversation) -> dict:
    return ConversationSummary.objects.filter(conversation_id=conversation.pk).values().get()


COMPARED = (
    "chatbot_id",
    "username",
    "first_message_time",
    "last_message_time",
    "message_count",
    "first_question",
    "last_question",
    "first_call_id",
    "last_call_id",
    "model",
    "client_ip",
    "total_tokens",
    "message_ids",
)


def snapshot() -> dict:
    return {
        row["conversation_id"]: {k: row[k] for k in COMPARED}
        for row in ConversationSummary.objects.values()
    }


@pytest.mark.django_db
class TestSync:
    def test_a_sync_aggregates_each_conversations_calls(self, shop, make_conversation):
        a = make_conversation(shop, user_id="anna")
        b = make_conversation(shop, user_id="bo")
        c1 = call(a, "Hvor er min ordre?", minutes=0, client_ip="203.0.113.1", total_tokens=100)
        call(a, "route me", minutes=0.1, purpose="router", model="router-model", total_tokens=5)
        c3 = call(a, "Tak for hjælpen", minutes=3, client_ip="203.0.113.9", total_tokens=50)
        call(b, "Har I rødvin?", minutes=1)
        call(a, "analyse this transcript", minutes=4, purpose="analysis")  # not part of it
        ai_call(chatbot_id=shop.pk, conversation=None, question="orphan")  # conversation deleted

        result = conversation_index_sync()

        assert result["success"] is True
        assert result["messagesProcessed"] == 6
        assert result["conversationsFound"] == 2 and result["conversationsIndexed"] == 2
        assert result["conversationsCreated"] == 2
        row = summary_of(a)
        assert row["username"] == "anna" and row["chatbot_id"] == shop.pk
        assert row["message_count"] == 3 and row["total_tokens"] == 155
        assert (row["first_question"], row["last_question"]) == (
            "Hvor er min ordre?",
            "Tak for hjælpen",
        )
        assert row["first_message_time"] == T0
        assert row["last_message_time"] == T0 + dt.timedelta(minutes=3)
        assert row["client_ip"] == "203.0.113.9" and row["model"] == "gpt-4o-mini"
        assert row["message_ids"] == sorted(row["message_ids"]) and len(row["message_ids"]) == 3
        assert (row["first_call_id"], row["last_call_id"]) == (c1.pk, c3.pk)
        assert summary_of(b)["message_count"] == 1

    def test_the_second_sync_processes_only_new_calls_and_a_third_changes_nothing(
        self, shop, make_conversation
    ):
        a = make_conversation(shop)
        call(a, "one", minutes=0)
        call(a, "two", minutes=1)
        assert conversation_index_sync()["messagesProcessed"] == 2
        call(a, "three", minutes=2)
        b = make_conversation(shop)
        call(b, "other", minutes=2)

        second = conversation_index_sync()
        assert (second["messagesProcessed"], second["conversationsIndexed"]) == (2, 2)
        assert second["conversationsCreated"] == 1
        before = snapshot()

        third = conversation_index_sync()
        assert (third["messagesProcessed"], third["conversationsIndexed"]) == (0, 0)
        assert snapshot() == before
        assert summary_of(a)["message_count"] == 3 and summary_of(a)["last_question"] == "three"

    def test_merging_over_many_syncs_and_batches_equals_one_full_build(
        self, shop, make_conversation
    ):
        conversations = [make_conversation(shop, user_id=f"u{i}") for i in range(4)]
        minute = 0
        for round_ in range(3):
            for i, conversation in enumerate(conversations):
                minute += 1
                call(
                    conversation,
                    f"q{round_}-{i}",
                    minutes=minute,
                    model=f"model-{round_}",
                    total_tokens=round_ + i,
                )
            conversation_index_sync(batch_size=3)  # several statements per sync
        # A call that arrives late but happened first (e.g. a retried log write).
        early = call(conversations[0], "the real first question", minutes=-10)
        conversation_index_sync(batch_size=2)
        merged = snapshot()

        conversation_index_reset()

        assert snapshot() == merged
        first = merged[conversations[0].pk]
        assert first["first_question"] == "the real first question"
        assert first["first_call_id"] == early.pk
        assert first["last_question"] == "q2-0" and first["model"] == "model-2"
        assert first["message_ids"] == sorted(first["message_ids"])

    def test_equal_times_are_ordered_by_call_id_in_every_merge(self, shop, make_conversation):
        a = make_conversation(shop)
        call(a, "first", minutes=0)
        conversation_index_sync()
        call(a, "second, same instant", minutes=0)
        conversation_index_sync()
        row = summary_of(a)
        assert (row["first_question"], row["last_question"]) == ("first", "second, same instant")

    def test_init_reports_whether_it_created_the_index(self, db):
        assert conversation_index_init() is True
        assert conversation_index_init() is False

    def test_delete_empties_the_index_and_a_sync_rebuilds_it(self, shop, make_conversation):
        a = make_conversation(shop)
        call(a, "one", minutes=0)
        conversation_index_sync()
        assert conversation_index_delete() is True
        assert not ConversationSummary.objects.exists()
        state = SyncState.objects.get()
        assert (state.exists, state.watermark) == (False, 0)
        assert conversation_index_sync()["messagesProcessed"] == 1
        assert summary_of(a)["message_count"] == 1

    def test_ids_missing_for_longer_than_the_horizon_are_forgotten(self, shop, make_conversation):
        call(make_conversation(shop), "one", minutes=0)
        long_ago = (timezone.now() - dt.timedelta(hours=2)).isoformat()
        SyncState.objects.create(
            name=SyncState.CONVERSATION_INDEX, exists=True, pending_ids={"999999": long_ago}
        )
        result = conversation_index_sync()
        assert result["pendingCalls"] == 0
        assert SyncState.objects.get().pending_ids == {}


# --- concurrency: real transactions on separate connections -------------------------------------------


def _raw_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    keep = ("dbname", "user", "password", "host", "port")
    return psycopg.connect(**{k: params[k] for k in keep if params.get(k)})


@pytest.mark.django_db(transaction=True)
def test_a_call_committed_after_a_later_numbered_one_is_still_indexed(shop, make_conversation):
    a = make_conversation(shop)
    ai_call(chatbot_id=shop.pk, conversation=a, question="before")
    conversation_index_sync()
    with _raw_connection() as other:
        # An open transaction holds call N (like a turn_finish that has not committed yet) …
        row = other.execute(
            "INSERT INTO conversations_aicall (chatbot_id, conversation_id, endpoint_kind, "
            "endpoint_name, flow, purpose, question, answer, model, attempts, status, "
            "error_code, user_id, created_at) VALUES (%s, %s, 'openai', 'x', 'main', 'answer', "
            "'late question', '', 'gpt', 1, 'ok', '', '', now()) RETURNING id",
            [shop.pk, a.pk],
        ).fetchone()
        # … while call N+1 commits and a sync runs.
        later = ai_call(chatbot_id=shop.pk, conversation=a, question="early commit")
        assert later.pk > row[0]
        first = conversation_index_sync()
        assert first["messagesProcessed"] == 1 and first["pendingCalls"] == 1
        other.commit()

    second = conversation_index_sync()

    assert second["messagesProcessed"] == 1 and second["pendingCalls"] == 0
    summary = summary_of(a)
    assert summary["message_count"] == 3
    assert summary["message_ids"][1:] == [row[0], later.pk]
    assert conversation_index_sync()["messagesProcessed"] == 0


@pytest.mark.django_db(transaction=True)
def test_two_syncs_at_once_count_every_call_exactly_once(shop, make_conversation):
    conversations = [make_conversation(shop) for _ in range(50)]
    AICall.objects.bulk_create(
        [
            AICall(
                chatbot_id=shop.pk,
                conversation=conversations[i % 50],
                endpoint_kind="openai",
                endpoint_name="x",
                flow="main",
                purpose="answer",
                question=f"q{i}",
                status="ok",
                total_tokens=1,
            )
            for i in range(3000)
        ]
    )
    barrier = threading.Barrier(2)
    results: list = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(conversation_index_sync(batch_size=500))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(r["messagesProcessed"] for r in results) == [0, 3000]
    assert sum(ConversationSummary.objects.values_list("message_count", flat=True)) == 3000
    assert sum(ConversationSummary.objects.values_list("total_tokens", flat=True)) == 3000
    assert ConversationSummary.objects.count() == 50


@pytest.mark.django_db(transaction=True)
def test_the_scheduled_sync_skips_while_another_sync_holds_the_lock(shop, make_conversation):
    conversation_index_init()
    call(make_conversation(shop), "one", minutes=0)
    with _raw_connection() as other:
        other.execute(
            "SELECT 1 FROM analytics_syncstate WHERE name = %s FOR UPDATE",
            [SyncState.CONVERSATION_INDEX],
        )
        assert conversation_index_sync(wait=False) is None
        other.rollback()
    assert conversation_index_sync(wait=False)["messagesProcessed"] == 1


# --- the API --------------------------------------------------------------------------------------------

ENDPOINTS = [
    ("post", "/api/sync/init"),
    ("post", "/api/sync/sync"),
    ("get", "/api/sync/stats"),
    ("delete", "/api/sync/index"),
    ("post", "/api/sync/reset"),
    ("get", "/api/messages/conversations"),
    ("get", f"/api/messages/conversations/{uuid.uuid4()}"),
    ("get", "/api/analytics/export"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_outsiders_and_non_staff_get_nothing(client, member_client, method, url):
    anonymous = getattr(client.__class__(), method)(url)
    assert anonymous.status_code in (401, 403)
    assert anonymous.json()["error"]["code"] == "NOT_AUTHENTICATED"
    member = getattr(member_client, method)(url)
    assert member.status_code == 403
    assert member.json()["error"]["code"] == "PERMISSION_DENIED"
    assert not ConversationSummary.objects.exists() and not SyncState.objects.exists()


@pytest.mark.django_db
def test_the_sync_endpoints_speak_seed_004(staff_client, shop, make_conversation):
    assert staff_client.post("/api/sync/init").json() == {
        "created": True,
        "message": "Index created successfully",
    }
    assert staff_client.post("/api/sync/init").json()["created"] is False
    call(make_conversation(shop), "one", minutes=0)
    call(make_conversation(shop), "two", minutes=1)

    body = staff_client.post("/api/sync/sync").json()
    assert {
        k: body[k]
        for k in ("success", "messagesProcessed", "conversationsFound", "conversationsIndexed")
    } == {
        "success": True,
        "messagesProcessed": 2,
        "conversationsFound": 2,
        "conversationsIndexed": 2,
    }
    assert body["syncStartTime"].endswith("Z") and body["durationSeconds"] >= 0

    stats = staff_client.get("/api/sync/stats").json()
    assert stats["indexExists"] is True
    assert stats["conversationCount"] == stats["documentCount"] == 2
    assert stats["indexSize"] > 0

    reset = staff_client.post("/api/sync/reset").json()
    assert reset["message"] == "Reset and sync completed"
    assert reset["stats"]["messagesProcessed"] == 2

    deleted = staff_client.delete("/api/sync/index").json()
    assert deleted == {"deleted": True, "message": "Index deleted successfully"}
    assert staff_client.get("/api/sync/stats").json()["indexExists"] is False
    gone = staff_client.get("/api/messages/conversations")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "INDEX_NOT_FOUND"


@pytest.fixture
def indexed(db, shop, make_chatbot, make_conversation):
    """Seven conversations over two chatbots, users and models, indexed."""
    other = make_chatbot(public_id="dilling")
    rows = {}
    for i in range(5):
        conversation = make_conversation(shop, user_id="anna" if i < 3 else "bo")
        call(conversation, f"Hvor er ordre {i}?", minutes=i * 60)
        call(conversation, "Tak" if i % 2 else "Hvad med returnering?", minutes=i * 60 + 5)
        rows[f"shop{i}"] = conversation
    for i in range(2):
        conversation = make_conversation(other, user_id="carl")
        call(conversation, "Do you ship sweaters abroad?", minutes=600 + i, model="llama3")
        rows[f"dilling{i}"] = conversation
    conversation_index_sync()
    return rows


def listing(client, **params) -> dict:
    response = client.get("/api/messages/conversations", params)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_the_list_is_newest_first_and_pages(staff_client, indexed, django_assert_num_queries):
    # session + user, index state (with the exact counts), the page
    with django_assert_num_queries(4):
        first = listing(staff_client, page=1, size=3)
    assert (first["total"], first["page"], first["size"], first["totalPages"]) == (7, 1, 3, 3)
    ids = [c["conversationId"] for c in first["conversations"]]
    assert ids == [
        str(indexed["dilling1"].pk),
        str(indexed["dilling0"].pk),
        str(indexed["shop4"].pk),
    ]
    item = first["conversations"][2]
    assert item["messageCount"] == 2 and item["username"] == "bo" and item["chatbot"] == "vinhuset"
    assert (
        item["firstQuestion"] == "Hvor er ordre 4?"
        and item["lastQuestion"] == "Hvad med returnering?"
    )
    assert item["lastMessageTime"] == "2025-11-08T16:05:00Z"
    assert len(item["messageIds"]) == 2 and item["clientIp"] is None
    last = listing(staff_client, page=3, size=3)
    assert [c["conversationId"] for c in last["conversations"]] == [str(indexed["shop0"].pk)]
    assert listing(staff_client, page=9, size=3)["conversations"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"username": "anna"}, {"shop0", "shop1", "shop2"}),
        ({"chatbot": "dilling"}, {"dilling0", "dilling1"}),
        ({"model": "llama3"}, {"dilling0", "dilling1"}),
        ({"q": "returnering"}, {"shop0", "shop2", "shop4"}),
        ({"q": "ship sweaters"}, {"dilling0", "dilling1"}),
        ({"q": '"ordre 3"'}, {"shop3"}),
        ({"from": "2025-11-08T14:00:00Z"}, {"shop2", "shop3", "shop4", "dilling0", "dilling1"}),
        ({"to": "2025-11-08T13:05:00Z"}, {"shop0", "shop1"}),
        ({"from": "2025-11-08T13:00:00Z", "to": "2025-11-08T15:00:00Z"}, {"shop1", "shop2"}),
        (
            {"from": "2025-11-08", "to": "2025-11-08", "username": "bo", "q": "ordre"},
            {"shop3", "shop4"},
        ),
        ({"from": "2025-11-09"}, set()),
    ],
)
def test_the_list_filters_and_searches(
    staff_client, indexed, params, expected, django_assert_max_num_queries
):
    # session, user, index state, count, page; a search adds the word statistics, the time
    # span, its planner settings and (in a test's transaction) a savepoint and its release.
    with django_assert_max_num_queries(10):
        body = listing(staff_client, **params)
    names = {
        name
        for name, c in indexed.items()
        if str(c.pk) in {x["conversationId"] for x in body["conversations"]}
    }
    assert names == expected
    assert body["total"] == len(expected)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"page": "0"}, 400, "VALIDATION_ERROR"),
        ({"size": "1000"}, 400, "VALIDATION_ERROR"),
        ({"size": "ten"}, 400, "VALIDATION_ERROR"),
        ({"from": "yesterday"}, 400, "VALIDATION_ERROR"),
        ({"chatbot": "nobody"}, 404, "CHATBOT_NOT_FOUND"),
    ],
)
def test_the_list_rejects_bad_parameters(staff_client, indexed, params, status, code):
    response = staff_client.get("/api/messages/conversations", params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.django_db
def test_a_conversations_messages_are_its_ai_calls_oldest_first(staff_client, indexed):
    conversation = indexed["shop1"]
    body = staff_client.get(f"/api/messages/conversations/{conversation.pk}").json()
    assert body["conversationId"] == str(conversation.pk)
    assert body["messageCount"] == 2
    assert [m["userQuestion"] for m in body["messages"]] == ["Hvor er ordre 1?", "Tak"]
    assert body["messages"][0]["timestamp"] == "2025-11-08T13:00:00Z"
    assert {"response", "model", "totalTokens", "latencyMs", "username", "status"} <= set(
        body["messages"][0]
    )
    missing = staff_client.get(f"/api/messages/conversations/{uuid.uuid4()}")
    assert (
        missing.status_code == 404 and missing.json()["error"]["code"] == "CONVERSATION_NOT_FOUND"
    )


@pytest.mark.django_db
def test_past_the_count_limit_the_total_says_at_least(staff_client, indexed, settings):
    settings.CONVERSATION_INDEX_COUNT_LIMIT = 4
    body = listing(staff_client, q="ordre", size=2)  # five match
    assert (body["total"], body["totalRelation"], body["totalPages"]) == (4, "gte", 2)
    beyond = listing(staff_client, q="ordre", size=2, page=3)  # past the counted pages
    assert [c["conversationId"] for c in beyond["conversations"]] == [str(indexed["shop0"].pk)]
    # Without filters, or by chatbot only, the total is always exact (kept by the sync).
    assert (listing(staff_client)["total"], listing(staff_client)["totalRelation"]) == (7, "eq")
    exact = listing(staff_client, chatbot="vinhuset")
    assert (exact["total"], exact["totalRelation"]) == (5, "eq")


@pytest.mark.django_db
def test_deleting_a_chatbot_keeps_the_index_totals_exact(
    staff_client, indexed, make_chatbot, django_capture_on_commit_callbacks
):
    from chatbots.models import Chatbot

    with django_capture_on_commit_callbacks(execute=True):
        Chatbot.objects.get(public_id="dilling").delete()
    body = listing(staff_client)
    assert (body["total"], len(body["conversations"])) == (5, 5)


@pytest.mark.django_db
def test_a_search_with_many_matches_looks_at_recent_conversations_first_and_falls_back(
    staff_client, indexed, settings, monkeypatch
):
    from analytics import selectors

    settings.CONVERSATION_INDEX_COUNT_LIMIT = 1  # every search below counts as "many matches"
    # A window of the newest ~2 of the 7 (2 rows wanted, at least 1 in 7 matching).
    monkeypatch.setattr(selectors, "SEARCH_WINDOW_FACTOR", 1 / 7)
    recent = listing(staff_client, q="sweaters", size=2)  # both in the window
    assert [c["conversationId"] for c in recent["conversations"]] == [
        str(indexed["dilling1"].pk),
        str(indexed["dilling0"].pk),
    ]
    older = listing(staff_client, q="ordre", size=2)  # none in the window: the fallback
    assert [c["conversationId"] for c in older["conversations"]] == [
        str(indexed["shop4"].pk),
        str(indexed["shop3"].pk),
    ]


def rendered_as_before(row: dict) -> dict:
    """An index row as the list showed it when Python rendered it (isoformat, "Z", str ids)."""

    def iso(value):
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "conversationId": str(row["conversation_id"]),
        "chatbot": row["chatbot__public_id"],
        "username": row["username"],
        "firstMessageTime": iso(row["first_message_time"]),
        "lastMessageTime": iso(row["last_message_time"]),
        "messageCount": row["message_count"],
        "firstQuestion": row["first_question"],
        "lastQuestion": row["last_question"],
        "model": row["model"],
        "clientIp": row["client_ip"],
        "totalTokens": row["total_tokens"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "messageIds": [str(i) for i in row["message_ids"]],
    }


@pytest.mark.django_db
def test_a_page_built_by_postgresql_reads_as_python_rendered_it(indexed):
    from analytics.selectors import conversation_index_page, index_state

    rows = ConversationSummary.objects
    # A fraction of a second (all six digits), one that ends in zeros, whole seconds; IPv6,
    # IPv4 and no address; quotes and a newline in a question; a big token count.
    rows.filter(pk=indexed["dilling1"].pk).update(
        last_message_time=T0 + dt.timedelta(hours=8, microseconds=500_000),
        client_ip="2001:db8::1",
        first_question='Er "Øl" <billig>?\nJa \\ nej',
        total_tokens=2**40,
    )
    rows.filter(pk=indexed["dilling0"].pk).update(
        last_message_time=T0 + dt.timedelta(hours=7, microseconds=21_705),
        client_ip="203.0.113.9",
    )
    expected = [
        rendered_as_before(row)
        for row in rows.order_by("-last_message_time", "-conversation_id").values(
            "conversation_id", "chatbot__public_id", *COMPARED[1:], "created_at", "updated_at"
        )
    ]
    page = conversation_index_page(state=index_state(), size=50)["conversations"]
    assert page == expected
    assert page[0]["lastMessageTime"] == "2025-11-08T20:00:00.500000Z"
    assert page[1]["lastMessageTime"] == "2025-11-08T19:00:00.021705Z"
    assert page[2]["lastMessageTime"] == "2025-11-08T16:05:00Z"
    assert (page[0]["clientIp"], page[1]["clientIp"], page[2]["clientIp"]) == (
        "2001:db8::1",
        "203.0.113.9",
        None,
    )
    # A filtered page (the count and the page in one statement) reads the same.
    searched = conversation_index_page(state=index_state(), q="sweaters")["conversations"]
    assert searched == expected[:2]


@pytest.mark.django_db
@pytest.mark.parametrize("size", [1, 2, 3])
def test_a_common_one_word_search_walks_recent_conversations_for_the_same_pages(
    indexed, settings, monkeypatch, size
):
    from analytics import selectors

    settings.CONVERSATION_INDEX_COUNT_LIMIT = 1  # "ordre" (5 matches) counts as many
    state = selectors.index_state()
    entered = []
    real_bitmaps = selectors._bitmap_scans_only

    def bitmaps():
        entered.append(1)
        return real_bitmaps()

    monkeypatch.setattr(selectors, "_bitmap_scans_only", bitmaps)
    newest_first = [indexed[f"shop{i}"].pk for i in (4, 3, 2, 1, 0)]

    def pages(**share) -> list:
        monkeypatch.setattr(selectors, "_common_word_share", lambda q: share["share"])
        out = []
        for page in range(1, 7 // size + 2):
            body = selectors.conversation_index_page(state=state, q="ordre", page=page, size=size)
            assert (body["total"], body["totalRelation"]) == (1, "gte")
            out += [c["conversationId"] for c in body["conversations"]]
        return out

    monkeypatch.setattr(selectors, "SEARCH_WALK_ROWS", 10**9)
    walked = pages(share=0.1)  # 10% of rows: every page is within the walk's rows
    assert len(entered) == 7 // size + 1  # only the counts were read through bitmaps
    monkeypatch.setattr(selectors, "SEARCH_WALK_ROWS", 0)
    entered.clear()
    windowed = pages(share=0.1)
    assert len(entered) > 7 // size + 1  # the pages too (a window, then all matches)
    assert walked == windowed == [str(pk) for pk in newest_first]


@pytest.mark.django_db
def test_a_search_inside_a_transaction_puts_the_planner_settings_back(indexed):
    from django.db import transaction

    from analytics.selectors import conversation_index_page, index_state

    with transaction.atomic(), connection.cursor() as cursor:
        body = conversation_index_page(state=index_state(), q="returnering")
        assert body["total"] == 3
        cursor.execute("SHOW enable_indexscan")
        assert cursor.fetchone() == ("on",)
        cursor.execute("SHOW enable_seqscan")
        assert cursor.fetchone() == ("on",)
