"""Celery beat schedules in the database (django-celery-beat), seeded from settings.

settings.CELERY_BEAT_SCHEDULE holds the defaults (every app adds its entries there). They are
written to PeriodicTask rows on migrate, by `manage.py ensure_schedules` and when beat starts;
staff then edit them in the admin. An edit is kept until the default itself changes in settings:
each row's description carries a fingerprint of the default it was written from.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from celery import schedules
from django.conf import settings
from django.db import transaction

DESCRIPTION = "Default from settings.CELERY_BEAT_SCHEDULE; edits made here are kept until that default changes."
MARKER = re.compile(r"\[settings:([0-9a-f]{12})\]")


def _describe(schedule: Any) -> str:
    value = schedules.maybe_schedule(schedule)
    if isinstance(value, schedules.crontab):
        return (
            f"crontab {value._orig_minute} {value._orig_hour} {value._orig_day_of_month} "
            f"{value._orig_month_of_year} {value._orig_day_of_week}"
        )
    if isinstance(value, schedules.schedule):
        return f"every {value.run_every.total_seconds()} s"
    return repr(value)


def _fingerprint(entry: dict[str, Any]) -> str:
    spec = {
        "task": entry["task"],
        "schedule": _describe(entry["schedule"]),
        "args": list(entry.get("args") or []),
        "kwargs": dict(entry.get("kwargs") or {}),
        "options": {k: v for k, v in (entry.get("options") or {}).items() if k != "headers"},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


@transaction.atomic
def schedules_ensure() -> dict[str, str]:
    """Create or update PeriodicTasks from settings; returns what happened to each by name."""
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import ModelEntry

    outcome: dict[str, str] = {}
    wanted = dict(getattr(settings, "CELERY_BEAT_SCHEDULE", {}) or {})
    for name, entry in wanted.items():
        fingerprint = _fingerprint(entry)
        existing = PeriodicTask.objects.filter(name=name).first()
        if (
            existing is not None
            and (marker := MARKER.search(existing.description or ""))
            and marker.group(1) == fingerprint
        ):
            outcome[name] = "kept"
            continue
        model_schedule, field_name = ModelEntry.to_model_schedule(entry["schedule"])
        options = entry.get("options") or {}
        values = {
            "task": entry["task"],
            "interval": None,
            "crontab": None,
            "solar": None,
            "clocked": None,
            field_name: model_schedule,
            "args": json.dumps(list(entry.get("args") or [])),
            "kwargs": json.dumps(dict(entry.get("kwargs") or {})),
            "queue": options.get("queue"),
            "description": f"{DESCRIPTION} [settings:{fingerprint}]",
        }
        if existing is None:
            PeriodicTask.objects.create(name=name, **values)
            outcome[name] = "created"
        else:
            for key, value in values.items():
                setattr(existing, key, value)
            existing.save()  # save() (not update()) tells a running beat to reload
            outcome[name] = "updated"
    # Defaults that were removed from settings: disable (not delete) what they created.
    for task in PeriodicTask.objects.filter(description__contains="[settings:", enabled=True):
        if task.name not in wanted:
            task.enabled = False
            task.description = f"{task.description} (no longer in settings, disabled)"
            task.save()
            outcome[task.name] = "disabled"
    return outcome
