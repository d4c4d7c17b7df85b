"""Log filter that blanks every secret value this process has decrypted.

Secrets are registered by chatbots.secrets when they are decrypted, so a stray exception
message or a library's debug line that echoes an API key is redacted before it is written.
"""

import logging

from chatbots.secrets import redact


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
            record.exc_info = None
            record.msg = f"{record.msg}\n{record.exc_text}"
            record.exc_text = None
        return True
