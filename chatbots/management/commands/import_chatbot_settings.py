"""Import rows of the legacy `chatbot_settings` table (CSV or JSON) into the chatbot models."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbots.management.shop_options import add_shop_arguments
from chatbots.transfer import (
    PLACEHOLDER_CHATFLOW_ID,
    LegacyImportResult,
    TransferError,
    legacy_settings_import,
    legacy_settings_read,
    transfer_shop,
)


class Command(BaseCommand):
    help = (
        "Create or update chatbots from a dump of the legacy chatbot_settings table (CSV with a "
        "header row, or a JSON list of objects). Bad rows stop the whole import unless "
        "--skip-bad-rows. See docs/legacy-import.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="CSV or JSON dump of chatbot_settings.")
        parser.add_argument(
            "--skip-bad-rows",
            action="store_true",
            help="Import the good rows and report the bad ones instead of importing nothing.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; save nothing."
        )
        add_shop_arguments(parser)

    def handle(self, *args, **options) -> None:
        try:
            legacy = legacy_settings_read(path=options["file"])
            shop = transfer_shop(slug=options["shop"], create_name=options["create_shop"])
            result = legacy_settings_import(
                legacy=legacy,
                shop=shop,
                skip_bad_rows=options["skip_bad_rows"],
                dry_run=options["dry_run"],
            )
        except TransferError as exc:
            raise CommandError(str(exc)) from exc
        self._report(result, options)

    def _report(self, result: LegacyImportResult, options: dict) -> None:
        if result.ignored_columns:
            self.stdout.write(
                "Skipping columns that have no place in the new model: "
                + ", ".join(result.ignored_columns)
            )
        for rejected in result.rejected:
            who = f" (chatbot {rejected.chatbot_id})" if rejected.chatbot_id else ""
            self.stderr.write(f"{rejected.where}{who}: {'; '.join(rejected.reasons)}")
        if result.rejected and not options["skip_bad_rows"]:
            count = len(result.rejected)
            raise CommandError(
                f"{count} bad row{'s' if count != 1 else ''}; nothing was imported. Fix "
                f"{'them' if count != 1 else 'it'} or run again with --skip-bad-rows."
            )
        for line in result.endpoint_lines:
            self.stdout.write(line)
        created = updated = unchanged = 0
        for changes in result.chatbots:
            if not changes.changed:
                unchanged += 1
                continue
            if changes.created:
                created += 1
            else:
                updated += 1
            self.stdout.write(
                f"{changes.chatbot_id}: {'created' if changes.created else 'updated'}"
            )
            for line in changes.lines:
                self.stdout.write(f"  {line}")
            if changes.pinecone_key:
                self.stdout.write(f"  pinecone_api_key: {changes.pinecone_key}")
            for note in changes.notes:
                self.stdout.write(f"  to do: {note}")
        waiting = sum(c.placeholder_flows for c in result.chatbots)
        if waiting:
            self.stdout.write(
                f"{waiting} flows were created disabled with the placeholder chatflow id "
                f"{PLACEHOLDER_CHATFLOW_ID}: the legacy table has none. Give each its endpoint "
                "and chatflow id in the admin, then enable it."
            )
        if result.rejected:
            self.stdout.write(f"Skipped {len(result.rejected)} bad rows (listed on stderr).")
        if not result.changed:
            self.stdout.write(f"no changes ({unchanged} chatbots already match the file)")
        else:
            self.stdout.write(
                f"{created} chatbots created, {updated} updated, {unchanged} unchanged."
            )
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was saved.")
