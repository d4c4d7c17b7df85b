"""The turn runner's knowledge step: retrieved passages become the answer flow's context.

Registered as a context provider (conversations.apps) over the knowledge app's retriever, which
sits below the runner and knows nothing of turns. The passages reach an OpenAI-compatible flow
as a system message, a prompt template as {{context}} and {{sources}}, a Flowise flow as the
`context` and `sources` vars; the runner sends them as the answer's `source_documents` and
stores them with the answer (TurnContext.sources).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

from conversations.hooks import TurnContext
from knowledge.retrieval import context_render, knowledge_retrieve

logger = logging.getLogger(__name__)


async def knowledge_context_provider(ctx: TurnContext) -> None:
    started = time.monotonic()
    retrieval = await knowledge_retrieve(
        config=ctx.config, flow=ctx.flow, question=ctx.question, run_db=ctx.run_db
    )
    if retrieval.method is None:
        return
    context, sources, used = context_render(
        retrieval.passages, budget_tokens=settings.KNOWLEDGE_CONTEXT_TOKENS
    )
    ctx.timings["retrieval_ms"] = round((time.monotonic() - started) * 1000)
    record = {"method": retrieval.method, "passages": len(used)}
    if retrieval.error:
        record["error"] = retrieval.error
        logger.warning(
            "turn %s: knowledge retrieval (%s) failed: %s",
            ctx.turn_id,
            retrieval.method,
            retrieval.error,
        )
    ctx.metadata["knowledge"] = record
    if not used:
        return
    ctx.add_context(context)
    ctx.variables["sources"] = sources
    ctx.sources = [passage.document() for passage in used]
