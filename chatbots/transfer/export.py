"""The JSON export of whole chatbot configurations (the `chatbot-config` document)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

from django.db.models import QuerySet

from accounts.models import Shop
from chatbots.models import AIEndpoint, Chatbot, Flow, KnowledgeBase, PromptTemplate
from chatbots.secrets import SecretDecryptionError, SecretValue
from chatbots.transfer.common import TransferError

DOCUMENT_FORMAT = "chatbot-config"
DOCUMENT_VERSION = 1
CHATBOT_FIELDS = (
    "public_id",
    "name",
    "language",
    "active",
    "greeting",
    "image_upload_enabled",
    "widget_key",
    "allowed_origins",
    "timezone",
    "opening_hours",
    "contact_email",
    "contact_phone",
    "routing_mode",
    "message_rate_limit",
    "topics",
)
ENDPOINT_FIELDS = (
    "name",
    "kind",
    "base_url",
    "connect_timeout",
    "read_timeout",
    "total_timeout",
    "pool_size",
    "default_model",
)
# Uploaded documents and their chunks are not part of the document (files; docs/knowledge.md).
KNOWLEDGE_BASE_FIELDS = (
    "name",
    "kind",
    "index_name",
    "host",
    "namespace",
    "control_url",
    "embedding_model",
    "chunk_size",
    "chunk_overlap",
)
ENTRY_FIELDS = ("title", "text", "tags")
FLOW_FIELDS = (
    "name",
    "role",
    "is_main",
    "routing_key",
    "applies_to",
    "target",
    "namespace",
    "top_k",
    "enabled",
)
TEMPLATE_FIELDS = ("name", "description", "text", "variables")
RULE_FIELDS = ("kind", "find", "replace", "position")


def _secret_out(value: SecretValue, *, include: bool, where: str) -> Any:
    if not include:
        return {"set": bool(value)}
    if not value:
        return ""
    try:
        return value.reveal()
    except SecretDecryptionError as exc:
        raise TransferError(
            f"{where}: the stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS "
            "(see docs/secrets.md)."
        ) from exc


@dataclass
class _Referenced:
    """The shop's endpoints and prompt templates the chatbots use, by name: the document lists
    each once, after the chatbots."""

    endpoints: dict[str, AIEndpoint] = field(default_factory=dict)
    templates: dict[str, PromptTemplate] = field(default_factory=dict)


def chatbots_export(
    *, shop: Shop | None = None, public_ids: list[str] | None = None, include_secrets: bool = False
) -> dict[str, Any]:
    """The configuration of the given chatbots (all of `shop`'s, or of every shop, if none
    given) as a JSON-ready document."""
    chatbots = _export_chatbots(shop=shop, public_ids=public_ids)
    used = _Referenced()
    documents = [_chatbot_document(chatbot, used, include_secrets) for chatbot in chatbots]
    endpoint_documents = [
        _endpoint_document(used.endpoints[name], include_secrets) for name in sorted(used.endpoints)
    ]
    return {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "chatbots": documents,
        "endpoints": endpoint_documents,
        "prompt_templates": [
            {name: getattr(used.templates[t], name) for name in TEMPLATE_FIELDS}
            for t in sorted(used.templates)
        ],
    }


def _export_chatbots(*, shop: Shop | None, public_ids: list[str] | None) -> QuerySet[Chatbot]:
    """The chatbots to export, with everything the document needs fetched in a few queries;
    refuses unknown ids and a choice that spans several shops."""
    chatbots = Chatbot.objects.order_by("public_id")
    if shop is not None:
        chatbots = chatbots.filter(shop=shop)
    if public_ids:
        chatbots = chatbots.filter(public_id__in=public_ids)
        missing = sorted(set(public_ids) - set(chatbots.values_list("public_id", flat=True)))
        if missing:
            raise TransferError(f"No chatbot with id {', '.join(missing)}.")
    # Endpoint and template names are unique only within a shop; one document holds one
    # shop's, or two shops' "Flowise production" would become one endpoint on import.
    shops = sorted(set(chatbots.values_list("shop__slug", flat=True)))
    if len(shops) > 1:
        raise TransferError(
            f"The chatbots chosen belong to several shops ({', '.join(shops[:5])}): export one "
            "shop at a time with --shop <slug>."
        )
    return chatbots.prefetch_related(
        "knowledge_bases__entries",
        "knowledge_bases__embedding_endpoint",
        "flows__endpoint",
        "flows__knowledge_base",
        "flows__template_assignment__template",
        "text_rules",
    )


def _chatbot_document(chatbot: Chatbot, used: _Referenced, include_secrets: bool) -> dict:
    document = {name: getattr(chatbot, name) for name in CHATBOT_FIELDS}
    document["knowledge_bases"] = [
        _knowledge_base_document(chatbot, kb, used, include_secrets)
        for kb in sorted(chatbot.knowledge_bases.all(), key=lambda kb: kb.name)
    ]
    document["flows"] = [
        _flow_document(flow, used) for flow in sorted(chatbot.flows.all(), key=lambda f: f.name)
    ]
    document["text_rules"] = [
        {name: getattr(rule, name) for name in RULE_FIELDS}
        for rule in sorted(chatbot.text_rules.all(), key=lambda r: (r.position, r.pk))
    ]
    return document


def _knowledge_base_document(
    chatbot: Chatbot, kb: KnowledgeBase, used: _Referenced, include_secrets: bool
) -> dict:
    item = {name: getattr(kb, name) for name in KNOWLEDGE_BASE_FIELDS}
    item["embedding_endpoint"] = kb.embedding_endpoint.name if kb.embedding_endpoint else None
    if kb.embedding_endpoint:
        used.endpoints[kb.embedding_endpoint.name] = kb.embedding_endpoint
    item["api_key"] = _secret_out(
        cast(SecretValue, kb.api_key),
        include=include_secrets,
        where=f"chatbot {chatbot.public_id}, knowledge base {kb.name}",
    )
    item["entries"] = sorted(
        ({"title": e.title, "text": e.text, "tags": list(e.tags)} for e in kb.entries.all()),
        key=lambda e: (e["title"], e["text"], e["tags"]),
    )
    return item


def _flow_document(flow: Flow, used: _Referenced) -> dict:
    item = {name: getattr(flow, name) for name in FLOW_FIELDS}
    item["endpoint"] = flow.endpoint.name
    item["knowledge_base"] = flow.knowledge_base.name if flow.knowledge_base else None
    assignment = getattr(flow, "template_assignment", None)
    item["template"] = (
        {"name": assignment.template.name, "overrides": assignment.overrides}
        if assignment
        else None
    )
    used.endpoints[flow.endpoint.name] = flow.endpoint
    if assignment:
        used.templates[assignment.template.name] = assignment.template
    return item


def _endpoint_document(endpoint: AIEndpoint, include_secrets: bool) -> dict:
    item = {field_name: getattr(endpoint, field_name) for field_name in ENDPOINT_FIELDS}
    item["api_key"] = _secret_out(
        cast(SecretValue, endpoint.api_key),
        include=include_secrets,
        where=f"endpoint {endpoint.name}",
    )
    return item
