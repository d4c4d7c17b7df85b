"""Conversations with their analysis as streamed CSV or JSONL (staff only; admin and API)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from analytics.selectors import EXPORT_FIELDS, conversations_export

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> object:
    # Customers write these texts: a leading = + - @ would run as a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def csv_lines(rows: Iterable[dict]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"  # so spreadsheet programs read the file as UTF-8
    yield writer.writerow(EXPORT_FIELDS)
    for row in rows:
        yield writer.writerow([_cell(row[field]) for field in EXPORT_FIELDS])


def jsonl_lines(rows: Iterable[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def export_response(conversations: QuerySet, *, fmt: str) -> StreamingHttpResponse:
    """A streamed download: rows are produced while the response is sent, 500 at a time."""
    if fmt == "csv":
        lines = csv_lines(conversations_export(conversations))
    else:
        lines = jsonl_lines(conversations_export(conversations, with_turns=True))
    response = StreamingHttpResponse(lines, content_type=FORMATS[fmt])
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="conversations-{stamp}.{fmt}"'
    return response
