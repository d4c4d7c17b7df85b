"""Create or update chatbots from a chatbot-config JSON document (see export_chatbots)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbots.management.shop_options import add_shop_arguments
from chatbots.transfer import TransferError, chatbots_import, transfer_shop


class Command(BaseCommand):
    help = (
        "Import a chatbot-config document: creates or updates by chatbot id and names, all or "
        'nothing. A secret exported as {"set": true} never clears the stored one.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The JSON document, or - for stdin.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; save nothing."
        )
        add_shop_arguments(parser)

    def handle(self, *args, **options) -> None:
        name = options["file"]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {name}: {exc.strerror}.") from exc
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(
                f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
            ) from exc
        try:
            shop = transfer_shop(slug=options["shop"], create_name=options["create_shop"])
            result = chatbots_import(document=document, shop=shop, dry_run=options["dry_run"])
        except TransferError as exc:
            raise CommandError(f"Nothing was imported:\n{exc}") from exc
        for line in result.lines:
            self.stdout.write(line)
        for note in result.notes:
            self.stdout.write(f"to do: {note}")
        if not result.changed:
            self.stdout.write("no changes")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was saved.")
