"""Analytics hooks into finished turns: every finished turn is analysed on the analytics queue."""

from __future__ import annotations

import logging

from django.apps import AppConfig
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_turn_analysis(turn_id: str, *, force: bool = False) -> None:
    """Queue a turn's analysis once the current transaction commits (at once outside one)."""
    from analytics.tasks import analyse_turn

    # robust: a broker outage must never fail the code that finished the turn.
    transaction.on_commit(lambda: analyse_turn.delay(str(turn_id), force), robust=True)


def on_turn_finished(sender, turn_id: str, status: str, **kwargs) -> None:
    """Receiver of conversations.services.turn_finished (sent after commit, in the worker)."""
    try:
        enqueue_turn_analysis(turn_id)
    except Exception:
        logger.exception("turn %s: could not queue its analysis", turn_id)


def on_handoff_saved(sender, instance, created: bool, **kwargs) -> None:
    """A handoff changes the outcome of the conversation's latest analysed turn: redo it."""
    if not created:
        return
    try:
        from conversations.models import Turn

        conversation_id = getattr(instance, "conversation_id", None)
        if conversation_id is None:
            return
        turn_id = (
            Turn.objects.filter(conversation_id=conversation_id, status__in=Turn.FINISHED)
            .order_by("-finished_at")
            .values_list("pk", flat=True)
            .first()
        )
        if turn_id is not None:
            enqueue_turn_analysis(str(turn_id), force=True)
    except Exception:
        logger.exception("could not queue re-analysis after a handoff")


def on_chatbot_deleted(sender, instance, **kwargs) -> None:
    """Its indexed conversations went with it (cascade): refresh the index's counts."""
    from analytics.services.conversation_index import conversation_index_recount

    transaction.on_commit(conversation_index_recount, robust=True)


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        from django.apps import apps
        from django.db.models.signals import post_delete, post_save

        from chatbots.models import Chatbot
        from conversations.services import turn_finished

        turn_finished.connect(on_turn_finished, dispatch_uid="analytics.turn_finished")
        post_delete.connect(on_chatbot_deleted, sender=Chatbot, dispatch_uid="analytics.chatbot")
        # The helpdesk app is built separately; follow its handoffs only if it has them.
        try:
            handoff = apps.get_model("helpdesk", "Handoff")
        except LookupError:
            handoff = None
        if handoff is not None:
            post_save.connect(on_handoff_saved, sender=handoff, dispatch_uid="analytics.handoff")
