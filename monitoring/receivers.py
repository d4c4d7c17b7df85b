"""Where monitoring listens: finished turns, Celery task life-cycle, migrations.

Connected in MonitoringConfig.ready(). Every receiver swallows its own failures: watching must
never break what is being watched.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import signals as celery_signals
from django.db.models.signals import post_migrate
from django.utils import timezone

from config.error_log import error_reported
from conversations.services import turn_finished
from monitoring.logging import log_context_bind, log_context_reset, request_id_var, safe_id

logger = logging.getLogger(__name__)

# Task arguments that name a turn or conversation, for the log context.
TASK_ID_ARGS = {"conversations.tasks.run_turn": "turn_id"}


def request_header(request: Any, name: str) -> Any:
    """A custom message header of a task request: top-level in a worker, under `headers` when
    the task ran eagerly (Task.apply)."""
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def on_turn_finished(sender, turn_id=None, status=None, stack="", **kwargs) -> None:
    from monitoring import services

    try:
        if status:
            services.turn_finished_count(status=str(status))
        if status == "failed":
            services.turn_failure_record(turn_id=turn_id, stack=stack or "")
    except Exception:
        logger.warning("monitoring: could not record finished turn %s", turn_id, exc_info=True)


def on_before_task_publish(sender=None, headers=None, **kwargs) -> None:
    # The enqueue time lets the queue report show how long the oldest task has waited; the
    # request id ties a task's log lines to the request that caused it.
    if headers is None:
        return
    headers.setdefault("enqueued_at", time.time())
    request_id = request_id_var.get()
    if request_id:
        headers.setdefault("request_id", request_id)


_task_state: dict[str, tuple[dict, int | None, float]] = {}
_task_state_lock = threading.Lock()


def on_task_prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **extra) -> None:
    try:
        request = task.request if task is not None else None
        ids: dict[str, Any] = {
            "task_id": task_id or "",
            "task": getattr(task, "name", "") or "",
            "request_id": request_header(request, "request_id") or "",
        }
        kwargs = kwargs or {}
        for name in ("turn_id", "conversation_id"):
            if kwargs.get(name):
                ids[name] = kwargs[name]
        arg_name = TASK_ID_ARGS.get(ids["task"])
        if arg_name and args:
            ids[arg_name] = args[0]
        tokens = log_context_bind(**ids)
        run_id = _job_run_start(task, request)
        with _task_state_lock:
            _task_state[task_id] = (tokens, run_id, time.perf_counter())
    except Exception:
        logger.debug("monitoring: task_prerun failed", exc_info=True)


def on_task_postrun(sender=None, task_id=None, task=None, retval=None, state=None, **extra) -> None:
    with _task_state_lock:
        saved = _task_state.pop(task_id, None)
    if saved is None:
        return
    tokens, run_id, started = saved
    try:
        if run_id is not None:
            _job_run_finish(run_id, state=state, retval=retval, started=started)
    except Exception:
        logger.debug("monitoring: task_postrun failed", exc_info=True)
    finally:
        log_context_reset(tokens)


def _job_run_start(task, request) -> int | None:
    """A task started by beat (django-celery-beat adds the `periodic_task_name` header) that
    does not record itself gets a JobRun, so every scheduled job's last run is visible."""
    from monitoring.models import JobRun
    from monitoring.selectors import process_name
    from monitoring.tasks import SELF_RECORDING

    job = request_header(request, "periodic_task_name")
    if not job or task.name in SELF_RECORDING:
        return None
    return JobRun.objects.create(job=job, task=task.name, worker=process_name()[:200]).pk


def _job_run_finish(run_id: int, *, state: str | None, retval: Any, started: float) -> None:
    from monitoring.models import JobRun

    ok = state == "SUCCESS"
    rows = retval if isinstance(retval, int) and not isinstance(retval, bool) else None
    JobRun.objects.filter(pk=run_id).update(
        outcome=JobRun.Outcome.OK if ok else JobRun.Outcome.FAILED,
        rows_affected=rows,
        finished_at=timezone.now(),
        duration_ms=round((time.perf_counter() - started) * 1000),
        message="" if ok else f"task ended in state {state}",
    )


def on_task_failure(
    sender=None, task_id=None, exception=None, args=None, kwargs=None, **extra
) -> None:
    from monitoring import services

    try:
        request = getattr(sender, "request", None)
        delivery = getattr(request, "delivery_info", None) or {}
        services.task_failure_record(
            task_name=getattr(sender, "name", "") or "unknown",
            task_id=safe_id(task_id),
            exc=exception,
            args=args,
            kwargs=kwargs,
            queue=delivery.get("routing_key") or "",
            retries=getattr(request, "retries", 0) or 0,
        )
    except Exception:
        logger.warning(
            "monitoring: could not record the failure of task %s", task_id, exc_info=True
        )


def on_post_migrate(sender, using="default", **kwargs) -> None:
    from django.db import DatabaseError

    from monitoring.schedules import schedules_ensure

    try:
        schedules_ensure()
    except DatabaseError:
        # django_celery_beat's tables are not there (a partial migrate): nothing to seed yet.
        logger.warning("monitoring: beat schedules not seeded (tables missing)", exc_info=True)


def on_error_reported(sender, signal=None, **entry: Any) -> None:
    """An entry for the error log from an app below monitoring (config.error_log)."""
    from monitoring.services import error_record

    error_record(**entry)


def connect(app_config) -> None:
    turn_finished.connect(on_turn_finished, dispatch_uid="monitoring.turn_finished")
    error_reported.connect(on_error_reported, dispatch_uid="monitoring.error_reported")
    celery_signals.before_task_publish.connect(
        on_before_task_publish, dispatch_uid="monitoring.before_task_publish", weak=False
    )
    celery_signals.task_prerun.connect(
        on_task_prerun, dispatch_uid="monitoring.task_prerun", weak=False
    )
    celery_signals.task_postrun.connect(
        on_task_postrun, dispatch_uid="monitoring.task_postrun", weak=False
    )
    celery_signals.task_failure.connect(
        on_task_failure, dispatch_uid="monitoring.task_failure", weak=False
    )
    post_migrate.connect(on_post_migrate, sender=app_config, dispatch_uid="monitoring.schedules")
