"""What operators look back at: handled failures (ErrorLog) and runs of scheduled jobs (JobRun)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ErrorLog(models.Model):
    """One handled failure (the seeds' error_logs), with what an operator should do about it."""

    class Category(models.TextChoices):
        NETWORK = "network", "Network"
        UPSTREAM_AI = "upstream_ai", "AI service"
        KNOWLEDGE_BASE = "knowledge_base", "Knowledge base"
        TEMPLATE = "template", "Prompt template / flow setup"
        DATABASE = "database", "Database"
        STREAMING = "streaming", "Streaming"
        ORDER_TRACKING = "order_tracking", "Order tracking"
        IMAGE = "image", "Image"
        AUTH = "auth", "Authentication"
        RATE_LIMIT = "rate_limit", "Rate limit"
        WORKER = "worker", "Background task"
        TOOL = "tool", "Tool call"

    category = models.CharField(max_length=20, choices=Category.choices)
    code = models.CharField(max_length=60)
    message = models.TextField(blank=True)
    # No database constraint and no cascade: an entry outlives the chatbot or turn it names
    # (turn retention deletes turns in bulk), and recording must never fail on a stale id.
    chatbot = models.ForeignKey(
        "chatbots.Chatbot",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="error_logs",
    )
    # The shop the failure belongs to (its chatbot's); empty for platform failures, which only
    # operators see. Set when recording, so the entry stays scoped after its chatbot is gone.
    shop = models.ForeignKey(
        "accounts.Shop",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="error_logs",
    )
    turn = models.ForeignKey(
        "conversations.Turn",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="error_logs",
    )
    context = models.JSONField(default=dict, blank=True, help_text="Secrets are redacted.")
    stack = models.TextField(blank=True)
    suggestion = models.TextField(blank=True, help_text="What an operator can do about it.")
    system_state = models.JSONField(
        default=dict, blank=True, help_text="Memory, uptime and active streams at the time."
    )
    request_id = models.CharField(max_length=64, blank=True)
    process = models.CharField(max_length=200, blank=True, help_text="host:pid that recorded it.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Serves retention (DELETE … WHERE created_at < cutoff) and the admin's date filter.
            models.Index(fields=["created_at"], name="errorlog_created"),
            # Serves the admin list filtered by category and the per-category counts.
            models.Index(fields=["category", "-created_at"], name="errorlog_category_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.category}/{self.code}"


class JobRun(models.Model):
    """One run of a scheduled job (ours, or any task started by Celery beat)."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "OK"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    job = models.CharField(max_length=200, help_text="The schedule's name, e.g. cache-cleanup.")
    task = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    rows_affected = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # Serves "the last run of each job" (DISTINCT ON (job) … ORDER BY job, started_at DESC)
            # and the stream-events job's watermark lookup.
            models.Index(fields=["job", "-started_at"], name="jobrun_job_recent"),
            # Serves retention of old runs.
            models.Index(fields=["started_at"], name="jobrun_started"),
        ]

    def __str__(self) -> str:
        return f"{self.job} @ {self.started_at:%Y-%m-%d %H:%M:%S} ({self.outcome})"


class WorkersOverview(JobRun):
    """No table of its own: the admin entry for the operators' page (workers, queues, jobs)."""

    class Meta:
        proxy = True
        verbose_name = "Workers and queues"
        verbose_name_plural = "Workers and queues"
