"""Retrieval quality on the demo shop's evaluation set (Danish and English), measured the way the
bot retrieves: full-text, vector and hybrid. The vectors come from the fake OpenAI server's
deterministic embeddings (tests/fakes/embeddings.py), so the figures are exact and repeatable;
they measure our ranking and fusion, not a real embedding model (docs/knowledge.md)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from knowledge.evaluation import Embedding, evaluation_run
from knowledge.models import KnowledgeChunk
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def openai_server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def report(openai_server):
    embedding = Embedding(base_url=f"{openai_server.url}/v1", model="text-embedding-3-small")
    return evaluation_run(embedding=embedding, ks=(1, 3, 5))


@pytest.mark.usefixtures("pgvector")
def test_the_measured_figures_of_each_method(report):
    print(json.dumps(report, indent=2, ensure_ascii=False))  # the figures docs/knowledge.md cites
    assert report["questions"] == 28
    assert report["methods"] == MEASURED


@pytest.mark.usefixtures("pgvector")
def test_hybrid_beats_full_text_and_vector_alone(report):
    methods = report["methods"]
    for measure in ("hit@1", "hit@3", "mrr"):
        assert methods["hybrid"][measure] >= methods["fulltext"][measure], measure
        assert methods["hybrid"][measure] >= methods["vector"][measure], measure
    assert methods["hybrid"]["mrr"] > max(methods["fulltext"]["mrr"], methods["vector"]["mrr"])


def test_the_evaluation_leaves_nothing_behind(report):
    assert not KnowledgeChunk.objects.exists()


def test_without_an_embedding_model_only_full_text_is_measured():
    report = evaluation_run(embedding=None, ks=(1, 3))
    assert set(report["methods"]) == {"fulltext"}


@pytest.mark.usefixtures("pgvector")
def test_the_command_prints_each_method_s_figures(openai_server, capsys):
    call_command(
        "knowledge_evaluate",
        "--embedding-url",
        f"{openai_server.url}/v1",
        "--embedding-model",
        "text-embedding-3-small",
    )
    out = capsys.readouterr().out
    assert "28 questions" in out
    for method in ("fulltext", "vector", "hybrid"):
        assert f"  {method}" in out


# Measured on 2026-12-05 (deterministic: same figures on every machine).
MEASURED = {
    "fulltext": {"hit@1": 0.643, "hit@3": 0.714, "hit@5": 0.75, "mrr": 0.688},
    "vector": {"hit@1": 0.393, "hit@3": 0.393, "hit@5": 0.393, "mrr": 0.393},
    "hybrid": {"hit@1": 0.714, "hit@3": 0.714, "hit@5": 0.75, "mrr": 0.723},
}
