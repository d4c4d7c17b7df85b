"""Log filter that blanks every secret value this process has decrypted.

Secrets are registered in config.redaction by chatbots.secrets when they are decrypted, so a
stray exception message or a library's debug line that echoes an API key is redacted before it
is written.
"""

import logging

from config.redaction import redact


class RedactSecretsFilter(logging.Filter):
    """Replaces the record's message by its fully formatted, redacted text (traceback included).

    The message is formatted once here (`getMessage()`), then `args` are cleared: text that is
    already formatted must never meet `%` formatting again, or a `%` in an argument or a
    traceback ("100% sure", a URL-encoded value) breaks the record ("--- Logging error ---").
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # msg and args do not fit (the caller's bug): keep both readable rather than lose
            # the line, and never raise from a filter (it would reach the code that logged).
            message = f"{record.msg!s} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
            record.exc_text = None
        if record.stack_info:
            message = f"{message}\n{record.stack_info}"
            record.stack_info = None
        record.msg, record.args = redact(message), ()
        return True
