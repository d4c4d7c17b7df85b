"""Re-encrypt every stored secret with the primary key (the first of FIELD_ENCRYPTION_KEYS)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbots.transfer import secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt all encrypted secret columns of all models with the first key of "
        "FIELD_ENCRYPTION_KEYS. Run it after deploying a new key in front of the old one; "
        "see docs/secrets.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Rows per transaction (default 500)."
        )

    def handle(self, *args, **options) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            result = secrets_rotate(batch_size=options["batch_size"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        for outcome in result.fields:
            self.stdout.write(
                f"{outcome.label}: {outcome.rotated} re-encrypted, {outcome.current} already "
                "on the primary key"
            )
        rotated = sum(o.rotated for o in result.fields)
        current = sum(o.current for o in result.fields)
        self.stdout.write(
            f"Total: {rotated} re-encrypted, {current} already on the primary key, "
            f"{len(result.undecryptable)} undecryptable."
        )
        if not result.cache_cleared:
            self.stderr.write(
                "Warning: could not clear the chatbot config cache; it expires by itself within "
                "CHATBOT_CONFIG_CACHE_SECONDS. Keep the old key until then."
            )
        for failure in result.undecryptable:
            self.stderr.write(
                f"{failure.model} pk={failure.pk} field {failure.field}: {failure.reason}"
            )
        if result.undecryptable:
            count = len(result.undecryptable)
            raise CommandError(
                f"{count} secret{'s' if count != 1 else ''} could not be re-encrypted. Put the key "
                "that encrypted them back into FIELD_ENCRYPTION_KEYS, or enter those secrets "
                "again in the admin (docs/secrets.md)."
            )
