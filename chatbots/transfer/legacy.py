"""The legacy `chatbot_settings` import as a pipeline: read the dump (legacy_read), check each
row (legacy_checks), plan which chatbots are created or updated (here), apply the plan in one
transaction (legacy_apply)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Shop
from chatbots.models import Chatbot
from chatbots.transfer.common import _error_lines
from chatbots.transfer.legacy_apply import ChatbotChanges, LegacyEndpoints, legacy_row_apply
from chatbots.transfer.legacy_checks import (
    RejectedRow,
    legacy_database_reasons,
    legacy_rows_check,
)
from chatbots.transfer.legacy_read import LegacyFile, LegacyRow

# The package's one logger name, as before it became a package.
logger = logging.getLogger("chatbots.transfer")


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


@dataclass(frozen=True)
class LegacyRowPlan:
    """A row that passed every check: the chatbot it creates or updates, and its values."""

    where: str
    values: Mapping[str, str]
    creates_chatbot: bool  # no chatbot has the row's id yet

    @property
    def chatbot_id(self) -> str:
        return self.values["chatbot_id"]


@dataclass(frozen=True)
class LegacyPlan:
    """What an import will do, decided before anything is written: the rows to apply (in file
    order) and the rows rejected; with any rejected, nothing applies unless skip_bad_rows."""

    rows: tuple[LegacyRowPlan, ...]
    rejected: tuple[RejectedRow, ...]
    skip_bad_rows: bool

    @property
    def applies(self) -> bool:
        return not self.rejected or self.skip_bad_rows

    @property
    def creates(self) -> tuple[str, ...]:
        return tuple(row.chatbot_id for row in self.rows if row.creates_chatbot)

    @property
    def updates(self) -> tuple[str, ...]:
        return tuple(row.chatbot_id for row in self.rows if not row.creates_chatbot)


def legacy_plan_build(
    *,
    rows: list[tuple[LegacyRow, dict[str, str]]],
    rejected: list[RejectedRow],
    skip_bad_rows: bool,
) -> LegacyPlan:
    """Check the rows that passed the checks needing no database against the chatbots they
    name, and list which chatbots applying will create and which it will update."""
    planned: list[LegacyRowPlan] = []
    rejected = list(rejected)
    for row, values in rows:
        chatbot = Chatbot.objects.filter(public_id=values["chatbot_id"]).first()
        reasons = legacy_database_reasons(values, chatbot)
        if reasons:
            rejected.append(RejectedRow(row.where, values["chatbot_id"], reasons))
        else:
            planned.append(LegacyRowPlan(row.where, dict(values), creates_chatbot=chatbot is None))
    return LegacyPlan(rows=tuple(planned), rejected=tuple(rejected), skip_bad_rows=skip_bad_rows)


def _legacy_plan_apply(
    plan: LegacyPlan, endpoints: LegacyEndpoints
) -> tuple[list[ChatbotChanges], list[RejectedRow]]:
    """Apply each planned row in a savepoint of its own: a rule the checks did not foresee
    rejects that row and undoes only what it wrote. Nothing is applied when the plan says so."""
    applied: list[ChatbotChanges] = []
    failed: list[RejectedRow] = []
    if not plan.applies:
        return applied, failed
    for row in plan.rows:
        try:
            with transaction.atomic():
                changes = legacy_row_apply(dict(row.values), endpoints)
        except ValidationError as exc:
            endpoints.rollback_row()
            failed.append(RejectedRow(row.where, row.chatbot_id, _error_lines("", exc)))
            continue
        endpoints.commit_row()
        applied.append(changes)
    return applied, failed


def legacy_settings_import(
    *, legacy: LegacyFile, shop: Shop, skip_bad_rows: bool = False, dry_run: bool = False
) -> LegacyImportResult:
    """Create or update `shop`'s chatbots from legacy rows, all or nothing (unless
    skip_bad_rows)."""
    good, rejected = legacy_rows_check(legacy.rows)
    endpoints = LegacyEndpoints(shop)
    with transaction.atomic():
        plan = legacy_plan_build(rows=good, rejected=rejected, skip_bad_rows=skip_bad_rows)
        applied, failed = _legacy_plan_apply(plan, endpoints)
        rejected = [*plan.rejected, *failed]
        # A row failing while applied fails the whole import too, unless skip_bad_rows.
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
