"""The guard with this installation's setting: ALLOW_PRIVATE_NETWORK_URLS (on under ./run and
./run test, where the fakes and the demo's fake Flowise live on 127.0.0.1; off by default)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from outbound import guard


def private_allowed() -> bool:
    return bool(getattr(settings, "ALLOW_PRIVATE_NETWORK_URLS", False))


# The Django-free clients (aiclients) ask the guard, which asks this, per connection.
guard.configure(private_allowed)


def url_problem(url: str) -> str | None:
    """The sentence a form shows for a URL the server may not reach, or None."""
    try:
        guard.url_check(url, allow_private=private_allowed())
    except guard.AddressRefused as exc:
        return str(exc)
    return None


def url_errors(**fields: str) -> dict[str, str]:
    """{field: sentence} for each refused URL, for a model's clean()."""
    return {name: problem for name, url in fields.items() if (problem := url_problem(url))}


def url_validate(**fields: str) -> None:
    errors = url_errors(**fields)
    if errors:
        raise ValidationError(errors)


def sync_hooks() -> dict[str, list]:
    return guard.sync_hooks(private_allowed)


def async_hooks() -> dict[str, list]:
    return guard.async_hooks(private_allowed)
