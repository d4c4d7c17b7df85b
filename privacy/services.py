"""Retention and erasure (issue #24 item 4; docs/privacy.md).

A shop's customer is found by the widget user id its site passed (`Conversation.user_id`) or by
an email address (a conversation under that id, a helpdesk contact form with it, a message the
customer typed containing it — and then every conversation under the user ids those used). Export gathers everything we hold about them as JSON; erasure
deletes it from every table, the Redis event logs and the media folder, and records an audit
event that names counts and a keyed fingerprint of the identifier, never the identifier.
Everything is scoped to one shop: another shop's customer with the same user id is untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import uuid
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import AuditEvent, Shop
from accounts.services import audit_record
from analytics.models import ContextChunk, ConversationAnalysis, ConversationSummary, TurnMetrics
from analytics.services.conversation_index import conversation_index_recount
from chatbots.models import Chatbot
from config.errors import ApiError, ErrorCode
from config.redis import get_redis
from conversations.models import AICall, Conversation, Message, Turn
from conversations.streaming import event_redis_all
from helpdesk.models import ConversationRating, Handoff
from images.models import ImageUpload
from monitoring.models import ErrorLog
from privacy.models import RetentionPolicy
from quality.models import AnswerFeedback

logger = logging.getLogger(__name__)

RETENTION_FIELDS = ("conversations_days", "ai_calls_days", "images_days", "analytics_days")
REDACT_FIELD = "redact_ai_calls"
# The most days a period may say (100 years): beyond is a typo, and a date that far back
# overflows.
MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class Customer:
    """Who a request is about: exactly one of a widget user id or an email address."""

    user_id: str = ""
    email: str = ""

    @classmethod
    def of(cls, *, user_id: Any = None, email: Any = None) -> Customer:
        user_id = user_id.strip() if isinstance(user_id, str) else ""
        email = email.strip() if isinstance(email, str) else ""
        if bool(user_id) == bool(email):
            raise ApiError(
                ErrorCode.VALIDATION_ERROR, "Name the customer by exactly one of user_id or email."
            )
        if len(user_id) > 200 or len(email) > 254 or "\x00" in user_id + email:
            raise ApiError(ErrorCode.VALIDATION_ERROR, "That identifier is not valid.")
        if email and ("@" not in email or any(c.isspace() for c in email)):
            raise ApiError(ErrorCode.VALIDATION_ERROR, "That email is not valid.")
        return cls(user_id=user_id, email=email)

    @property
    def kind(self) -> str:
        return "user_id" if self.user_id else "email"

    @property
    def value(self) -> str:
        return self.user_id or self.email

    def fingerprint(self) -> str:
        """A keyed hash for the audit log: proves later which identifier an erasure was about
        (to whoever holds the key and the identifier) without storing the identifier."""
        key = settings.SECRET_KEY.encode()
        text = f"{self.kind}:{self.value.lower() if self.email else self.value}"
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def _chatbot_filter(shop: Shop) -> Q:
    return Q(chatbot__shop_id=shop.pk)


@dataclass(frozen=True)
class CustomerRecords:
    """Where a customer is in one shop: their conversations and every widget user id they
    used (an email leads to the user ids of the conversations that name it)."""

    conversation_ids: list[uuid.UUID]
    user_ids: list[str]


def customer_records(*, shop: Shop, customer: Customer) -> CustomerRecords:
    """The shop's conversations of this customer, and the user ids they go by."""
    shop_conversations = Conversation.objects.filter(_chatbot_filter(shop))
    if customer.user_id:
        match = Q(user_id=customer.user_id)
        user_ids = [customer.user_id]
    else:
        email = customer.email
        match = (
            Q(user_id__iexact=email)
            | Q(handoffs__requester_email__iexact=email)
            | Q(messages__role=Message.Role.USER, messages__content__icontains=email)
        )
        named = shop_conversations.filter(match).values_list("user_id", flat=True).distinct()
        user_ids = sorted({user_id for user_id in named if user_id})
        match |= Q(user_id__in=user_ids)
    ids = list(shop_conversations.filter(match).values_list("pk", flat=True).distinct())
    return CustomerRecords(conversation_ids=ids, user_ids=user_ids)


def _ai_calls(shop: Shop, customer: Customer, records: CustomerRecords) -> models.QuerySet:
    match = Q(conversation_id__in=records.conversation_ids) | Q(user_id__in=records.user_ids)
    if customer.email:
        match |= Q(user_id__iexact=customer.email) | Q(question__icontains=customer.email)
    return AICall.objects.filter(_chatbot_filter(shop)).filter(match)


def _index_entries(shop: Shop, customer: Customer, records: CustomerRecords) -> models.QuerySet:
    match = Q(conversation_id__in=records.conversation_ids) | Q(username__in=records.user_ids)
    if customer.email:
        match |= Q(username__iexact=customer.email)
    return ConversationSummary.objects.filter(_chatbot_filter(shop)).filter(match)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else value


def _rows(queryset: models.QuerySet, fields: list[str]) -> list[dict[str, Any]]:
    return [
        {
            key: _iso(value) if not isinstance(value, uuid.UUID) else str(value)
            for key, value in row.items()
        }
        for row in queryset.values(*fields)
    ]


MESSAGE_FIELDS = ["sequence", "role", "type", "content", "metadata", "created_at"]
IMAGE_FIELDS = [
    "id",
    "mime",
    "size",
    "width",
    "height",
    "original_name",
    "description",
    "created_at",
]
CONTACT_FIELDS = ["kind", "requester_name", "requester_email", "message", "ticket_id", "created_at"]
RATING_FIELDS = ["score", "comment", "created_at"]
FEEDBACK_FIELDS = ["message_id", "value", "comment", "created_at", "updated_at"]
AI_CALL_FIELDS = ["conversation_id", "flow", "purpose", "question", "answer", "model", "created_at"]


def _conversation_export(conversation: Conversation) -> dict[str, Any]:
    """One conversation with its messages and everything the other apps keep beside it."""
    ratings = _rows(ConversationRating.objects.filter(conversation=conversation), RATING_FIELDS)
    return {
        "id": str(conversation.pk),
        "chatbot": conversation.chatbot.public_id,
        "user_id": conversation.user_id,
        "status": conversation.status,
        "created_at": _iso(conversation.created_at),
        "last_activity_at": _iso(conversation.last_activity_at),
        "metadata": conversation.metadata,
        "context": conversation.context,
        "messages": _rows(conversation.messages.order_by("sequence"), MESSAGE_FIELDS),
        "images": _rows(
            ImageUpload.objects.filter(conversation=conversation).order_by("created_at"),
            IMAGE_FIELDS,
        ),
        "contact_requests": _rows(
            Handoff.objects.filter(conversation=conversation).order_by("created_at"),
            CONTACT_FIELDS,
        ),
        "rating": next(iter(ratings), None),
        # Thumbs on single answers (docs/quality.md), with the customer's comment.
        "answer_feedback": _rows(
            AnswerFeedback.objects.filter(conversation=conversation).order_by("created_at"),
            FEEDBACK_FIELDS,
        ),
    }


def _customer_data_audit(
    *, action: str, shop: Shop, customer: Customer, user, request, detail: dict[str, Any]
) -> None:
    """The audit event of an export or an erasure: named by the kind of identifier only (the
    value itself is what an erasure removes, so it never goes into the log)."""
    audit_record(
        action=action,
        shop_id=shop.pk,
        user=user,
        request=request,
        object_type="customer data",
        object_label=f"customer by {customer.kind}",
        detail=detail,
    )


def customer_export(*, shop: Shop, customer: Customer, user=None, request=None) -> dict[str, Any]:
    """Everything the shop holds about the customer, as JSON-ready data (an access request)."""
    records = customer_records(shop=shop, customer=customer)
    conversations = [
        _conversation_export(conversation)
        for conversation in Conversation.objects.filter(pk__in=records.conversation_ids)
        .select_related("chatbot")
        .order_by("created_at")
    ]
    calls = _rows(_ai_calls(shop, customer, records).order_by("created_at", "pk"), AI_CALL_FIELDS)
    _customer_data_audit(
        action=AuditEvent.Action.EXPORT,
        shop=shop,
        customer=customer,
        user=user,
        request=request,
        detail={
            "customer": customer.kind,
            "fingerprint": customer.fingerprint(),
            "conversations": len(conversations),
            "ai_calls": len(calls),
        },
    )
    return {
        "shop": shop.slug,
        "customer": {customer.kind: customer.value},
        "exported_at": timezone.now().isoformat(),
        "conversations": conversations,
        "ai_calls": calls,
    }


def _redis_turn_keys_delete(turn_ids: list) -> int:
    """The turns' event logs and markers in Redis (`cb:turn:<id>:*`, conversations.streaming)."""
    if not turn_ids:
        return 0

    deleted = 0
    # Markers live on REDIS_URL's server, logs on their turn's (EVENT_REDIS_URLS).
    clients = {id(c): c for c in (get_redis(), *event_redis_all())}.values()
    for client in clients:
        for turn_id in turn_ids:
            keys = list(client.scan_iter(match=f"cb:turn:{turn_id}:*", count=100))
            if keys:
                deleted += client.delete(*keys)
    return deleted


def _conversations_delete(conversation_ids: list) -> tuple[Counter, list]:
    """Delete conversations and everything that hangs off them (rows cascade; image files go
    after commit, images.signals); their AI calls and index entries too (no cascade there).
    Returns the rows deleted per model and the turn ids whose Redis keys must go."""
    counts: Counter = Counter()
    if not conversation_ids:
        return counts, []
    turn_ids = list(
        Turn.objects.filter(conversation_id__in=conversation_ids).values_list("pk", flat=True)
    )
    counts["conversations.AICall"] += AICall.objects.filter(
        conversation_id__in=conversation_ids
    ).delete()[0]
    counts["analytics.ConversationSummary"] += ConversationSummary.objects.filter(
        conversation_id__in=conversation_ids
    ).delete()[0]
    # Failure entries name the turn and may quote what the customer wrote.
    counts["monitoring.ErrorLog"] += ErrorLog.objects.filter(turn_id__in=turn_ids).delete()[0]
    _, per_model = Conversation.objects.filter(pk__in=conversation_ids).delete()
    counts.update({label: n for label, n in per_model.items() if n})
    return counts, turn_ids


def _index_recount() -> None:
    conversation_index_recount()


def customer_erase(*, shop: Shop, customer: Customer, user=None, request=None) -> dict[str, Any]:
    """Forget the customer in this shop: every row, Redis key and file; returns the report of
    what was deleted (also kept, without the identifier, in the audit log)."""
    with transaction.atomic():
        records = customer_records(shop=shop, customer=customer)
        ids = records.conversation_ids
        files = sum(
            bool(a) + bool(b)
            for a, b in ImageUpload.objects.filter(conversation_id__in=ids).values_list(
                "storage_name", "thumbnail_name"
            )
        )
        counts, turn_ids = _conversations_delete(ids)
        # Calls and index entries under the same user id that no conversation holds any more.
        counts["conversations.AICall"] += _ai_calls(shop, customer, records).delete()[0]
        counts["analytics.ConversationSummary"] += _index_entries(shop, customer, records).delete()[
            0
        ]
        # Audit entries of this shop whose details quote the identifier lose those details.
        scrubbed = (
            AuditEvent.objects.filter(shop_id=shop.pk)
            .annotate(detail_text=Cast("detail", models.TextField()))
            .filter(
                Q(detail_text__icontains=customer.value) | Q(object_label__icontains=customer.value)
            )
            .update(detail={"erased": True}, object_label="(erased)")
        )
        report = {
            "customer": customer.kind,
            "conversations": len(ids),
            "deleted": {label: n for label, n in sorted(counts.items()) if n},
            "image_files": files,
            "audit_events_scrubbed": scrubbed,
        }
        transaction.on_commit(_index_recount)
    report["redis_keys"] = _redis_turn_keys_delete(turn_ids)
    _customer_data_audit(
        action=AuditEvent.Action.ERASE,
        shop=shop,
        customer=customer,
        user=user,
        request=request,
        detail={**report, "fingerprint": customer.fingerprint()},
    )
    return report


# --- retention -----------------------------------------------------------------------------------


def retention_policy_of(*, shop: Shop) -> RetentionPolicy:
    return RetentionPolicy.objects.filter(shop=shop).first() or RetentionPolicy(shop=shop)


def retention_policy_set(*, shop: Shop, periods: dict[str, Any]) -> RetentionPolicy:
    """Set some of the shop's periods (days, or None to keep) and `redact_ai_calls` (a
    boolean); unknown keys are a 400."""
    periods = dict(periods)
    redact = periods.pop(REDACT_FIELD, None)
    if redact is not None and not isinstance(redact, bool):
        raise ApiError(ErrorCode.VALIDATION_ERROR, f"{REDACT_FIELD} must be true or false.")
    unknown = set(periods) - set(RETENTION_FIELDS)
    if unknown:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"Unknown retention field(s): {', '.join(sorted(unknown))}.",
            details={"allowed": [*RETENTION_FIELDS, REDACT_FIELD]},
        )
    for name, value in periods.items():
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= MAX_RETENTION_DAYS
        ):
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"{name} must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, or null.",
            )
    policy, _ = RetentionPolicy.objects.get_or_create(shop=shop)
    for name, value in periods.items():
        setattr(policy, name, value)
    if redact is not None:
        policy.redact_ai_calls = redact
    policy.save()
    return policy


def _in_batches(queryset: models.QuerySet, delete, batch: int) -> int:
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        with transaction.atomic():
            total += delete(ids)


def _model_delete(model):
    return lambda ids: model.objects.filter(pk__in=ids).delete()[0]


def _due_tonight(policy: RetentionPolicy, now: dt.datetime) -> dt.date | None:
    """The shop's local date when its nightly run is due (past RETENTION_LOCAL_HOUR there and
    not yet run on that date), else None."""
    local = now.astimezone(zoneinfo.ZoneInfo(policy.shop.timezone))
    if local.hour < settings.RETENTION_LOCAL_HOUR or policy.last_enforced_on == local.date():
        return None
    return local.date()


def _conversations_expire(policy: RetentionPolicy, cutoff: dt.datetime, batch: int) -> int:
    """Delete the shop's conversations idle since before `cutoff`; their Redis event logs go
    once each batch has committed."""

    def delete_conversations(ids: list) -> int:
        counts, turn_ids = _conversations_delete(ids)
        transaction.on_commit(lambda: _redis_turn_keys_delete(turn_ids))
        return counts["conversations.Conversation"]

    return _in_batches(
        Conversation.objects.filter(chatbot__shop_id=policy.shop_id, last_activity_at__lt=cutoff),
        delete_conversations,
        batch,
    )


def _analytics_expire(policy: RetentionPolicy, cutoff: dt.datetime, batch: int) -> Counter:
    """Delete the shop's analyses, context chunks, turn metrics and index rows older than
    `cutoff`; rows deleted per kind."""
    shop_id = policy.shop_id
    totals: Counter = Counter()
    for key, queryset in (
        (
            "analyses",
            ConversationAnalysis.objects.filter(
                conversation__chatbot__shop_id=shop_id, created_at__lt=cutoff
            ),
        ),
        (
            "context_chunks",
            ContextChunk.objects.filter(
                conversation__chatbot__shop_id=shop_id, created_at__lt=cutoff
            ),
        ),
        (
            "turn_metrics",
            TurnMetrics.objects.filter(chatbot__shop_id=shop_id, created_at__lt=cutoff),
        ),
        (
            "conversation_index",
            ConversationSummary.objects.filter(
                chatbot__shop_id=shop_id, last_message_time__lt=cutoff
            ),
        ),
    ):
        totals[key] += _in_batches(queryset, _model_delete(queryset.model), batch)
    return totals


def _policy_enforce(
    policy: RetentionPolicy, *, now: dt.datetime, batch: int, totals: Counter
) -> bool:
    """Apply one shop's periods, adding rows deleted per kind to `totals`; True when
    conversations or index rows may have gone (the index counts need recounting)."""

    def cutoff(days: int) -> dt.datetime:
        return now - dt.timedelta(days=days)

    recount = False
    if policy.conversations_days:
        totals["conversations"] += _conversations_expire(
            policy, cutoff(policy.conversations_days), batch
        )
        recount = True
    if policy.ai_calls_days:
        totals["ai_calls"] += _in_batches(
            AICall.objects.filter(
                chatbot__shop_id=policy.shop_id, created_at__lt=cutoff(policy.ai_calls_days)
            ),
            _model_delete(AICall),
            batch,
        )
    if policy.images_days:
        totals["images"] += _in_batches(
            ImageUpload.objects.filter(
                conversation__chatbot__shop_id=policy.shop_id,
                created_at__lt=cutoff(policy.images_days),
            ),
            _model_delete(ImageUpload),
            batch,
        )
    if policy.analytics_days:
        totals.update(_analytics_expire(policy, cutoff(policy.analytics_days), batch))
        recount = True
    return recount


def retention_enforce(
    *, now: dt.datetime | None = None, batch: int | None = None, nightly: bool = False
) -> dict[str, int]:
    """Apply every shop's retention policy. A row goes when its time is *before* now minus the
    period (a row exactly that old stays until the next run). Rows deleted per kind.

    `nightly` (the hourly beat job): only shops where it is past RETENTION_LOCAL_HOUR in their
    own time zone and that were not yet done on that local date — each shop once a night, at
    night in its own time, and still on the next run if a run was missed."""
    now = now or timezone.now()
    batch = batch or settings.MAINTENANCE_BATCH_SIZE
    totals: Counter = Counter()
    recount = False
    for policy in RetentionPolicy.objects.select_related("shop").order_by("pk"):
        local_date = _due_tonight(policy, now) if nightly else None
        if nightly and local_date is None:
            continue
        if _policy_enforce(policy, now=now, batch=batch, totals=totals):
            recount = True
        if local_date is not None:
            RetentionPolicy.objects.filter(pk=policy.pk).update(last_enforced_on=local_date)
    if recount:
        _index_recount()
    # Calls stored after their turn ended (analyses) and shops that just switched it on.
    redacted = ai_calls_redact()
    if redacted:
        totals["ai_calls_redacted"] += redacted
    return dict(totals)


# --- personal data in the AI-call log ------------------------------------------------------------

# PostgreSQL regular expressions (ARE). Email addresses; phone numbers written with a country
# code (+45 12 34 56 78, 0045 12345678) or in groups of digits separated by spaces
# (12 34 56 78). Dates, prices and order numbers (one run of digits) are left alone.
REDACTIONS = (
    (r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[email]"),
    (r"(\+|\m00)[0-9][0-9 ().-]{6,}[0-9]", "[phone]"),
    (r"\m[0-9]{2,4}( [0-9]{2,4}){2,}\M", "[phone]"),
)


def _redacted_sql(column: str) -> str:
    expression = column
    for pattern, replacement in REDACTIONS:
        expression = f"regexp_replace({expression}, '{pattern}', '{replacement}', 'g')"
    return expression


def _matches_sql(columns: list[str]) -> str:
    return " OR ".join(f"{column} ~ '{pattern}'" for column in columns for pattern, _ in REDACTIONS)


def ai_calls_redact(*, turn_id: str | None = None) -> int:
    """Mask personal data in the AI calls (one turn's, or all) of shops whose policy asks for
    it, and in their conversation-index entries; returns the calls changed. Idempotent: only
    rows that still match are written."""
    calls = AICall._meta.db_table
    bots = Chatbot._meta.db_table
    policies = RetentionPolicy._meta.db_table
    shops_asking = f"""
        SELECT c.id FROM {bots} c JOIN {policies} p ON p.shop_id = c.shop_id
        WHERE p.redact_ai_calls
    """
    turn_filter = "AND turn_id = %s" if turn_id else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {calls}
            SET question = {_redacted_sql("question")}, answer = {_redacted_sql("answer")}
            WHERE chatbot_id IN ({shops_asking}) {turn_filter}
              AND ({_matches_sql(["question", "answer"])})
            """,
            [turn_id] if turn_id else [],
        )
        changed = cursor.rowcount
        if turn_id is None:
            summaries = ConversationSummary._meta.db_table
            cursor.execute(
                f"""
                UPDATE {summaries}
                SET first_question = {_redacted_sql("first_question")},
                    last_question = {_redacted_sql("last_question")}
                WHERE chatbot_id IN ({shops_asking})
                  AND ({_matches_sql(["first_question", "last_question"])})
                """
            )
    return changed


def on_turn_finished(sender, turn_id=None, **kwargs) -> None:
    """Right after a turn ends (its AI calls are stored by then): redact them if asked."""
    if not turn_id:
        return
    try:
        ai_calls_redact(turn_id=str(turn_id))
    except Exception:
        # Never fail the turn over it: the daily job masks what is left.
        logger.warning("privacy: AI calls of turn %s not redacted yet", turn_id, exc_info=True)
