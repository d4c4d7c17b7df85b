"""Write whole chatbot configurations as a chatbot-config JSON document."""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbots.transfer import TransferError, chatbots_export, transfer_shop


class Command(BaseCommand):
    help = (
        "Export chatbots with their flows, knowledge bases, templates, text rules and the "
        "endpoints they use. Secrets are left out unless --include-secrets."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--chatbot",
            dest="chatbots",
            action="extend",
            nargs="+",
            metavar="ID",
            help="Chatbot ids to export (default: all).",
        )
        parser.add_argument(
            "--include-secrets",
            action="store_true",
            help="Write API keys in plaintext. Treat the file like the keys themselves.",
        )
        parser.add_argument(
            "--shop", metavar="SLUG", help="Only this shop's chatbots (default: every shop's)."
        )
        parser.add_argument("-o", "--output", type=Path, help="Write here instead of stdout.")

    def handle(self, *args, **options) -> None:
        include_secrets = options["include_secrets"]
        try:
            shop = transfer_shop(slug=options["shop"]) if options["shop"] else None
            document = chatbots_export(
                shop=shop, public_ids=options["chatbots"], include_secrets=include_secrets
            )
        except TransferError as exc:
            raise CommandError(str(exc)) from exc
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if include_secrets:
            self.stderr.write(
                "Warning: this export contains plaintext API keys. Store it like the keys "
                "themselves and delete it when done."
            )
        output: Path | None = options["output"]
        if output is None:
            self.stdout.write(text, ending="")
            return
        # A file holding plaintext keys is readable by its owner only.
        mode = 0o600 if include_secrets else 0o644
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        self.stderr.write(f"Exported {len(document['chatbots'])} chatbots to {output}.")
