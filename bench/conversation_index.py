"""Benchmark of the conversation index: load AI calls with COPY, full and incremental syncs,
then list/search latency (through the selector and through the staff API).

Runs against its own database (created from DATABASE_URL's server, dropped afterwards):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatbot .venv/bin/python -m bench.conversation_index
    ./run manage shell -c "from bench.conversation_index import main; main([])"   # embedded PG

Options: --calls 1000000 --conversations 100000 --incremental 20000 --rounds 5 --queries 400
--keep. Writes bench/results/conversation_index.json (p50/p95/p99 per query, calls/s per sync).
Targets: list and search p95 <= 10 ms; incremental sync >= 20,000 calls/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "conversation_index.json"
TARGET_P95_MS = 10.0
TARGET_CALLS_PER_SECOND = 20_000
BENCH_DB = "bench_conversation_index"
MODELS = ["gpt-4o-mini", "gpt-4o", "llama3", "builtin", "mistral-small"]


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pick(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

    return {
        "n": len(ordered),
        "p50": pick(0.50),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


class Vocabulary:
    """Words with a Zipf-like frequency, so a few are common and most are rare (like real text)."""

    def __init__(self, rng: random.Random, size: int = 4000) -> None:
        syllables = ["ka", "lo", "vin", "ord", "re", "pak", "ke", "le", "ve", "ring", "tur", "sk",
                     "an", "de", "mi", "sto", "ra", "gen", "bo", "fri", "ne", "ta", "su", "ho"]  # fmt: skip
        words: set[str] = set()
        while len(words) < size:
            words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
        self.words = sorted(words)
        rng.shuffle(self.words)
        self.cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(size)))
        self.rng = rng

    def sentence(self) -> str:
        count = self.rng.randint(5, 14)
        return " ".join(self.rng.choices(self.words, cum_weights=self.cumulative, k=count)) + "?"


def _create_database(admin_params: dict) -> None:
    import psycopg

    with psycopg.connect(**admin_params, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _drop_database(admin_params: dict) -> None:
    import psycopg

    with psycopg.connect(**admin_params, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def _admin_params() -> dict:
    from django.db import connection

    params = connection.get_connection_params()
    return {k: params[k] for k in ("dbname", "user", "password", "host", "port") if params.get(k)}


def _load(args, rng: random.Random, vocab: Vocabulary) -> dict:
    """Chatbots and conversations through the ORM (bulk), AI calls with COPY, oldest first."""
    from django.db import connection, transaction

    from accounts.models import Shop
    from chatbots.models import Chatbot
    from conversations.models import Conversation

    started = time.monotonic()
    shop, _ = Shop.objects.get_or_create(slug="bench", defaults={"name": "Benchmark"})
    chatbots = Chatbot.objects.bulk_create(
        [Chatbot(shop=shop, public_id=f"bench-{i}", name=f"Bench shop {i}") for i in range(20)]
    )
    users = [f"user-{i}" for i in range(args.conversations // 3)]
    now = dt.datetime.now(dt.UTC)
    span = dt.timedelta(days=30).total_seconds()
    conversations = []
    for _ in range(args.conversations):
        bot = rng.choice(chatbots)
        conversations.append(
            (
                uuid.uuid4(),
                bot.pk,
                rng.choice(users),
                now - dt.timedelta(seconds=600 + rng.random() * span),
            )
        )
    with transaction.atomic():
        Conversation.objects.bulk_create(
            [
                Conversation(id=cid, chatbot_id=bot_id, user_id=user)
                for cid, bot_id, user, _start in conversations
            ],
            batch_size=10_000,
        )
    # Each conversation's calls are contiguous in time, every ~40 s; ids follow time order.
    per = args.calls // args.conversations
    events = []
    for index, (_cid, _bot, _user, start) in enumerate(conversations):
        for k in range(per):
            events.append((start + dt.timedelta(seconds=40 * k + rng.random() * 10), index))
    events.sort()
    t_copy = time.monotonic()
    _copy_calls(
        [(conversations[i][0], conversations[i][1], conversations[i][2], at) for at, i in events],
        rng,
        vocab,
    )
    copy_seconds = time.monotonic() - t_copy
    with connection.cursor() as cursor:
        # As autovacuum would have long since done for an older log.
        cursor.execute("VACUUM ANALYZE conversations_aicall")
    return {
        "chatbots": len(chatbots),
        "conversations": len(conversations),
        "calls": len(events),
        "users": len(users),
        "copy_seconds": round(copy_seconds, 2),
        "copy_rows_per_second": round(len(events) / copy_seconds),
        "seconds": round(time.monotonic() - started, 2),
        "_conversations": conversations,
    }


def _copy_calls(rows: list[tuple], rng: random.Random, vocab: Vocabulary) -> None:
    from django.db import connection

    columns = (
        "chatbot_id, conversation_id, endpoint_kind, endpoint_name, flow, purpose, question, "
        "answer, model, prompt_tokens, completion_tokens, total_tokens, latency_ms, "
        "first_token_ms, attempts, status, error_code, client_ip, user_id, created_at"
    )
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY conversations_aicall ({columns}) FROM STDIN") as copy:
            for cid, bot_id, user, at in rows:
                prompt, completion = rng.randint(50, 900), rng.randint(20, 400)
                copy.write_row(
                    (
                        bot_id,
                        cid,
                        "openai",
                        "bench",
                        "main",
                        "answer" if rng.random() < 0.85 else "router",
                        vocab.sentence(),
                        "An answer.",
                        rng.choice(MODELS),
                        prompt,
                        completion,
                        prompt + completion,
                        rng.randint(200, 4000),
                        rng.randint(50, 900),
                        1,
                        "ok",
                        "",
                        f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                        user,
                        at,
                    )
                )


def _incremental_round(args, rng, vocab, conversations: list[tuple]) -> dict:
    """New calls from the last few minutes (some new conversations, most ongoing), then a sync."""
    from analytics.services.conversation_index import conversation_index_sync

    now = dt.datetime.now(dt.UTC)
    rows = []
    for _ in range(args.incremental):
        cid, bot_id, user, _start = rng.choice(conversations[-5000:])
        rows.append((cid, bot_id, user, now - dt.timedelta(seconds=rng.random() * 300)))
    rows.sort(key=lambda r: r[3])
    _copy_calls(rows, rng, vocab)
    started = time.perf_counter()
    result = conversation_index_sync()
    seconds = time.perf_counter() - started  # with the lock, the commit and everything
    return {
        "calls": result["messagesProcessed"],
        "seconds": round(seconds, 3),
        "calls_per_second": round(result["messagesProcessed"] / seconds),
        "conversations": result["conversationsIndexed"],
        "pending": result["pendingCalls"],
    }


def _time(fn, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def _server_time(fn, n: int) -> list[float]:
    """PostgreSQL's own planning + execution time of the queries `fn` runs (EXPLAIN ANALYZE
    of the same statements): the database's share, apart from Python and the machine's load."""
    from django.db import connection, transaction

    samples = []
    for _ in range(n):
        captured: list = []

        def capture(execute, sql, params, many, context, captured=captured):
            # The transaction a statement ran in (None: autocommit): a SET LOCAL lasts to its end.
            block = connection.atomic_blocks[0] if connection.atomic_blocks else None
            captured.append((block, sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            fn()
        total = 0.0
        for _block, statements in itertools.groupby(captured, key=lambda c: c[0]):
            with transaction.atomic(), connection.cursor() as cursor:
                for _, sql, params in statements:
                    if sql.lstrip().upper().startswith("SET "):
                        cursor.execute(sql, params)  # the planner settings the queries ran with
                        continue
                    cursor.execute("EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) " + sql, params)
                    for (line,) in cursor.fetchall():
                        if line.strip().startswith(("Planning Time:", "Execution Time:")):
                            total += float(line.split(":")[1].split()[0])
        samples.append(total)
    return samples


def _queries(args, rng: random.Random, vocab: Vocabulary, dataset: dict) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from analytics.models import ConversationSummary
    from analytics.selectors import conversation_calls, conversation_index_page, index_state
    from chatbots.models import Chatbot

    chatbot_ids = list(Chatbot.objects.values_list("pk", flat=True))
    public_ids = list(Chatbot.objects.values_list("public_id", flat=True))
    users = list(ConversationSummary.objects.order_by("?").values_list("username", flat=True)[:500])
    sample_ids = list(
        ConversationSummary.objects.order_by("?").values_list("conversation_id", flat=True)[:500]
    )
    rare = vocab.words[200:]
    common = vocab.words[:20]
    newest = ConversationSummary.objects.order_by("-last_message_time").first().last_message_time
    n = args.queries

    def day_window() -> dict:
        end = newest - dt.timedelta(days=rng.random() * 29)
        return {"date_from": end - dt.timedelta(days=1), "date_to": end}

    state = index_state()  # as the API view passes it: exact totals, search windows

    def page(**filters):
        return conversation_index_page(state=state, **filters)

    selector_cases = {
        "list_first_page": lambda: page(page=1, size=50),
        "list_random_page_1_100": lambda: page(page=rng.randint(1, 100), size=50),
        "list_username": lambda: page(username=rng.choice(users)),
        "list_chatbot": lambda: page(chatbot_id=rng.choice(chatbot_ids)),
        "list_model": lambda: page(model=rng.choice(MODELS)),
        "list_date_range_1_day": lambda: page(**day_window()),
        "search_word": lambda: page(q=rng.choice(rare)),
        "search_two_words": lambda: page(q=f"{rng.choice(rare)} {rng.choice(vocab.words[:500])}"),
        "search_word_and_chatbot": lambda: page(
            q=rng.choice(rare), chatbot_id=rng.choice(chatbot_ids)
        ),
        "search_common_word": lambda: page(q=rng.choice(common)),
        "messages_of_a_conversation": lambda: conversation_calls(conversation_id=rng.choice(sample_ids)),
    }  # fmt: skip
    results: dict[str, dict] = {"selector": {}, "server": {}, "api": {}}
    for name, fn in selector_cases.items():
        fn()  # warm the plan cache and the buffer pool
        results["selector"][name] = _percentiles(_time(fn, n))
        results["server"][name] = _percentiles(_server_time(fn, max(50, n // 4)))

    staff = get_user_model().objects.create_superuser("bench-staff", "b@example.com", "pw-bench")
    client = Client()
    client.force_login(staff)

    def get(params: dict) -> None:
        response = client.get("/api/messages/conversations", params)
        assert response.status_code == 200, response.content

    api_cases = {
        "list_first_page": lambda: get({}),
        "list_random_page_1_100": lambda: get({"page": rng.randint(1, 100)}),
        "list_username": lambda: get({"username": rng.choice(users)}),
        "list_chatbot": lambda: get({"chatbot": rng.choice(public_ids)}),
        "list_model": lambda: get({"model": rng.choice(MODELS)}),
        "list_date_range_1_day": lambda: get(
            {k.removeprefix("date_"): v.isoformat() for k, v in day_window().items()}
        ),
        "search_word": lambda: get({"q": rng.choice(rare)}),
        "search_common_word": lambda: get({"q": rng.choice(common)}),
        "search_word_and_chatbot": lambda: get({"q": rng.choice(rare), "chatbot": rng.choice(public_ids)}),
    }  # fmt: skip
    for name, fn in api_cases.items():
        fn()
        results["api"][name] = _percentiles(_time(fn, n))
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--incremental", type=int, default=20_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="incremental sync rounds")
    parser.add_argument("--queries", type=int, default=400, help="runs of each query")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])

    _setup_django()
    from django.conf import settings
    from django.db import connection

    admin = _admin_params()
    connection.close()
    _create_database(admin)
    settings.DATABASES["default"]["NAME"] = BENCH_DB
    connection.settings_dict["NAME"] = BENCH_DB
    settings.DEBUG = False
    rng = random.Random(20251108)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    try:
        from django.core.management import call_command

        t = time.monotonic()
        call_command("migrate", verbosity=0, interactive=False)
        print(f"migrated in {time.monotonic() - t:.1f}s", flush=True)
        vocab = Vocabulary(rng)
        dataset = _load(args, rng, vocab)
        conversations = dataset.pop("_conversations")
        print(f"loaded {dataset}", flush=True)

        from analytics.services.conversation_index import conversation_index_sync

        started = time.perf_counter()
        full = conversation_index_sync()
        full_seconds = round(time.perf_counter() - started, 3)
        full_rate = round(full["messagesProcessed"] / full_seconds)
        print(f"full sync {full_seconds}s, {full_rate} calls/s", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE analytics_conversationsummary")
            cursor.execute("SELECT version()")
            pg_version = cursor.fetchone()[0]
        rounds = [_incremental_round(args, rng, vocab, conversations) for _ in range(args.rounds)]
        print(f"incremental {rounds}", flush=True)
        noop = conversation_index_sync()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE analytics_conversationsummary")
            cursor.execute("SELECT pg_total_relation_size('analytics_conversationsummary')")
            index_bytes = cursor.fetchone()[0]
        queries = _queries(args, rng, vocab, dataset)
        incremental_rate = statistics.median(r["calls_per_second"] for r in rounds)
        list_p95 = {k: v["p95"] for k, v in queries["selector"].items()}
        report = {
            "generated_at": dt.datetime.now(dt.UTC).isoformat(),
            "machine": {
                "cpus": os.cpu_count(),
                # Other work on the machine skews every figure; these say how busy it was.
                "load_average_at_start": load_at_start,
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "python": platform.python_version(),
                "postgresql": pg_version,
            },
            "dataset": dataset,
            "index_bytes": index_bytes,
            "full_sync": {
                "calls": full["messagesProcessed"],
                "conversations": full["conversationsIndexed"],
                "seconds": full_seconds,
                "calls_per_second": full_rate,
            },
            "incremental_sync": {
                "rounds": rounds,
                "median_calls_per_second": incremental_rate,
                "noop_seconds": noop["durationSeconds"],
            },
            "queries_ms": queries,
            "targets": {
                "list_and_search_p95_ms": TARGET_P95_MS,
                "incremental_calls_per_second": TARGET_CALLS_PER_SECOND,
                "incremental_met": incremental_rate >= TARGET_CALLS_PER_SECOND,
                "queries_over_target": sorted(k for k, v in list_p95.items() if v > TARGET_P95_MS),
            },
        }
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n")
        for name, figures in queries["selector"].items():
            server = queries["server"][name]
            print(f"{name:28} p95 {figures['p95']:7.2f} ms, in PostgreSQL {server['p95']:6.2f} ms")
        print(f"wrote {output}")
        return report
    finally:
        connection.close()
        if not args.keep:
            _drop_database(admin)


if __name__ == "__main__":
    main()
