"""Human takeover: who answers a customer message, and everything a person does in a conversation.

A conversation is `bot` → `waiting_for_agent` → `with_agent` → back to `bot` (or resolved). The
person's part travels on a **human turn** (Turn.Kind.HUMAN): a turn with no worker, opened when
the conversation goes to a person and finished when the person hands back or resolves. Its event
log carries `agent_waiting`, `agent_joined`, `agent_message`, `customer_message`, `typing`,
`agent_left` and `end` with the same ids, logs and readers as a bot's answer, so every transport
(WebSocket, polling, SSE, Socket.IO) replays and resumes it with the same guarantee
(docs/inbox.md).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import access
from accounts.models import Role
from chatbots.services import support_open_now
from config.errors import ApiError, ErrorCode
from config.redis import get_redis
from conversations import services as conversation_services
from conversations.models import Conversation, Message, Turn
from inbox.models import CannedResponse, ConversationLabel, HandoffRule, PrivateNote

logger = logging.getLogger(__name__)

REPLY_MAX_CHARS = 4000


# --- who is online -----------------------------------------------------------------------------


def _online_key(shop_id: int) -> str:
    return f"cb:inbox:online:{shop_id}"


def agent_presence_set(*, user_id: int, shop_ids: list[int], online: bool) -> None:
    """An agent's inbox socket opened (or is still open: refreshed) or closed.

    A sorted set per shop scored by expiry, so a process that died without saying goodbye
    stops counting after INBOX_PRESENCE_SECONDS."""
    redis = get_redis()
    pipe = redis.pipeline(transaction=False)
    expires = timezone.now().timestamp() + settings.INBOX_PRESENCE_SECONDS
    for shop_id in shop_ids:
        if online:
            pipe.zadd(_online_key(shop_id), {str(user_id): expires})
            pipe.expire(_online_key(shop_id), settings.INBOX_PRESENCE_SECONDS * 2)
        else:
            pipe.zrem(_online_key(shop_id), str(user_id))
    pipe.execute()


def agents_online(*, shop_id: int) -> int:
    return int(get_redis().zcount(_online_key(shop_id), timezone.now().timestamp(), "+inf"))


def live_available(*, chatbot) -> bool:
    """A person can answer now: within opening hours, with an agent of the shop in the inbox.
    Otherwise the helpdesk ticket path of docs/helpdesk.md applies, unchanged."""
    if not support_open_now(opening_hours=chatbot.opening_hours, timezone=chatbot.timezone):
        return False
    return agents_online(shop_id=chatbot.shop_id) > 0


# --- the event log of a human turn ---------------------------------------------------------------


def _append(turn_id: str, events: list[tuple[str, dict]], *, finish: bool = False) -> None:
    """Append events to a human turn's log (after the caller's commit); `finish` ends the turn.

    The turn row is locked: a customer message, an agent reply and a typing signal arriving at
    once would otherwise read the same last id and write the same next id twice."""
    with transaction.atomic():
        turn = Turn.objects.select_for_update().filter(pk=turn_id, kind=Turn.Kind.HUMAN).first()
        if turn is None or turn.status != Turn.Status.RUNNING:
            return  # already handed back: nothing more goes on this turn
        written = conversation_services.append_events_sync(turn_id=str(turn_id), events=events)
        if finish:
            # The end event and the finished turn commit together (docs/streaming.md).
            Turn.objects.filter(pk=turn_id).update(
                status=Turn.Status.COMPLETED,
                finished_at=timezone.now(),
                last_event_id=written[-1]["id"] if written else turn.last_event_id,
            )


def _after_commit(
    turn_id: str | None,
    events: list[tuple[str, dict]],
    *,
    shop_id: int,
    conversation_id: str,
    finish: bool = False,
    change: str = "",
) -> None:
    def run() -> None:
        if turn_id:
            _append(turn_id, events, finish=finish)
        if change:  # typing is for the customer only: no inbox page re-reads its lists for it
            staff_notify(shop_id=shop_id, conversation_id=conversation_id, change=change)

    transaction.on_commit(run)


def staff_notify(*, shop_id: int, conversation_id: str, change: str) -> None:
    """Tell the shop's open inbox pages that a conversation changed (they re-read counts)."""
    from channels.layers import get_channel_layer

    message = {"type": "inbox.changed", "conversation_id": conversation_id, "change": change}
    try:
        layer = get_channel_layer()
        # The shop's members, and the operators (who see every shop).
        for group in (inbox_group(shop_id), ALL_SHOPS_GROUP):
            async_to_sync(layer.group_send)(group, message)
    except Exception:
        # The inbox page also re-reads its lists when it reconnects; a lost nudge costs a delay.
        logger.warning("inbox: could not notify shop %s of %s", shop_id, change)


# A safety net only: saving or deleting a rule forgets the cached answer at once.
HANDOFF_RULE_CACHE_SECONDS = 300


def inbox_group(shop_id: int) -> str:
    return f"inbox.shop.{shop_id}"


ALL_SHOPS_GROUP = "inbox.shop.all"


def agent_public(user) -> dict[str, Any]:
    """What the customer learns about an agent: the name they go by, nothing else."""
    return {"name": (user.first_name or user.get_username())[:60]}


# --- who answers: the one decision ---------------------------------------------------------------


def _handoff_rule_key(chatbot_id: int) -> str:
    return f"inbox:handoff-rule:{chatbot_id}"


def handoff_rule_exists(chatbot_id: int) -> bool:
    """Whether the chatbot has a handoff rule: cached in Redis, and forgotten whenever a rule is
    saved or deleted (handoff_rule_forget), so a new rule applies from the next message.

    Through the process's shared Redis pool, not Django's cache: under ASGI Django makes a
    cache client per request context, and so a new Redis connection per request (measured:
    21% of Daphne's busy time at 500 streams went to connecting)."""
    client = get_redis()
    key = _handoff_rule_key(chatbot_id)
    known = client.get(key)
    if known is None:
        exists = HandoffRule.objects.filter(chatbot_id=chatbot_id).exists()
        client.set(key, b"1" if exists else b"0", ex=HANDOFF_RULE_CACHE_SECONDS)
        return exists
    return known == b"1"


def handoff_rule_forget(chatbot_id: int) -> None:
    """After a rule changed: now, and again at commit (a reader between the two would have
    cached the state from before the change)."""
    key = _handoff_rule_key(chatbot_id)
    get_redis().delete(key)
    transaction.on_commit(lambda: get_redis().delete(key))


def message_may_route(*, chatbot_id: int, handling: str) -> bool:
    """conversations.hooks prefilter of message_route: False only when the route is certainly
    the bot's (the bot has the conversation, and no handoff rule could send it to a person)."""
    return handling != Conversation.Handling.BOT or handoff_rule_exists(chatbot_id)


def handoff_trigger(*, conversation: Conversation, text: str) -> str | None:
    """Why this customer message should go to a person without being asked, if it should."""
    rule = HandoffRule.objects.filter(chatbot_id=conversation.chatbot_id).first()
    if rule is None:
        return None
    lowered = text.lower()
    if any(keyword in lowered for keyword in rule.keyword_list()):
        return "keyword"
    if rule.failed_turns:
        recent = list(
            Turn.objects.filter(conversation=conversation, kind=Turn.Kind.AI)
            .order_by("-created_at")
            .values_list("status", flat=True)[: rule.failed_turns]
        )
        if len(recent) == rule.failed_turns and all(s == Turn.Status.FAILED for s in recent):
            return "bot_failed"
    return None


def message_route(*, conversation: Conversation, message: Message) -> Turn | None:
    """conversations.hooks message router: the human turn that takes this message, or None.

    Called inside message_submit's transaction with the conversation row locked, so the state
    read here cannot change before the message is stored under it."""
    if conversation.handling != Conversation.Handling.BOT and conversation.human_turn_id:
        turn = Turn.objects.get(pk=conversation.human_turn_id)
        _after_commit(
            str(turn.pk),
            [("customer_message", _message_data(message))],
            shop_id=conversation.chatbot.shop_id,
            conversation_id=str(conversation.pk),
            change="customer_message",
        )
        return turn
    trigger = handoff_trigger(conversation=conversation, text=message.content)
    if trigger and live_available(chatbot=conversation.chatbot):
        return _human_turn_open(conversation=conversation, message=message, reason=trigger)
    return None


def _message_data(message: Message) -> dict[str, Any]:
    return {
        "message_id": str(message.pk),
        "sequence": message.sequence,
        "text": message.content,
    }


def _human_turn_open(*, conversation: Conversation, message: Message, reason: str) -> Turn:
    """bot → waiting_for_agent, with the human turn the customer follows from now on."""
    now = timezone.now()
    turn = Turn.objects.create(
        conversation=conversation,
        user_message=message,
        kind=Turn.Kind.HUMAN,
        status=Turn.Status.RUNNING,
        flow="person",
        started_at=now,
        heartbeat_at=now,
    )
    conversation.handling = Conversation.Handling.WAITING
    conversation.human_turn = turn
    conversation.handoff_at = now
    conversation.save(update_fields=["handling", "human_turn", "handoff_at", "updated_at"])
    rule = HandoffRule.objects.filter(chatbot_id=conversation.chatbot_id).first()
    wait = rule.usual_wait_minutes if rule else settings.INBOX_USUAL_WAIT_MINUTES
    events: list[tuple[str, dict]] = [
        (
            "start",
            {
                "turn_id": str(turn.pk),
                "conversation_id": str(conversation.pk),
                "user_message_id": str(message.pk),
                "kind": "human",
            },
        ),
        ("agent_waiting", {"reason": reason, "usual_wait_minutes": wait}),
    ]
    if message.role == Message.Role.USER:
        events.append(("customer_message", _message_data(message)))
    _after_commit(
        str(turn.pk),
        events,
        shop_id=conversation.chatbot.shop_id,
        conversation_id=str(conversation.pk),
        change="waiting",
    )
    return turn


@dataclass
class PersonRequest:
    """The answer to "talk to a person": a live chat (follow `turn`), or the ticket path."""

    live: bool
    turn: Turn | None = None
    created: bool = False


def person_request(*, conversation: Conversation, reason: str = "") -> PersonRequest:
    """The customer asks for a person (widget button / POST …/person).

    Live when a person can answer now (live_available); otherwise nothing changes here and the
    caller offers today's helpdesk ticket path. Asking again while waiting or with a person
    returns the same human turn."""
    conversation_services.chatbot_require_active(conversation.chatbot)
    with transaction.atomic():
        # Lock: two clicks at once open one human turn.
        locked = (
            Conversation.objects.select_for_update()
            .select_related("chatbot")
            .get(pk=conversation.pk)
        )
        conversation_services.conversation_open_check(status=locked.status)
        if locked.handling != Conversation.Handling.BOT and locked.human_turn_id:
            return PersonRequest(live=True, turn=Turn.objects.get(pk=locked.human_turn_id))
        if not live_available(chatbot=locked.chatbot):
            return PersonRequest(live=False)
        message = Message.objects.create(
            conversation=locked,
            role=Message.Role.SYSTEM,
            type="handoff",
            content="The customer asked for a person." + (f" Reason: {reason}" if reason else ""),
            sequence=conversation_services._next_sequence(locked.pk),
            metadata={"reason": reason} if reason else {},
        )
        turn = _human_turn_open(conversation=locked, message=message, reason="customer")
    return PersonRequest(live=True, turn=turn, created=True)


# --- what agents do ------------------------------------------------------------------------------


def _locked_for_agent(*, conversation_id, user, min_role: str = Role.AGENT) -> Conversation:
    """The conversation, locked, if the user is an agent (or more) of its shop: 403 for a viewer
    of the shop, 404 for anyone else."""
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("chatbot")
        .filter(pk=conversation_id)
        .first()
    )
    role = conversation and access.role_in(user, conversation.chatbot.shop_id)
    if conversation is None or not (access.is_operator(user) or role):
        # Another shop's conversation is answered exactly like one that does not exist.
        raise ApiError(ErrorCode.CONVERSATION_NOT_FOUND, "No such conversation.")
    if not (access.is_operator(user) or access._rank_ok(role, min_role)):
        raise ApiError(
            ErrorCode.PERMISSION_DENIED,
            "Viewers read conversations; answering them needs the agent role.",
        )
    return conversation


def _require_open_human(conversation: Conversation) -> None:
    if conversation.handling == Conversation.Handling.BOT or not conversation.human_turn_id:
        raise ApiError(
            ErrorCode.CONFLICT,
            "The bot is answering this conversation; the customer has not asked for a person.",
        )


def conversation_take(*, conversation_id, agent, assignee=None) -> Conversation:
    """An agent takes a waiting (or another agent's) conversation, or assigns it to `assignee`."""
    assignee = assignee or agent
    with transaction.atomic():
        conversation = _locked_for_agent(conversation_id=conversation_id, user=agent)
        _require_open_human(conversation)
        shop_id = conversation.chatbot.shop_id
        if assignee != agent and not (
            access.is_operator(assignee)
            or access._rank_ok(access.role_in(assignee, shop_id), Role.AGENT)
        ):
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                "Assign the conversation to an agent, admin or owner of its shop.",
            )
        previous = conversation.assigned_agent if conversation.handling == "with_agent" else None
        if previous is not None and previous.pk == assignee.pk:
            return conversation
        events: list[tuple[str, dict]] = []
        if previous is not None:
            events.append(("agent_left", {"agent": agent_public(previous), "next": "agent"}))
        events.append(("agent_joined", {"agent": agent_public(assignee)}))
        conversation.handling = Conversation.Handling.AGENT
        conversation.assigned_agent = assignee
        conversation.save(update_fields=["handling", "assigned_agent", "updated_at"])
        _after_commit(
            str(conversation.human_turn_id),
            events,
            shop_id=shop_id,
            conversation_id=str(conversation.pk),
            change="assigned",
        )
    return conversation


_SHORTCUT = re.compile(r"(?<!\S)/([a-z0-9_-]{1,40})(?![\w/-])")


def canned_expand(*, shop_id: int, text: str) -> str:
    """Replace each `/shortcut` (at the start or after a space) by the shop's canned response."""
    names = set(_SHORTCUT.findall(text))
    if not names:
        return text
    known = dict(
        CannedResponse.objects.filter(shop_id=shop_id, shortcut__in=names).values_list(
            "shortcut", "text"
        )
    )
    return _SHORTCUT.sub(lambda m: known.get(m.group(1), m.group(0)), text)


def agent_reply(*, conversation_id, agent, text: str) -> Message:
    """Store an agent's reply (role `agent`) and send it to the widget as `agent_message`.

    A reply to a waiting conversation takes it first; one to another agent's conversation is
    refused (409): take it over first."""
    text = (text or "").strip()
    if not text:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "The reply is empty.")
    with transaction.atomic():
        conversation = _locked_for_agent(conversation_id=conversation_id, user=agent)
        _require_open_human(conversation)
        if conversation.handling == Conversation.Handling.WAITING:
            conversation_take(conversation_id=conversation.pk, agent=agent)
            conversation.refresh_from_db()
        elif conversation.assigned_agent_id != agent.pk:
            raise ApiError(
                ErrorCode.CONFLICT,
                "Another agent has this conversation; take it over before replying.",
            )
        text = canned_expand(shop_id=conversation.chatbot.shop_id, text=text)
        if len(text) > REPLY_MAX_CHARS:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"The reply is longer than {REPLY_MAX_CHARS} characters.",
            )
        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.AGENT,
            content=text,
            sequence=conversation_services._next_sequence(conversation.pk),
            agent=agent,
            metadata={"agent": agent_public(agent)},
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            message_count=conversation.message_count + 1, last_activity_at=timezone.now()
        )
        _after_commit(
            str(conversation.human_turn_id),
            [("agent_message", {**_message_data(message), "agent": agent_public(agent)})],
            shop_id=conversation.chatbot.shop_id,
            conversation_id=str(conversation.pk),
            change="agent_message",
        )
    return message


def agent_typing(*, conversation_id, agent, typing: bool) -> None:
    """The assigned agent started or stopped typing: a `typing` event to the widget."""
    with transaction.atomic():
        conversation = _locked_for_agent(conversation_id=conversation_id, user=agent)
        if (
            conversation.handling != Conversation.Handling.AGENT
            or conversation.assigned_agent_id != agent.pk
        ):
            return  # only the person the customer is talking to is shown typing
        _after_commit(
            str(conversation.human_turn_id),
            [("typing", {"who": "agent", "typing": bool(typing), "agent": agent_public(agent)})],
            shop_id=conversation.chatbot.shop_id,
            conversation_id=str(conversation.pk),
        )


def customer_typing(*, conversation: Conversation, typing: bool) -> None:
    """The customer typing while a person has the conversation (shown in the inbox)."""
    row = (
        Conversation.objects.filter(pk=conversation.pk)
        .values("handling", "human_turn_id", "chatbot__shop_id")
        .first()
    )
    if row is None or row["handling"] != Conversation.Handling.AGENT or not row["human_turn_id"]:
        return
    _append(str(row["human_turn_id"]), [("typing", {"who": "customer", "typing": bool(typing)})])


def _close_human(*, conversation_id, agent, resolve: bool) -> Conversation:
    with transaction.atomic():
        conversation = _locked_for_agent(conversation_id=conversation_id, user=agent)
        _require_open_human(conversation)
        turn_id = str(conversation.human_turn_id)
        leaving = conversation.assigned_agent or agent
        conversation.handling = Conversation.Handling.BOT
        conversation.human_turn = None
        fields = ["handling", "human_turn", "updated_at"]
        if conversation.assigned_agent_id is None:
            # Whoever closed a conversation nobody took answered for it (CSAT attribution).
            conversation.assigned_agent = agent
            fields.append("assigned_agent")
        if resolve:
            conversation.status = Conversation.Status.RESOLVED
            conversation.is_resolved = True
            fields += ["status", "is_resolved"]
        conversation.save(update_fields=fields)
        nxt = "resolved" if resolve else "bot"
        _after_commit(
            turn_id,
            [
                ("agent_left", {"agent": agent_public(leaving), "next": nxt}),
                (
                    "end",
                    {"status": "completed", "message_id": None, "handled_by": "agent", "next": nxt},
                ),
            ],
            finish=True,
            shop_id=conversation.chatbot.shop_id,
            conversation_id=str(conversation.pk),
            change=nxt,
        )
    return conversation


def conversation_hand_back(*, conversation_id, agent) -> Conversation:
    """with_agent / waiting → bot: the next customer message is answered by the bot again."""
    return _close_human(conversation_id=conversation_id, agent=agent, resolve=False)


def conversation_resolve_by_agent(*, conversation_id, agent) -> Conversation:
    """The person closes the conversation as resolved (a new message reopens it with the bot)."""
    return _close_human(conversation_id=conversation_id, agent=agent, resolve=True)


def human_turn_close(*, conversation_id, next: str, **_signal) -> None:
    """The customer (or an API client) resolved or ended a conversation a person had or was
    about to take: its human turn ends (`end` with `next`), and it leaves the inbox lists.
    Connected to conversations.services.conversation_closed."""
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("chatbot")
            .filter(pk=conversation_id)
            .first()
        )
        if (
            conversation is None
            or conversation.handling == Conversation.Handling.BOT
            or conversation.status == Conversation.Status.ACTIVE  # written to again meanwhile
        ):
            return
        turn_id = str(conversation.human_turn_id) if conversation.human_turn_id else None
        conversation.handling = Conversation.Handling.BOT
        conversation.human_turn = None
        conversation.save(update_fields=["handling", "human_turn", "updated_at"])
        _after_commit(
            turn_id,
            [
                (
                    "end",
                    {
                        "status": "completed",
                        "message_id": None,
                        "handled_by": "agent",
                        "next": next,
                    },
                )
            ],
            finish=True,
            shop_id=conversation.chatbot.shop_id,
            conversation_id=str(conversation.pk),
            change=next,
        )


LABEL = re.compile(r"^[\w][\w -]{0,39}$")
LABELS_MAX = 10


def conversation_labels_set(*, conversation_id, agent, labels: list[str]) -> list[str]:
    """Replace a conversation's labels (lower-cased, at most LABELS_MAX, each 1-40 letters,
    digits, spaces, - or _)."""
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ApiError(ErrorCode.VALIDATION_ERROR, "`labels` must be a list of texts.")
    cleaned = sorted({x.strip().lower() for x in labels if x.strip()})
    if len(cleaned) > LABELS_MAX or not all(LABEL.match(x) for x in cleaned):
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"At most {LABELS_MAX} labels of 1 to 40 letters, digits, spaces, - or _.",
        )
    with transaction.atomic():
        conversation = _locked_for_agent(conversation_id=conversation_id, user=agent)
        ConversationLabel.objects.filter(conversation=conversation).exclude(
            name__in=cleaned
        ).delete()
        ConversationLabel.objects.bulk_create(
            [ConversationLabel(conversation=conversation, name=x) for x in cleaned],
            ignore_conflicts=True,
        )
        _after_commit(
            None,
            [],
            shop_id=conversation.chatbot.shop_id,
            conversation_id=str(conversation.pk),
            change="labels",
        )
    return cleaned


def note_add(*, conversation_id, agent, text: str) -> PrivateNote:
    text = (text or "").strip()
    if not text or len(text) > 4000:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "A note has 1 to 4000 characters.")
    with transaction.atomic():
        conversation = _locked_for_agent(conversation_id=conversation_id, user=agent)
        note = PrivateNote.objects.create(conversation=conversation, author=agent, text=text)
        _after_commit(
            None,
            [],
            shop_id=conversation.chatbot.shop_id,
            conversation_id=str(conversation.pk),
            change="note",
        )
    return note
