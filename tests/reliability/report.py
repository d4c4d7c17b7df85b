"""Render the figures of the last reliability run into docs/reliability.md.

Every reliability test appends one JSON line of figures to test-artifacts/reliability.jsonl; the
latest line per test wins. `python -m tests.reliability.report` rewrites the part of
docs/reliability.md between the figures markers (the rest of that page is written by hand);
`--stdout` prints the figures instead. The run also leaves them in test-artifacts/reliability.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tests.reliability.harness import FIGURES, ROOT

DOC = ROOT / "docs" / "reliability.md"
START = "<!-- figures:start (python -m tests.reliability.report) -->"
END = "<!-- figures:end -->"

SECTIONS = [
    ("worker_killed", "1. Worker killed during 20 running turns"),
    ("redis_restarted_no_persistence", "2a. Redis killed and restarted — no persistence"),
    ("redis_restarted_appendonly", "2b. Redis killed and restarted — append-only file"),
    ("postgres_unavailable", "3. PostgreSQL unreachable for 5 s during 10 running turns"),
    ("upstream_faults_flowise", "4a. Upstream faults — Flowise"),
    ("upstream_faults_openai", "4b. Upstream faults — OpenAI-compatible"),
    ("hostile_bodies", "5a. Broken and oversized bodies on every POST endpoint"),
    ("hostile_websocket_frames", "5b. Garbage WebSocket frames"),
    ("slow_client", "5c. A WebSocket client that never reads a big answer"),
    ("load_100x5", "6a. Load — 100 conversations x 5 messages"),
    ("load_1000x5", "6b. Load — 1,000 conversations x 5 messages (slow)"),
    ("secrets_scan", "7a. Secrets scan"),
    ("tenant_isolation", "7b. Cross-tenant attempts (HTTP status or close code)"),
    ("hostile_fields", "8a. Hostile values in every field of every REST endpoint"),
    ("hostile_websocket_fields", "8b. Hostile values in every WebSocket message type"),
]


def latest(path: Path = FIGURES) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["test"]] = row
    return rows


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value) or "none"
    if value is None:
        return "—"
    return str(value).replace("|", "\\|")


def _table(row: dict[str, Any]) -> list[str]:
    figures = {k: v for k, v in row.items() if k not in ("test", "run", "at")}
    cases = {k: v for k, v in figures.items() if isinstance(v, dict) and "outcome" in v}
    if cases:
        out = [
            "| fault | outcome | turn start → end (s) | client waited (s) | bound (s) | requests |",
            "|---|---|---|---|---|---|",
        ]
        for name, case in cases.items():
            out.append(
                f"| {name.replace('_', ' ')} | {case['outcome']} | {case['ended_after_s']} | "
                f"{case.get('client_waited_s', '—')} | {case['bound_s']} | {case['requests']} |"
            )
        return out
    out = ["| figure | value |", "|---|---|"]
    out += [f"| {k.replace('_', ' ')} | {_value(v)} |" for k, v in figures.items()]
    return out


def render(path: Path = FIGURES) -> str:
    rows = latest(path)
    out: list[str] = []
    for key, title in SECTIONS:
        row = rows.get(key)
        out.append(f"#### {title}")
        out.append("")
        if row is None:
            out.append("Not measured in the recorded runs.")
        else:
            out.append(f"Run `{row['run']}`, {row['at']} UTC.")
            out.append("")
            out += _table(row)
        out.append("")
    return "\n".join(out)


def update_doc(doc: Path = DOC, path: Path = FIGURES) -> None:
    text = doc.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    doc.write_text(f"{head}{START}\n\n{render(path)}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stdout", action="store_true", help="print instead of updating")
    args = parser.parse_args()
    if args.stdout:
        print(render())
    else:
        update_doc()
        print(f"updated {DOC.relative_to(ROOT)} from {FIGURES.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
