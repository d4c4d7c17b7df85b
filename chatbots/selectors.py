"""Read side of chatbot configuration, with the Redis-backed config and template caches.

A chatbot's resolved configuration (flows, endpoints, knowledge bases, rules) is cached for
CHATBOT_CONFIG_CACHE_SECONDS and prompt templates for PROMPT_TEMPLATE_CACHE_SECONDS; saves in
the admin invalidate at once (chatbots.signals). Secrets stay encrypted inside the cache.
"""

from __future__ import annotations

import json
from typing import Any, cast

from django.conf import settings

from chatbots.config_types import (
    ChatbotAccess,
    ChatbotBase,
    ChatbotConfig,
    FlowConfig,
    KnowledgeBaseConfig,
    PromptTemplateConfig,
)
from chatbots.models import Chatbot, Flow, KnowledgeBase, PromptTemplate
from chatbots.secrets import SecretValue
from config.redis import get_redis

CONFIG_KEY = "cb:config:{}"
TEMPLATE_KEY = "cb:template:{}:{}"  # shop id, template name (names are per shop)
TEMPLATE_KEYS = "cb:template:*"
ACCESS_KEY = "cb:access:{}"  # chatbot pk: what a customer's token may still do (access_get)
STATS_KEY = "cb:stats:cache"


def _count(kind: str, outcome: str) -> None:
    get_redis().hincrby(STATS_KEY, f"{kind}_{outcome}", 1)


def _build_config(chatbot: Chatbot) -> ChatbotConfig:
    """The bot's cached configuration: its own columns, its enabled flows (each with what it
    calls) and its text rules."""
    flows = [
        _flow_config(flow)
        for flow in chatbot.flows.filter(enabled=True).select_related(
            "endpoint",
            "knowledge_base__embedding_endpoint",
            "template_assignment__template",
        )
    ]
    return {
        **_base_config(chatbot),
        "flows": flows,
        "text_rules": [
            {"kind": rule.kind, "find": rule.find, "replace": rule.replace}
            for rule in chatbot.text_rules.all()
        ],
    }


def _flow_config(flow: Flow) -> FlowConfig:
    """One flow with its endpoint, knowledge base and template; the model defaults to the
    endpoint's, the namespace to the knowledge base's."""
    kb = flow.knowledge_base
    assignment = getattr(flow, "template_assignment", None)
    return {
        "id": flow.id,
        "name": flow.name,
        "role": flow.role,
        "is_main": flow.is_main,
        "routing_key": flow.routing_key,
        "applies_to": flow.applies_to,
        "target": flow.target or flow.endpoint.default_model,
        "top_k": flow.top_k,
        "namespace": flow.namespace or (kb.namespace if kb else ""),
        "endpoint": {
            "id": flow.endpoint.id,
            "name": flow.endpoint.name,
            "kind": flow.endpoint.kind,
            "base_url": flow.endpoint.base_url,
            "api_key_stored": cast(SecretValue, flow.endpoint.api_key).stored,
            "connect_timeout": flow.endpoint.connect_timeout,
            "read_timeout": flow.endpoint.read_timeout,
            "total_timeout": flow.endpoint.total_timeout,
            "pool_size": flow.endpoint.pool_size,
        },
        "knowledge_base": _knowledge_base_config(kb) if kb else None,
        "template": (
            {"name": assignment.template.name, "overrides": assignment.overrides}
            if assignment
            else None
        ),
    }


def _knowledge_base_config(kb: KnowledgeBase) -> KnowledgeBaseConfig:
    """A flow's knowledge base, its key and its embedding endpoint's still encrypted
    (knowledge.retrieval decrypts them, like the endpoints' keys)."""
    embedding = kb.embedding_endpoint
    return {
        "id": kb.id,
        "name": kb.name,
        "kind": kb.kind,
        "index_name": kb.index_name,
        "host": kb.host,
        "namespace": kb.namespace,
        "api_key_stored": cast(SecretValue, kb.api_key).stored,
        "embedding": (
            {
                "endpoint_id": embedding.id,
                "base_url": embedding.base_url,
                "api_key_stored": cast(SecretValue, embedding.api_key).stored,
                "model": kb.embedding_model,
                "timeout": embedding.read_timeout,
            }
            if embedding
            else None
        ),
    }


def _base_config(chatbot: Chatbot) -> ChatbotBase:
    """The bot's own columns (no flows, rules or tools): its identity, widget and support."""
    return {
        "id": chatbot.id,
        "shop_id": chatbot.shop_id,
        "uuid": str(chatbot.uuid),
        "public_id": chatbot.public_id,
        "name": chatbot.name,
        "language": chatbot.language,
        "search_config": chatbot.search_config,
        "active": chatbot.active,
        "greeting": chatbot.greeting,
        "image_upload_enabled": chatbot.image_upload_enabled,
        "widget_key": chatbot.widget_key,
        "allowed_origins": list(chatbot.allowed_origins),
        "timezone": chatbot.timezone,
        "opening_hours": chatbot.opening_hours,
        "contact_email": chatbot.contact_email,
        "contact_phone": chatbot.contact_phone,
        "routing_mode": chatbot.routing_mode,
        "message_rate_limit": chatbot.message_rate_limit,
        "topics": list(chatbot.topics),
        "publishing": chatbot.publishing,
    }


def chatbot_config_get(*, public_id: str) -> ChatbotConfig | None:
    """The resolved configuration of a chatbot, or None if no such chatbot exists."""
    client = get_redis()
    key = CONFIG_KEY.format(public_id)
    raw = client.get(key)
    cached = json.loads(raw) if raw is not None else None
    # An entry cached before shops has no shop_id (templates are found per shop): a miss.
    if cached is not None and "shop_id" in cached:
        _count("config", "hits")
        return cached
    _count("config", "misses")
    chatbot = Chatbot.objects.filter(public_id=public_id).select_related("live_version").first()
    if chatbot is None:
        return None
    config = _customer_config(chatbot)
    client.set(key, json.dumps(config), ex=settings.CHATBOT_CONFIG_CACHE_SECONDS)
    return config


def _customer_config(chatbot: Chatbot) -> ChatbotConfig:
    """What customers get: the current rows, or for a reviewed bot its live version's snapshot
    over the bot's unversioned columns (chatbots.versions)."""
    if chatbot.publishing == Chatbot.Publishing.REVIEWED and chatbot.live_version is not None:
        from chatbots.versions import version_config

        return version_config(chatbot=chatbot, version=chatbot.live_version)
    return _build_config(chatbot)


def chatbot_draft_config_get(*, chatbot: Chatbot) -> ChatbotConfig:
    """The configuration as saved now (a reviewed bot's draft), never cached: for previews."""
    return _build_config(chatbot)


def prompt_template_get(*, shop_id: int, name: str) -> PromptTemplateConfig | None:
    """A shop's prompt template's text and default variables, cached."""
    client = get_redis()
    key = TEMPLATE_KEY.format(shop_id, name)
    raw = client.get(key)
    if raw is not None:
        _count("template", "hits")
        return json.loads(raw)
    _count("template", "misses")
    template = PromptTemplate.objects.filter(shop_id=shop_id, name=name).first()
    if template is None:
        return None
    value: PromptTemplateConfig = {
        "name": template.name,
        "text": template.text,
        "variables": template.variables,
    }
    client.set(key, json.dumps(value), ex=settings.PROMPT_TEMPLATE_CACHE_SECONDS)
    return value


def chatbot_turn_config_get(*, public_id: str, preview: str | None = None) -> ChatbotConfig | None:
    """Everything a turn reads about its chatbot, in one call: the resolved configuration with
    each flow's prompt template filled in (`flow["template"]` gains `text` and `defaults`; it is
    None when the template is gone). A published version carries its templates' text already.

    `preview` (a preview conversation's Conversation.preview) picks what the turn runs against
    instead of what customers get: "draft" (the rows as saved now) or a version number; these
    reads are not cached (previews are rare and must see the latest save).

    Synchronous on purpose: the worker runs it in its database threads (`WorkerRuntime.run_db`)
    before the turn starts, so nothing on the event loop ever reads configuration. A cache miss
    reads PostgreSQL, and Django refuses ORM calls on an event loop (SynchronousOnlyOperation).
    """
    config = (
        _preview_config(public_id=public_id, preview=preview)
        if preview
        else chatbot_config_get(public_id=public_id)
    )
    if config is None:
        return None
    templates: dict[str, PromptTemplateConfig | None] = {}
    for flow in config["flows"]:
        assignment = flow.get("template")
        if not assignment or "text" in assignment:
            continue
        name = assignment["name"]
        if name not in templates:
            templates[name] = prompt_template_get(shop_id=config["shop_id"], name=name)
        template = templates[name]
        flow["template"] = (
            {**assignment, "text": template["text"], "defaults": template["variables"]}
            if template
            else None
        )
    return config


def _preview_config(*, public_id: str, preview: str) -> ChatbotConfig | None:
    from chatbots.versions import version_config

    chatbot = Chatbot.objects.filter(public_id=public_id).first()
    if chatbot is None:
        return None
    if preview == "draft":
        return _build_config(chatbot)
    version = chatbot.versions.filter(number=int(preview)).first()
    if version is None:  # a preview of a version that is gone: the draft, never live traffic
        return _build_config(chatbot)
    return version_config(chatbot=chatbot, version=version)


def chatbot_access_get(*, chatbot_id: int) -> ChatbotAccess | None:
    """Whether a chatbot answers and which sites may use it ({"active", "allowed_origins"}, the
    model's own columns, as conversations.access checks them), cached like its configuration;
    None if no such chatbot. Lets a customer's poll be authorised without a query
    (conversations/polling.py); chatbots.signals drops it on every save."""
    client = get_redis()
    key = ACCESS_KEY.format(int(chatbot_id))
    raw = client.get(key)
    if raw is not None:
        return json.loads(raw)
    row = Chatbot.objects.filter(pk=chatbot_id).values("active", "allowed_origins").first()
    if row is None:
        return None
    value: ChatbotAccess = {
        "active": bool(row["active"]),
        "allowed_origins": list(row["allowed_origins"]),
    }
    client.set(key, json.dumps(value), ex=settings.CHATBOT_CONFIG_CACHE_SECONDS)
    return value


def chatbot_access_invalidate(*chatbot_ids: int) -> None:
    if chatbot_ids:
        get_redis().delete(*(ACCESS_KEY.format(int(pk)) for pk in chatbot_ids))


def chatbot_config_invalidate(*public_ids: str) -> None:
    if public_ids:
        get_redis().delete(*(CONFIG_KEY.format(p) for p in public_ids))


def prompt_template_invalidate(*names: str, shop_id: int) -> None:
    if names:
        get_redis().delete(*(TEMPLATE_KEY.format(shop_id, n) for n in names))


def config_cache_clear() -> int:
    """Drop every cached configuration and template; returns how many entries went."""
    client = get_redis()
    keys = [
        *client.scan_iter("cb:config:*", count=500),
        *client.scan_iter(TEMPLATE_KEYS, count=500),
        *client.scan_iter(ACCESS_KEY.format("*"), count=500),
    ]
    if keys:
        client.delete(*keys)
    return len(keys)


def cache_stats() -> dict[str, Any]:
    client = get_redis()
    # The shared client answers bytes (config.redis: no decode_responses).
    stats = cast(dict[bytes, bytes], client.hgetall(STATS_KEY))
    counters = {k.decode(): int(v) for k, v in stats.items()}
    result = {}
    for kind, pattern in (("config", "cb:config:*"), ("template", "cb:template:*")):
        hits = counters.get(f"{kind}_hits", 0)
        misses = counters.get(f"{kind}_misses", 0)
        total = hits + misses
        result[kind] = {
            "hits": hits,
            "misses": misses,
            "hit_rate": round(hits / total, 4) if total else None,
            "size": sum(1 for _ in client.scan_iter(pattern, count=500)),
            "ttl_seconds": (
                settings.CHATBOT_CONFIG_CACHE_SECONDS
                if kind == "config"
                else settings.PROMPT_TEMPLATE_CACHE_SECONDS
            ),
        }
    return result


def cache_stats_reset() -> None:
    get_redis().delete(STATS_KEY)


ORIGINS_KEY = "cb:origins"


def all_allowed_origins() -> set[str]:
    """Every active chatbot's allowed origins (cached; invalidated when a chatbot is saved)."""
    client = get_redis()
    raw = client.get(ORIGINS_KEY)
    if raw is not None:
        return set(json.loads(raw))
    origins: set[str] = set()
    for values in Chatbot.objects.filter(active=True).values_list("allowed_origins", flat=True):
        origins.update(values)
    client.set(ORIGINS_KEY, json.dumps(sorted(origins)), ex=settings.CHATBOT_CONFIG_CACHE_SECONDS)
    return origins
