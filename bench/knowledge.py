"""Benchmark of knowledge retrieval: full-text, vector and hybrid latency over N chunks of one
shop's knowledge base, and ingestion throughput (chunks per second).

Runs against its own database (created from DATABASE_URL's server, dropped afterwards):

    ./run manage shell -c "from bench.knowledge import main; main([])"        # embedded PG
    ./run manage shell -c "from bench.knowledge import main; main(['--chunks', '20000'])"

Options: --chunks 100000 --dims 1536 --queries 200 --shops 1 --keep --database NAME, --reuse
(query a database an earlier --keep run of one shop left, skipping the load; its dataset figures
are then not re-measured). Vectors are synthetic (unit vectors
around 500 topics; the questions are noisy copies of chunk vectors), loaded with COPY; the HNSW
index of migration knowledge.0002 is built after the load, as a one-off re-index would. Writes
bench/results/knowledge.json. Target (issue #19): hybrid p95 <= 30 ms at 100,000 chunks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

from bench.conversation_index import Vocabulary, _admin_params, _percentiles

RESULTS = Path(__file__).resolve().parent / "results" / "knowledge.json"
BENCH_DB = "bench_knowledge"
TARGET_HYBRID_P95_MS = 30.0


def _create_database(admin_params: dict, name: str) -> None:
    import psycopg

    with psycopg.connect(**admin_params, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database(admin_params: dict, name: str) -> None:
    # Its own: bench.conversation_index's drops that benchmark's database, not this one.
    import psycopg

    with psycopg.connect(**admin_params, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _vectors(rng, count: int, dims: int, topics: int = 500):
    import numpy as np

    centers = rng.standard_normal((topics, dims)).astype(np.float32)
    labels = rng.integers(0, topics, count)
    vectors = centers[labels] + 0.6 * rng.standard_normal((count, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _load(args, vocab: Vocabulary, np_rng) -> dict:
    from django.db import connection

    from accounts.models import Shop
    from chatbots.models import Chatbot, KnowledgeBase
    from knowledge.models import KnowledgeDocument

    # --shops N: the chunks are shared evenly by N shops, each with its own bot and base (the
    # "1,000,000 across shops" case); queries go to the first shop's base.
    bases = []
    for number in range(args.shops):
        suffix = "" if number == 0 else f"-{number}"
        shop = Shop.objects.create(name=f"Benchmark{suffix}", slug=f"bench-knowledge{suffix}")
        bot = Chatbot.objects.create(
            shop=shop, public_id=f"bench-knowledge{suffix}", name="Bench", language="en"
        )
        kb = KnowledgeBase.objects.create(chatbot=bot, name="bench", embedding_model="bench-model")
        document = KnowledgeDocument.objects.create(knowledge_base=kb, title="Manual", text="-")
        bases.append((kb, document))
    per_shop = -(-args.chunks // args.shops)
    vectors = _vectors(np_rng, args.chunks, args.dims)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS knowledge_chunk_embedding_hnsw")
        raw = cursor.cursor
        columns = (
            "document_id, knowledge_base_id, position, heading, text, embedding, embedding_model"
        )
        with raw.copy(f"COPY knowledge_knowledgechunk ({columns}) FROM STDIN") as copy:
            for position in range(args.chunks):
                kb, document = bases[position // per_shop]
                text = " ".join(vocab.sentence() for _ in range(8))
                embedding = "{" + ",".join(f"{x:.5f}" for x in vectors[position]) + "}"
                copy.write_row(
                    (
                        document.pk,
                        kb.pk,
                        position,
                        vocab.sentence()[:80],
                        text,
                        embedding,
                        "bench-model",
                    )
                )
        copy_seconds = time.monotonic() - started
        t = time.monotonic()
        cursor.execute(
            "UPDATE knowledge_knowledgechunk SET search_vector = "
            "setweight(to_tsvector('english', heading), 'A') || "
            "setweight(to_tsvector('english', text), 'B')"
        )
        tsvector_seconds = time.monotonic() - t
        t = time.monotonic()
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute(
            f"CREATE INDEX knowledge_chunk_embedding_hnsw ON knowledge_knowledgechunk USING hnsw "
            f"((embedding::vector({args.dims})) vector_cosine_ops) "
            f"WHERE cardinality(embedding) = {args.dims}"
        )
        index_seconds = time.monotonic() - t
        cursor.execute("VACUUM ANALYZE knowledge_knowledgechunk")
    from knowledge.services import knowledge_terms_refresh

    t = time.monotonic()
    for number, (kb, document) in enumerate(bases):
        count = min(per_shop, args.chunks - number * per_shop)
        KnowledgeDocument.objects.filter(pk=document.pk).update(chunk_count=count)
        knowledge_terms_refresh(knowledge_base_id=kb.pk)  # as the ingestion task does at its end
    terms_seconds = time.monotonic() - t
    return {
        "terms_seconds": round(terms_seconds, 1),
        "chunks": args.chunks,
        "shops": args.shops,
        "dims": args.dims,
        "copy_seconds": round(copy_seconds, 1),
        "tsvector_seconds": round(tsvector_seconds, 1),
        "hnsw_build_seconds": round(index_seconds, 1),
        "_kb": bases[0][0],
        "_vectors": vectors[:per_shop],
    }


def _reused(args, np_rng) -> dict:
    """The dataset a --keep run left: the same chunks, and the same vectors regenerated from the
    seed (the questions are noisy copies of them)."""
    from chatbots.models import KnowledgeBase
    from knowledge.models import KnowledgeChunk

    kb = KnowledgeBase.objects.get(chatbot__public_id="bench-knowledge")
    chunks = KnowledgeChunk.objects.filter(knowledge_base=kb, document__title="Manual").count()
    if chunks != args.chunks:
        raise SystemExit(f"the kept database has {chunks} chunks, not {args.chunks}")
    return {
        "chunks": chunks,
        "dims": args.dims,
        "reused": True,
        "_kb": kb,
        "_vectors": _vectors(np_rng, args.chunks, args.dims),
    }


def _queries(args, vocab: Vocabulary, np_rng, kb, vectors) -> dict:
    from knowledge.retrieval import builtin_rankings, knowledge_search, vector_search

    timings: dict[str, list[float]] = {"fulltext": [], "vector": [], "hybrid": []}
    for _ in range(args.queries):
        question = vocab.sentence()
        target = vectors[int(np_rng.integers(0, len(vectors)))]
        noisy = target + 0.3 * np_rng.standard_normal(len(target))
        vector = [float(x) for x in noisy / (sum(float(v) * float(v) for v in noisy) ** 0.5)]
        t = time.perf_counter()
        knowledge_search(
            chatbot_id=kb.chatbot_id, search_config="english", question=question,
            knowledge_base_id=kb.pk, limit=20,
        )  # fmt: skip
        timings["fulltext"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        vector_search(knowledge_base_id=kb.pk, vector=vector, model="bench-model", limit=20)
        timings["vector"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        builtin_rankings(
            chatbot_id=kb.chatbot_id, search_config="english", question=question,
            knowledge_base_id=kb.pk, vector=vector, model="bench-model", limit=5,
        )  # fmt: skip
        timings["hybrid"].append((time.perf_counter() - t) * 1000)
    return {method: _percentiles(samples) for method, samples in timings.items()}


def _ingestion(vocab: Vocabulary, kb) -> dict:
    """Chunks per second of the real ingestion path (parse, cut, index) for one pasted document."""
    from knowledge.models import KnowledgeDocument
    from knowledge.services import document_process, document_submit

    text = "\n\n".join(
        f"# {vocab.sentence()}\n\n" + " ".join(vocab.sentence() for _ in range(30))
        for _ in range(400)
    )
    document = KnowledgeDocument.objects.create(knowledge_base=kb, title="Ingested", text=text)
    document_submit(document=document)
    t = time.perf_counter()
    outcome = document_process(document_id=str(document.pk), revision=document.revision)
    seconds = time.perf_counter() - t
    document.refresh_from_db()
    return {
        "outcome": outcome,
        "chunks": document.chunk_count,
        "seconds": round(seconds, 2),
        "chunks_per_second": round(document.chunk_count / seconds),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=1536)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--shops", type=int, default=1, help="share the chunks among N shops")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--database", default=BENCH_DB, help="the bench database's name")
    parser.add_argument("--reuse", action="store_true", help="query a kept database as it is")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    admin = _admin_params()
    connection.close()
    if not args.reuse:
        _create_database(admin, args.database)
    settings.DATABASES["default"]["NAME"] = args.database
    connection.settings_dict["NAME"] = args.database
    settings.DEBUG = False
    settings.KNOWLEDGE_MAX_CHUNKS_PER_SHOP = 10**9
    vocab = Vocabulary(random.Random(20261205))
    np_rng = np.random.default_rng(20261205)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    try:
        call_command("migrate", verbosity=0, interactive=False)
        dataset = _reused(args, np_rng) if args.reuse else _load(args, vocab, np_rng)
        kb, vectors = dataset.pop("_kb"), dataset.pop("_vectors")
        print(f"loaded {dataset}", flush=True)
        queries = _queries(args, vocab, np_rng, kb, vectors)
        print(f"queries {queries}", flush=True)
        ingestion = _ingestion(vocab, kb)
        print(f"ingestion {ingestion}", flush=True)
        report = {
            "generated_at": dt.datetime.now(dt.UTC).isoformat(),
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_at_start": load_at_start,
                "python": platform.python_version(),
            },
            "dataset": dataset,
            "queries_ms": queries,
            "ingestion": ingestion,
            "target": {
                "hybrid_p95_ms": TARGET_HYBRID_P95_MS,
                "met": queries["hybrid"]["p95"] <= TARGET_HYBRID_P95_MS,
            },
        }
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
        return report
    finally:
        connection.close()
        if not (args.keep or args.reuse):
            _drop_database(admin, args.database)
