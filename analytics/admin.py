"""Staff pages of analytics: conversation transcripts (read-only), analyses, turn metrics, the
conversation index with its sync button, the dashboard, re-analysis and exports."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from accounts import access
from accounts.models import AuditEvent, Role
from accounts.scoped_admin import ShopScopedAdmin
from accounts.services import audit_conversations, audit_object
from analytics import charts, selectors
from analytics.apps import enqueue_turn_analysis
from analytics.export import export_response
from analytics.models import ConversationAnalysis, ConversationSummary, TurnMetrics
from analytics.services.conversation_index import conversation_index_sync
from chatbots.access import chatbot_ids_for
from chatbots.models import Chatbot
from conversations.models import Conversation, Turn

DASHBOARD_DEFAULT_DAYS = 14
# Longest chatbot or visitor id shown whole in the conversation list (the row links to all).
LIST_ID_CHARS = 24
DASHBOARD_MAX_DAYS = 366


class ReadOnlyAdmin(ShopScopedAdmin, admin.ModelAdmin):
    """Derived or logged data: staff look, nobody edits."""

    def has_reanalyse_permission(self, request: HttpRequest) -> bool:
        # Re-analysis writes analyses: agents and up (viewers only read).
        return bool(access.shop_ids_for(request.user, min_role=Role.AGENT) != [])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


# --- conversation filters (the dashboard links land here) --------------------------------------------


def _day(value: str) -> dt.datetime:
    day = dt.date.fromisoformat(value)
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


class _ParamFilter(admin.SimpleListFilter):
    """A filter that appears in the sidebar only while it is used (it comes from a link)."""

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, self.describe(value))] if value else []

    def describe(self, value: str) -> str:
        return value

    def apply(self, queryset: QuerySet, value: str) -> QuerySet:
        raise NotImplementedError

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            return self.apply(queryset, value)
        except (ValueError, TypeError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class StartedFromFilter(_ParamFilter):
    title = "started on or after"
    parameter_name = "date_from"

    def apply(self, queryset, value):
        return queryset.filter(created_at__gte=_day(value))


class StartedToFilter(_ParamFilter):
    title = "started on or before"
    parameter_name = "date_to"

    def apply(self, queryset, value):
        return queryset.filter(created_at__lt=_day(value) + dt.timedelta(days=1))


class StartedDayFilter(_ParamFilter):
    title = "started on"
    parameter_name = "day"

    def apply(self, queryset, value):
        start = _day(value)
        return queryset.filter(created_at__gte=start, created_at__lt=start + dt.timedelta(days=1))


class _LatestAnalysisFilter(admin.SimpleListFilter):
    """By a field of each conversation's latest analysis (as the dashboard counts them)."""

    field = ""

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if self.field == "score":
            try:
                value = int(value)
            except ValueError as exc:
                raise IncorrectLookupParameters(exc) from exc
        latest = selectors.latest_analyses(queryset).filter(**{self.field: value})
        return queryset.filter(pk__in=latest.values("conversation_id"))


class TopicFilter(_LatestAnalysisFilter):
    title = "topic"
    parameter_name = "topic"
    field = "topic"

    def lookups(self, request, model_admin):
        # The user's shops' topics only: another shop's topics say what its customers ask.
        topics = list(
            access.scope(ConversationAnalysis.objects.exclude(topic=""), request.user)
            .order_by("topic")
            .values_list("topic", flat=True)
            .distinct()[:40]
        )
        if self.value() and self.value() not in topics:
            topics.append(self.value())
        return [(t, t) for t in topics]


class OutcomeFilter(_LatestAnalysisFilter):
    title = "outcome"
    parameter_name = "outcome"
    field = "outcome"

    def lookups(self, request, model_admin):
        return ConversationAnalysis.Outcome.choices


class SentimentFilter(_LatestAnalysisFilter):
    title = "sentiment"
    parameter_name = "sentiment"
    field = "sentiment"

    def lookups(self, request, model_admin):
        return ConversationAnalysis.Sentiment.choices


class ScoreFilter(_LatestAnalysisFilter):
    title = "score"
    parameter_name = "score"
    field = "score"

    def lookups(self, request, model_admin):
        return [(str(s), str(s)) for s in range(1, 6)]


class ErrorCategoryFilter(_ParamFilter):
    title = "failed turn category"
    parameter_name = "error_category"

    def apply(self, queryset, value):
        category = "" if value == "uncategorised" else value
        failed = Turn.objects.filter(status=Turn.Status.FAILED, error_category=category)
        return queryset.filter(pk__in=failed.values("conversation_id"))


class MetricsDayFilter(_ParamFilter):
    title = "had turns finishing on"
    parameter_name = "metrics_day"

    def apply(self, queryset, value):
        start = _day(value)
        metrics = TurnMetrics.objects.filter(
            created_at__gte=start, created_at__lt=start + dt.timedelta(days=1)
        )
        return queryset.filter(pk__in=metrics.values("conversation_id"))


class RatingFilter(_ParamFilter):
    title = "rating"
    parameter_name = "rating"

    def apply(self, queryset, value):
        return selectors.conversations_rated(queryset, value)


class PreviewFilter(admin.SimpleListFilter):
    """Customers' conversations unless asked otherwise: staff previews and check runs
    (chatbots/preview.py, docs/versions.md) are not transcripts of customers."""

    title = "who"
    parameter_name = "preview"

    def lookups(self, request, model_admin):
        return [("yes", "Staff previews")]

    def choices(self, changelist):
        for lookup, title in ((None, "Customers"), ("yes", "Staff previews")):
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string(
                    {self.parameter_name: lookup} if lookup else {}, [self.parameter_name]
                ),
                "display": title,
            }

    def queryset(self, request, queryset):
        return queryset.filter(preview__isnull=self.value() != "yes")


# --- conversations: read-only transcript ----------------------------------------------------------


@admin.action(
    description="Re-analyse the selected conversations (all their turns)",
    permissions=["reanalyse"],
)
def reanalyse_conversations(modeladmin, request: HttpRequest, queryset: QuerySet) -> None:
    turn_ids = list(
        Turn.objects.filter(conversation__in=queryset, status__in=Turn.FINISHED).values_list(
            "pk", flat=True
        )
    )
    for turn_id in turn_ids:
        enqueue_turn_analysis(str(turn_id), force=True)
    modeladmin.message_user(
        request, f"Queued {len(turn_ids)} turns for re-analysis on the analytics queue."
    )


@admin.action(description="Export the selected conversations with their analysis (CSV)")
def export_csv(modeladmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
    rows = Conversation.objects.filter(pk__in=queryset.values("pk"))
    audit_conversations(action=AuditEvent.Action.EXPORT, conversations=rows, request=request)
    return export_response(rows, fmt="csv")


@admin.action(description="Export the selected conversations with their analysis (JSON lines)")
def export_jsonl(modeladmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
    rows = Conversation.objects.filter(pk__in=queryset.values("pk"))
    audit_conversations(action=AuditEvent.Action.EXPORT, conversations=rows, request=request)
    return export_response(rows, fmt="jsonl")


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    """Read-only: a conversation's transcript with its turns, analyses and context chunks."""

    # Seven columns fit a 1,280 px screen beside the filters: the bot by its id, the visitor's
    # id shortened, the latest analysis in one column (the transcript page has everything).
    list_display = (
        "short_id",
        "chatbot_id_short",
        "user_short",
        "status",
        "messages",
        "last_activity",
        "analysis",
    )
    list_filter = (
        StartedFromFilter,
        StartedToFilter,
        StartedDayFilter,
        ("chatbot", admin.RelatedOnlyFieldListFilter),
        "status",
        OutcomeFilter,
        TopicFilter,
        ScoreFilter,
        SentimentFilter,
        ErrorCategoryFilter,
        MetricsDayFilter,
        RatingFilter,
        PreviewFilter,
    )
    list_select_related = ("chatbot",)
    search_fields = ("user_id",)
    search_help_text = "A visitor's user id, or a conversation id."
    ordering = ("-created_at",)
    show_full_result_count = False
    actions = (reanalyse_conversations, export_csv, export_jsonl)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return selectors.conversations_with_latest(super().get_queryset(request))

    def get_search_results(self, request, queryset, search_term):
        try:
            conversation_id = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(pk=conversation_id), False

    @admin.display(description="id", ordering="created_at")
    def short_id(self, obj: Conversation) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="chatbot", ordering="chatbot__public_id")
    def chatbot_id_short(self, obj: Conversation) -> str:
        return Truncator(obj.chatbot.public_id).chars(LIST_ID_CHARS)

    @admin.display(description="visitor", ordering="user_id")
    def user_short(self, obj: Conversation) -> str:
        return Truncator(obj.user_id).chars(LIST_ID_CHARS) or "–"

    @admin.display(description="msgs", ordering="message_count")
    def messages(self, obj: Conversation) -> int:
        return obj.message_count

    @admin.display(description="last activity", ordering="last_activity_at")
    def last_activity(self, obj: Conversation) -> str:
        return timezone.localtime(obj.last_activity_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="latest analysis")
    def analysis(self, obj: Conversation) -> str:
        """Topic · score · outcome, e.g. "levering · 4 · answered"."""
        if not (obj.latest_topic or obj.latest_score is not None or obj.latest_outcome):
            return "–"
        return " · ".join(
            [
                obj.latest_topic or "–",
                str(obj.latest_score) if obj.latest_score is not None else "–",
                (obj.latest_outcome or "–").replace("_", " "),
            ]
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Another shop's conversation is answered like one that does not exist.
        conversation = get_object_or_404(
            access.scope(Conversation.objects.select_related("chatbot"), request.user),
            pk=object_id,
        )
        if not self.has_view_permission(request, conversation):
            raise PermissionDenied
        audit_object(action=AuditEvent.Action.READ, obj=conversation, request=request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Conversation {str(conversation.pk)[:8]} with {conversation.chatbot.name}",
            "subtitle": None,
            "original": conversation,
            "conversation": conversation,
            "rows": selectors.conversation_transcript(conversation=conversation),
            "index_entry": ConversationSummary.objects.filter(
                conversation_id=conversation.pk
            ).first(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/analytics/conversation/transcript.html", context)


# --- analyses, dashboard, re-analysis -----------------------------------------------------------------


class _ScopedChatbotForm(forms.Form):
    """The chatbot choice lists the user's shops' chatbots only."""

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["chatbot"].queryset = access.scope(Chatbot.objects.order_by("public_id"), user)


class DashboardForm(_ScopedChatbotForm):
    chatbot = forms.ModelChoiceField(
        queryset=Chatbot.objects.none(), required=False, empty_label="All chatbots"
    )
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        today = timezone.now().date()
        data["date_to"] = data.get("date_to") or today
        data["date_from"] = data.get("date_from") or data["date_to"] - dt.timedelta(
            days=DASHBOARD_DEFAULT_DAYS - 1
        )
        if data["date_from"] > data["date_to"]:
            raise forms.ValidationError("“From” must be on or before “To”.")
        if (data["date_to"] - data["date_from"]).days >= DASHBOARD_MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {DASHBOARD_MAX_DAYS} days.")
        return data


class ReanalyseForm(_ScopedChatbotForm):
    date_from = forms.DateField(
        label="Turns finished from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="to (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    chatbot = forms.ModelChoiceField(
        queryset=Chatbot.objects.none(), required=False, empty_label="All chatbots"
    )

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("“from” must be on or before “to”.")
        return data


@admin.action(description="Re-analyse the selected turns", permissions=["reanalyse"])
def reanalyse_selected(modeladmin, request: HttpRequest, queryset: QuerySet) -> None:
    turn_ids = list(queryset.values_list("turn_id", flat=True))
    for turn_id in turn_ids:
        enqueue_turn_analysis(str(turn_id), force=True)
    modeladmin.message_user(request, f"Queued {len(turn_ids)} turns for re-analysis.")


@admin.register(ConversationAnalysis)
class ConversationAnalysisAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "chatbot",
        "conversation_link",
        "topic",
        "score",
        "sentiment",
        "outcome",
        "analyser",
    )
    list_filter = (
        ("chatbot", admin.RelatedOnlyFieldListFilter),
        "outcome",
        "sentiment",
        "score",
        "topic",
    )
    list_select_related = ("chatbot",)
    date_hierarchy = "created_at"
    actions = (reanalyse_selected,)
    change_list_template = "admin/analytics/conversationanalysis/change_list.html"
    show_full_result_count = False

    @admin.display(description="conversation")
    def conversation_link(self, obj: ConversationAnalysis) -> str:
        url = reverse("admin:conversations_conversation_change", args=[obj.conversation_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.conversation_id)[:8])

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(self.dashboard_view), name="analytics_dashboard"),
            path("reanalyse/", wrap(self.reanalyse_view), name="analytics_reanalyse"),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "subtitle": None,
        }

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = DashboardForm(request.GET or None, user=request.user)
        context = self._context(request, "Conversation dashboard")
        if request.GET and not form.is_valid():
            context.update(form=form, charts=None)
        else:
            if not request.GET:
                # Bound to the defaults, so the date inputs show the range that is drawn.
                today = timezone.now().date()
                form = DashboardForm(
                    {
                        "date_from": today - dt.timedelta(days=DASHBOARD_DEFAULT_DAYS - 1),
                        "date_to": today,
                    },
                    user=request.user,
                )
                form.is_valid()
            data = form.cleaned_data
            chatbot = data.get("chatbot")
            context.update(
                form=form,
                **dashboard_charts(
                    date_from=data["date_from"],
                    date_to=data["date_to"],
                    chatbot=chatbot,
                    # The member's shops only: a bot granted to them as an API user belongs to
                    # another shop (as in the analytics API).
                    chatbot_ids=chatbot_ids_for(request.user, api_users=False),
                ),
            )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/analytics/dashboard.html", context)

    def reanalyse_view(self, request: HttpRequest) -> HttpResponse:
        if not (self.has_view_permission(request) and self.has_reanalyse_permission(request)):
            raise PermissionDenied
        form = ReanalyseForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            from analytics.tasks import reanalyse_range

            data = form.cleaned_data
            start = dt.datetime.combine(data["date_from"], dt.time.min, tzinfo=dt.UTC)
            end = dt.datetime.combine(
                data["date_to"] + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC
            )
            chatbot = data.get("chatbot")
            count = Turn.objects.filter(
                status__in=Turn.FINISHED, finished_at__gte=start, finished_at__lt=end
            )
            if chatbot:
                count = count.filter(conversation__chatbot=chatbot)
            elif not access.is_operator(request.user):
                # "All chatbots" re-analyses every shop's turns: members pick one of theirs.
                form.add_error("chatbot", "Choose the chatbot to re-analyse.")
                context = self._context(request, "Re-analyse a date range")
                context["form"] = form
                request.current_app = self.admin_site.name
                return TemplateResponse(request, "admin/analytics/reanalyse.html", context)
            reanalyse_range.delay(
                start.isoformat(), end.isoformat(), chatbot.pk if chatbot else None
            )
            self.message_user(
                request,
                f"Re-analysis of {count.count()} turns queued on the analytics queue; the "
                "analyses update as it runs.",
            )
            return HttpResponseRedirect(reverse("admin:analytics_conversationanalysis_changelist"))
        context = self._context(request, "Re-analyse a date range")
        context["form"] = form
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/analytics/reanalyse.html", context)


def _conversations_url(**params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return reverse("admin:conversations_conversation_changelist") + (f"?{query}" if query else "")


@dataclass(frozen=True)
class DashboardLinks:
    """Where the dashboard's bars lead: the conversation list filtered by range, bot and value."""

    chatbot_id: int | None
    date_from: dt.date
    date_to: dt.date

    def conversations(self, **params: Any) -> str:
        return _conversations_url(
            chatbot__id__exact=self.chatbot_id,
            date_from=self.date_from.isoformat(),
            date_to=self.date_to.isoformat(),
            **params,
        )

    def day(self, day: dt.date) -> str:
        return _conversations_url(chatbot__id__exact=self.chatbot_id, day=day.isoformat())

    def metrics_day(self, day: dt.date) -> str:
        return _conversations_url(chatbot__id__exact=self.chatbot_id, metrics_day=day.isoformat())


def _count_chart(
    rows: list[dict[str, Any]], empty: str, label: Any, href: Any, skip_empty: bool = False
) -> str:
    """Horizontal bars of {value, count} rows; `label` and `href` turn a row into text/link."""
    return charts.hbars(
        [
            charts.Bar(label=label(row), value=row["count"], href=href(row))
            for row in rows
            if row["value"] or not skip_empty
        ],
        empty=empty,
    )


def _distribution_charts(data: dict[str, Any], links: DashboardLinks) -> dict[str, Any]:
    """Conversations per day and the analysed distributions, each bar linking to its list."""
    link = links.conversations
    per_day = charts.vbars(
        [
            charts.Bar(
                label=d["day"].isoformat(),
                value=d["count"],
                href=links.day(d["day"]),
                note=d["day"].strftime("%d/%m") if len(data["days"]) <= 31 else "",
            )
            for d in data["days"]
        ]
    )
    none_analysed = "No analysed conversations in this range."
    return {
        "per_day": per_day,
        "topics": _count_chart(
            data["topics"],
            none_analysed,
            lambda t: t["value"] or "(none)",
            lambda t: link(topic=t["value"]),
            skip_empty=True,
        ),
        "scores": _count_chart(
            data["scores"],
            "No scored conversations in this range.",
            lambda s: f"{s['value']} / 5",
            lambda s: link(score=s["value"]),
        ),
        "sentiments": _count_chart(
            data["sentiments"],
            none_analysed,
            lambda s: s["value"],
            lambda s: link(sentiment=s["value"]),
        ),
        "outcomes": _count_chart(
            data["outcomes"],
            none_analysed,
            lambda o: o["label"],
            lambda o: link(outcome=o["value"]),
        ),
        "reasons": _count_chart(
            data["handoff_reasons"],
            "No handoffs with a reason in this range.",
            lambda r: r["value"],
            lambda r: link(outcome="handed_off"),
        ),
        "errors": _count_chart(
            data["errors"],
            "No failed turns in this range.",
            lambda e: e["value"],
            lambda e: link(error_category=e["value"]),
        ),
    }


def _timing_charts(data: dict[str, Any], links: DashboardLinks) -> dict[str, Any]:
    """Time to first token and tokens per second per day (p50, p95), and customers' ratings."""
    days = [t["day"] for t in data["timings"]]

    def percentiles(key: str, unit: str) -> str:
        return charts.line_chart(
            days,
            [
                charts.Series("p50", [t.get(f"{key}_p50") for t in data["timings"]], "s-p50"),
                charts.Series("p95", [t.get(f"{key}_p95") for t in data["timings"]], "s-p95"),
            ],
            href_for_day=links.metrics_day,
            unit=unit,
        )

    ratings = (
        _count_chart(
            data["ratings"],
            "No ratings in this range.",
            lambda r: str(r["value"]),
            lambda r: links.conversations(rating=r["value"]),
        )
        if data["ratings"] is not None
        else None
    )
    return {"ttft": percentiles("ttft", " ms"), "tps": percentiles("tps", "/s"), "ratings": ratings}


def _export_query(chatbot: Chatbot | None, date_from: dt.date, date_to: dt.date) -> str:
    params = {
        "chatbot": chatbot.public_id if chatbot else None,
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
    }
    return urlencode({k: v for k, v in params.items() if v})


def dashboard_charts(
    *,
    date_from: dt.date,
    date_to: dt.date,
    chatbot: Chatbot | None,
    chatbot_ids: list[int] | None = None,
) -> dict:
    """The dashboard's context: the figures (`selectors.dashboard_figures`, of `chatbot_ids`, the
    viewer's shops' bots, when not None) drawn as charts whose every bar links to its
    conversations."""
    chatbot_id = chatbot.pk if chatbot else None
    shown = selectors.dashboard_figures(
        date_from=date_from, date_to=date_to, chatbot_id=chatbot_id, chatbot_ids=chatbot_ids
    )
    links = DashboardLinks(chatbot_id=chatbot_id, date_from=date_from, date_to=date_to)
    export_query = _export_query(chatbot, date_from, date_to)
    return {
        "figures": shown.figures,
        "execution": shown.execution,
        "people": shown.people,
        "feedback": shown.feedback,
        "charts": {
            **_distribution_charts(shown.figures, links),
            **_timing_charts(shown.figures, links),
        },
        "all_conversations_url": links.conversations(),
        "handed_off_url": links.conversations(outcome="handed_off"),
        "export_csv_url": reverse("analytics-export") + f"?format=csv&{export_query}",
        "export_jsonl_url": reverse("analytics-export") + f"?format=jsonl&{export_query}",
        "date_from": date_from,
        "date_to": date_to,
        "chatbot": chatbot,
    }


# --- turn metrics ---------------------------------------------------------------------------------


@admin.register(TurnMetrics)
class TurnMetricsAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "chatbot",
        "flow",
        "endpoint_kind",
        "status",
        "time_to_first_token_ms",
        "total_ms",
        "tokens_per_second",
        "error_category",
    )
    list_filter = (
        ("chatbot", admin.RelatedOnlyFieldListFilter),
        "status",
        "endpoint_kind",
        "flow",
        "error_category",
    )
    list_select_related = ("chatbot",)
    date_hierarchy = "created_at"
    show_full_result_count = False


# --- the conversation index ---------------------------------------------------------------------------


@admin.register(ConversationSummary)
class ConversationSummaryAdmin(ReadOnlyAdmin):
    list_display = (
        "conversation",
        "chatbot",
        "username",
        "last_message_time",
        "message_count",
        "first_question_short",
        "model",
        "total_tokens",
    )
    list_filter = (("chatbot", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("chatbot",)
    search_fields = ("username", "=model")
    change_list_template = "admin/analytics/conversationsummary/change_list.html"
    show_full_result_count = False

    @admin.display(description="conversation")
    def conversation(self, obj: ConversationSummary) -> str:
        url = reverse("admin:conversations_conversation_change", args=[obj.conversation_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.conversation_id)[:8])

    @admin.display(description="first question")
    def first_question_short(self, obj: ConversationSummary) -> str:
        return Truncator(obj.first_question).chars(80)

    def get_urls(self):
        return [
            path(
                "sync/",
                self.admin_site.admin_view(self.sync_view),
                name="analytics_conversationsummary_sync",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        # The index's state and size are the platform's, not a shop's: operators only.
        index = selectors.conversation_index_stats() if access.is_operator(request.user) else None
        extra_context = {**(extra_context or {}), "index": index}
        return super().changelist_view(request, extra_context)

    def sync_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:analytics_conversationsummary_changelist"))
        # One index for every shop: syncing it is the operators' job.
        if not access.is_operator(request.user):
            raise PermissionDenied
        result = conversation_index_sync()
        self.message_user(
            request,
            f"Sync finished in {result['durationSeconds']} s: {result['messagesProcessed']} new "
            f"AI calls, {result['conversationsIndexed']} conversations updated "
            f"({result['conversationsCreated']} new).",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:analytics_conversationsummary_changelist"))
