"""Admin: the error log (with counts per category), job runs, and the operators' page."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from accounts import access
from accounts.scoped_admin import ShopScopedAdmin
from monitoring import selectors
from monitoring.models import ErrorLog, JobRun, WorkersOverview

# Characters of a message shown in a list row; the whole message is on the detail page.
SUMMARY_CHARS = 100


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the system: staff look, nobody edits."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ErrorLog)
class ErrorLogAdmin(ShopScopedAdmin, ReadOnlyAdmin):
    # Fits a 1,280 px screen beside the filters: the turn and request ids are on the detail page
    # (and searchable); long codes and messages wrap (templates/admin/monitoring/errorlog/).
    list_display = ("created_at", "category", "code", "chatbot_name", "summary")
    list_filter = ("category", ("chatbot", admin.RelatedOnlyFieldListFilter), "created_at")
    date_hierarchy = "created_at"
    search_fields = ("code", "message", "=request_id")
    list_select_related = ("chatbot",)
    list_per_page = 50
    change_list_template = "admin/monitoring/errorlog/change_list.html"
    fields = (
        "created_at",
        "category",
        "code",
        "message",
        "suggestion",
        "chatbot_name",
        "turn_id",
        "request_id",
        "process",
        "system_state",
        "context",
        "stack",
    )
    readonly_fields = fields

    @admin.display(description="chatbot", ordering="chatbot__public_id")
    def chatbot_name(self, obj: ErrorLog) -> str:
        # select_related gives None for a chatbot deleted since (no FK constraint).
        chatbot = obj.chatbot if obj.chatbot_id else None
        return chatbot.public_id if chatbot else (f"#{obj.chatbot_id}" if obj.chatbot_id else "")

    @admin.display(description="message")
    def summary(self, obj: ErrorLog) -> str:
        return Truncator(obj.message).chars(SUMMARY_CHARS)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            counts = dict(
                context["cl"].queryset.order_by().values_list("category").annotate(n=Count("id"))
            )
            params = {k: v for k, v in request.GET.items() if k not in ("category__exact", "p")}
            context["category_counts"] = [
                {
                    "label": label,
                    "count": counts[value],
                    "url": "?" + urlencode({**params, "category__exact": value}),
                }
                for value, label in ErrorLog.Category.choices
                if counts.get(value)
            ]
            context["category_total"] = sum(counts.values())
        return response


@admin.register(JobRun)
class JobRunAdmin(ShopScopedAdmin, ReadOnlyAdmin):
    list_display = ("job", "outcome", "started_at", "duration_ms", "rows_affected", "summary")
    list_filter = ("outcome", "job", "started_at")
    search_fields = ("job", "task", "message")
    date_hierarchy = "started_at"
    list_per_page = 50
    fields = (
        "job",
        "task",
        "outcome",
        "started_at",
        "finished_at",
        "duration_ms",
        "rows_affected",
        "message",
        "details",
        "worker",
    )
    readonly_fields = fields

    @admin.display(description="message")
    def summary(self, obj: JobRun) -> str:
        return obj.message[:120]


@admin.register(WorkersOverview)
class WorkersOverviewAdmin(admin.ModelAdmin):
    """The operators' page: no list of rows, a live summary of every shop's workers instead
    (platform operators only)."""

    def has_view_permission(self, request, obj=None) -> bool:
        return access.is_operator(request.user)

    def has_module_permission(self, request) -> bool:
        return access.is_operator(request.user)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        from monitoring.pool_stats import pool_report

        # This view replaces Django's list, and with it Django's permission check.
        if not self.has_view_permission(request):
            raise PermissionDenied

        celery = selectors.celery_workers(use_cache=False)
        detail = selectors.celery_workers_detail(celery["workers"])
        try:
            pools = pool_report().pools
        except Exception:
            pools = None
        since = timezone.now() - dt.timedelta(hours=24)
        context = {
            **self.admin_site.each_context(request),
            "title": "Workers and queues",
            "opts": self.model._meta,
            "celery": celery,
            "workers": [detail.get(name, {"name": name}) for name in celery["workers"]],
            "queues": selectors.queue_stats(),
            "running_turns": selectors.running_turns(),
            "failed_tasks": ErrorLog.objects.filter(category=ErrorLog.Category.WORKER)[:20],
            "jobs": selectors.maintenance_report(),
            "recent_runs": JobRun.objects.all()[:20],
            "pools": pools,
            "error_counts": sorted(selectors.error_counts(since=since).items()),
            "errorlog_url": reverse("admin:monitoring_errorlog_changelist"),
            "jobrun_url": reverse("admin:monitoring_jobrun_changelist"),
            "schedules_url": reverse("admin:django_celery_beat_periodictask_changelist"),
            "queue_stuck_seconds": settings.QUEUE_STUCK_SECONDS,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/monitoring/operators.html", context)
