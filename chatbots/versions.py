"""Published versions of a chatbot's configuration: snapshot, publish, roll back, compare.

A bot whose `publishing` is "reviewed" answers customers from its `live_version`; what staff save
is the draft (the current rows) until someone publishes it (docs/versions.md). A version holds
what shapes answers — flows with their endpoints' and knowledge bases' non-secret settings and
their templates' text, text rules, tools, routing mode and topics — and nothing secret: keys are
read from the current rows whenever a version is used (`version_config`). Everything else of the
bot (active, widget key, origins, rate limit, opening hours, contacts, greeting, language, image
uploads) applies at once in both modes: switches that must act now, and widget texts. Language
stays with the rows because knowledge entries' search vectors follow it at once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal, cast

from django.db import transaction

from accounts.models import AuditEvent
from accounts.services import audit_record
from chatbots import checkruns, preview
from chatbots.config_types import ChatbotConfig, ToolsBinding
from chatbots.models import (
    AIEndpoint,
    Chatbot,
    ChatbotVersion,
    KnowledgeBase,
    PromptTemplate,
)
from chatbots.secrets import SecretValue

# The keys of the turn configuration a version holds; the rest comes from the bot's row.
VERSIONED_KEYS: tuple[Literal["routing_mode", "topics", "flows", "text_rules", "tools"], ...] = (
    "routing_mode",
    "topics",
    "flows",
    "text_rules",
    "tools",
)


# Reads the bot's tool allow-list and bounds (by chatbot id) for a snapshot: the tools app, which
# sits above chatbots, registers tools.selectors.tools_binding_get when it loads. None registered: a
# version holds no tools.
ToolsBindingReader = Callable[..., ToolsBinding | None]  # called with chatbot_id=
_tools_binding_reader: list[ToolsBindingReader] = []


def register_tools_binding_reader(reader: ToolsBindingReader) -> None:
    _tools_binding_reader[:] = [reader]


def _tools_binding(chatbot: Chatbot) -> ToolsBinding | None:
    """The bot's tool allow-list and bounds, as tools.selectors.toolset_for_turn reads them."""
    return _tools_binding_reader[0](chatbot_id=chatbot.pk) if _tools_binding_reader else None


def _strip_secrets(config: ChatbotConfig) -> None:
    for flow in config["flows"]:
        flow["endpoint"].pop("api_key_stored", None)
        kb = flow.get("knowledge_base")
        if kb:
            kb.pop("api_key_stored", None)
            embedding = kb.get("embedding")
            if embedding:
                embedding.pop("api_key_stored", None)


def snapshot_build(*, chatbot: Chatbot) -> dict[str, Any]:
    """The draft (the rows as saved now) as a version's content: templates' text inlined (a
    template is shared by the shop's bots, so a later edit must not reach a published version),
    tool bindings included, secrets left out."""
    from chatbots.selectors import chatbot_draft_config_get

    config = chatbot_draft_config_get(chatbot=chatbot)
    names = {t["name"] for f in config["flows"] if (t := f.get("template"))}
    templates = {
        t.name: t for t in PromptTemplate.objects.filter(shop_id=chatbot.shop_id, name__in=names)
    }
    for flow in config["flows"]:
        assignment = flow.get("template")
        if assignment:
            template = templates.get(assignment["name"])
            flow["template"] = (
                {**assignment, "text": template.text, "defaults": template.variables}
                if template
                else None
            )
    _strip_secrets(config)
    config["tools"] = _tools_binding(chatbot)
    return {key: config[key] for key in VERSIONED_KEYS}


def version_config(*, chatbot: Chatbot, version: ChatbotVersion) -> ChatbotConfig:
    """A version as a turn configuration: the bot's unversioned columns as they are now, the
    version's content, and the current (encrypted) keys of the endpoints and knowledge bases it
    names. A row deleted since gives an empty key: that flow's calls fail like a missing key."""
    from chatbots.selectors import _base_config

    content = copy.deepcopy(version.config)
    flows = content["flows"]
    endpoint_ids = {f["endpoint"]["id"] for f in flows}
    kb_ids = set()
    for flow in flows:
        kb = flow.get("knowledge_base")
        if kb:
            kb_ids.add(kb["id"])
            if kb.get("embedding") and kb["embedding"].get("endpoint_id"):
                endpoint_ids.add(kb["embedding"]["endpoint_id"])
    endpoint_keys = {
        e.pk: cast(SecretValue, e.api_key).stored
        for e in AIEndpoint.objects.filter(pk__in=endpoint_ids, shop_id=chatbot.shop_id)
    }
    kb_keys = {
        k.pk: cast(SecretValue, k.api_key).stored
        for k in KnowledgeBase.objects.filter(pk__in=kb_ids, chatbot=chatbot)
    }
    for flow in flows:
        flow["endpoint"]["api_key_stored"] = endpoint_keys.get(flow["endpoint"]["id"], "")
        kb = flow.get("knowledge_base")
        if kb:
            kb["api_key_stored"] = kb_keys.get(kb["id"], "")
            if kb.get("embedding"):
                kb["embedding"]["api_key_stored"] = endpoint_keys.get(
                    kb["embedding"].get("endpoint_id"), ""
                )
    # The content is a snapshot_build of a ChatbotConfig: the versioned keys mypy cannot see.
    return cast(ChatbotConfig, {**_base_config(chatbot), **content, "version": version.number})


def _invalidate(chatbot: Chatbot) -> None:
    from chatbots.selectors import chatbot_config_invalidate

    chatbot_config_invalidate(chatbot.public_id)
    transaction.on_commit(lambda: chatbot_config_invalidate(chatbot.public_id))


def _record(*, chatbot: Chatbot, user, request, comment: str, detail: dict[str, Any]) -> None:
    """Into the configuration history (a revision of the bot with the comment) and the audit
    log, like every other configuration change."""
    import reversion

    with reversion.create_revision(atomic=False):
        reversion.add_to_revision(chatbot)
        reversion.set_user(user)
        reversion.set_comment(comment)
    audit_record(
        action=AuditEvent.Action.CHANGE,
        shop_id=chatbot.shop_id,
        user=user,
        request=request,
        object_type=cast(str, Chatbot._meta.verbose_name),
        object_id=chatbot.pk,
        object_label=str(chatbot),
        detail={"event": comment, **detail},
    )


def _new_version(*, chatbot: Chatbot, config: dict[str, Any], **fields: Any) -> ChatbotVersion:
    # The bot's row is locked: two publishes at once get consecutive numbers, not a clash.
    Chatbot.objects.select_for_update().filter(pk=chatbot.pk).first()
    last = chatbot.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = ChatbotVersion.objects.create(
        chatbot=chatbot, number=last + 1, config=config, **fields
    )
    Chatbot.objects.filter(pk=chatbot.pk).update(live_version=version)
    chatbot.live_version = version
    chatbot.live_version_id = version.pk
    return version


def version_publish(
    *,
    chatbot: Chatbot,
    user=None,
    request=None,
    note: str = "",
    failing_checks: str = "",
) -> ChatbotVersion:
    """Make the draft live: a new version from the current rows, at once for every new turn.
    `failing_checks` names the checks that failed on this draft and were knowingly accepted."""
    with transaction.atomic():
        before = _live_config(chatbot)
        config = snapshot_build(chatbot=chatbot)
        version = _new_version(
            chatbot=chatbot,
            config=config,
            note=note[:500],
            created_by=user if getattr(user, "is_authenticated", False) else None,
            confirmed_failing_checks=bool(failing_checks),
            failing_checks=failing_checks,
        )
        changes = version_diff(before=before, after=config)
        comment = f"Published version {version.number}" + (f": {note}" if note else ".")
        if failing_checks:
            comment += f" Confirmed with failing checks: {failing_checks}"
        _record(
            chatbot=chatbot,
            user=user,
            request=request,
            comment=comment[:1000],
            detail={"version": version.number, "changes": changes},
        )
        _invalidate(chatbot)
    return version


def version_rollback(
    *, chatbot: Chatbot, version: ChatbotVersion, user=None, request=None
) -> ChatbotVersion:
    """Publish a copy of an earlier version as a new one (history stays append-only). The draft
    (the rows) is left as it is: staff may keep working on it."""
    if version.chatbot_id != chatbot.pk:
        raise ValueError("That version belongs to another chatbot.")
    with transaction.atomic():
        before = _live_config(chatbot)
        new = _new_version(
            chatbot=chatbot,
            config=copy.deepcopy(version.config),
            note=f"Rollback to version {version.number}",
            copied_from=version,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        _record(
            chatbot=chatbot,
            user=user,
            request=request,
            comment=f"Rolled back to version {version.number} (published as version {new.number}).",
            detail={
                "version": new.number,
                "copied_from": version.number,
                "changes": version_diff(before=before, after=new.config),
            },
        )
        _invalidate(chatbot)
    return new


def chatbot_publishing_set(
    *, chatbot: Chatbot, publishing: str, user=None, request=None, previous: str | None = None
) -> None:
    """Switch the mode. To reviewed: the current rows (what customers had under instant) are
    published as a version at once, so customers keep exactly what they had. To instant: the
    rows (the draft) go live at once. `previous`: the mode before, when the caller has already
    saved the new one (the admin form); otherwise read from the row."""
    if previous is None:
        previous = (
            Chatbot.objects.filter(pk=chatbot.pk).values_list("publishing", flat=True).first()
        )
    Chatbot.objects.filter(pk=chatbot.pk).update(publishing=publishing)
    chatbot.publishing = publishing
    switched = previous != Chatbot.Publishing.REVIEWED or not chatbot.live_version_id
    if publishing == Chatbot.Publishing.REVIEWED and switched:
        version_publish(
            chatbot=chatbot, user=user, request=request, note="Switched to reviewed publishing"
        )
    _invalidate(chatbot)


# --- Comparing two versions ------------------------------------------------------------------

_BOT_LABELS = {
    "routing_mode": "routing mode",
    "topics": "topics",
}


def _flow_parts(flow: dict[str, Any]) -> dict[str, Any]:
    endpoint = {k: v for k, v in flow["endpoint"].items() if k != "api_key_stored"}
    kb = flow.get("knowledge_base")
    return {
        "settings": {
            k: flow.get(k)
            for k in ("role", "is_main", "routing_key", "applies_to", "target", "top_k")
        },
        "endpoint": endpoint,
        "knowledge": (
            {k: v for k, v in kb.items() if k not in ("api_key_stored", "embedding")}
            | {
                "embedding": {
                    k: v for k, v in (kb.get("embedding") or {}).items() if k != "api_key_stored"
                }
            }
            if kb
            else None
        ),
        "namespace": flow.get("namespace"),
        "template": flow.get("template"),
    }


def version_diff(*, before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """What changed between two versions' contents, in sentences for staff ("Flow main: its
    prompt template text changed."). Empty when nothing that reaches customers changed."""
    if before is None:
        return ["First published version."]
    lines: list[str] = []
    for key, label in _BOT_LABELS.items():
        if before.get(key) != after.get(key):
            lines.append(f"The bot's {label} changed.")
    lines += _flows_diff(before.get("flows", []), after.get("flows", []))
    if before.get("text_rules") != after.get("text_rules"):
        lines.append(
            f"Text rules changed ({len(before.get('text_rules') or [])} → "
            f"{len(after.get('text_rules') or [])} rules)."
        )
    lines += _tools_diff(before.get("tools") or {}, after.get("tools") or {})
    return lines


def _flows_diff(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """Flows added, removed, and what changed in each flow both versions have."""
    old_flows = {f["name"]: f for f in before}
    new_flows = {f["name"]: f for f in after}
    lines = [f"Flow {name} added." for name in sorted(new_flows.keys() - old_flows.keys())]
    lines += [
        f"Flow {name} removed (or disabled)."
        for name in sorted(old_flows.keys() - new_flows.keys())
    ]
    for name in sorted(new_flows.keys() & old_flows.keys()):
        what = _flow_changes(_flow_parts(old_flows[name]), _flow_parts(new_flows[name]))
        if what:
            lines.append(f"Flow {name}: " + ", ".join(what) + " changed.")
    return lines


def _flow_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The parts of one flow that differ, as phrases ("its AI endpoint")."""
    what = []
    if old["settings"] != new["settings"]:
        what.append("its settings (role, model, routing key or top-k)")
    if old["endpoint"] != new["endpoint"]:
        what.append("its AI endpoint")
    if old["knowledge"] != new["knowledge"] or old["namespace"] != new["namespace"]:
        what.append("its knowledge base")
    old_t, new_t = old["template"] or {}, new["template"] or {}
    if old_t.get("name") != new_t.get("name"):
        what.append("which prompt template it uses")
        return what
    if old_t.get("text") != new_t.get("text"):
        what.append(f"the text of its prompt template “{new_t.get('name')}”")
    if old_t.get("overrides") != new_t.get("overrides") or old_t.get("defaults") != new_t.get(
        "defaults"
    ):
        what.append("its template variables")
    return what


def _tools_diff(old_tools: dict[str, Any], new_tools: dict[str, Any]) -> list[str]:
    """Tools added or removed; otherwise whether only their limits changed."""
    old_names = set(old_tools.get("tools") or [])
    new_names = set(new_tools.get("tools") or [])
    added, removed = sorted(new_names - old_names), sorted(old_names - new_names)
    lines = []
    if added:
        lines.append("Tools added: " + ", ".join(added) + ".")
    if removed:
        lines.append("Tools removed: " + ", ".join(removed) + ".")
    if not added and not removed and old_tools != new_tools:
        lines.append("Tool limits changed.")
    return lines


def _live_config(chatbot: Chatbot) -> dict[str, Any] | None:
    """The live version's contents; None before the first publish."""
    if not chatbot.live_version_id:
        return None
    # Set whenever live_version_id is; mypy cannot follow the id to the relation.
    return cast(ChatbotVersion, chatbot.live_version).config


def draft_diff(*, chatbot: Chatbot) -> list[str]:
    """What publishing the draft now would change for customers; empty when nothing would."""
    before = _live_config(chatbot)
    after = snapshot_build(chatbot=chatbot)
    lines = version_diff(before=before, after=after)
    if not lines and before != after:
        lines = ["Other settings of the flows changed."]
    return lines


# --- Hooks for the check runs and the preview chat ------------------------------------------


def draft_failing_checks(*, chatbot: Chatbot) -> str:
    """The checks that failed on the draft as it is now, by the latest check run of exactly
    this draft ("" when none failed, none ran, or the draft changed since)."""
    return checkruns.draft_failing_checks(chatbot=chatbot)


def checks_url(*, chatbot: Chatbot) -> str | None:
    return checkruns.checks_url(chatbot=chatbot)


def preview_url(*, chatbot: Chatbot) -> str | None:
    return preview.preview_url(chatbot=chatbot)
