"""The beat scheduler: django-celery-beat's DatabaseScheduler without its start-up overwrite.

The stock scheduler rewrites every PeriodicTask named in CELERY_BEAT_SCHEDULE each time beat
starts, undoing edits made in the admin. This one seeds them with schedules_ensure() instead,
which keeps edits until the default in settings changes. Run: celery -A config beat
-S monitoring.beat:DatabaseScheduler (also the CELERY_BEAT_SCHEDULER setting).
"""

from __future__ import annotations

import logging

from django_celery_beat import schedulers

logger = logging.getLogger(__name__)


class DatabaseScheduler(schedulers.DatabaseScheduler):
    def setup_schedule(self) -> None:
        from monitoring.schedules import schedules_ensure

        self.install_default_entries(self.schedule)
        try:
            changes = schedules_ensure()
        except Exception:
            logger.exception("could not seed the beat schedules from settings")
        else:
            changed = {k: v for k, v in changes.items() if v != "kept"}
            if changed:
                logger.info("beat schedules from settings: %s", changed)
