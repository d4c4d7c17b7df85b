"""Write the Celery beat schedules from settings.CELERY_BEAT_SCHEDULE into the database."""

from django.core.management.base import BaseCommand

from monitoring.schedules import schedules_ensure


class Command(BaseCommand):
    help = (
        "Create or update the periodic tasks (django-celery-beat) from "
        "settings.CELERY_BEAT_SCHEDULE; admin edits are kept until the default changes."
    )

    def handle(self, *args, **options) -> None:
        for name, what in sorted(schedules_ensure().items()):
            self.stdout.write(f"{name}: {what}")
