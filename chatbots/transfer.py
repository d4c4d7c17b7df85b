"""Moving chatbot configuration in and out of the database: the legacy `chatbot_settings` import,
the JSON export/import of whole configurations, and re-encrypting stored secrets."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import slug_re
from django.db import models, transaction
from django.db.models import ProtectedError
from redis.exceptions import RedisError

from accounts.models import Shop
from chatbots import secrets as secret_store
from chatbots import selectors
from chatbots.models import (
    AIEndpoint,
    Chatbot,
    Flow,
    KnowledgeBase,
    KnowledgeEntry,
    PromptTemplate,
    TemplateAssignment,
    TextRule,
)
from chatbots.secrets import EncryptedSecretField, SecretDecryptionError, SecretValue

logger = logging.getLogger(__name__)


class TransferError(Exception):
    """The input cannot be used as a whole (unreadable, wrong format, invalid); nothing was saved."""


def transfer_shop(*, slug: str | None, create_name: str = "") -> Shop:
    """The shop an import writes into (--shop): named by slug, or the only one there is.

    With `create_name` a missing shop is created under that name; otherwise a typo in --shop is
    an error rather than a new, empty tenant.
    """
    if not slug:
        shops = list(Shop.objects.order_by("slug")[:2])
        if len(shops) == 1:
            return shops[0]
        if not shops:
            raise TransferError(
                "There is no shop yet: name one with --shop <slug> --create-shop “<name>”."
            )
        raise TransferError("Several shops exist: say which with --shop <slug>.")
    shop = Shop.objects.filter(slug=slug).first()
    if shop is not None:
        return shop
    if create_name:
        shop = Shop(slug=slug, name=create_name)
        try:
            shop.full_clean()
        except ValidationError as exc:
            raise TransferError("; ".join(_error_lines("--shop", exc))) from exc
        shop.save()
        return shop
    known = ", ".join(Shop.objects.order_by("slug").values_list("slug", flat=True)[:20])
    raise TransferError(
        f"No shop “{_short(slug)}” (shops: {known or 'none'}). Create it with --create-shop "
        "“<name>”, or in the admin."
    )


def _short(value: Any, limit: int = 60) -> str:
    # Keeps each reported problem on one line of the output.
    text = str(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_lines(prefix: str, exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        lines = []
        for name, messages in exc.message_dict.items():
            where = prefix if name == "__all__" else f"{prefix}.{name}" if prefix else name
            lines.extend(f"{where}: {message}" if where else message for message in messages)
        return lines
    return [f"{prefix}: {message}" if prefix else message for message in exc.messages]


def _secret_differs(current: SecretValue, plaintext: str) -> bool:
    if not current:
        return bool(plaintext)
    try:
        return current.reveal() != plaintext
    except SecretDecryptionError:
        # A value no configured key can read is as good as lost: replacing it is a change.
        return True


def _save(obj: models.Model, changed: list[str] | None = None, *, validated: bool = False) -> None:
    """Validate and write; an existing row writes only the changed columns (and updated_at)."""
    if not validated:
        obj.full_clean()
    if obj.pk is None or changed is None:
        obj.save()
        return
    fields = list(changed)
    if any(f.name == "updated_at" for f in obj._meta.concrete_fields):
        fields.append("updated_at")
    obj.save(update_fields=fields)


# --------------------------------------------------------------------------------------------
# Legacy `chatbot_settings` import
# --------------------------------------------------------------------------------------------

# Router labels of the legacy answer flows: column -> flow name.
ANSWER_COLUMNS = {
    "flow2_key": "flow2",
    "flow3_key": "flow3",
    "flow4_key": "flow4",
    "apiflow_key": "apiflow",
}
# Legacy extractor flows: column -> flow name; the value is the label they run for (applies_to).
EXTRACTOR_COLUMNS = {"metadata_key": "metadata", "metadata2_key": "metadata2"}
# Pinecone index of each legacy answer flow: column -> flow name.
INDEX_COLUMNS = {
    "flow2_knowledgebase_index": "flow2",
    "flow3_knowledgebase_index": "flow3",
    "flow4_knowledgebase_index": "flow4",
    "apiflow_knowledgebase_index": "apiflow",
}
DEFAULT_INDEX_COLUMN = "knowledgebase_index_endpoint"
PINECONE_KEY_COLUMN = "pinecone_api_key"
LEGACY_COLUMNS = (
    "chatbot_id",
    *ANSWER_COLUMNS,
    *EXTRACTOR_COLUMNS,
    PINECONE_KEY_COLUMN,
    DEFAULT_INDEX_COLUMN,
    *INDEX_COLUMNS,
)
BUILTIN_ENDPOINT_NAME = "Builtin"
LEGACY_ENDPOINT_NAME = "Legacy Flowise (configure me)"
LEGACY_ENDPOINT_URL = "https://flowise.invalid"
# The legacy table has no chatflow ids. Flow.clean wants a UUID for a Flowise flow, so new flows
# get the nil UUID (obviously not a real chatflow) and stay disabled until staff enter the real one.
PLACEHOLDER_CHATFLOW_ID = str(uuid.UUID(int=0))
# Pinecone's rule for index names: lowercase letters, digits and dashes, at most 45 characters.
_PINECONE_INDEX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?$")
# pgAdmin and psql write SQL NULL like this in CSV dumps.
_CSV_NULLS = {"NULL", "\\N"}


@dataclass
class LegacyRow:
    where: str  # "line 3" for CSV (the header is line 1), "row 2" for JSON
    data: dict[str, Any]
    problem: str = ""  # set when the row could not even be read as a row


@dataclass
class LegacyFile:
    rows: list[LegacyRow]
    columns: list[str]

    @property
    def ignored_columns(self) -> list[str]:
        return [c for c in self.columns if c not in LEGACY_COLUMNS]


@dataclass
class RejectedRow:
    where: str
    chatbot_id: str
    reasons: list[str]


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


@dataclass
class LegacyImportResult:
    ignored_columns: list[str]
    rejected: list[RejectedRow]
    chatbots: list[ChatbotChanges]
    endpoint_lines: list[str]
    saved: bool

    @property
    def changed(self) -> bool:
        return bool(self.endpoint_lines) or any(c.changed for c in self.chatbots)


def legacy_settings_read(*, path: Path) -> LegacyFile:
    """Read a dump of the legacy table: CSV with a header row, or JSON (a list of objects)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise TransferError(f"Cannot read {path}: {exc.strerror}.") from exc
    except UnicodeDecodeError as exc:
        raise TransferError(f"{path} is not UTF-8 text.") from exc
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix != ".csv" and text.lstrip().startswith("[")):
        legacy = _legacy_read_json(text)
    else:
        legacy = _legacy_read_csv(text)
    if "chatbot_id" not in legacy.columns and legacy.rows:
        raise TransferError(
            "The file has no chatbot_id column, so no row can be matched to a chatbot "
            f"(columns found: {', '.join(legacy.columns) or 'none'})."
        )
    return legacy


def _legacy_read_csv(text: str) -> LegacyFile:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return LegacyFile(rows=[], columns=[])
    except csv.Error as exc:
        raise TransferError(f"Line 1 is not a CSV header: {exc}.") from exc
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise TransferError(f"The header names these columns twice: {', '.join(duplicated)}.")
    rows = []
    previous_end = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise TransferError(f"Line {reader.line_num}: not valid CSV ({exc}).") from exc
        # A quoted value may span lines; the row is numbered by the line it starts on.
        where = f"line {previous_end + 1}"
        previous_end = reader.line_num
        if not record or all(not value.strip() for value in record):
            continue
        data = {
            name: (None if value in _CSV_NULLS else value)
            for name, value in zip(header, record, strict=False)
        }
        problem = ""
        if len(record) != len(header):
            problem = f"has {len(record)} values but the header names {len(header)} columns"
        rows.append(LegacyRow(where=where, data=data, problem=problem))
    return LegacyFile(rows=rows, columns=header)


def _legacy_read_json(text: str) -> LegacyFile:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TransferError(
            f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from exc
    if not isinstance(items, list):
        raise TransferError("The JSON file must hold a list of row objects.")
    rows, columns = [], []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            rows.append(LegacyRow(where=f"row {number}", data={}, problem="is not an object"))
            continue
        for name in item:
            if name not in columns:
                columns.append(name)
        rows.append(LegacyRow(where=f"row {number}", data=item))
    return LegacyFile(rows=rows, columns=columns)


def _is_slug(value: str, max_length: int) -> bool:
    return len(value) <= max_length and bool(slug_re.match(value))


def _legacy_values(row: LegacyRow) -> tuple[dict[str, str], list[str]]:
    """The row's known columns that are set (empty and NULL mean "not set"), and type problems."""
    values, reasons = {}, []
    for column in LEGACY_COLUMNS:
        value = row.data.get(column)
        if value is None:
            continue
        if not isinstance(value, str):
            reasons.append(f"{column} must be text, not {type(value).__name__}")
            continue
        value = value.strip()
        if value:
            values[column] = value
    return values, reasons


def _legacy_row_reasons(values: dict[str, str]) -> list[str]:
    """Problems visible in the row alone."""
    reasons = []
    chatbot_id = values.get("chatbot_id")
    if not chatbot_id:
        reasons.append("chatbot_id is empty")
    elif not _is_slug(chatbot_id, 64):
        reasons.append(
            f"chatbot_id “{_short(chatbot_id)}” is not a valid id (letters, digits, dashes and "
            "underscores, at most 64 characters)"
        )
    for column in (*ANSWER_COLUMNS, *EXTRACTOR_COLUMNS):
        label = values.get(column)
        if label and not _is_slug(label, 50):
            reasons.append(
                f"{column} “{_short(label)}” is not a routing key (letters, digits, dashes and "
                "underscores, at most 50 characters)"
            )
    for column in (DEFAULT_INDEX_COLUMN, *INDEX_COLUMNS):
        index = values.get(column)
        if index and not _PINECONE_INDEX.match(index):
            reasons.append(
                f"{column} “{_short(index)}” is not a Pinecone index name (lowercase letters, "
                "digits and dashes, at most 45 characters)"
            )
    columns_by_label: dict[str, list[str]] = defaultdict(list)
    for column in ANSWER_COLUMNS:
        if column in values:
            columns_by_label[values[column]].append(column)
    for label, columns in columns_by_label.items():
        if len(columns) > 1:
            reasons.append(
                f"{' and '.join(columns)} all give the routing key “{label}” to different answer "
                "flows; one router label can select only one flow"
            )
    return reasons


def _legacy_indexes(values: dict[str, str]) -> list[str]:
    found = []
    for column in (DEFAULT_INDEX_COLUMN, *INDEX_COLUMNS):
        index = values.get(column)
        if index and index not in found:
            found.append(index)
    return found


def _legacy_database_reasons(values: dict[str, str]) -> list[str]:
    """Problems that appear only against what the database already holds for this chatbot."""
    reasons = []
    chatbot = Chatbot.objects.filter(public_id=values["chatbot_id"]).first()
    indexes = _legacy_indexes(values)
    if chatbot is None:
        if PINECONE_KEY_COLUMN in values and not indexes:
            reasons.append(
                "pinecone_api_key is set but no *_knowledgebase_index column names an index to "
                "use it with"
            )
        return reasons
    flows = {flow.name: flow for flow in chatbot.flows.all()}
    roles = {name: Flow.Role.ANSWER for name in (*ANSWER_COLUMNS.values(), *INDEX_COLUMNS.values())}
    roles.update({name: Flow.Role.EXTRACTOR for name in EXTRACTOR_COLUMNS.values()})
    for column, name in {**ANSWER_COLUMNS, **INDEX_COLUMNS, **EXTRACTOR_COLUMNS}.items():
        flow = flows.get(name)
        if column in values and flow is not None and flow.role != roles[name]:
            reasons.append(
                f"{column} needs flow “{name}” to have the role {roles[name]}, but this "
                f"chatbot's flow “{name}” has the role {flow.role}"
            )
    if not any(flow.is_main for flow in flows.values()) and "main" in flows:
        reasons.append(
            "the chatbot has no main flow and its flow “main” is not marked as main; fix that in "
            "the admin first"
        )
    new_keys = {values[column]: name for column, name in ANSWER_COLUMNS.items() if column in values}
    relabelled = set(new_keys.values())
    for flow in flows.values():
        owner = new_keys.get(flow.routing_key)
        # A flow the row relabels gives its old key up, so keys may move between those flows.
        if owner and flow.name != owner and flow.name not in relabelled:
            column = next(c for c, n in ANSWER_COLUMNS.items() if n == owner)
            reasons.append(
                f"{column} gives the routing key “{flow.routing_key}” to flow “{owner}”, but "
                f"this chatbot's flow “{flow.name}” already has it"
            )
    knowledge_bases = list(chatbot.knowledge_bases.all())
    for index in indexes:
        pinecone = any(
            kb.kind == KnowledgeBase.Kind.PINECONE and index in (kb.index_name, kb.name)
            for kb in knowledge_bases
        )
        if not pinecone and any(kb.name == index for kb in knowledge_bases):
            reasons.append(
                f"the index “{index}” would become a knowledge base of that name, but this "
                "chatbot already has a builtin knowledge base called so"
            )
    if (
        PINECONE_KEY_COLUMN in values
        and not indexes
        and not any(kb.kind == KnowledgeBase.Kind.PINECONE for kb in knowledge_bases)
    ):
        reasons.append(
            "pinecone_api_key is set but neither the row nor the chatbot has a Pinecone index to "
            "use it with"
        )
    return reasons


class _LegacyEndpoints:
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


def _legacy_shared_key(knowledge_bases: list[KnowledgeBase]) -> str:
    """The Pinecone key the chatbot already uses, so a new index shares it (legacy: one per bot)."""
    for kb in knowledge_bases:
        if kb.kind == KnowledgeBase.Kind.PINECONE and kb.api_key:
            try:
                return kb.api_key.reveal()
            except SecretDecryptionError:
                continue
    return ""


def _legacy_apply(values: dict[str, str], endpoints: _LegacyEndpoints) -> ChatbotChanges:
    chatbot_id = values["chatbot_id"]
    changes = ChatbotChanges(chatbot_id=chatbot_id)
    lines, notes = changes.lines, changes.notes

    chatbot = Chatbot.objects.filter(public_id=chatbot_id).first()
    if chatbot is not None and chatbot.shop_id != endpoints.shop.pk:
        # Chatbot ids are global (they are in the widget's URLs): another shop's id is taken.
        raise ValidationError(
            {"chatbot_id": f"the chatbot id “{chatbot_id}” is taken; choose another"}
        )
    if chatbot is None:
        chatbot = Chatbot(shop=endpoints.shop, public_id=chatbot_id, name=chatbot_id, language="da")
        _save(chatbot)
        changes.created = True
        lines.append(f"chatbot: created (name “{chatbot_id}”, language da)")

    flows = {flow.name: flow for flow in chatbot.flows.select_related("endpoint")}
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
        lines.append(f"flow main: created as the main flow on the endpoint “{main.endpoint.name}”")

    # Legacy bots ran every flow on one Flowise server: new flows join the bot's own server when
    # it has exactly one, else the placeholder endpoint staff configure once.
    servers = {
        f.endpoint_id: f.endpoint
        for f in flows.values()
        if f.endpoint.kind == AIEndpoint.Kind.FLOWISE
    }
    own_server = next(iter(servers.values())) if len(servers) == 1 else None

    def new_flow_endpoint() -> AIEndpoint:
        return own_server or endpoints.flowise()

    # Knowledge bases: one per distinct index, all sharing the chatbot's Pinecone key.
    knowledge_bases = list(chatbot.knowledge_bases.all())
    key = values.get(PINECONE_KEY_COLUMN, "")
    shared_key = key or _legacy_shared_key(knowledge_bases)
    kb_by_index: dict[str, KnowledgeBase] = {}
    key_states: list[str] = []
    existing_targets: list[KnowledgeBase] = []
    for index in _legacy_indexes(values):
        kb = next(
            (
                kb
                for kb in knowledge_bases
                if kb.kind == KnowledgeBase.Kind.PINECONE and kb.index_name == index
            ),
            None,
        ) or next(
            (
                kb
                for kb in knowledge_bases
                if kb.kind == KnowledgeBase.Kind.PINECONE and kb.name == index
            ),
            None,
        )
        if kb is None:
            kb = KnowledgeBase(
                chatbot=chatbot,
                name=index,
                kind=KnowledgeBase.Kind.PINECONE,
                index_name=index,
                api_key=SecretValue.from_plaintext(shared_key) if shared_key else SecretValue(),
            )
            _save(kb)
            knowledge_bases.append(kb)
            lines.append(f"knowledge base {index}: created (Pinecone index {index})")
            if key:
                key_states.append("set")
            elif not shared_key:
                notes.append(f"knowledge base {index} has no Pinecone API key yet")
        else:
            existing_targets.append(kb)
        kb_by_index[index] = kb

    if key:
        if not kb_by_index:
            # The row names no index: the key is the chatbot's, for every Pinecone index it has.
            existing_targets = [
                kb for kb in knowledge_bases if kb.kind == KnowledgeBase.Kind.PINECONE
            ]
        for kb in existing_targets:
            if not kb.api_key:
                key_states.append("set")
            elif _secret_differs(kb.api_key, key):
                key_states.append("changed")
            else:
                key_states.append("unchanged")
                continue
            kb.api_key = SecretValue.from_plaintext(key)
            _save(kb, ["api_key"])
        if "changed" in key_states:
            changes.pinecone_key = "changed"
        elif "set" in key_states:
            changes.pinecone_key = "set"
        else:
            changes.pinecone_key = "unchanged"

    # Answer flows: their router label and their Pinecone index.
    desired: dict[str, dict[str, Any]] = {}
    for column, name in ANSWER_COLUMNS.items():
        if column in values:
            desired.setdefault(name, {})["routing_key"] = values[column]
    for column, name in INDEX_COLUMNS.items():
        if column in values:
            desired.setdefault(name, {})["knowledge_base"] = kb_by_index[values[column]]
    # Free the labels that move to another flow first: a swap (flow3 ⇄ flow4) would otherwise
    # trip the one-flow-per-routing-key constraint half-way.
    moving = [
        flows[name].pk
        for name, want in desired.items()
        if name in flows
        and "routing_key" in want
        and flows[name].routing_key
        and flows[name].routing_key != want["routing_key"]
    ]
    if moving:
        Flow.objects.filter(pk__in=moving).update(routing_key="")
    for name in ANSWER_COLUMNS.values():
        if name not in desired:
            continue
        want = desired[name]
        flow = flows.get(name)
        kb = want.get("knowledge_base")
        if flow is None:
            flow = Flow(
                chatbot=chatbot,
                name=name,
                role=Flow.Role.ANSWER,
                routing_key=want.get("routing_key", ""),
                endpoint=new_flow_endpoint(),
                target=PLACEHOLDER_CHATFLOW_ID,
                knowledge_base=kb,
                enabled=False,
            )
            _save(flow)
            flows[name] = flow
            details = [f"routing key {flow.routing_key}" if flow.routing_key else "no routing key"]
            if kb is not None:
                details.append(f"knowledge base {kb.name}")
            lines.append(
                f"flow {name}: created ({', '.join(details)}) on “{flow.endpoint.name}”, "
                "disabled: needs a chatflow id"
            )
            changes.placeholder_flows += 1
            continue
        changed = []
        if "routing_key" in want and flow.routing_key != want["routing_key"]:
            lines.append(
                f"flow {name}: routing key {flow.routing_key or '(none)'} → {want['routing_key']}"
            )
            flow.routing_key = want["routing_key"]
            changed.append("routing_key")
        if kb is not None and flow.knowledge_base_id != kb.pk:
            if flow.endpoint.kind == AIEndpoint.Kind.BUILTIN:
                notes.append(
                    f"link knowledge base {kb.name} to flow {name} once it runs on a Flowise or "
                    "OpenAI endpoint; the builtin one cannot search Pinecone"
                )
            else:
                lines.append(f"flow {name}: knowledge base → {kb.name}")
                flow.knowledge_base = kb
                changed.append("knowledge_base")
        if changed:
            _save(flow, changed)

    # Extractor flows: the label says for which answer flow they run (Flow.applies_to).
    answer_keys = {flow.routing_key for flow in flows.values() if flow.role == Flow.Role.ANSWER}
    for column, name in EXTRACTOR_COLUMNS.items():
        if column not in values:
            continue
        label = values[column]
        flow = flows.get(name)
        if flow is None:
            flow = Flow(
                chatbot=chatbot,
                name=name,
                role=Flow.Role.EXTRACTOR,
                applies_to=label,
                endpoint=new_flow_endpoint(),
                target=PLACEHOLDER_CHATFLOW_ID,
                enabled=False,
            )
            _save(flow)
            flows[name] = flow
            lines.append(
                f"flow {name}: created (extractor for routing key {label}) on "
                f"“{flow.endpoint.name}”, disabled: needs a chatflow id"
            )
            changes.placeholder_flows += 1
        elif flow.applies_to != label:
            lines.append(f"flow {name}: applies to {flow.applies_to or '(all)'} → {label}")
            flow.applies_to = label
            _save(flow, ["applies_to"])
        if label not in answer_keys and changes.lines:
            notes.append(
                f"flow {name} applies to routing key {label}, but no answer flow has that key yet"
            )

    # The default index belongs to the main flow.
    if DEFAULT_INDEX_COLUMN in values:
        kb = kb_by_index[values[DEFAULT_INDEX_COLUMN]]
        if main.knowledge_base_id != kb.pk:
            if main.endpoint.kind == AIEndpoint.Kind.BUILTIN:
                notes.append(
                    f"link knowledge base {kb.name} (the default index) to the main flow once it "
                    "runs on a Flowise or OpenAI endpoint; the builtin one cannot search Pinecone"
                )
            else:
                lines.append(f"flow {main.name}: knowledge base → {kb.name}")
                main.knowledge_base = kb
                _save(main, ["knowledge_base"])
    return changes


def legacy_settings_import(
    *, legacy: LegacyFile, shop: Shop, skip_bad_rows: bool = False, dry_run: bool = False
) -> LegacyImportResult:
    """Create or update `shop`'s chatbots from legacy rows, all or nothing (unless
    skip_bad_rows)."""
    rejected: list[RejectedRow] = []
    candidates: list[tuple[LegacyRow, dict[str, str]]] = []
    for row in legacy.rows:
        values, reasons = _legacy_values(row)
        if row.problem:
            reasons.insert(0, row.problem)
        reasons += _legacy_row_reasons(values)
        if reasons:
            rejected.append(RejectedRow(row.where, _short(values.get("chatbot_id", "")), reasons))
        else:
            candidates.append((row, values))

    places: dict[str, list[str]] = defaultdict(list)
    for row, values in candidates:
        places[values["chatbot_id"]].append(row.where)
    good: list[tuple[LegacyRow, dict[str, str]]] = []
    for row, values in candidates:
        where = places[values["chatbot_id"]]
        if len(where) > 1:
            reason = (
                f"chatbot_id “{values['chatbot_id']}” appears more than once ({', '.join(where)}); "
                "keep one row per chatbot"
            )
            rejected.append(RejectedRow(row.where, values["chatbot_id"], [reason]))
        else:
            good.append((row, values))

    applied: list[ChatbotChanges] = []
    endpoints = _LegacyEndpoints(shop)
    saved = False
    with transaction.atomic():
        checked = []
        for row, values in good:
            reasons = _legacy_database_reasons(values)
            if reasons:
                rejected.append(RejectedRow(row.where, values["chatbot_id"], reasons))
            else:
                checked.append((row, values))
        if not rejected or skip_bad_rows:
            for row, values in checked:
                try:
                    with transaction.atomic():
                        changes = _legacy_apply(values, endpoints)
                except ValidationError as exc:
                    # A rule the checks above did not foresee: the row's own savepoint is undone.
                    endpoints.rollback_row()
                    reasons = _error_lines("", exc)
                    rejected.append(RejectedRow(row.where, values["chatbot_id"], reasons))
                    continue
                endpoints.commit_row()
                applied.append(changes)
        saved = not dry_run and (not rejected or skip_bad_rows)
        if not saved:
            transaction.set_rollback(True)

    rejected.sort(key=lambda r: _row_number(r.where))
    if saved:
        for changes in applied:
            if changes.changed:
                logger.info(
                    "legacy import: chatbot %s %s",
                    changes.chatbot_id,
                    "created" if changes.created else "updated",
                )
    return LegacyImportResult(
        ignored_columns=legacy.ignored_columns,
        rejected=rejected,
        chatbots=applied,
        endpoint_lines=endpoints.lines,
        saved=saved,
    )


def _row_number(where: str) -> int:
    return int(where.rsplit(" ", 1)[-1])


# --------------------------------------------------------------------------------------------
# JSON export / import of whole configurations
# --------------------------------------------------------------------------------------------

DOCUMENT_FORMAT = "chatbot-config"
DOCUMENT_VERSION = 1
CHATBOT_FIELDS = (
    "public_id",
    "name",
    "language",
    "active",
    "greeting",
    "image_upload_enabled",
    "widget_key",
    "allowed_origins",
    "timezone",
    "opening_hours",
    "contact_email",
    "contact_phone",
    "routing_mode",
    "message_rate_limit",
    "topics",
)
ENDPOINT_FIELDS = (
    "name",
    "kind",
    "base_url",
    "connect_timeout",
    "read_timeout",
    "total_timeout",
    "pool_size",
    "default_model",
)
# Uploaded documents and their chunks are not part of the document (files; docs/knowledge.md).
KNOWLEDGE_BASE_FIELDS = (
    "name",
    "kind",
    "index_name",
    "host",
    "namespace",
    "control_url",
    "embedding_model",
    "chunk_size",
    "chunk_overlap",
)
ENTRY_FIELDS = ("title", "text", "tags")
FLOW_FIELDS = (
    "name",
    "role",
    "is_main",
    "routing_key",
    "applies_to",
    "target",
    "namespace",
    "top_k",
    "enabled",
)
TEMPLATE_FIELDS = ("name", "description", "text", "variables")
RULE_FIELDS = ("kind", "find", "replace", "position")


def _secret_out(value: SecretValue, *, include: bool, where: str) -> Any:
    if not include:
        return {"set": bool(value)}
    if not value:
        return ""
    try:
        return value.reveal()
    except SecretDecryptionError as exc:
        raise TransferError(
            f"{where}: the stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS "
            "(see docs/secrets.md)."
        ) from exc


def chatbots_export(
    *, shop: Shop | None = None, public_ids: list[str] | None = None, include_secrets: bool = False
) -> dict[str, Any]:
    """The configuration of the given chatbots (all of `shop`'s, or of every shop, if none
    given) as a JSON-ready document."""
    chatbots = Chatbot.objects.order_by("public_id")
    if shop is not None:
        chatbots = chatbots.filter(shop=shop)
    if public_ids:
        chatbots = chatbots.filter(public_id__in=public_ids)
        missing = sorted(set(public_ids) - set(chatbots.values_list("public_id", flat=True)))
        if missing:
            raise TransferError(f"No chatbot with id {', '.join(missing)}.")
    # Endpoint and template names are unique only within a shop; one document holds one
    # shop's, or two shops' "Flowise production" would become one endpoint on import.
    shops = sorted(set(chatbots.values_list("shop__slug", flat=True)))
    if len(shops) > 1:
        raise TransferError(
            f"The chatbots chosen belong to several shops ({', '.join(shops[:5])}): export one "
            "shop at a time with --shop <slug>."
        )
    chatbots = chatbots.prefetch_related(
        "knowledge_bases__entries",
        "knowledge_bases__embedding_endpoint",
        "flows__endpoint",
        "flows__knowledge_base",
        "flows__template_assignment__template",
        "text_rules",
    )
    endpoints: dict[str, AIEndpoint] = {}
    templates: dict[str, PromptTemplate] = {}
    documents = []
    for chatbot in chatbots:
        document = {name: getattr(chatbot, name) for name in CHATBOT_FIELDS}
        document["knowledge_bases"] = []
        for kb in sorted(chatbot.knowledge_bases.all(), key=lambda kb: kb.name):
            item = {name: getattr(kb, name) for name in KNOWLEDGE_BASE_FIELDS}
            item["embedding_endpoint"] = (
                kb.embedding_endpoint.name if kb.embedding_endpoint else None
            )
            if kb.embedding_endpoint:
                endpoints[kb.embedding_endpoint.name] = kb.embedding_endpoint
            item["api_key"] = _secret_out(
                kb.api_key,
                include=include_secrets,
                where=f"chatbot {chatbot.public_id}, knowledge base {kb.name}",
            )
            item["entries"] = sorted(
                (
                    {"title": e.title, "text": e.text, "tags": list(e.tags)}
                    for e in kb.entries.all()
                ),
                key=lambda e: (e["title"], e["text"], e["tags"]),
            )
            document["knowledge_bases"].append(item)
        document["flows"] = []
        for flow in sorted(chatbot.flows.all(), key=lambda f: f.name):
            item = {name: getattr(flow, name) for name in FLOW_FIELDS}
            item["endpoint"] = flow.endpoint.name
            item["knowledge_base"] = flow.knowledge_base.name if flow.knowledge_base else None
            assignment = getattr(flow, "template_assignment", None)
            item["template"] = (
                {"name": assignment.template.name, "overrides": assignment.overrides}
                if assignment
                else None
            )
            endpoints[flow.endpoint.name] = flow.endpoint
            if assignment:
                templates[assignment.template.name] = assignment.template
            document["flows"].append(item)
        document["text_rules"] = [
            {name: getattr(rule, name) for name in RULE_FIELDS}
            for rule in sorted(chatbot.text_rules.all(), key=lambda r: (r.position, r.pk))
        ]
        documents.append(document)
    endpoint_documents = []
    for name in sorted(endpoints):
        endpoint = endpoints[name]
        item = {field_name: getattr(endpoint, field_name) for field_name in ENDPOINT_FIELDS}
        item["api_key"] = _secret_out(
            endpoint.api_key, include=include_secrets, where=f"endpoint {endpoint.name}"
        )
        endpoint_documents.append(item)
    return {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "chatbots": documents,
        "endpoints": endpoint_documents,
        "prompt_templates": [
            {name: getattr(templates[t], name) for name in TEMPLATE_FIELDS}
            for t in sorted(templates)
        ],
    }


@dataclass
class ConfigImportResult:
    lines: list[str]
    notes: list[str]
    saved: bool

    @property
    def changed(self) -> bool:
        return bool(self.lines)


class _ConfigImporter:
    """Creates or updates rows by natural key, collecting every problem before giving up."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.lines: list[str] = []
        self.notes: list[str] = []
        self.errors: list[str] = []

    # -- helpers ---------------------------------------------------------------------------

    def _object(self, item: Any, path: str, allowed: set[str], key: str) -> dict | None:
        if not isinstance(item, dict):
            self.errors.append(f"{path}: must be an object")
            return None
        unknown = sorted(set(item) - allowed)
        if unknown:
            self.errors.append(f"{path}: unknown field {', '.join(unknown)}")
            return None
        if not isinstance(item.get(key), str) or not item[key]:
            self.errors.append(f"{path}.{key}: required, a non-empty string")
            return None
        return item

    def _list(self, value: Any, path: str) -> list:
        if not isinstance(value, list):
            self.errors.append(f"{path}: must be a list")
            return []
        return value

    def _upsert(
        self,
        *,
        model: type[models.Model],
        lookup: dict[str, Any],
        values: dict[str, Any],
        secret_values: dict[str, Any],
        path: str,
        label: str,
    ) -> models.Model | None:
        obj = model._default_manager.filter(**lookup).first()
        created = obj is None
        if created:
            obj = model(**lookup)
        attnames = {name: model._meta.get_field(name).attname for name in values}
        before = {name: getattr(obj, attnames[name]) for name in values}
        for name, value in values.items():
            setattr(obj, name, value)
        changed_secrets = []
        for name, value in secret_values.items():
            current: SecretValue = getattr(obj, name)
            if isinstance(value, dict):
                # A marker says only whether the source had a value: it never clears ours.
                if set(value) != {"set"} or not isinstance(value["set"], bool):
                    self.errors.append(f'{path}.{name}: write the secret or {{"set": true}}')
                    return None
                if value["set"] and not current:
                    self.notes.append(
                        f"{label}: {name} was exported without --include-secrets; set it in "
                        "the admin"
                    )
            elif isinstance(value, str):
                if _secret_differs(current, value):
                    setattr(
                        obj, name, SecretValue.from_plaintext(value) if value else SecretValue()
                    )
                    changed_secrets.append(name)
            else:
                self.errors.append(f'{path}.{name}: write the secret or {{"set": true}}')
                return None
        try:
            obj.full_clean()
        except ValidationError as exc:
            self.errors.extend(_error_lines(path, exc))
            return None
        changed = [name for name in values if getattr(obj, attnames[name]) != before[name]]
        changed += changed_secrets
        if created:
            obj.save()
            self.lines.append(f"{label}: created")
        elif changed:
            _save(obj, changed, validated=True)
            self.lines.append(f"{label}: updated {', '.join(changed)}")
        return obj

    # -- document --------------------------------------------------------------------------

    def run(self, document: Any) -> None:
        if not isinstance(document, dict) or document.get("format") != DOCUMENT_FORMAT:
            raise TransferError(f"Not a {DOCUMENT_FORMAT} document (its “format” must say so).")
        if document.get("version") != DOCUMENT_VERSION:
            raise TransferError(
                f"Version {document.get('version')!r} is not supported; this program reads "
                f"version {DOCUMENT_VERSION}."
            )
        allowed = {"format", "version", "exported_at", "chatbots", "endpoints", "prompt_templates"}
        unknown = sorted(set(document) - allowed)
        if unknown:
            raise TransferError(f"Unknown top-level field {', '.join(unknown)}.")
        for number, item in enumerate(self._list(document.get("endpoints", []), "endpoints")):
            self._endpoint(item, f"endpoints[{number}]")
        templates = self._list(document.get("prompt_templates", []), "prompt_templates")
        for number, item in enumerate(templates):
            self._template(item, f"prompt_templates[{number}]")
        for number, item in enumerate(self._list(document.get("chatbots", []), "chatbots")):
            self._chatbot(item, f"chatbots[{number}]")

    def _endpoint(self, item: Any, path: str) -> None:
        item = self._object(item, path, {*ENDPOINT_FIELDS, "api_key"}, "name")
        if item is None:
            return
        path = f"endpoints[{item['name']}]"
        self._upsert(
            model=AIEndpoint,
            lookup={"shop": self.shop, "name": item["name"]},
            values={k: v for k, v in item.items() if k in ENDPOINT_FIELDS and k != "name"},
            secret_values={k: v for k, v in item.items() if k == "api_key"},
            path=path,
            label=f"endpoint {item['name']}",
        )

    def _template(self, item: Any, path: str) -> None:
        item = self._object(item, path, set(TEMPLATE_FIELDS), "name")
        if item is None:
            return
        self._upsert(
            model=PromptTemplate,
            lookup={"shop": self.shop, "name": item["name"]},
            values={k: v for k, v in item.items() if k != "name"},
            secret_values={},
            path=f"prompt_templates[{item['name']}]",
            label=f"prompt template {item['name']}",
        )

    def _chatbot(self, item: Any, path: str) -> None:
        children = {"knowledge_bases", "flows", "text_rules"}
        item = self._object(item, path, {*CHATBOT_FIELDS, *children}, "public_id")
        if item is None:
            return
        public_id = item["public_id"]
        path = f"chatbots[{public_id}]"
        if Chatbot.objects.filter(public_id=public_id).exclude(shop=self.shop).exists():
            # Chatbot ids are global (they are in the widget's URLs): another shop's id is taken.
            self.errors.append(f"{path}.public_id: the chatbot id is taken; choose another")
            return
        chatbot = self._upsert(
            model=Chatbot,
            lookup={"shop": self.shop, "public_id": public_id},
            values={k: v for k, v in item.items() if k in CHATBOT_FIELDS and k != "public_id"},
            secret_values={},
            path=path,
            label=f"chatbot {public_id}",
        )
        if chatbot is None:
            return
        if "knowledge_bases" in item:
            self._knowledge_bases(chatbot, item["knowledge_bases"], path)
        if "flows" in item:
            self._flows(chatbot, item["flows"], path)
        if "text_rules" in item:
            self._text_rules(chatbot, item["text_rules"], path)

    def _knowledge_bases(self, chatbot: Chatbot, items: Any, path: str) -> None:
        label = f"chatbot {chatbot.public_id}"
        wanted = []
        for number, item in enumerate(self._list(items, f"{path}.knowledge_bases")):
            allowed = {*KNOWLEDGE_BASE_FIELDS, "api_key", "entries", "embedding_endpoint"}
            item = self._object(item, f"{path}.knowledge_bases[{number}]", allowed, "name")
            if item is not None:
                wanted.append(item)
        names = [item["name"] for item in wanted]
        for kb in chatbot.knowledge_bases.exclude(name__in=names):
            kb.delete()
            self.lines.append(f"{label}: knowledge base {kb.name} removed")
        for item in wanted:
            kb_path = f"{path}.knowledge_bases[{item['name']}]"
            values = {k: v for k, v in item.items() if k in KNOWLEDGE_BASE_FIELDS and k != "name"}
            if "embedding_endpoint" in item:
                endpoint = None
                if item["embedding_endpoint"] is not None:
                    endpoint = AIEndpoint.objects.filter(
                        shop=self.shop, name=item["embedding_endpoint"]
                    ).first()
                    if endpoint is None:
                        self.errors.append(
                            f"{kb_path}.embedding_endpoint: no endpoint named "
                            f"“{_short(item['embedding_endpoint'])}” in the document or the "
                            "database"
                        )
                        continue
                values["embedding_endpoint"] = endpoint
            kb = self._upsert(
                model=KnowledgeBase,
                lookup={"chatbot": chatbot, "name": item["name"]},
                values=values,
                secret_values={k: v for k, v in item.items() if k == "api_key"},
                path=kb_path,
                label=f"{label}: knowledge base {item['name']}",
            )
            if kb is not None and "entries" in item:
                self._entries(kb, item["entries"], kb_path, f"{label}: knowledge base {kb.name}")

    def _entries(self, kb: KnowledgeBase, items: Any, path: str, label: str) -> None:
        # Entries have no natural key: match identical ones, add the new, remove the rest.
        wanted = []
        for number, item in enumerate(self._list(items, f"{path}.entries")):
            item = self._object(item, f"{path}.entries[{number}]", set(ENTRY_FIELDS), "title")
            if item is None:
                continue
            entry = KnowledgeEntry(
                knowledge_base=kb,
                title=item["title"],
                text=item.get("text", ""),
                tags=item.get("tags", []),
            )
            try:
                entry.full_clean()
            except ValidationError as exc:
                self.errors.extend(_error_lines(f"{path}.entries[{number}]", exc))
                continue
            wanted.append(entry)
        existing: dict[tuple, list[KnowledgeEntry]] = defaultdict(list)
        for entry in kb.entries.all():
            existing[(entry.title, entry.text, tuple(entry.tags))].append(entry)
        added = 0
        for entry in wanted:
            matches = existing.get((entry.title, entry.text, tuple(entry.tags)))
            if matches:
                matches.pop()
            else:
                entry.save()
                added += 1
        removed = [entry.pk for entries in existing.values() for entry in entries]
        KnowledgeEntry.objects.filter(pk__in=removed).delete()
        if added or removed:
            self.lines.append(f"{label}: entries {added} added, {len(removed)} removed")

    def _flows(self, chatbot: Chatbot, items: Any, path: str) -> None:
        label = f"chatbot {chatbot.public_id}"
        allowed = {*FLOW_FIELDS, "endpoint", "knowledge_base", "template"}
        wanted = []
        for number, item in enumerate(self._list(items, f"{path}.flows")):
            item = self._object(item, f"{path}.flows[{number}]", allowed, "name")
            if item is not None:
                wanted.append(item)
        existing = {flow.name: flow for flow in chatbot.flows.all()}
        for name, flow in existing.items():
            if name not in {item["name"] for item in wanted}:
                try:
                    flow.delete()
                except ProtectedError:
                    self.errors.append(f"{path}.flows[{name}]: still in use; cannot remove it")
                    continue
                self.lines.append(f"{label}: flow {name} removed")
        # Free the main mark and routing keys that move to another flow first, so swapping them
        # between flows does not trip the uniqueness constraints half-way.
        losing_main, losing_key = [], []
        for item in wanted:
            flow = existing.get(item["name"])
            if flow is None:
                continue
            if flow.is_main and "is_main" in item and item["is_main"] is not True:
                losing_main.append(flow.pk)
            if (
                flow.routing_key
                and "routing_key" in item
                and item["routing_key"] != flow.routing_key
            ):
                losing_key.append(flow.pk)
        Flow.objects.filter(pk__in=losing_main).update(is_main=False)
        Flow.objects.filter(pk__in=losing_key).update(routing_key="")
        for item in wanted:
            name = item["name"]
            flow_path = f"{path}.flows[{name}]"
            values = {k: v for k, v in item.items() if k in FLOW_FIELDS and k != "name"}
            if "endpoint" in item:
                endpoint = AIEndpoint.objects.filter(shop=self.shop, name=item["endpoint"]).first()
                if endpoint is None:
                    self.errors.append(
                        f"{flow_path}.endpoint: no endpoint named “{_short(item['endpoint'])}” in "
                        "the document or the database"
                    )
                    continue
                values["endpoint"] = endpoint
            if "knowledge_base" in item:
                kb = None
                if item["knowledge_base"] is not None:
                    kb = chatbot.knowledge_bases.filter(name=item["knowledge_base"]).first()
                    if kb is None:
                        self.errors.append(
                            f"{flow_path}.knowledge_base: this chatbot has no knowledge base "
                            f"named “{_short(item['knowledge_base'])}”"
                        )
                        continue
                values["knowledge_base"] = kb
            flow = self._upsert(
                model=Flow,
                lookup={"chatbot": chatbot, "name": name},
                values=values,
                secret_values={},
                path=flow_path,
                label=f"{label}: flow {name}",
            )
            if flow is not None and "template" in item:
                self._assignment(
                    chatbot, flow, item["template"], flow_path, f"{label}: flow {name}"
                )

    def _assignment(self, chatbot: Chatbot, flow: Flow, item: Any, path: str, label: str) -> None:
        current = TemplateAssignment.objects.filter(flow=flow).first()
        if item is None:
            if current is not None:
                current.delete()
                self.lines.append(f"{label}: template removed")
            return
        item = self._object(item, f"{path}.template", {"name", "overrides"}, "name")
        if item is None:
            return
        template = PromptTemplate.objects.filter(shop=self.shop, name=item["name"]).first()
        if template is None:
            self.errors.append(
                f"{path}.template: no prompt template named “{_short(item['name'])}” in the "
                "document or the database"
            )
            return
        values: dict[str, Any] = {"chatbot": chatbot, "template": template}
        if "overrides" in item:
            values["overrides"] = item["overrides"]
        self._upsert(
            model=TemplateAssignment,
            lookup={"flow": flow},
            values=values,
            secret_values={},
            path=f"{path}.template",
            label=f"{label}: template {template.name}",
        )

    def _text_rules(self, chatbot: Chatbot, items: Any, path: str) -> None:
        # Rules have no natural key and apply in order: the list is replaced when it differs.
        wanted = []
        for number, item in enumerate(self._list(items, f"{path}.text_rules")):
            rule_path = f"{path}.text_rules[{number}]"
            if not isinstance(item, dict) or set(item) - set(RULE_FIELDS):
                self.errors.append(f"{rule_path}: must be an object with {', '.join(RULE_FIELDS)}")
                continue
            rule = TextRule(chatbot=chatbot, **item)
            try:
                rule.full_clean()
            except ValidationError as exc:
                self.errors.extend(_error_lines(rule_path, exc))
                continue
            wanted.append(rule)
        current = list(chatbot.text_rules.order_by("position", "pk"))

        def shape(rules: list[TextRule]) -> list[tuple]:
            return [tuple(getattr(rule, name) for name in RULE_FIELDS) for rule in rules]

        if shape(current) != shape(wanted):
            chatbot.text_rules.all().delete()
            for rule in wanted:
                rule.save()
            self.lines.append(
                f"chatbot {chatbot.public_id}: text rules replaced ({len(current)} → {len(wanted)})"
            )


def chatbots_import(*, document: Any, shop: Shop, dry_run: bool = False) -> ConfigImportResult:
    """Create or update everything in a chatbot-config document in `shop`, atomically and
    idempotently."""
    importer = _ConfigImporter(shop)
    with transaction.atomic():
        importer.run(document)
        if importer.errors:
            transaction.set_rollback(True)
            raise TransferError("\n".join(importer.errors))
        if dry_run:
            transaction.set_rollback(True)
    if not dry_run and importer.lines:
        logger.info("configuration import: %d changes", len(importer.lines))
    return ConfigImportResult(lines=importer.lines, notes=importer.notes, saved=not dry_run)


# --------------------------------------------------------------------------------------------
# Re-encrypting secrets under the primary key
# --------------------------------------------------------------------------------------------


@dataclass
class FieldRotation:
    label: str  # app_label.Model.field
    rotated: int = 0
    current: int = 0


@dataclass
class UndecryptableSecret:
    model: str
    pk: Any
    field: str
    reason: str


@dataclass
class RotationResult:
    fields: list[FieldRotation]
    undecryptable: list[UndecryptableSecret]
    cache_cleared: bool


def encrypted_secret_fields() -> list[tuple[type[models.Model], EncryptedSecretField]]:
    """Every encrypted column of every installed model, so new apps' secrets are included."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue  # same table as its concrete model
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedSecretField):
                found.append((model, model_field))
    return found


def secrets_rotate(*, batch_size: int = 500) -> RotationResult:
    """Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS."""
    secret_store.fernet()  # refuses a missing or malformed key list before anything is read
    primary = Fernet(settings.FIELD_ENCRYPTION_KEYS[0].encode())
    results, undecryptable = [], []
    for model, model_field in encrypted_secret_fields():
        column = model_field.attname
        label = f"{model._meta.label}.{model_field.name}"
        outcome = FieldRotation(label=label)
        rows = model._base_manager.exclude(**{f"{column}__isnull": True}).exclude(**{column: ""})
        last_pk = None
        while True:
            page = rows.order_by("pk")
            if last_pk is not None:
                page = page.filter(pk__gt=last_pk)
            batch = list(page.values_list("pk", column)[:batch_size])
            if not batch:
                break
            last_pk = batch[-1][0]
            # One transaction per batch: a stop half-way leaves every value readable, because
            # the old keys still decrypt what has not been re-encrypted yet.
            with transaction.atomic():
                for pk, value in batch:
                    stored = value.stored if isinstance(value, SecretValue) else value
                    if not stored.startswith(secret_store.PREFIX):
                        undecryptable.append(
                            UndecryptableSecret(
                                model._meta.label,
                                pk,
                                model_field.name,
                                "not in the encrypted format (was it written around the field?)",
                            )
                        )
                        continue
                    try:
                        primary.decrypt(stored[len(secret_store.PREFIX) :].encode())
                    except InvalidToken:
                        pass
                    else:
                        outcome.current += 1
                        continue
                    try:
                        rotated = secret_store.rotate(stored)
                    except InvalidToken:
                        undecryptable.append(
                            UndecryptableSecret(
                                model._meta.label,
                                pk,
                                model_field.name,
                                "cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS",
                            )
                        )
                        continue
                    # Only if unchanged since we read it: a secret an admin saved meanwhile is
                    # already under the primary key, and must not be replaced by the old value.
                    updated = model._base_manager.filter(pk=pk, **{column: stored}).update(
                        **{column: rotated}
                    )
                    if updated:
                        outcome.rotated += 1
                    else:
                        outcome.current += 1
        results.append(outcome)
    # The config cache holds ciphertext and .update() bypasses the invalidation signals.
    try:
        selectors.config_cache_clear()
        cache_cleared = True
    except RedisError:
        # Redis down must not fail a finished rotation; cached entries expire on their own.
        logger.warning("rotate_secrets: could not clear the chatbot config cache", exc_info=True)
        cache_cleared = False
    logger.info(
        "rotate_secrets: %d re-encrypted, %d already current, %d undecryptable",
        sum(r.rotated for r in results),
        sum(r.current for r in results),
        len(undecryptable),
    )
    return RotationResult(fields=results, undecryptable=undecryptable, cache_cleared=cache_cleared)
