"""Use cases that change chatbot configuration or derive values from it."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django.contrib.postgres.search import SearchVector
from django.db.models import F, Func, TextField, Value

from chatbots.models import TEMPLATE_VARIABLE, WEEKDAYS, Chatbot, KnowledgeEntry


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


def support_open_now(*, opening_hours: dict, timezone: str, now: dt.datetime | None = None) -> bool:
    """Whether people are answering chats right now, in the shop's own time zone."""
    if not opening_hours:
        return False
    now = now or dt.datetime.now(dt.UTC)
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    spans = opening_hours.get(WEEKDAYS[local.weekday()], [])
    hhmm = local.strftime("%H:%M")
    return any(start <= hhmm < end for start, end in spans)
