"""Sync the conversation index now (the same as POST /api/sync/sync), or rebuild it."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from analytics.services.conversation_index import (
    conversation_index_reset,
    conversation_index_sync,
)


class Command(BaseCommand):
    help = "Merge new AI calls into the conversation index (--reset rebuilds it from scratch)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reset", action="store_true", help="Delete and rebuild the index.")

    def handle(self, *args, reset: bool, **options) -> None:
        result = conversation_index_reset() if reset else conversation_index_sync()
        self.stdout.write(json.dumps(result, indent=2))
