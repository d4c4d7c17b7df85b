"""Re-analyse every turn that finished in a date range (e.g. after changing a bot's topics)."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from analytics.services.analysis import analyses_rerun, turns_in_range
from chatbots.models import Chatbot


def _day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"“{value}” is not a date like 2025-01-31.") from exc


class Command(BaseCommand):
    help = "Re-analyse the turns finished between two dates (inclusive, UTC)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--from", dest="date_from", required=True, help="First day, 2025-01-01."
        )
        parser.add_argument("--to", dest="date_to", required=True, help="Last day, inclusive.")
        parser.add_argument("--chatbot", help="Only this chatbot (its chatbot id).")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Queue the work on the analytics queue instead of doing it here.",
        )

    def handle(
        self, *args, date_from: str, date_to: str, chatbot: str | None, queue: bool, **options
    ):
        first, last = _day(date_from), _day(date_to)
        if first > last:
            raise CommandError("--from must be on or before --to.")
        start = dt.datetime.combine(first, dt.time.min, tzinfo=dt.UTC)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
        chatbot_id = None
        if chatbot:
            chatbot_id = (
                Chatbot.objects.filter(public_id=chatbot).values_list("pk", flat=True).first()
            )
            if chatbot_id is None:
                raise CommandError(f"No chatbot “{chatbot}”.")
        if queue:
            from analytics.tasks import analyse_turn

            count = 0
            for turn_id in turns_in_range(date_from=start, date_to=end, chatbot_id=chatbot_id):
                analyse_turn.delay(turn_id, True)
                count += 1
            self.stdout.write(f"Queued {count} turns for re-analysis.")
            return
        count = analyses_rerun(date_from=start, date_to=end, chatbot_id=chatbot_id)
        self.stdout.write(self.style.SUCCESS(f"Re-analysed {count} turns."))
