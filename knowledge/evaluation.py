"""Retrieval quality on an evaluation set: hit rate at k and MRR for full-text, vector, hybrid.

The set (JSON, e.g. knowledge/evaluation_sets/demo_shop.json) holds documents and questions, each
question naming the chunk that answers it as "document title › heading". The documents are read
into a throw-away knowledge base by the real ingestion (in a transaction rolled back at the
end), and every question is asked through `builtin_rankings`, exactly as a turn would.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from accounts.models import Shop
from chatbots.models import AIEndpoint, Chatbot, KnowledgeBase
from knowledge.embeddings import embeddings_create
from knowledge.models import KnowledgeDocument
from knowledge.retrieval import FULLTEXT, HYBRID, VECTOR, builtin_rankings
from knowledge.services import document_process, document_submit

DEMO_SET = Path(__file__).with_name("evaluation_sets") / "demo_shop.json"
METHODS = (FULLTEXT, VECTOR, HYBRID)


@dataclass
class MethodScore:
    hits: dict[int, int] = field(default_factory=dict)  # k -> questions answered in the top k
    reciprocal_ranks: float = 0.0
    questions: int = 0

    def as_dict(self, ks: tuple[int, ...]) -> dict[str, float]:
        n = max(self.questions, 1)
        out = {f"hit@{k}": round(self.hits.get(k, 0) / n, 3) for k in ks}
        out["mrr"] = round(self.reciprocal_ranks / n, 3)
        return out


@dataclass
class Embedding:
    base_url: str
    model: str
    api_key: str = ""


def _load(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def evaluation_run(
    *, path: Path = DEMO_SET, embedding: Embedding | None, ks: tuple[int, ...] = (1, 3, 5)
) -> dict[str, Any]:
    """{"questions": n, "methods": {method: {"hit@k": …, "mrr": …}}, "by_language": {…},
    "misses": {method: [questions not in the top max(k)]}}. Nothing is left in the database."""
    data = _load(path)
    depth = max(ks)
    scores: dict[str, dict[str, MethodScore]] = {}
    misses: dict[str, list[str]] = {m: [] for m in METHODS}
    with transaction.atomic():
        kb = _knowledge_base(data, embedding)
        for item in data["questions"]:
            vector = None
            if embedding is not None:
                [vector] = embeddings_create(
                    base_url=embedding.base_url,
                    api_key=embedding.api_key,
                    model=embedding.model,
                    texts=[item["question"]],
                    timeout=30,
                )
            rankings = builtin_rankings(
                chatbot_id=kb.chatbot_id,
                search_config=kb.chatbot.search_config,
                question=item["question"],
                knowledge_base_id=kb.pk,
                vector=vector,
                model=embedding.model if embedding else "",
                limit=depth,
            )
            for method, matches in rankings.items():
                titles = [m["title"] for m in matches]
                rank = titles.index(item["answer"]) + 1 if item["answer"] in titles else None
                for group in ("all", item.get("language", "")):
                    score = scores.setdefault(group, {}).setdefault(method, MethodScore())
                    score.questions += 1
                    if rank is not None:
                        score.reciprocal_ranks += 1 / rank
                        for k in ks:
                            if rank <= k:
                                score.hits[k] = score.hits.get(k, 0) + 1
                if rank is None:
                    misses[method].append(item["question"])
        transaction.set_rollback(True)
    return {
        "set": data.get("name", str(path)),
        "questions": len(data["questions"]),
        "embedding_model": embedding.model if embedding else None,
        "methods": {m: s.as_dict(ks) for m, s in scores.get("all", {}).items()},
        "by_language": {
            lang: {m: s.as_dict(ks) for m, s in by_method.items()}
            for lang, by_method in sorted(scores.items())
            if lang != "all"
        },
        "misses": {m: q for m, q in misses.items() if q},
    }


def _knowledge_base(data: dict[str, Any], embedding: Embedding | None) -> KnowledgeBase:
    suffix = uuid.uuid4().hex[:8]
    shop = Shop.objects.create(name="Knowledge evaluation", slug=f"knowledge-eval-{suffix}")
    chatbot = Chatbot.objects.create(
        shop=shop,
        public_id=f"knowledge-eval-{suffix}",
        name="Knowledge evaluation",
        language=data.get("language", "en"),
    )
    endpoint = None
    if embedding is not None:
        endpoint = AIEndpoint.objects.create(
            shop=shop,
            name="Embeddings",
            kind=AIEndpoint.Kind.OPENAI,
            base_url=embedding.base_url,
            api_key=embedding.api_key,
        )
    kb = KnowledgeBase.objects.create(
        chatbot=chatbot,
        name="Evaluation",
        kind=KnowledgeBase.Kind.BUILTIN,
        chunk_size=data.get("chunk_size", 1000),
        chunk_overlap=data.get("chunk_overlap", 150),
        embedding_endpoint=endpoint,
        embedding_model=embedding.model if embedding else "",
    )
    for spec in data["documents"]:
        document = KnowledgeDocument.objects.create(
            knowledge_base=kb, title=spec["title"], text=spec["text"]
        )
        document_submit(document=document)  # its queued task never runs: the transaction rolls back
        outcome = document_process(document_id=str(document.pk), revision=document.revision)
        if outcome != "ready":
            document.refresh_from_db()
            raise RuntimeError(f"{spec['title']}: {document.error or outcome}")
    return kb
