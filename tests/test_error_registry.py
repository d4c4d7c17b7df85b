"""One registry of error codes (config.errors): every code a REST answer can carry has one HTTP
status, declared once, and a raise site names the code, not the status."""

from __future__ import annotations

import ast
import gettext
import pathlib

import pytest

from analytics.error_codes import AnalyticsErrorCode
from config.errors import (
    API_ERRORS,
    TURN_ERRORS,
    ApiError,
    ErrorCode,
    ErrorSpec,
    TurnErrorCode,
    customer_text,
    error_body,
    error_event,
    error_frame,
    error_status,
    register_errors,
)
from conversations.errors import (
    ChatbotInactive,
    ConversationClosed,
    IdempotencyKeyReused,
    MessageRefused,
)
from conversations.turn_errors import MESSAGES
from helpdesk.error_codes import HelpdeskErrorCode
from images.error_codes import ImageErrorCode
from monitoring.error_codes import MonitoringErrorCode

ROOT = pathlib.Path(__file__).resolve().parent.parent
REST_ENUMS = [ErrorCode, ImageErrorCode, HelpdeskErrorCode, AnalyticsErrorCode, MonitoringErrorCode]


def test_every_rest_code_of_every_app_has_an_http_status():
    for enum in REST_ENUMS:
        for code in enum:
            assert isinstance(error_status(code), int), code


def test_an_api_error_answers_with_its_code_s_status_from_the_registry():
    assert ApiError(ErrorCode.CONVERSATION_CLOSED, "Ended.").status == 409
    assert ApiError(ImageErrorCode.IMAGE_TOO_LARGE, "Too large.").status == 413
    assert ApiError(HelpdeskErrorCode.HANDOFF_LIMIT_REACHED, "Later.").status == 429


def test_an_api_error_with_a_code_outside_the_registry_is_refused():
    with pytest.raises(KeyError):
        ApiError("NO_SUCH_CODE", "Nobody declared this code.")


def test_a_code_cannot_be_registered_twice_with_another_meaning():
    register_errors({ErrorCode.NOT_FOUND: ErrorSpec(404)})  # the same meaning again: harmless
    with pytest.raises(ValueError):
        register_errors({ErrorCode.NOT_FOUND: ErrorSpec(410)})
    assert API_ERRORS[ErrorCode.NOT_FOUND].status == 404


def test_a_websocket_error_frame_is_the_rest_envelope_with_its_frame_type():
    body = error_body(ErrorCode.TURN_NOT_FOUND, "No such turn.", {"turn_id": "t"})
    assert error_frame(ErrorCode.TURN_NOT_FOUND, "No such turn.", {"turn_id": "t"}) == {
        "type": "error",
        **body,
    }
    assert body == {
        "error": {"code": "TURN_NOT_FOUND", "message": "No such turn.", "details": {"turn_id": "t"}}
    }


def test_a_turn_s_error_event_says_retryable_as_the_registry_does_unless_told_otherwise():
    assert error_event(TurnErrorCode.UPSTREAM_AUTH, "Refused.") == {
        "code": "UPSTREAM_AUTH",
        "message": "Refused.",
        "retryable": False,
    }
    assert error_event(TurnErrorCode.WORKER_LOST, "Ask again.")["retryable"] is True
    # An AI client's error decides per response (a 429 without Retry-After is not worth repeating).
    assert error_event("UPSTREAM_RATE_LIMITED", "Busy.", retryable=False)["retryable"] is False


def test_no_raise_site_repeats_the_status_its_code_already_has():
    """A status written at a raise site beside the registry's would be a second place to keep
    in step; an override is only for a code that answers with two statuses."""
    repeated = []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {".venv", "node_modules"} or "tests" in relative.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(relative))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ApiError"):
                continue
            status = next((k.value for k in node.keywords if k.arg == "status"), None)
            code = ast.unparse(node.args[0]) if node.args else ""
            enum_name, _, member = code.partition(".")
            enum = next((e for e in REST_ENUMS if e.__name__ == enum_name), None)
            known = enum is not None and member in enum.__members__
            if (
                isinstance(status, ast.Constant)
                and known
                and error_status(enum[member]) == status.value
            ):
                repeated.append(f"{relative}:{node.lineno} {code}")
    assert repeated == []


def test_a_conversation_service_s_refusal_is_named_for_what_happened_and_answers_as_before():
    closed = ConversationClosed("This conversation has ended; start a new one.")
    assert isinstance(closed, ApiError)
    assert (closed.code, closed.status, closed.details) == ("CONVERSATION_CLOSED", 409, {})
    reused = IdempotencyKeyReused("Used.", details={"turn_id": "t"})
    assert (reused.code, reused.status, reused.details) == (
        "IDEMPOTENCY_KEY_REUSED",
        422,
        {"turn_id": "t"},
    )
    assert (ChatbotInactive("Off.").status, MessageRefused("Empty.").status) == (403, 400)


def test_the_runner_s_own_texts_are_in_the_danish_catalogue_and_other_languages_read_english():
    for text in MESSAGES.values():
        assert customer_text(text, "da") not in ("", text)
        assert customer_text(text, "sv") == text


def po_entries(path: pathlib.Path) -> dict[str, str]:
    """msgid -> msgstr of a .po file (no plurals or contexts: the product has none)."""
    entries: dict[str, str] = {}
    field, parts = "", {"msgid": "", "msgstr": ""}
    for line in [*path.read_text().splitlines(), ""]:
        if line.startswith(("msgid ", "msgstr ")):
            field, _, line = line.partition(" ")
        if line.startswith('"'):
            parts[field] += ast.literal_eval(line)
        elif not line.strip():  # an entry ends (the header's msgid is empty)
            if parts["msgid"]:
                entries[parts["msgid"]] = parts["msgstr"]
            parts = {"msgid": "", "msgstr": ""}
    return entries


def test_the_compiled_danish_catalogue_says_what_its_po_file_says():
    """django.mo is committed: a .po edited without `manage.py compilemessages` fails here."""
    folder = ROOT / "locale" / "da" / "LC_MESSAGES"
    with (folder / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    translated = {k: v for k, v in po_entries(folder / "django.po").items() if v}
    assert translated
    assert {k: compiled.gettext(k) for k in translated} == translated


def docs_table_rows(heading: str) -> list[list[str]]:
    """The cells of the table under `heading` in docs/errors.md, backticks stripped."""
    section = (ROOT / "docs" / "errors.md").read_text().split(f"## {heading}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith(("| Status", "| Code", "| ---"))
    ]


def test_docs_errors_md_lists_every_rest_code_with_its_status_and_retry():
    documented = {
        code: (int(status), retry == "yes")
        for status, code, retry, _ in docs_table_rows("REST codes")
    }
    assert documented == {code: (spec.status, spec.retryable) for code, spec in API_ERRORS.items()}


def test_docs_errors_md_lists_every_turn_code_with_its_retry_and_category():
    documented = {
        code: (retry == "yes", category)
        for code, retry, category in docs_table_rows("Codes a turn fails with")
    }
    assert documented == {
        code: (spec.retryable, spec.category) for code, spec in TURN_ERRORS.items()
    }
