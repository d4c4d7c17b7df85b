"""Handoff to people: what the widget should offer, tickets with the transcript, ratings.

Opening hours decide the mode: while support is open a handoff is `live` (the ticket goes in
as a chat for the agents on duty), otherwise `ticket` (answered by email). Either way the
request is stored at once and the ticket is created by a Celery task after commit, so the
widget gets 202 immediately and a failure stays visible on the Handoff row.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.html import escape, linebreaks

from chatbots.models import WEEKDAYS
from chatbots.secrets import SecretDecryptionError
from chatbots.services import support_open_now
from config.errors import ApiError, ErrorCode
from config.redaction import redact
from conversations.models import Conversation, Message
from helpdesk import clients
from helpdesk.error_codes import HelpdeskErrorCode
from helpdesk.models import ConversationRating, Handoff, HelpdeskConnection

logger = logging.getLogger(__name__)

CATEGORY = "helpdesk"

# Failed handoffs whose helpdesk was unreachable are sent again for this long, then left to
# staff (the admin's retry action).
RESEND_WITHIN = dt.timedelta(days=3)

MESSAGES = {
    "en": {
        "live": "Our customer service is open. I've passed our conversation to a colleague, who "
        "will reply as soon as possible{by_email}.",
        "live_no_email": "Our customer service is open and I've passed our conversation to a "
        "colleague. As you left no email address they cannot write back to you: {how}.",
        "how_contact": "contact us at {ways} if you need an answer",
        "how_again": "ask again with your email address if you need an answer",
        "ticket": "Our customer service is closed right now{hours}. I've passed our conversation "
        "on, and you'll get an answer by email{to} when we're back.",
        "contact": "Thank you. Your message has been sent to our customer service, who will "
        "reply by email{to}.",
        "by_email": " by email to {email}",
        "to": " at {email}",
        "hours": " (we're open {hours})",
    },
    "da": {
        "live": "Vores kundeservice har åbent. Jeg har givet samtalen videre til en kollega, "
        "som svarer så hurtigt som muligt{by_email}.",
        "live_no_email": "Vores kundeservice har åbent, og jeg har givet samtalen videre til en "
        "kollega. Da du ikke har skrevet din e-mailadresse, kan de ikke svare dig: {how}.",
        "how_contact": "kontakt os på {ways}, hvis du har brug for et svar",
        "how_again": "spørg igen med din e-mailadresse, hvis du har brug for et svar",
        "ticket": "Vores kundeservice har lukket lige nu{hours}. Jeg har givet samtalen videre, "
        "og du får svar på e-mail{to}, når vi er tilbage.",
        "contact": "Tak. Din besked er sendt til vores kundeservice, som svarer dig på e-mail{to}.",
        "by_email": " på e-mail til {email}",
        "to": " på {email}",
        "hours": " (vi har åbent {hours})",
    },
}
ROLE_NAMES = {
    Message.Role.USER: "Customer",
    Message.Role.ASSISTANT: "Chatbot",
    Message.Role.SYSTEM: "System",
}


# --- reads ----------------------------------------------------------------------------------------


def helpdesk_connection_for(*, chatbot_id: int) -> HelpdeskConnection | None:
    return HelpdeskConnection.objects.filter(chatbot_id=chatbot_id, active=True).first()


def _open_now(chatbot) -> bool:
    return support_open_now(opening_hours=chatbot.opening_hours, timezone=chatbot.timezone)


def handoff_summary(handoff: Handoff | None) -> dict[str, Any] | None:
    if handoff is None:
        return None
    return {
        "handoff_id": str(handoff.id),
        "kind": handoff.kind,
        "mode": handoff.mode,
        "state": handoff.state,
        "ticket_id": handoff.ticket_id or None,
        "reason": handoff.reason,
        "created_at": handoff.created_at.isoformat(),
    }


def support_status(*, conversation: Conversation) -> dict[str, Any]:
    """What the widget should offer now: live handoff, a ticket, or just the contact details."""
    chatbot = conversation.chatbot
    connection = helpdesk_connection_for(chatbot_id=chatbot.pk)
    open_now = _open_now(chatbot)
    offer = "contact" if connection is None else ("live" if open_now else "ticket")
    latest = conversation.handoffs.order_by("-created_at").first()
    rating = ConversationRating.objects.filter(conversation=conversation).first()
    return {
        "open_now": open_now,
        "offer": offer,
        "helpdesk": connection.kind if connection else None,
        "timezone": chatbot.timezone,
        "opening_hours": chatbot.opening_hours,
        "contact_email": chatbot.contact_email,
        "contact_phone": chatbot.contact_phone,
        "handoff": handoff_summary(latest),
        "rating": {"score": rating.score, "comment": rating.comment} if rating else None,
    }


# --- requests ---------------------------------------------------------------------------------------


def _hours_text(chatbot, language: str) -> str:
    names = {
        "da": ["man", "tir", "ons", "tor", "fre", "lør", "søn"],
        "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    }[language]
    parts = []
    for index, day in enumerate(WEEKDAYS):
        spans = (chatbot.opening_hours or {}).get(day) or []
        if spans:
            parts.append(f"{names[index]} " + ", ".join(f"{a}-{b}" for a, b in spans))
    return "; ".join(parts)


def handoff_message(handoff: Handoff, *, chatbot) -> str:
    """What the customer reads after asking for a person, in the chatbot's language."""
    language = chatbot.language if chatbot.language in MESSAGES else "en"
    texts = MESSAGES[language]
    email = handoff.requester_email
    if handoff.kind == Handoff.Kind.CONTACT:
        return texts["contact"].format(to=texts["to"].format(email=email) if email else "")
    if handoff.mode == Handoff.Mode.LIVE and email:
        return texts["live"].format(by_email=texts["by_email"].format(email=email))
    if handoff.mode == Handoff.Mode.LIVE:
        ways = [w for w in (chatbot.contact_email, chatbot.contact_phone) if w]
        joiner = " eller " if language == "da" else " or "
        how = texts["how_contact"].format(ways=joiner.join(ways)) if ways else texts["how_again"]
        return texts["live_no_email"].format(how=how)
    hours = _hours_text(chatbot, language)
    return texts["ticket"].format(
        hours=texts["hours"].format(hours=hours) if hours else "",
        to=texts["to"].format(email=email) if email else "",
    )


def handoff_request(
    *,
    conversation: Conversation,
    kind: str,
    reason: str = "",
    name: str = "",
    email: str = "",
    message: str = "",
) -> tuple[Handoff, bool]:
    """Store the request and enqueue its ticket after commit. Returns (handoff, created).

    A request while one of the same kind is still pending is appended to that one (its message,
    reason and email go into the same ticket) and returned; an exact repeat (a double click)
    is returned unchanged. Before, the second request answered 202 and was stored nowhere.
    """
    chatbot = conversation.chatbot
    if helpdesk_connection_for(chatbot_id=chatbot.pk) is None:
        raise ApiError(
            HelpdeskErrorCode.HELPDESK_NOT_CONFIGURED,
            "This shop takes no requests through the chat; use the contact details instead.",
        )
    mode = Handoff.Mode.LIVE if _open_now(chatbot) else Handoff.Mode.TICKET
    if kind == Handoff.Kind.HANDOFF and mode == Handoff.Mode.TICKET and not email:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            "Customer service is closed: leave an email address so they can answer you.",
            details={"email": ["Required outside opening hours."]},
        )
    request = {"reason": reason, "name": name, "email": email, "message": message}
    appended = _request_append(conversation=conversation, kind=kind, **request)
    if appended is not None:
        return appended, False
    _requests_limit_check(conversation=conversation)
    try:
        with transaction.atomic():
            handoff = Handoff.objects.create(
                conversation=conversation,
                kind=kind,
                mode=mode,
                reason=reason[:500],
                requester_name=name[:200],
                requester_email=email,
                message=message,
            )
            from helpdesk.tasks import create_ticket

            transaction.on_commit(lambda: create_ticket.delay(str(handoff.id)))
    except IntegrityError:
        # A concurrent request of the same kind won the race: this one joins it.
        existing = _request_append(conversation=conversation, kind=kind, **request)
        if existing is None:
            raise
        return existing, False
    return handoff, True


def _requests_limit_check(*, conversation: Conversation) -> None:
    """HELPDESK_MAX_REQUESTS_PER_CONVERSATION per day, appended requests included."""
    since = timezone.now() - dt.timedelta(days=1)
    used = conversation.handoffs.filter(created_at__gte=since).aggregate(n=Sum("requests"))["n"]
    if (used or 0) >= settings.HELPDESK_MAX_REQUESTS_PER_CONVERSATION:
        raise ApiError(
            HelpdeskErrorCode.HANDOFF_LIMIT_REACHED,
            "This conversation has sent the most requests allowed today; please use the "
            "contact details.",
            headers={"Retry-After": "3600"},
        )


def _request_append(
    *, conversation: Conversation, kind: str, reason: str, name: str, email: str, message: str
) -> Handoff | None:
    """Fold a request into the pending handoff of its kind, or into one waiting to be sent again
    (which it sends now); None when there is none (any more)."""
    with transaction.atomic():
        # The row lock handoff_ticket_create holds while it builds the ticket: either this text
        # is in the ticket being built, or that ticket exists, the state is no longer pending,
        # and the caller stores the request as a new handoff.
        pending = (
            conversation.handoffs.select_for_update()
            .filter(kind=kind)
            .filter(
                Q(state=Handoff.State.PENDING)
                | Q(
                    state=Handoff.State.FAILED,
                    resend=True,
                    created_at__gte=timezone.now() - RESEND_WITHIN,
                )
            )
            .order_by("-state", "-created_at")  # the pending one first
            .first()
        )
        if pending is None:
            return None
        if pending.state == Handoff.State.FAILED:
            # Its helpdesk was down: this request goes with it in one ticket, tried at once.
            pending.state, pending.resend, pending.completed_at = Handoff.State.PENDING, False, None
            pending.save(update_fields=["state", "resend", "completed_at", "updated_at"])
            from helpdesk.tasks import create_ticket

            transaction.on_commit(lambda: create_ticket.delay(str(pending.pk)))
        additions, updates = _request_news(
            pending, reason=reason, name=name, email=email, message=message
        )
        if not additions and not updates:
            return pending  # a repeat of what it already holds (a double click, a retry)
        _requests_limit_check(conversation=conversation)
        for field, value in updates.items():
            setattr(pending, field, value)
        if additions:
            stamp = timezone.localtime(timezone=_zone(conversation.chatbot.timezone))
            added = "\n".join(additions)
            pending.message = (
                f"{pending.message}\n\n[added {stamp:%d.%m %H:%M}]\n{added}"
                if pending.message
                else added
            )
        pending.requests += 1
        fields = ["reason", "message", "requester_name", "requester_email", "requests"]
        pending.save(update_fields=[*fields, "updated_at"])
    return pending


def _request_news(
    pending: Handoff, *, reason: str, name: str, email: str, message: str
) -> tuple[list[str], dict[str, str]]:
    """What a request adds to the pending handoff: lines to append to its message, and fields
    it fills that were empty. Nothing new in either is a repeat of what it already holds."""
    additions: list[str] = []
    updates: dict[str, str] = {}
    message, reason = message.strip(), reason.strip()[:500]
    if message and message != pending.message.strip() and not pending.message.endswith(message):
        additions.append(message)
    if reason and reason != pending.reason and f"Reason: {reason}" not in pending.message:
        if pending.reason:
            additions.append(f"Reason: {reason}")
        else:
            updates["reason"] = reason
    if email and not pending.requester_email:
        updates["requester_email"] = email
    elif email and email != pending.requester_email:
        note = f"Also reachable at: {email}"
        additions += [] if note in pending.message else [note]
    if name and not pending.requester_name:
        updates["requester_name"] = name[:200]
    return additions, updates


# --- the ticket ---------------------------------------------------------------------------------------


def conversation_transcript_html(*, conversation: Conversation, limit: int) -> str:
    """The conversation as HTML for the ticket description; every customer text is escaped."""
    messages = list(
        conversation.messages.order_by("-sequence").values("role", "content", "created_at")[:limit]
    )
    messages.reverse()
    zone = conversation.chatbot.timezone
    rows = []
    for m in messages:
        when = timezone.localtime(m["created_at"], timezone=_zone(zone)).strftime("%d.%m %H:%M")
        rows.append(
            f"<p><strong>{escape(ROLE_NAMES.get(m['role'], m['role']))}</strong> "
            f"<small>{when}</small><br>{linebreaks(m['content'], autoescape=True)}</p>"
        )
    return "\n".join(rows) or "<p>(no messages yet)</p>"


def _zone(name: str):
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def ticket_for(handoff: Handoff, connection: HelpdeskConnection) -> clients.TicketRequest:
    conversation = handoff.conversation
    chatbot = conversation.chatbot
    if handoff.kind == Handoff.Kind.CONTACT:
        first_line = (handoff.message.strip().splitlines() or [""])[0][:80]
        subject = f"[{chatbot.name}] Contact form: {first_line}"
        head = (
            f"<p><strong>Message from the contact form</strong></p>"
            f"{linebreaks(handoff.message, autoescape=True)}"
        )
    else:
        subject = f"[{chatbot.name}] Chat handoff" + (
            f": {handoff.reason[:80]}" if handoff.reason else ""
        )
        mode = "live (support was open)" if handoff.mode == Handoff.Mode.LIVE else "after hours"
        head = (
            f"<p><strong>The customer asked for a person</strong> ({escape(mode)}).</p>"
            f"<p><strong>Reason:</strong> {escape(handoff.reason) or '—'}</p>"
        )
        if handoff.message:  # what later requests added while this one was pending
            head += f"{linebreaks(handoff.message, autoescape=True)}"
    description = (
        f"{head}<p><small>Chatbot {escape(chatbot.public_id)} · conversation "
        f"{conversation.pk}</small></p><hr><p><strong>Transcript</strong></p>\n"
        + conversation_transcript_html(
            conversation=conversation, limit=settings.HELPDESK_TRANSCRIPT_MESSAGES
        )
    )
    tags = list(dict.fromkeys(["chatbot", *connection.tags, handoff.kind, handoff.mode]))
    return clients.TicketRequest(
        subject=subject,
        description_html=description,
        email=handoff.requester_email,
        name=handoff.requester_name,
        external_id=f"chat-{conversation.pk}",
        priority=connection.priority,
        source="chat" if handoff.kind == Handoff.Kind.HANDOFF else "form",
        tags=tags,
    )


def helpdesk_config(connection: HelpdeskConnection) -> clients.HelpdeskConfig:
    return clients.HelpdeskConfig(
        kind=connection.kind,
        api_base=connection.api_base,
        api_key=connection.api_key.reveal(),
        agent_email=connection.agent_email,
    )


@dataclass
class TicketAttempt:
    state: str
    retry_in: float | None = None  # seconds until the task should try again


def handoff_ticket_create(*, handoff_id: str, final: bool) -> TicketAttempt:
    """Create the handoff's ticket once; safe to run twice (the row lock and state decide)."""
    with transaction.atomic():
        # The lock serializes a re-delivered task with the first one: the second waits, then
        # sees the ticket and stops, so one handoff never becomes two tickets.
        handoff = (
            Handoff.objects.select_for_update()
            .select_related("conversation__chatbot")
            .filter(pk=handoff_id)
            .first()
        )
        if handoff is None or handoff.state != Handoff.State.PENDING:
            return TicketAttempt(handoff.state if handoff else "missing")
        handoff.attempts += 1
        connection = helpdesk_connection_for(chatbot_id=handoff.conversation.chatbot_id)
        retry_in = None
        try:
            _ticket_send(handoff, connection)
        except clients.HelpdeskError as err:
            retry_in = _ticket_failure_note(handoff, err, final=final)
        handoff.save(
            update_fields=[
                "attempts",
                "ticket_id",
                "state",
                "resend",
                "error",
                "completed_at",
                "updated_at",
            ]
        )
    return TicketAttempt(handoff.state, retry_in)


def _ticket_send(handoff: Handoff, connection: HelpdeskConnection | None) -> None:
    """Create the ticket in the chatbot's helpdesk and mark the handoff created; a connection
    gone or a key that no longer decrypts is a HelpdeskError no retry can mend."""
    if connection is None:
        raise clients.HelpdeskError(
            "No active helpdesk connection for this chatbot any more.", retryable=False
        )
    try:
        config = helpdesk_config(connection)
    except SecretDecryptionError:
        raise clients.HelpdeskError(
            "The stored helpdesk key cannot be decrypted (was a key removed from "
            "FIELD_ENCRYPTION_KEYS?). Enter it again.",
            retryable=False,
        ) from None
    handoff.ticket_id = clients.ticket_create(config, ticket_for(handoff, connection))
    handoff.state = Handoff.State.CREATED
    handoff.resend = False
    handoff.error = ""
    handoff.completed_at = timezone.now()


def _ticket_failure_note(
    handoff: Handoff, err: clients.HelpdeskError, *, final: bool
) -> float | None:
    """Note a failed attempt on the handoff: seconds until the next try while retries remain,
    else None and the handoff failed (kept for handoffs_resend when the helpdesk was only
    down or busy)."""
    message = redact(err.message)
    if err.retryable and not final:
        handoff.error = f"Attempt {handoff.attempts} failed, retrying: {message}"
        return min(
            err.retry_after
            if err.retry_after is not None
            else settings.HELPDESK_RETRY_BACKOFF * 2 ** (handoff.attempts - 1),
            300.0,
        )
    handoff.state = Handoff.State.FAILED
    # Down or busy, not refused: handoffs_resend sends it again later, so nothing a
    # customer was told "has been sent" is lost to an outage.
    handoff.resend = err.retryable
    handoff.error = message
    handoff.completed_at = timezone.now()
    logger.warning(
        "helpdesk ticket for handoff %s failed: %s",
        handoff.pk,
        message,
        extra={"category": CATEGORY, "handoff": str(handoff.pk)},
    )
    return None


def handoffs_resend(*, now: dt.datetime | None = None) -> int:
    """Send again the handoffs that failed only because the helpdesk was down or busy."""
    now = now or timezone.now()
    due = list(
        Handoff.objects.filter(
            state=Handoff.State.FAILED, resend=True, created_at__gte=now - RESEND_WITHIN
        ).values_list("pk", flat=True)[:500]
    )
    from helpdesk.tasks import create_ticket

    sent = 0
    for handoff_id in due:
        try:
            with transaction.atomic():
                # Conditional UPDATE: a staff retry or a second sweep never enqueues it twice.
                if Handoff.objects.filter(pk=handoff_id, state=Handoff.State.FAILED).update(
                    state=Handoff.State.PENDING, resend=False, completed_at=None, updated_at=now
                ):
                    transaction.on_commit(lambda i=str(handoff_id): create_ticket.delay(i))
                    sent += 1
        except IntegrityError:
            # A newer request of its kind is pending (one_pending_handoff_per_kind): this one
            # goes again on a later sweep, once that one is through.
            continue
    return sent


def handoff_retry(*, handoff: Handoff) -> bool:
    """Staff: try a failed ticket again (after fixing the key, say). False if not failed."""
    with transaction.atomic():
        # Conditional UPDATE: two clicks never enqueue the same ticket twice.
        updated = Handoff.objects.filter(pk=handoff.pk, state=Handoff.State.FAILED).update(
            state=Handoff.State.PENDING, error="", completed_at=None, updated_at=timezone.now()
        )
        if updated:
            from helpdesk.tasks import create_ticket

            transaction.on_commit(lambda: create_ticket.delay(str(handoff.pk)))
    return bool(updated)


# --- ratings, admin, retention -----------------------------------------------------------------------


def conversation_rate(
    *, conversation: Conversation, score: int, comment: str = ""
) -> ConversationRating:
    """Store (or replace) the customer's rating of the conversation."""
    rating, _ = ConversationRating.objects.update_or_create(
        conversation=conversation, defaults={"score": score, "comment": comment}
    )
    return rating


def helpdesk_connection_test(*, connection: HelpdeskConnection) -> tuple[bool, str]:
    try:
        config = helpdesk_config(connection)
    except SecretDecryptionError:
        return False, (
            "The stored key cannot be decrypted with the current FIELD_ENCRYPTION_KEYS. Enter "
            "it again."
        )
    try:
        message = clients.connection_check(config)
        ok = True
    except clients.HelpdeskError as err:
        ok, message = False, err.message
    if config.api_key:
        message = message.replace(config.api_key, "••••••••")
    return ok, redact(message)


def helpdesk_retention_sweep(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete handoffs and ratings older than HELPDESK_RETENTION_DAYS."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.HELPDESK_RETENTION_DAYS)
    handoffs, _ = Handoff.objects.filter(created_at__lt=cutoff).delete()
    ratings, _ = ConversationRating.objects.filter(created_at__lt=cutoff).delete()
    return {"handoffs": handoffs, "ratings": ratings}
