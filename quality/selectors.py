"""Reads of the quality app: the dashboard's feedback section."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils.text import Truncator

from chatbots.models import KnowledgeBase
from quality.checks import normalise
from quality.models import AnswerFeedback

WORST_LIMIT = 10
# The newest thumbs-down votes grouped into "answers most often marked down": enough for any
# realistic range, bounded so a flood of votes cannot make the dashboard slow.
WORST_SCAN = 2000


def _rows(votes, key: str, empty_label: str) -> list[dict[str, Any]]:
    rows = (
        votes.values(label=F(key))
        .annotate(total=Count("pk"), up=Count("pk", filter=Q(value=AnswerFeedback.Value.UP)))
        .order_by("-total", "label")
    )
    return [
        {
            "label": row["label"] or empty_label,
            "total": row["total"],
            "up": row["up"],
            "down": row["total"] - row["up"],
            "up_rate": round(row["up"] / row["total"], 3),
        }
        for row in rows
    ]


def feedback_figures(
    *,
    date_from: dt.date,
    date_to: dt.date,
    chatbot_id: int | None = None,
    chatbot_ids: list[int] | None = None,
) -> dict[str, Any]:
    """Customers' votes given from `date_from` to `date_to` (UTC days, inclusive) on answers of
    `chatbot_id` (or of `chatbot_ids`, the viewer's shops' bots, when not None): the thumbs-up
    rate overall, per flow and per topic (the answer's turn analysis), and the answers most
    often marked down with links to make a check or a knowledge entry of them. Staff preview
    conversations are left out."""
    since = dt.datetime.combine(date_from, dt.time.min, tzinfo=dt.UTC)
    until = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    votes = AnswerFeedback.objects.filter(created_at__gte=since, created_at__lt=until).filter(
        Q(conversation__preview__isnull=True) | Q(conversation__preview="")
    )
    if chatbot_id is not None:
        votes = votes.filter(chatbot_id=chatbot_id)
    if chatbot_ids is not None:
        votes = votes.filter(chatbot_id__in=chatbot_ids)
    totals = votes.aggregate(
        total=Count("pk"), up=Count("pk", filter=Q(value=AnswerFeedback.Value.UP))
    )
    total, up = totals["total"], totals["up"]
    per_flow = _rows(votes, "message__flow", "(no flow)")
    per_topic = _rows(votes, "message__turn_answered__analysis__topic", "(not analysed)")
    return {
        "total": total,
        "up": up,
        "down": total - up,
        "up_rate": round(up / total, 3) if total else None,
        "per_flow": per_flow,
        "per_topic": per_topic,
        "tables": [("Flow", per_flow), ("Topic", per_topic)],
        "worst": worst_answers(votes),
    }


def worst_answers(votes, *, limit: int = WORST_LIMIT) -> list[dict[str, Any]]:
    """Answers marked down, the same text of the same bot counted together (case and spacing
    ignored), most downs first; each with its latest question, comments and links."""
    downs = (
        votes.filter(value=AnswerFeedback.Value.DOWN)
        .order_by("-created_at")
        .values(
            "message_id",
            "chatbot_id",
            "comment",
            answer=F("message__content"),
            flow=F("message__flow"),
            question=F("message__turn_answered__user_message__content"),
        )[:WORST_SCAN]
    )
    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for row in downs:
        key = (row["chatbot_id"], normalise(row["answer"]))
        group = groups.get(key)
        if group is None:  # newest first, so the first seen is the latest example
            group = groups[key] = {**row, "count": 0, "comments": []}
        group["count"] += 1
        if row["comment"] and len(group["comments"]) < 3:
            group["comments"].append(row["comment"])
    worst = sorted(groups.values(), key=lambda g: -g["count"])[:limit]
    first_kb = {}
    for kb in KnowledgeBase.objects.filter(
        chatbot_id__in={g["chatbot_id"] for g in worst}
    ).order_by("-pk"):
        first_kb[kb.chatbot_id] = kb.pk  # descending, so the oldest base wins
    for group in worst:
        question = group["question"] or ""
        group["answer_excerpt"] = Truncator(group["answer"]).chars(240)
        group["question_excerpt"] = Truncator(question).chars(200)
        group["add_check_url"] = (
            reverse("admin:quality_answercheck_add")
            + "?"
            + urlencode({"from_message": group["message_id"], "source": "feedback"})
        )
        knowledge: dict[str, str | int] = {"title": Truncator(question).chars(300)}
        if group["chatbot_id"] in first_kb:
            knowledge["knowledge_base"] = first_kb[group["chatbot_id"]]
        group["add_knowledge_url"] = (
            reverse("admin:chatbots_knowledgeentry_add") + "?" + urlencode(knowledge)
        )
    return worst
