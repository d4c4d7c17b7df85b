"""Re-encrypting every stored secret under the primary key of FIELD_ENCRYPTION_KEYS."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from redis.exceptions import RedisError

from chatbots import secrets as secret_store
from chatbots import selectors
from chatbots.secrets import EncryptedSecretField, SecretValue

# The package's one logger name, as before it became a package.
logger = logging.getLogger("chatbots.transfer")


@dataclass
class FieldRotation:
    label: str  # app_label.Model.field
    rotated: int = 0
    current: int = 0


@dataclass
class UndecryptableSecret:
    model: str
    pk: Any
    field: str
    reason: str


@dataclass
class RotationResult:
    fields: list[FieldRotation]
    undecryptable: list[UndecryptableSecret]
    cache_cleared: bool


def encrypted_secret_fields() -> list[tuple[type[models.Model], EncryptedSecretField]]:
    """Every encrypted column of every installed model, so new apps' secrets are included."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue  # same table as its concrete model
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedSecretField):
                found.append((model, model_field))
    return found


def secrets_rotate(*, batch_size: int = 500) -> RotationResult:
    """Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS."""
    secret_store.fernet()  # refuses a missing or malformed key list before anything is read
    primary = Fernet(settings.FIELD_ENCRYPTION_KEYS[0].encode())
    results: list[FieldRotation] = []
    undecryptable: list[UndecryptableSecret] = []
    for model, model_field in encrypted_secret_fields():
        rotation = _FieldRotator(model, model_field, primary, undecryptable)
        rotation.run(batch_size)
        results.append(rotation.outcome)
    cache_cleared = _config_cache_clear()
    logger.info(
        "rotate_secrets: %d re-encrypted, %d already current, %d undecryptable",
        sum(r.rotated for r in results),
        sum(r.current for r in results),
        len(undecryptable),
    )
    return RotationResult(fields=results, undecryptable=undecryptable, cache_cleared=cache_cleared)


class _FieldRotator:
    """Re-encrypts one encrypted column, page by page, counting into `outcome` and reporting
    the values it cannot read into `undecryptable`."""

    def __init__(
        self,
        model: type[models.Model],
        model_field: EncryptedSecretField,
        primary: Fernet,
        undecryptable: list[UndecryptableSecret],
    ) -> None:
        self.model = model
        self.model_field = model_field
        self.column = model_field.attname
        self.primary = primary
        self.undecryptable = undecryptable
        self.outcome = FieldRotation(label=f"{model._meta.label}.{model_field.name}")

    def run(self, batch_size: int) -> None:
        column = self.column
        rows = self.model._base_manager.exclude(**{f"{column}__isnull": True}).exclude(
            **{column: ""}
        )
        last_pk = None
        while True:
            page = rows.order_by("pk")
            if last_pk is not None:
                page = page.filter(pk__gt=last_pk)
            batch = list(page.values_list("pk", column)[:batch_size])
            if not batch:
                break
            last_pk = batch[-1][0]
            # One transaction per batch: a stop half-way leaves every value readable, because
            # the old keys still decrypt what has not been re-encrypted yet.
            with transaction.atomic():
                for pk, value in batch:
                    self._rotate(pk, value.stored if isinstance(value, SecretValue) else value)

    def _rotate(self, pk: Any, stored: str) -> None:
        if not stored.startswith(secret_store.PREFIX):
            self._undecryptable(
                pk, "not in the encrypted format (was it written around the field?)"
            )
            return
        try:
            self.primary.decrypt(stored[len(secret_store.PREFIX) :].encode())
        except InvalidToken:
            pass
        else:
            self.outcome.current += 1
            return
        try:
            rotated = secret_store.rotate(stored)
        except InvalidToken:
            self._undecryptable(pk, "cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS")
            return
        # Only if unchanged since we read it: a secret an admin saved meanwhile is already
        # under the primary key, and must not be replaced by the old value.
        updated = self.model._base_manager.filter(pk=pk, **{self.column: stored}).update(
            **{self.column: rotated}
        )
        if updated:
            self.outcome.rotated += 1
        else:
            self.outcome.current += 1

    def _undecryptable(self, pk: Any, reason: str) -> None:
        self.undecryptable.append(
            UndecryptableSecret(self.model._meta.label, pk, self.model_field.name, reason)
        )


def _config_cache_clear() -> bool:
    """Clear the chatbot config cache: it holds ciphertext, and .update() bypasses the
    invalidation signals. False when Redis is down."""
    try:
        selectors.config_cache_clear()
    except RedisError:
        # Redis down must not fail a finished rotation; cached entries expire on their own.
        logger.warning("rotate_secrets: could not clear the chatbot config cache", exc_info=True)
        return False
    return True
