"""The registry of secret values this process has seen, and the redaction that masks them.

chatbots.secrets registers every value it encrypts or decrypts; the log filter (config.logging),
Sentry's before_send (config.error_tracking) and the error records of monitoring, orders and
helpdesk mask them. It lives on the ground floor, free of Django, because the log filter and
Sentry are configured from the settings, before any app is loaded.
"""

from __future__ import annotations

import threading

MASK = "••••••••"

_known_plaintexts: set[str] = set()
_known_lock = threading.Lock()


def secret_register(plaintext: str) -> None:
    """Remember a revealed secret so that `redact` masks it from now on."""
    # Short values would redact ordinary words; real keys are long.
    if len(plaintext) >= 6:
        with _known_lock:
            _known_plaintexts.add(plaintext)


def redact(text: str) -> str:
    """Replace every secret this process has seen with a mask."""
    if not _known_plaintexts or not text:
        return text
    with _known_lock:
        values = sorted(_known_plaintexts, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text
