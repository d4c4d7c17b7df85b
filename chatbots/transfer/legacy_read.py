"""Step one of the legacy `chatbot_settings` import: reading a dump of the table (CSV or JSON)
into rows, and the table's columns."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbots.transfer.common import TransferError

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
