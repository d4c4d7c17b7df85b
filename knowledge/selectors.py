"""Read-side checks of how a chatbot's flows reach their knowledge bases (shown in the admin)."""

from __future__ import annotations

from chatbots.models import AIEndpoint, Flow, KnowledgeBase


def flow_knowledge_warnings(*, chatbot_id: int) -> list[str]:
    """Sentences for staff about flows whose knowledge base will not reach their answers."""
    warnings = []
    flows = Flow.objects.filter(
        chatbot_id=chatbot_id, enabled=True, knowledge_base__isnull=False
    ).select_related("endpoint", "knowledge_base")
    for flow in flows.order_by("name"):
        kb, endpoint = flow.knowledge_base, flow.endpoint
        if flow.role != Flow.Role.ANSWER:
            warnings.append(
                f"Flow “{flow.name}” is a {flow.role} flow: only answer flows use a knowledge "
                f"base, so “{kb.name}” is not searched for it."
            )
        elif (
            kb.kind == KnowledgeBase.Kind.PINECONE
            and endpoint.kind == AIEndpoint.Kind.OPENAI
            and not kb.embedding_endpoint_id
        ):
            warnings.append(
                f"Flow “{flow.name}” (OpenAI-compatible) cannot search the Pinecone knowledge "
                f"base “{kb.name}”: give the knowledge base an embedding endpoint and model "
                "(the ones its index was built with), or its answers get no knowledge."
            )
    return warnings
