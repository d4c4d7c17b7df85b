"""Step two of the legacy import: the checks a row must pass, first on its own (no database),
then against what the database holds for its chatbot. Each returns its reasons as sentences."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.core.validators import slug_re

from chatbots.models import Chatbot, Flow, KnowledgeBase
from chatbots.transfer.common import _short
from chatbots.transfer.legacy_read import (
    _PINECONE_INDEX,
    ANSWER_COLUMNS,
    DEFAULT_INDEX_COLUMN,
    EXTRACTOR_COLUMNS,
    INDEX_COLUMNS,
    LEGACY_COLUMNS,
    PINECONE_KEY_COLUMN,
    LegacyRow,
)


@dataclass
class RejectedRow:
    where: str
    chatbot_id: str
    reasons: list[str]


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


def legacy_indexes(values: dict[str, str]) -> list[str]:
    found = []
    for column in (DEFAULT_INDEX_COLUMN, *INDEX_COLUMNS):
        index = values.get(column)
        if index and index not in found:
            found.append(index)
    return found


def legacy_rows_check(
    rows: list[LegacyRow],
) -> tuple[list[tuple[LegacyRow, dict[str, str]]], list[RejectedRow]]:
    """The rows that pass every check needing no database, with their values, and the rejected
    rest: a row's own problems first, then chatbot ids that more than one row claims."""
    rejected: list[RejectedRow] = []
    candidates: list[tuple[LegacyRow, dict[str, str]]] = []
    for row in rows:
        values, reasons = _legacy_values(row)
        if row.problem:
            reasons.insert(0, row.problem)
        reasons += _legacy_row_reasons(values)
        if reasons:
            rejected.append(RejectedRow(row.where, _short(values.get("chatbot_id", "")), reasons))
        else:
            candidates.append((row, values))
    good, duplicated = _legacy_unique_rows(candidates)
    return good, rejected + duplicated


def _legacy_unique_rows(
    candidates: list[tuple[LegacyRow, dict[str, str]]],
) -> tuple[list[tuple[LegacyRow, dict[str, str]]], list[RejectedRow]]:
    """Rows whose chatbot id no other row has; every row of a repeated id is rejected, since
    which one is meant cannot be told."""
    places: dict[str, list[str]] = defaultdict(list)
    for row, values in candidates:
        places[values["chatbot_id"]].append(row.where)
    good, rejected = [], []
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
    return good, rejected


def legacy_database_reasons(values: dict[str, str], chatbot: Chatbot | None) -> list[str]:
    """Problems that appear only against what the database already holds for this chatbot
    (`chatbot`: the one with the row's id, in any shop, or None)."""
    indexes = legacy_indexes(values)
    if chatbot is None:
        if PINECONE_KEY_COLUMN in values and not indexes:
            return [
                "pinecone_api_key is set but no *_knowledgebase_index column names an index to "
                "use it with"
            ]
        return []
    flows = {flow.name: flow for flow in chatbot.flows.all()}
    reasons = _legacy_role_reasons(values, flows)
    if not any(flow.is_main for flow in flows.values()) and "main" in flows:
        reasons.append(
            "the chatbot has no main flow and its flow “main” is not marked as main; fix that in "
            "the admin first"
        )
    reasons += _legacy_routing_key_reasons(values, flows)
    reasons += _legacy_index_reasons(values, indexes, list(chatbot.knowledge_bases.all()))
    return reasons


def _legacy_role_reasons(values: dict[str, str], flows: dict[str, Flow]) -> list[str]:
    """A column may only change a flow of the role it is for (answer or extractor)."""
    reasons = []
    roles = {name: Flow.Role.ANSWER for name in (*ANSWER_COLUMNS.values(), *INDEX_COLUMNS.values())}
    roles.update({name: Flow.Role.EXTRACTOR for name in EXTRACTOR_COLUMNS.values()})
    for column, name in {**ANSWER_COLUMNS, **INDEX_COLUMNS, **EXTRACTOR_COLUMNS}.items():
        flow = flows.get(name)
        if column in values and flow is not None and flow.role != roles[name]:
            reasons.append(
                f"{column} needs flow “{name}” to have the role {roles[name]}, but this "
                f"chatbot's flow “{name}” has the role {flow.role}"
            )
    return reasons


def _legacy_routing_key_reasons(values: dict[str, str], flows: dict[str, Flow]) -> list[str]:
    """A routing key the row gives to one flow must not stay with another the row leaves alone."""
    reasons = []
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
    return reasons


def _legacy_index_reasons(
    values: dict[str, str], indexes: list[str], knowledge_bases: list[KnowledgeBase]
) -> list[str]:
    """An index becomes a Pinecone knowledge base of its name, and the key needs an index."""
    reasons = []
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
