"""Secrets at rest: Fernet encryption with rotating keys and a masked value type.

A secret column holds `fernet:<token>`. In Python it is a SecretValue whose str() and repr()
are masked, so serializers, exports, admin pages and log lines cannot leak it by accident;
only `.reveal()` gives the plaintext, and every revealed value is registered for the log filter
(config.redaction).
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from config.redaction import MASK, secret_register

PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is empty: set it to one or more Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        )
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key."
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    secret_register(plaintext)
    return PREFIX + fernet().encrypt(plaintext.encode()).decode()


class SecretDecryptionError(Exception):
    """The stored secret cannot be decrypted with any configured key."""


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise SecretDecryptionError("stored secret is not in the encrypted format")
    try:
        plaintext = fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS (was a key removed?)"
        ) from exc
    secret_register(plaintext)
    return plaintext


def rotate(stored: str) -> str:
    """Re-encrypt with the first (primary) key."""
    if not stored:
        return ""
    return PREFIX + fernet().rotate(stored[len(PREFIX) :].encode()).decode()


class SecretValue:
    """A secret as held in memory: masked everywhere except `.reveal()`."""

    __slots__ = ("_plaintext", "_stored")

    def __init__(self, *, stored: str = "", plaintext: str | None = None) -> None:
        self._stored = stored
        self._plaintext = plaintext

    @classmethod
    def from_plaintext(cls, plaintext: str) -> SecretValue:
        return cls(stored=encrypt(plaintext), plaintext=plaintext)

    @property
    def stored(self) -> str:
        return self._stored

    def reveal(self) -> str:
        if self._plaintext is None:
            self._plaintext = decrypt(self._stored)
        return self._plaintext

    def __bool__(self) -> bool:
        return bool(self._stored)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretValue):
            return self._stored == other._stored or (bool(self) and self.reveal() == other.reveal())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._stored)

    def masked(self) -> str:
        return MASK if self else ""

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"SecretValue({self.masked()!r})"


class EncryptedSecretField(models.TextField):
    """A TextField stored encrypted; the Python value is a SecretValue (masked).

    `multiline=True` (auth headers, one per line) lets forms take line breaks; it only shapes
    the form field, so it is left out of migrations.
    """

    def __init__(self, *args, multiline: bool = False, **kwargs):
        self.multiline = multiline
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return SecretValue()
        return SecretValue(stored=value)

    def to_python(self, value):
        if isinstance(value, SecretValue):
            return value
        if value is None or value == "":
            return SecretValue()
        if isinstance(value, str) and value.startswith(PREFIX):
            return SecretValue(stored=value)
        return SecretValue.from_plaintext(str(value))

    def get_prep_value(self, value):
        return self.to_python(value).stored

    def value_to_string(self, obj):
        # Serializers (dumpdata, django-reversion history) see ciphertext, never plaintext.
        # The attribute may still be a plain str on an instance not yet reloaded (a default,
        # or a key just assigned): to_python encrypts it, so the output is ciphertext anyway.
        return self.to_python(self.value_from_object(obj)).stored

    def save_form_data(self, instance, data):
        from chatbots.forms import KEEP_STORED_SECRET

        # An input left empty keeps what is stored (forms never see the value to send back).
        if data is KEEP_STORED_SECRET:
            return
        super().save_form_data(instance, data)

    def formfield(self, **kwargs):
        from chatbots.forms import SecretFormField, SecretWidget

        # TextField.formfield() would hand the form a Textarea, which renders whatever
        # prepare_value gives it; the secret widget never renders a value. Forced, not
        # defaulted, so a formfield_overrides entry for TextField cannot bring it back.
        kwargs["form_class"] = SecretFormField
        kwargs["widget"] = SecretWidget(multiline=self.multiline)
        kwargs["multiline"] = self.multiline
        kwargs.pop("max_length", None)
        return models.Field.formfield(self, **kwargs)


def secret_field_names(model) -> list[str]:
    """Names of a model's EncryptedSecretFields."""
    return [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedSecretField)]
