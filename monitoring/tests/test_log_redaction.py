"""The secret-redacting log filter: it redacts the formatted line and never breaks it.

Each test writes through the configured console handler's own filter chain (context filter,
then RedactSecretsFilter) into a stream, with the plain formatter production uses.
"""

from __future__ import annotations

import io
import logging

import pytest

from chatbots.secrets import MASK, encrypt
from monitoring.logging import JsonFormatter, PlainFormatter

SECRET = "sk-live-percent%sSECRET0123456789"


@pytest.fixture
def written(capsys):
    """Log through the console handler's filters; returns (lines written, logging errors)."""
    console = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    for log_filter in console.filters:
        handler.addFilter(log_filter)
    handler.setFormatter(PlainFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("monitoring.tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield lambda: (stream.getvalue(), capsys.readouterr().err)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_a_traceback_containing_percent_signs_is_written_whole(written):
    logger = logging.getLogger("monitoring.tests.redaction")
    try:
        raise ValueError("discount of 100% for %s in %(name)s")
    except ValueError:
        logger.exception("turn %s failed unexpectedly", "t-1")

    output, errors = written()
    assert "--- Logging error ---" not in errors
    assert "turn t-1 failed unexpectedly" in output
    assert "ValueError: discount of 100% for %s in %(name)s" in output
    assert "Traceback (most recent call last)" in output


def test_a_secret_passed_as_a_percent_s_argument_is_redacted(written):
    encrypt(SECRET)  # every secret the process handles is registered for redaction
    logger = logging.getLogger("monitoring.tests.redaction")
    logger.warning("calling %s with key %s (%d%% done)", "https://ai.example/v1", SECRET, 50)

    output, errors = written()
    assert "--- Logging error ---" not in errors
    assert SECRET not in output
    assert f"calling https://ai.example/v1 with key {MASK} (50% done)" in output


def test_a_secret_in_an_exception_with_percent_signs_is_redacted(written):
    encrypt(SECRET)
    logger = logging.getLogger("monitoring.tests.redaction")
    try:
        raise RuntimeError(f"upstream said 100% no to {SECRET}")
    except RuntimeError:
        logger.error("call failed: %s", "auth", exc_info=True)

    output, errors = written()
    assert "--- Logging error ---" not in errors
    assert SECRET not in output
    assert f"RuntimeError: upstream said 100% no to {MASK}" in output
    assert "call failed: auth" in output


def test_a_call_whose_arguments_do_not_fit_its_message_still_writes_a_line(written):
    logger = logging.getLogger("monitoring.tests.redaction")
    logger.warning("two values %s %s", "only-one")

    output, _errors = written()
    assert "two values %s %s" in output and "only-one" in output


def test_the_json_format_keeps_the_redacted_traceback_in_the_message():
    from config.logging import RedactSecretsFilter

    encrypt(SECRET)
    try:
        raise ValueError(f"50% of {SECRET}")
    except ValueError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("now",), (type(exc), exc, None)
        )
    assert RedactSecretsFilter().filter(record)
    text = JsonFormatter().format(record)
    assert SECRET not in text
    assert "failed now" in text and "50% of" in text
