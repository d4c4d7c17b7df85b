"""Use cases that change chatbot configuration or derive values from it."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from typing import Any

from django.contrib.postgres.search import SearchVector
from django.db.models import F, Func, TextField, Value

from aiclients.probe import flowise_ping, openai_models_list, probe_flowise, probe_pinecone
from chatbots.models import TEMPLATE_VARIABLE, WEEKDAYS, Chatbot, KnowledgeBase, KnowledgeEntry
from chatbots.selectors import prompt_template_get
from config.redaction import MASK, redact


def knowledge_entries_reindex(
    *, entry_ids: list[int] | None = None, chatbot: Chatbot | None = None
) -> int:
    """Recompute the full-text vectors in the chatbot's language; titles weigh more than text."""
    queryset = KnowledgeEntry.objects.select_related("knowledge_base__chatbot")
    if entry_ids is not None:
        queryset = queryset.filter(pk__in=entry_ids)
    if chatbot is not None:
        queryset = queryset.filter(knowledge_base__chatbot=chatbot)
    updated = 0
    by_config: dict[str, list[int]] = {}
    for entry in queryset.only("id", "knowledge_base__chatbot__language"):
        by_config.setdefault(entry.knowledge_base.chatbot.search_config, []).append(entry.id)
    for config, ids in by_config.items():
        updated += KnowledgeEntry.objects.filter(pk__in=ids).update(
            search_vector=SearchVector("title", weight="A", config=Value(config))
            + SearchVector(
                Func(F("tags"), Value(" "), function="array_to_string", output_field=TextField()),
                weight="A",
                config=Value(config),
            )
            + SearchVector("text", weight="B", config=Value(config))
        )
    return updated


def prompt_render(*, text: str, variables: dict[str, Any]) -> str:
    """Fill {{name}} placeholders; unknown names are left visible so a mistake can be seen."""

    def substitute(match) -> str:
        name = match.group(1)
        if name in variables and variables[name] is not None:
            return str(variables[name])
        return match.group(0)

    return TEMPLATE_VARIABLE.sub(substitute, text)


def prompt_values(
    *,
    defaults: dict[str, Any],
    bot: dict[str, Any],
    overrides: dict[str, Any],
    turn: dict[str, Any],
) -> dict[str, Any]:
    """The values a flow's template is rendered with, weakest first: the template's defaults,
    the bot's built-ins (shop_name, chatbot_id, language, …), the flow's overrides — staff set
    them to replace a built-in — and last what the message itself carries (question, context,
    …; models.TURN_VARIABLES), which no override may replace."""
    return {**defaults, **bot, **overrides, **turn}


def prompt_bot_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The bot's built-in template values every flow's prompt may use."""
    return {
        "shop_name": config.get("name", ""),
        "chatbot_id": config.get("public_id", ""),
        "language": config.get("language", ""),
    }


def flow_prompt_render(
    *,
    config: Mapping[str, Any],
    flow: Mapping[str, Any],
    turn: dict[str, Any],
    bot: dict[str, Any] | None = None,
) -> str | None:
    """The prompt template assigned to a side flow (analysis, image description), looked up by
    name in the bot's shop and rendered with the bot's built-ins (plus `bot`), the assignment's
    overrides and the call's own values; None when the flow has no template or it is gone."""
    assignment = flow.get("template")
    if not assignment:
        return None
    template = prompt_template_get(shop_id=config["shop_id"], name=assignment["name"])
    if not template:
        return None
    values = prompt_values(
        defaults=template["variables"],
        bot={**prompt_bot_values(config), **(bot or {})},
        overrides=assignment.get("overrides") or {},
        turn=turn,
    )
    return prompt_render(text=template["text"], variables=values)


def support_open_now(*, opening_hours: dict, timezone: str, now: dt.datetime | None = None) -> bool:
    """Whether people are answering chats right now, in the shop's own time zone."""
    if not opening_hours:
        return False
    now = now or dt.datetime.now(dt.UTC)
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    spans = opening_hours.get(WEEKDAYS[local.weekday()], [])
    hhmm = local.strftime("%H:%M")
    return any(start <= hhmm < end for start, end in spans)


def chatbot_widget_key_regenerate(*, chatbot: Chatbot) -> str:
    """Give the chatbot a new public widget key; pages still using the old one stop working."""
    from chatbots.models import new_widget_key

    chatbot.widget_key = new_widget_key()
    chatbot.save(update_fields=["widget_key", "updated_at"])
    return chatbot.widget_key


UNREADABLE_KEY = (
    "The stored key cannot be decrypted with the current FIELD_ENCRYPTION_KEYS (was a key "
    "removed?). Enter the key again."
)


def ai_endpoint_connection_test(*, endpoint) -> tuple[bool, str]:
    """One real request to the AI service with the stored key; a message staff can act on."""
    from chatbots.models import AIEndpoint, Flow
    from chatbots.secrets import SecretDecryptionError

    if endpoint.kind == AIEndpoint.Kind.BUILTIN:
        return _builtin_endpoint_check(endpoint=endpoint)
    try:
        api_key = endpoint.api_key.reveal()
    except SecretDecryptionError:
        return False, UNREADABLE_KEY
    if endpoint.kind == AIEndpoint.Kind.OPENAI:
        ok, message = _openai_endpoint_check(endpoint=endpoint, api_key=api_key)
        return ok, _without_secret(message, api_key)
    # The first flow that uses the endpoint tells us which chatflow to ask.
    flow = Flow.objects.filter(endpoint=endpoint).order_by("-is_main", "chatbot_id", "id").first()
    if flow is None:
        ok, message = flowise_ping(endpoint.base_url)
    else:
        ok, message = probe_flowise(endpoint.base_url, api_key, flow.target)
        message = f"{message} (tested with flow {flow})"
    return ok, _without_secret(message, api_key)


# Enough for any real server's list (OpenAI's is ~100); a hostile one cannot fill the row.
KNOWN_MODELS_MAX = 500
MODELS_IN_MESSAGE = 10


def _openai_endpoint_check(*, endpoint, api_key: str) -> tuple[bool, str]:
    """List the server's models, remember them for the endpoint's "Default model" choices, and
    say which model each flow on this endpoint will use and whether the server offers it."""
    from django.utils import timezone

    from chatbots.models import AIEndpoint, Flow

    offered, failure = openai_models_list(endpoint.base_url, api_key)
    if offered is None:
        return False, failure
    offered = list(dict.fromkeys(m[:200] for m in offered))[:KNOWN_MODELS_MAX]
    endpoint.known_models, endpoint.known_models_at = offered, timezone.now()
    # A plain UPDATE: a fetched list is not a configuration change (no revision, no
    # updated_at, no cache drop).
    AIEndpoint.objects.filter(pk=endpoint.pk).update(
        known_models=endpoint.known_models, known_models_at=endpoint.known_models_at
    )
    listing = _model_listing(offered)
    default = endpoint.default_model
    # Flows naming a model of their own; the others use the default.
    own: dict[str, list[str]] = {}
    for flow in Flow.objects.filter(endpoint=endpoint).exclude(target="").select_related("chatbot"):
        own.setdefault(flow.target, []).append(str(flow))
    parts, ok = [], True
    if default:
        if not offered or default in offered:
            parts.append(
                f"Connected. Flows without a model of their own use “{default}”, "
                + ("which the server lists." if offered else "(the server lists no models).")
            )
        else:
            ok = False
            parts.append(
                f"Connected, but the default model “{default}” is not among the server's "
                "models for this key: choose one from the list in “Default model”."
            )
    elif own:
        parts.append("Connected. No default model is set; each flow names its own.")
    else:
        parts.append(
            "Connected. No model is chosen yet: pick the default model below from the "
            "server's list."
        )
    for model, flows in sorted(own.items()):
        names = ", ".join(flows[:5]) + (" and more" if len(flows) > 5 else "")
        if not offered or model in offered:
            parts.append(
                f"Flow {names} uses “{model}”" + (", which the server lists." if offered else ".")
            )
        else:
            ok = False
            parts.append(f"Flow {names} uses “{model}”, which the server does not list.")
    parts.append(listing)
    return ok, " ".join(parts)


def _model_listing(offered: list[str]) -> str:
    if not offered:
        return "The server lists no models."
    shown = ", ".join(offered[:MODELS_IN_MESSAGE])
    more = (
        f" and {len(offered) - MODELS_IN_MESSAGE} more" if len(offered) > MODELS_IN_MESSAGE else ""
    )
    return (
        f"The server offers {len(offered)} model{'s' if len(offered) != 1 else ''}: {shown}{more}."
    )


def _without_secret(message: str, secret: str) -> str:
    # The probes never echo keys; this is the second lock on that door.
    message = redact(message)
    return message.replace(secret, MASK) if secret else message


def _builtin_endpoint_check(*, endpoint) -> tuple[bool, str]:
    from django.db.models import Count, Q

    chatbots = (
        Chatbot.objects.filter(flows__endpoint=endpoint)
        .distinct()
        .annotate(
            entry_count=Count(
                "knowledge_bases__entries",
                filter=Q(knowledge_bases__kind=KnowledgeBase.Kind.BUILTIN),
                distinct=True,
            ),
            # Uploaded documents answer too (knowledge app).
            chunk_count=Count(
                "knowledge_bases__chunks",
                filter=Q(knowledge_bases__kind=KnowledgeBase.Kind.BUILTIN),
                distinct=True,
            ),
        )
        .order_by("public_id")
    )
    if not chatbots:
        return True, "Builtin needs no connection. No chatbot uses this endpoint yet."
    empty = [c.public_id for c in chatbots if not (c.entry_count or c.chunk_count)]
    counts = ", ".join(
        f"{c.public_id}: {c.entry_count} knowledge entries, {c.chunk_count} document chunks"
        for c in chatbots
    )
    if empty:
        return False, (
            f"Builtin needs no connection, but {', '.join(empty)} has no knowledge entries or "
            f"documents to answer from ({counts}). Add entries or upload a document to a "
            "builtin knowledge base."
        )
    return True, f"Builtin needs no connection; it answers from the knowledge entries ({counts})."


def knowledge_base_connection_test(*, knowledge_base) -> tuple[bool, str]:
    """Describe the Pinecone index with the stored key; builtin bases report their entries."""
    from chatbots.secrets import SecretDecryptionError

    if knowledge_base.kind == KnowledgeBase.Kind.BUILTIN:
        count, chunks = knowledge_base.entries.count(), knowledge_base.chunks.count()
        if not (count or chunks):
            return False, (
                "Builtin knowledge base: no connection needed, but it has no entries or "
                "documents yet."
            )
        return True, (
            f"Builtin knowledge base: no connection needed; {count} entries and {chunks} "
            "document chunks to search."
        )
    try:
        api_key = knowledge_base.api_key.reveal()
    except SecretDecryptionError:
        return False, UNREADABLE_KEY
    ok, message = probe_pinecone(
        api_key, knowledge_base.index_name, control_url=knowledge_base.control_url
    )
    return ok, _without_secret(message, api_key)


def _revision_shop_ids(versions) -> set[int]:
    """The shops whose rows a revision holds (rows name their shop, their chatbot, or their
    knowledge base)."""
    shops: set[int] = set()
    chatbots: set[int] = set()
    knowledge_bases: set[int] = set()
    for v in versions:
        fields = v.field_dict
        if "shop_id" in fields:
            shops.add(fields["shop_id"])
        elif "chatbot_id" in fields:
            chatbots.add(fields["chatbot_id"])
        elif "knowledge_base_id" in fields:
            knowledge_bases.add(fields["knowledge_base_id"])
    if knowledge_bases:
        chatbots |= set(
            KnowledgeBase.objects.filter(pk__in=knowledge_bases).values_list(
                "chatbot_id", flat=True
            )
        )
    if chatbots:
        shops |= set(Chatbot.objects.filter(pk__in=chatbots).values_list("shop_id", flat=True))
    shops.discard(None)
    return shops


def configuration_revert(*, version, user=None, shop_id: int | None = None) -> None:
    """Restore everything saved together with `version` (a chatbot with its flows, rules and
    knowledge bases, or an endpoint): rows deleted since come back, rows added since go.

    With `shop_id` (a shop member reverting, not an operator) a revision that also holds
    another shop's rows is refused: one save by an operator's bulk action can span shops, and a
    revert restores (and deletes) every row it holds.

    Raises reversion.errors.RevertError with a message for staff when that is impossible.
    """
    from django.db import IntegrityError, connection, transaction
    from django.db.models import ProtectedError
    from django.utils import formats, timezone
    from reversion import create_revision, set_comment, set_user
    from reversion.errors import RevertError

    from chatbots import selectors

    revision = version.revision
    versions = list(revision.version_set.all())
    if shop_id is not None and _revision_shop_ids(versions) - {shop_id}:
        raise RevertError(
            "This version was saved together with another shop's configuration (a bulk action "
            "by an operator); it cannot be reverted from here. Ask an operator."
        )
    _revert_dependencies_check(versions)
    public_ids = {v.field_dict["public_id"] for v in versions if v._model is Chatbot}
    chatbot_ids = [int(v.object_id) for v in versions if v._model is Chatbot]
    public_ids |= set(
        Chatbot.objects.filter(pk__in=chatbot_ids).values_list("public_id", flat=True)
    )
    # Django's template_localtime, which django-stubs does not declare.
    local = timezone.template_localtime(revision.date_created)  # type: ignore[attr-defined]
    saved_on = formats.localize(local)
    try:
        with transaction.atomic(), create_revision():
            revision.revert(delete=True)
            # Foreign keys are checked at commit; check now so a failure is a message, not a 500.
            connection.check_constraints()
            set_user(user)
            set_comment(f"Reverted to the version saved on {saved_on}.")
    except ProtectedError as exc:
        names = ", ".join(sorted({str(o) for o in exc.protected_objects})[:5])
        raise RevertError(
            f"Could not revert: rows added since then are still in use ({names})."
        ) from exc
    except IntegrityError as exc:
        raise RevertError(
            "Could not revert: this version refers to something that no longer exists "
            "or clashes with the current configuration."
        ) from exc
    # post_save signals already dropped the cached configuration; rows removed by the revert's
    # bulk delete and a changed public_id are covered here.
    selectors.chatbot_config_invalidate(*public_ids)


def _revert_dependencies_check(versions) -> None:
    """Refuse, in words, a revert whose rows point at endpoints or templates deleted since."""
    from django.db import models
    from reversion.errors import RevertError

    in_revision = {(v._model, str(v.object_id)) for v in versions}
    for version in versions:
        model = version._model
        for field in model._meta.concrete_fields:
            if not isinstance(field, models.ForeignKey):
                continue
            value = version.field_dict.get(field.attname)
            target = field.related_model
            if value is None or (target, str(value)) in in_revision:
                continue
            if not target._default_manager.filter(pk=value).exists():
                raise RevertError(
                    f"Could not revert: in that version {model._meta.verbose_name} "
                    f"“{version.object_repr}” uses {target._meta.verbose_name} #{value}, "
                    "which has been deleted since."
                )
