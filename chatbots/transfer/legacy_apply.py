"""The last step of the legacy import: applying one checked row to its chatbot, in small steps
(the chatbot, its main flow, the knowledge bases and Pinecone key, the answer flows, the extractor
flows, the default index), each reporting what it changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from django.core.exceptions import ValidationError

from accounts.models import Shop
from chatbots.models import AIEndpoint, Chatbot, Flow, KnowledgeBase
from chatbots.secrets import SecretDecryptionError, SecretValue
from chatbots.transfer.common import TransferError, _save, _secret_differs
from chatbots.transfer.legacy_checks import legacy_indexes
from chatbots.transfer.legacy_read import (
    ANSWER_COLUMNS,
    BUILTIN_ENDPOINT_NAME,
    DEFAULT_INDEX_COLUMN,
    EXTRACTOR_COLUMNS,
    INDEX_COLUMNS,
    LEGACY_ENDPOINT_NAME,
    LEGACY_ENDPOINT_URL,
    PINECONE_KEY_COLUMN,
    PLACEHOLDER_CHATFLOW_ID,
)

_BUILTIN_CANNOT_SEARCH = (
    "once it runs on a Flowise or OpenAI endpoint; the builtin one cannot search Pinecone"
)


@dataclass
class ChatbotChanges:
    chatbot_id: str
    created: bool = False
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pinecone_key: str = ""  # "", "set", "changed" or "unchanged"
    placeholder_flows: int = 0  # created disabled, waiting for their chatflow id

    @property
    def changed(self) -> bool:
        return bool(self.lines) or self.pinecone_key in ("set", "changed")


class LegacyEndpoints:
    """The shared endpoints new rows need, created only when a row first needs them."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.lines: list[str] = []
        self._builtin: AIEndpoint | None = None
        self._flowise: AIEndpoint | None = None
        self._pending: list[str] = []

    def builtin(self) -> AIEndpoint:
        if self._builtin is None:
            self._builtin = self._get(BUILTIN_ENDPOINT_NAME, AIEndpoint.Kind.BUILTIN, "")
        return self._builtin

    def flowise(self) -> AIEndpoint:
        if self._flowise is None:
            self._flowise = self._get(
                LEGACY_ENDPOINT_NAME, AIEndpoint.Kind.FLOWISE, LEGACY_ENDPOINT_URL
            )
        return self._flowise

    def _get(self, name: str, kind: str, base_url: str) -> AIEndpoint:
        endpoint = AIEndpoint.objects.filter(shop=self.shop, name=name).first()
        if endpoint is None:
            endpoint = AIEndpoint(shop=self.shop, name=name, kind=kind, base_url=base_url)
            _save(endpoint)
            self._pending.append(f"endpoint “{name}”: created ({endpoint.get_kind_display()})")
        elif endpoint.kind != kind:
            raise TransferError(
                f"The endpoint “{name}” exists but is a {endpoint.get_kind_display()} endpoint; "
                f"the import needs it to be {AIEndpoint.Kind(kind).label}. Rename it first."
            )
        return endpoint

    def commit_row(self) -> None:
        self.lines.extend(self._pending)
        self._pending.clear()

    def rollback_row(self) -> None:
        # Whatever the row created was undone with its savepoint.
        if self._pending:
            self._builtin = self._flowise = None
            self._pending.clear()


@dataclass
class _Row:
    """One row being applied: its values, the chatbot and its flows as they are now, the
    knowledge base each index of the row became, and what changed so far."""

    values: dict[str, str]
    endpoints: LegacyEndpoints
    changes: ChatbotChanges
    chatbot: Chatbot
    flows: dict[str, Flow]
    main: Flow
    own_server: AIEndpoint | None
    kb_by_index: dict[str, KnowledgeBase] = field(default_factory=dict)

    def new_flow_endpoint(self) -> AIEndpoint:
        # Legacy bots ran every flow on one Flowise server: new flows join the bot's own server
        # when it has exactly one, else the placeholder endpoint staff configure once.
        return self.own_server or self.endpoints.flowise()


def legacy_row_apply(values: dict[str, str], endpoints: LegacyEndpoints) -> ChatbotChanges:
    """Create or update the chatbot of one checked row. A ValidationError means a rule the
    checks did not foresee; the caller undoes the row's savepoint."""
    changes = ChatbotChanges(chatbot_id=values["chatbot_id"])
    chatbot = _legacy_chatbot(values["chatbot_id"], endpoints.shop, changes)
    flows = {flow.name: flow for flow in chatbot.flows.select_related("endpoint")}
    main = _legacy_main_flow(chatbot, flows, endpoints, changes)
    servers = {
        f.endpoint_id: f.endpoint
        for f in flows.values()
        if f.endpoint.kind == AIEndpoint.Kind.FLOWISE
    }
    own_server = next(iter(servers.values())) if len(servers) == 1 else None
    row = _Row(values, endpoints, changes, chatbot, flows, main, own_server)
    _legacy_knowledge_bases(row)
    _legacy_answer_flows(row)
    _legacy_extractor_flows(row)
    _legacy_default_index(row)
    return changes


def _legacy_chatbot(chatbot_id: str, shop: Shop, changes: ChatbotChanges) -> Chatbot:
    chatbot = Chatbot.objects.filter(public_id=chatbot_id).first()
    if chatbot is not None and chatbot.shop_id != shop.pk:
        # Chatbot ids are global (they are in the widget's URLs): another shop's id is taken.
        raise ValidationError(
            {"chatbot_id": f"the chatbot id “{chatbot_id}” is taken; choose another"}
        )
    if chatbot is None:
        chatbot = Chatbot(shop=shop, public_id=chatbot_id, name=chatbot_id, language="da")
        _save(chatbot)
        changes.created = True
        changes.lines.append(f"chatbot: created (name “{chatbot_id}”, language da)")
    return chatbot


def _legacy_main_flow(
    chatbot: Chatbot, flows: dict[str, Flow], endpoints: LegacyEndpoints, changes: ChatbotChanges
) -> Flow:
    """The chatbot's main flow; a chatbot without one gets a builtin answer flow "main"."""
    main = next((flow for flow in flows.values() if flow.is_main), None)
    if main is None:
        main = Flow(
            chatbot=chatbot,
            name="main",
            role=Flow.Role.ANSWER,
            is_main=True,
            endpoint=endpoints.builtin(),
        )
        _save(main)
        flows[main.name] = main
        changes.lines.append(
            f"flow main: created as the main flow on the endpoint “{main.endpoint.name}”"
        )
    return main


def _legacy_shared_key(knowledge_bases: list[KnowledgeBase]) -> str:
    """The Pinecone key the chatbot already uses, so a new index shares it (legacy: one per bot)."""
    for kb in knowledge_bases:
        api_key = _secret(kb)
        if kb.kind == KnowledgeBase.Kind.PINECONE and api_key:
            try:
                return api_key.reveal()
            except SecretDecryptionError:
                continue
    return ""


def _secret(kb: KnowledgeBase) -> SecretValue:
    # The field stores a SecretValue; django-stubs types an encrypted column as its base str.
    return cast(SecretValue, kb.api_key)


def _pinecone_kb(knowledge_bases: list[KnowledgeBase], index: str) -> KnowledgeBase | None:
    """The chatbot's Pinecone knowledge base for `index`: by index name, else by name."""
    pinecone = [kb for kb in knowledge_bases if kb.kind == KnowledgeBase.Kind.PINECONE]
    return next((kb for kb in pinecone if kb.index_name == index), None) or next(
        (kb for kb in pinecone if kb.name == index), None
    )


def _legacy_knowledge_bases(row: _Row) -> None:
    """One knowledge base per distinct index, all sharing the chatbot's Pinecone key; the row's
    key goes to the indexes it names (or, naming none, to every Pinecone index the bot has)."""
    knowledge_bases = list(row.chatbot.knowledge_bases.all())
    key = row.values.get(PINECONE_KEY_COLUMN, "")
    shared_key = key or _legacy_shared_key(knowledge_bases)
    key_states: list[str] = []
    existing_targets: list[KnowledgeBase] = []
    for index in legacy_indexes(row.values):
        kb = _pinecone_kb(knowledge_bases, index)
        if kb is None:
            kb = _legacy_knowledge_base_create(row, index, shared_key)
            knowledge_bases.append(kb)
            if key:
                key_states.append("set")
            elif not shared_key:
                row.changes.notes.append(f"knowledge base {index} has no Pinecone API key yet")
        else:
            existing_targets.append(kb)
        row.kb_by_index[index] = kb
    if not key:
        return
    if not row.kb_by_index:
        # The row names no index: the key is the chatbot's, for every Pinecone index it has.
        existing_targets = [kb for kb in knowledge_bases if kb.kind == KnowledgeBase.Kind.PINECONE]
    key_states += _legacy_key_set(existing_targets, key)
    if "changed" in key_states:
        row.changes.pinecone_key = "changed"
    elif "set" in key_states:
        row.changes.pinecone_key = "set"
    else:
        row.changes.pinecone_key = "unchanged"


def _legacy_knowledge_base_create(row: _Row, index: str, shared_key: str) -> KnowledgeBase:
    kb = KnowledgeBase(
        chatbot=row.chatbot,
        name=index,
        kind=KnowledgeBase.Kind.PINECONE,
        index_name=index,
        api_key=cast(Any, SecretValue.from_plaintext(shared_key) if shared_key else SecretValue()),
    )
    _save(kb)
    row.changes.lines.append(f"knowledge base {index}: created (Pinecone index {index})")
    return kb


def _legacy_key_set(targets: list[KnowledgeBase], key: str) -> list[str]:
    """Give each knowledge base the Pinecone key; per base "set", "changed" or "unchanged"."""
    states = []
    for kb in targets:
        current = _secret(kb)
        if not current:
            states.append("set")
        elif _secret_differs(current, key):
            states.append("changed")
        else:
            states.append("unchanged")
            continue
        kb.api_key = cast(Any, SecretValue.from_plaintext(key))
        _save(kb, ["api_key"])
    return states


def _legacy_answer_flows(row: _Row) -> None:
    """Answer flows: their router label and their Pinecone index."""
    desired: dict[str, dict[str, Any]] = {}
    for column, name in ANSWER_COLUMNS.items():
        if column in row.values:
            desired.setdefault(name, {})["routing_key"] = row.values[column]
    for column, name in INDEX_COLUMNS.items():
        if column in row.values:
            desired.setdefault(name, {})["knowledge_base"] = row.kb_by_index[row.values[column]]
    # Free the labels that move to another flow first: a swap (flow3 ⇄ flow4) would otherwise
    # trip the one-flow-per-routing-key constraint half-way.
    moving = [
        row.flows[name].pk
        for name, want in desired.items()
        if name in row.flows
        and "routing_key" in want
        and row.flows[name].routing_key
        and row.flows[name].routing_key != want["routing_key"]
    ]
    if moving:
        Flow.objects.filter(pk__in=moving).update(routing_key="")
    for name in ANSWER_COLUMNS.values():
        if name not in desired:
            continue
        flow = row.flows.get(name)
        if flow is None:
            _legacy_answer_flow_create(row, name, desired[name])
        else:
            _legacy_answer_flow_update(row, flow, desired[name])


def _legacy_answer_flow_create(row: _Row, name: str, want: dict[str, Any]) -> None:
    kb = want.get("knowledge_base")
    flow = Flow(
        chatbot=row.chatbot,
        name=name,
        role=Flow.Role.ANSWER,
        routing_key=want.get("routing_key", ""),
        endpoint=row.new_flow_endpoint(),
        target=PLACEHOLDER_CHATFLOW_ID,
        knowledge_base=kb,
        enabled=False,
    )
    _save(flow)
    row.flows[name] = flow
    details = [f"routing key {flow.routing_key}" if flow.routing_key else "no routing key"]
    if kb is not None:
        details.append(f"knowledge base {kb.name}")
    row.changes.lines.append(
        f"flow {name}: created ({', '.join(details)}) on “{flow.endpoint.name}”, "
        "disabled: needs a chatflow id"
    )
    row.changes.placeholder_flows += 1


def _legacy_answer_flow_update(row: _Row, flow: Flow, want: dict[str, Any]) -> None:
    changed = []
    if "routing_key" in want and flow.routing_key != want["routing_key"]:
        row.changes.lines.append(
            f"flow {flow.name}: routing key {flow.routing_key or '(none)'} → {want['routing_key']}"
        )
        flow.routing_key = want["routing_key"]
        changed.append("routing_key")
    kb = want.get("knowledge_base")
    if kb is not None and flow.knowledge_base_id != kb.pk:
        note = f"link knowledge base {kb.name} to flow {flow.name} {_BUILTIN_CANNOT_SEARCH}"
        if _legacy_link(row, flow, kb, note):
            changed.append("knowledge_base")
    if changed:
        _save(flow, changed)


def _legacy_link(row: _Row, flow: Flow, kb: KnowledgeBase, note: str) -> bool:
    """Point `flow` at `kb` (unsaved) unless it runs on the builtin endpoint, which cannot search
    Pinecone: then only `note` tells staff to link it later. True when the flow changed."""
    if flow.endpoint.kind == AIEndpoint.Kind.BUILTIN:
        row.changes.notes.append(note)
        return False
    row.changes.lines.append(f"flow {flow.name}: knowledge base → {kb.name}")
    flow.knowledge_base = kb
    return True


def _legacy_extractor_flows(row: _Row) -> None:
    """Extractor flows: the label says for which answer flow they run (Flow.applies_to)."""
    answer_keys = {f.routing_key for f in row.flows.values() if f.role == Flow.Role.ANSWER}
    for column, name in EXTRACTOR_COLUMNS.items():
        if column not in row.values:
            continue
        label = row.values[column]
        flow = row.flows.get(name)
        if flow is None:
            _legacy_extractor_flow_create(row, name, label)
        elif flow.applies_to != label:
            row.changes.lines.append(
                f"flow {name}: applies to {flow.applies_to or '(all)'} → {label}"
            )
            flow.applies_to = label
            _save(flow, ["applies_to"])
        if label not in answer_keys and row.changes.lines:
            row.changes.notes.append(
                f"flow {name} applies to routing key {label}, but no answer flow has that key yet"
            )


def _legacy_extractor_flow_create(row: _Row, name: str, label: str) -> None:
    flow = Flow(
        chatbot=row.chatbot,
        name=name,
        role=Flow.Role.EXTRACTOR,
        applies_to=label,
        endpoint=row.new_flow_endpoint(),
        target=PLACEHOLDER_CHATFLOW_ID,
        enabled=False,
    )
    _save(flow)
    row.flows[name] = flow
    row.changes.lines.append(
        f"flow {name}: created (extractor for routing key {label}) on "
        f"“{flow.endpoint.name}”, disabled: needs a chatflow id"
    )
    row.changes.placeholder_flows += 1


def _legacy_default_index(row: _Row) -> None:
    """The default index belongs to the main flow."""
    if DEFAULT_INDEX_COLUMN not in row.values:
        return
    kb = row.kb_by_index[row.values[DEFAULT_INDEX_COLUMN]]
    if row.main.knowledge_base_id == kb.pk:
        return
    note = (
        f"link knowledge base {kb.name} (the default index) to the main flow "
        f"{_BUILTIN_CANNOT_SEARCH}"
    )
    if _legacy_link(row, row.main, kb, note):
        _save(row.main, ["knowledge_base"])
