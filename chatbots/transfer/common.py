"""What every transfer shares: the error that aborts one, the shop it writes into, and the
helpers that report problems on one line and save only changed columns."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from accounts.models import Shop
from chatbots.secrets import SecretDecryptionError, SecretValue


class TransferError(Exception):
    """The input cannot be used as a whole (unreadable, wrong format, invalid); nothing was saved."""


def transfer_shop(*, slug: str | None, create_name: str = "") -> Shop:
    """The shop an import writes into (--shop): named by slug, or the only one there is.

    With `create_name` a missing shop is created under that name; otherwise a typo in --shop is
    an error rather than a new, empty tenant.
    """
    if not slug:
        shops = list(Shop.objects.order_by("slug")[:2])
        if len(shops) == 1:
            return shops[0]
        if not shops:
            raise TransferError(
                "There is no shop yet: name one with --shop <slug> --create-shop “<name>”."
            )
        raise TransferError("Several shops exist: say which with --shop <slug>.")
    shop = Shop.objects.filter(slug=slug).first()
    if shop is not None:
        return shop
    if create_name:
        shop = Shop(slug=slug, name=create_name)
        try:
            shop.full_clean()
        except ValidationError as exc:
            raise TransferError("; ".join(_error_lines("--shop", exc))) from exc
        shop.save()
        return shop
    known = ", ".join(Shop.objects.order_by("slug").values_list("slug", flat=True)[:20])
    raise TransferError(
        f"No shop “{_short(slug)}” (shops: {known or 'none'}). Create it with --create-shop "
        "“<name>”, or in the admin."
    )


def _short(value: Any, limit: int = 60) -> str:
    # Keeps each reported problem on one line of the output.
    text = str(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_lines(prefix: str, exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        lines: list[str] = []
        for name, messages in exc.message_dict.items():
            where = prefix if name == "__all__" else f"{prefix}.{name}" if prefix else name
            lines.extend(f"{where}: {message}" if where else message for message in messages)
        return lines
    return [f"{prefix}: {message}" if prefix else message for message in exc.messages]


def _secret_differs(current: SecretValue, plaintext: str) -> bool:
    if not current:
        return bool(plaintext)
    try:
        return current.reveal() != plaintext
    except SecretDecryptionError:
        # A value no configured key can read is as good as lost: replacing it is a change.
        return True


def _save(obj: models.Model, changed: list[str] | None = None, *, validated: bool = False) -> None:
    """Validate and write; an existing row writes only the changed columns (and updated_at)."""
    if not validated:
        obj.full_clean()
    if obj.pk is None or changed is None:
        obj.save()
        return
    fields = list(changed)
    if any(f.name == "updated_at" for f in obj._meta.concrete_fields):
        fields.append("updated_at")
    obj.save(update_fields=fields)
