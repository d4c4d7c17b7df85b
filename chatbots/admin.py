"""Admin for shop staff: configure chatbots, endpoints, knowledge and templates without SQL,
with write-only secrets, "Test connection", and a history that can be compared and reverted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import reversion
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import CharField, Count, Value
from django.db.models.functions import Cast, Concat
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from reversion.admin import VersionAdmin
from reversion.errors import RevertError
from reversion.models import Version

from accounts import access
from accounts.scoped_admin import ShopScopedAdmin, ShopScopedInline
from chatbots import services
from chatbots.admin_urls import object_admin_paths
from chatbots.connection_admin import ConnectionTestMixin
from chatbots.models import (
    AIEndpoint,
    Chatbot,
    Flow,
    KnowledgeBase,
    KnowledgeEntry,
    PromptTemplate,
    TemplateAssignment,
    TextRule,
)
from chatbots.secrets import EncryptedSecretField, SecretDecryptionError, secret_field_names
from chatbots.version_admin import CheckRunsAdminMixin, VersionsAdminMixin
from chatbots.versions import chatbot_publishing_set
from chatbots.widgets import ModelChoiceInput, ModelNameInput, OpeningHoursField


def flow_knowledge_warnings(*, chatbot_id: int) -> list[str]:
    """Sentences for staff, after a save, about flows whose knowledge base will not reach their
    answers. It reads only this app's models, so it lives beside the pages that show it."""
    warnings = []
    flows = Flow.objects.filter(
        chatbot_id=chatbot_id, enabled=True, knowledge_base__isnull=False
    ).select_related("endpoint", "knowledge_base")
    for flow in flows.order_by("name"):
        kb, endpoint = flow.knowledge_base, flow.endpoint
        if flow.role != Flow.Role.ANSWER:
            warnings.append(
                f"Flow “{flow.name}” is a {flow.role} flow: only answer flows use a knowledge "
                f"base, so “{kb.name}” is not searched for it."
            )
        elif (
            kb.kind == KnowledgeBase.Kind.PINECONE
            and endpoint.kind == AIEndpoint.Kind.OPENAI
            and not kb.embedding_endpoint_id
        ):
            warnings.append(
                f"Flow “{flow.name}” (OpenAI-compatible) cannot search the Pinecone knowledge "
                f"base “{kb.name}”: give the knowledge base an embedding endpoint and model "
                "(the ones its index was built with), or its answers get no knowledge."
            )
    return warnings


# --- History --------------------------------------------------------------------------------------
# A chatbot's revision holds its whole configuration, so one revert restores all of it. Knowledge
# entries are not followed: a shop can have thousands, and copying them all on every save of the
# chatbot would make each revision as large as the knowledge base (entries are edited on their own).
CHATBOT_FOLLOW = ("flows", "template_assignments", "text_rules", "knowledge_bases")

# Secrets are not history: a version never holds a key (a rotated, leaked key would otherwise
# live on in every old version), and a revert keeps the keys stored now
# (signals.raw_save_keeps_stored_secrets) — so only owners ever set one (docs/secrets.md).
reversion.register(Chatbot, follow=CHATBOT_FOLLOW)
reversion.register(Flow)
reversion.register(TemplateAssignment)
reversion.register(TextRule)
reversion.register(KnowledgeBase, exclude=secret_field_names(KnowledgeBase))
reversion.register(AIEndpoint, exclude=secret_field_names(AIEndpoint))
reversion.register(PromptTemplate)

# Bookkeeping columns that differ on every save and mean nothing to staff.
DIFF_SKIPPED_FIELDS = {
    "id",
    "uuid",
    "created_at",
    "updated_at",
    "search_vector",
    # Moved by publishing and rollback only (chatbots.versions), never by a revert.
    "live_version",
    # What the AI server listed at the last "Test connection": fetched, not configured.
    "known_models",
    "known_models_at",
}
# Where the model's verbose name would read oddly ("Api key").
DIFF_LABELS = {"api_key": "API key", "base_url": "Base URL", "control_url": "Control URL"}


@dataclass
class FieldChange:
    label: str
    old: str
    new: str


@dataclass
class RowChange:
    name: str
    status: str  # "added", "removed" or "changed"
    fields: list[FieldChange] = field(default_factory=list)


@dataclass
class DiffSection:
    title: str
    rows: list[RowChange]


# (model, primary key) -> (label, {attname: value})
Snapshot = dict[tuple[type[models.Model], str], tuple[str, dict[str, Any]]]


def _diff_fields(model: type[models.Model], root: type[models.Model]) -> list[models.Field]:
    return [
        f
        for f in model._meta.concrete_fields
        if f.name not in DIFF_SKIPPED_FIELDS
        and not (model is not root and f.is_relation and f.related_model is root)
    ]


def _field_label(f: models.Field) -> str:
    return DIFF_LABELS.get(f.name) or capfirst(f.verbose_name)


def _row_label(model: type[models.Model], repr_: str, values: dict[str, Any]) -> str:
    return str(values.get("name") or repr_) if model is not Chatbot else repr_


def _revision_snapshot(version: Version, models_: list[type[models.Model]]) -> Snapshot:
    """The root object and its related rows as they were saved together with `version`."""
    root = models_[0]
    rows: Snapshot = {}
    for item in version.revision.version_set.select_related("content_type"):
        model = item._model
        if model not in models_:
            continue
        values = item.field_dict
        if model is root:
            if item.object_id != version.object_id:
                continue
        elif not any(
            f.related_model is root and str(values.get(f.attname)) == version.object_id
            for f in model._meta.concrete_fields
            if f.is_relation
        ):
            continue
        rows[(model, item.object_id)] = (_row_label(model, item.object_repr, values), values)
    return rows


def _current_snapshot(obj: models.Model, follow: tuple[str, ...]) -> Snapshot:
    rows: Snapshot = {}
    for row in [obj, *(r for name in follow for r in getattr(obj, name).all())]:
        model = type(row)
        values = {f.attname: f.value_from_object(row) for f in model._meta.concrete_fields}
        rows[(model, str(row.pk))] = (_row_label(model, str(row), values), values)
    return rows


class _Display:
    """Readable values: choice labels, related objects by name, secrets never."""

    def __init__(self) -> None:
        self._related: dict[tuple[type[models.Model], Any], str] = {}

    def related(self, model: type[models.Model], pk: Any) -> str:
        key = (model, pk)
        if key not in self._related:
            obj = model._default_manager.filter(pk=pk).first()
            self._related[key] = str(obj) if obj is not None else f"#{pk} (deleted since)"
        return self._related[key]

    def __call__(self, f: models.Field, value: Any) -> str:
        if isinstance(f, EncryptedSecretField):
            return "stored" if value else "—"
        if value is None or value == "" or value == [] or value == {}:
            return "—"
        if f.choices:
            return str(dict(f.flatchoices).get(value, value))
        if f.is_relation:
            return self.related(f.related_model, value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
        return str(value)


def _same(old: Any, new: Any) -> bool:
    try:
        return old == new
    except SecretDecryptionError:
        # A key that can no longer be decrypted: compare the stored form only.
        return getattr(old, "stored", old) == getattr(new, "stored", new)


def configuration_diff(
    old: Snapshot, new: Snapshot, models_: list[type[models.Model]]
) -> list[DiffSection]:
    """Field-by-field differences, root object first; secrets appear only as "changed"."""
    root = models_[0]
    display = _Display()
    sections = []
    for model in models_:
        keys = sorted(
            {k for k in [*old, *new] if k[0] is model},
            key=lambda k: int(k[1]) if k[1].isdigit() else k[1],
        )
        rows = []
        fields = _diff_fields(model, root)
        for key in keys:
            if key in old and key in new:
                (_, before), (label, after) = old[key], new[key]
                changes = []
                for f in fields:
                    a, b = before.get(f.attname), after.get(f.attname)
                    if _same(a, b):
                        continue
                    if isinstance(f, EncryptedSecretField):
                        changes.append(FieldChange(_field_label(f), "", "changed"))
                    else:
                        changes.append(FieldChange(_field_label(f), display(f, a), display(f, b)))
                if changes:
                    rows.append(RowChange(label, "changed", changes))
            elif key in new:
                label, after = new[key]
                changes = [
                    FieldChange(_field_label(f), "", value)
                    for f in fields
                    if (value := display(f, after.get(f.attname))) != "—"
                ]
                rows.append(RowChange(label, "added", changes))
            else:
                label, before = old[key]
                changes = [
                    FieldChange(_field_label(f), value, "")
                    for f in fields
                    if (value := display(f, before.get(f.attname))) != "—"
                ]
                rows.append(RowChange(label, "removed", changes))
        if rows:
            title = model._meta.verbose_name if model is root else model._meta.verbose_name_plural
            sections.append(DiffSection(capfirst(title), rows))
    return sections


class ConfigurationHistoryAdmin(ShopScopedAdmin, VersionAdmin):
    """History with a readable compare view and a one-click revert of a whole saved version."""

    history_latest_first = True
    object_history_template = "admin/chatbots/object_history.html"
    # Related managers whose rows belong to this object's configuration (see CHATBOT_FOLLOW).
    history_follow: tuple[str, ...] = ()

    def get_urls(self):
        pages = [
            ("history/compare/", self.history_compare_view, "history_compare"),
            ("history/<int:version_id>/revert/", self.history_revert_view, "history_revert"),
        ]
        return [*object_admin_paths(self, pages), *super().get_urls()]

    def _history_models(self) -> list[type[models.Model]]:
        return [
            self.model,
            *(getattr(self.model, name).rel.related_model for name in self.history_follow),
        ]

    def _versions(self, object_id: str):
        return Version.objects.get_for_object_reference(self.model, object_id).select_related(
            "revision", "revision__user"
        )

    def _url(self, name: str, *args: Any) -> str:
        info = self.model._meta.app_label, self.model._meta.model_name
        return reverse(f"{self.admin_site.name}:{info[0]}_{info[1]}_{name}", args=args)

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        object_id = unquote(object_id)
        versions = list(self._versions(object_id).order_by("-pk"))
        compare = self._url("history_compare", quote(object_id))
        rows = []
        for i, version in enumerate(versions):
            previous = versions[i + 1] if i + 1 < len(versions) else None
            rows.append(
                {
                    "version": version,
                    "changes_url": (
                        f"{compare}?{urlencode({'old': previous.pk, 'new': version.pk})}"
                        if previous
                        else None
                    ),
                    "compare_url": f"{compare}?{urlencode({'old': version.pk})}",
                    "revert_url": self._url("history_revert", quote(object_id), version.pk),
                    "is_latest": i == 0,
                }
            )
        obj = self.get_object(request, object_id)
        context = {
            "version_rows": rows,
            "has_change_permission": self.has_change_permission(request, obj),
            **(extra_context or {}),
        }
        return super().history_view(request, quote(object_id), context)

    def history_compare_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        object_id = unquote(object_id)
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404("No such object.")
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        versions = self._versions(object_id)
        try:
            old = versions.get(pk=int(request.GET.get("old", "")))
            new = versions.get(pk=int(request.GET["new"])) if request.GET.get("new") else None
        except (ValueError, Version.DoesNotExist) as exc:
            raise Http404("No such version of this object.") from exc
        models_ = self._history_models()
        try:
            before = _revision_snapshot(old, models_)
            after = (
                _revision_snapshot(new, models_)
                if new
                else _current_snapshot(obj, self.history_follow)
            )
        except RevertError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._url("history", quote(object_id)))
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": f"Compare versions of {obj}",
            "subtitle": None,
            "opts": opts,
            "object": obj,
            "old": old,
            "new": new,
            "sections": configuration_diff(before, after, models_),
            "can_revert": self.has_change_permission(request, obj),
            "old_revert_url": self._url("history_revert", quote(object_id), old.pk),
            "new_revert_url": (
                self._url("history_revert", quote(object_id), new.pk) if new else None
            ),
            "history_url": self._url("history", quote(object_id)),
            "change_url": self._url("change", quote(object_id)),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/chatbots/history_compare.html", context)

    def history_revert_view(
        self, request: HttpRequest, object_id: str, version_id: int
    ) -> HttpResponse:
        object_id = unquote(object_id)
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404("No such object.")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        version = get_object_or_404(self._versions(object_id), pk=version_id)
        if request.method != "POST":
            # Reverting changes data: only a POST (the button, with its CSRF token) does it.
            url = self._url("history_compare", quote(object_id))
            return HttpResponseRedirect(f"{url}?{urlencode({'old': version.pk})}")
        shop_id = None if access.is_operator(request.user) else access.shop_id_of(obj)
        try:
            services.configuration_revert(version=version, user=request.user, shop_id=shop_id)
        except RevertError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._url("history", quote(object_id)))
        self.message_user(
            request,
            f"Reverted “{obj}” to the version saved on "
            f"{version.revision.date_created:%Y-%m-%d %H:%M} UTC.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._url("change", quote(object_id)))


# --- Forms ----------------------------------------------------------------------------------------

# Staff paste host names without a scheme; AI services and Pinecone are reached over HTTPS.
URL_FIELDS_ASSUME_HTTPS = {models.URLField: {"assume_scheme": "https"}}


def _https_by_default(db_field: models.Field, **kwargs: Any) -> forms.Field | None:
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class AIEndpointForm(forms.ModelForm):
    class Meta:
        model = AIEndpoint
        fields = (
            "name",
            "kind",
            "base_url",
            "api_key",
            "connect_timeout",
            "read_timeout",
            "total_timeout",
            "pool_size",
            "default_model",
        )
        labels = {"api_key": "API key", "base_url": "Base URL"}
        formfield_callback = _https_by_default


class KnowledgeBaseForm(forms.ModelForm):
    class Meta:
        model = KnowledgeBase
        fields = (
            "chatbot",
            "name",
            "kind",
            "index_name",
            "host",
            "namespace",
            "api_key",
            "control_url",
            "embedding_endpoint",
            "embedding_model",
            "chunk_size",
            "chunk_overlap",
        )
        labels = {"api_key": "Pinecone API key", "control_url": "Control URL"}
        formfield_callback = _https_by_default


def _parent_id(request: HttpRequest) -> str | None:
    """Primary key of the object whose change page is being served, if any."""
    match = request.resolver_match
    if match is None:
        return None
    # Reversion's revision view passes the id positionally.
    object_id = match.kwargs.get("object_id") or (match.args[0] if match.args else None)
    return unquote(object_id) if object_id else None


class FlowFormSet(BaseInlineFormSet):
    """Rules that span several flows, checked before anything is saved."""

    def get_unique_error_message(self, unique_check):
        if "name" in unique_check:
            return "Two flows have the same name; give each flow of this chatbot its own name."
        return super().get_unique_error_message(unique_check)

    def clean(self) -> None:
        super().clean()
        live = [
            form for form in self.forms if form.cleaned_data and not self._should_delete_form(form)
        ]
        # A flow whose main box was rejected (say, a router) still counts as ticked, so that
        # staff see that error instead of "no main flow".
        mains = [f for f in live if f.cleaned_data.get("is_main") or f.has_error("is_main")]
        if not mains:
            raise ValidationError(
                "This chatbot has no main flow. Tick “Is main” on exactly one answer flow: it "
                "answers every question the router does not send to another flow.",
                code="no_main_flow",
            )
        if len(mains) > 1:
            names = ", ".join(f"“{f.cleaned_data.get('name', '?')}”" for f in mains)
            raise ValidationError(
                f"Only one flow can be the main flow, but {names} are all ticked as main. "
                "Untick all but one.",
                code="several_main_flows",
            )
        seen: set[str] = set()
        for form in live:
            key = form.cleaned_data.get("routing_key")
            if not key:
                continue
            if key in seen:
                form.add_error(
                    "routing_key", "Another flow of this chatbot already has this routing key."
                )
            seen.add(key)

    def save(self, commit: bool = True):
        if commit:
            self._release_unique_values()
        return super().save(commit)

    def _release_unique_values(self) -> None:
        """Clear the unique values of flows about to change or go, so that swapping the main
        flow, routing keys or names between flows in one save cannot trip a constraint midway."""
        touched = [
            form.instance.pk
            for form in self.initial_forms
            if form.instance.pk
            and (
                self._should_delete_form(form)
                or {"is_main", "routing_key", "name"} & set(form.changed_data)
            )
        ]
        if touched:
            Flow.objects.filter(pk__in=touched).update(
                is_main=False,
                routing_key="",
                name=Concat(Value("~"), Cast("id", output_field=CharField())),
            )


class KnowledgeBaseFormSet(BaseInlineFormSet):
    def get_unique_error_message(self, unique_check):
        if "name" in unique_check:
            return "Two knowledge bases have the same name; give each its own name."
        return super().get_unique_error_message(unique_check)


class TemplateAssignmentFormSet(BaseInlineFormSet):
    def get_unique_error_message(self, unique_check):
        if "flow" in unique_check:
            return "A flow can use only one prompt template; remove the extra row."
        return super().get_unique_error_message(unique_check)


# --- Chatbot and its inlines ------------------------------------------------------------------------


class FlowInline(ShopScopedInline, admin.StackedInline):
    """One block per flow, its fields grouped in rows: a 12-column table was 3,000 px wide."""

    model = Flow
    formset = FlowFormSet
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("name", "role", "enabled"),
                    ("endpoint", "target"),
                    ("is_main", "routing_key", "applies_to"),
                    ("knowledge_base", "namespace", "top_k"),
                )
            },
        ),
    )
    extra = 0

    def get_extra(self, request, obj=None, **kwargs):
        return 1 if obj is None else 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "knowledge_base":
            kwargs["queryset"] = KnowledgeBase.objects.filter(chatbot_id=_parent_id(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "target":
            kwargs["widget"] = ModelNameInput(models=_offered_models(request))
        return super().formfield_for_dbfield(db_field, request, **kwargs)


def _offered_models(request: HttpRequest) -> list[tuple[str, str]]:
    """Every model one of the user's shops' OpenAI-compatible endpoints listed, labelled with
    the endpoint."""
    offered: dict[str, list[str]] = {}
    endpoints = access.scope(
        AIEndpoint.objects.filter(kind=AIEndpoint.Kind.OPENAI), request.user
    ).order_by("name")
    for name, models_ in endpoints.values_list("name", "known_models"):
        for model in models_ if isinstance(models_, list) else []:
            offered.setdefault(str(model), []).append(name)
    return [(model, ", ".join(names)) for model, names in sorted(offered.items())]


class TemplateAssignmentInline(ShopScopedInline, admin.TabularInline):
    model = TemplateAssignment
    formset = TemplateAssignmentFormSet
    fields = ("flow", "template", "overrides")
    extra = 0
    verbose_name = "prompt template"
    verbose_name_plural = "prompt templates (save new flows first, then pick them here)"

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "flow":
            kwargs["queryset"] = Flow.objects.filter(chatbot_id=_parent_id(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TextRuleInline(ShopScopedInline, admin.TabularInline):
    model = TextRule
    fields = ("position", "kind", "find", "replace")
    extra = 0


class KnowledgeBaseInline(ShopScopedInline, admin.StackedInline):
    model = KnowledgeBase
    form = KnowledgeBaseForm
    formset = KnowledgeBaseFormSet
    formfield_overrides = URL_FIELDS_ASSUME_HTTPS
    fields = (
        ("name", "kind"),
        ("index_name", "namespace"),
        "host",
        "api_key",
        "control_url",
    )
    extra = 0
    show_change_link = True


class ChatbotForm(forms.ModelForm):
    class Meta:
        model = Chatbot
        field_classes = {"opening_hours": OpeningHoursField}
        fields = (
            "public_id",
            "name",
            "active",
            "greeting",
            "language",
            "image_upload_enabled",
            "allowed_origins",
            "timezone",
            "opening_hours",
            "contact_email",
            "contact_phone",
            "routing_mode",
            "message_rate_limit",
            "topics",
            "publishing",
        )


@admin.register(Chatbot)
class ChatbotAdmin(CheckRunsAdminMixin, VersionsAdminMixin, ConfigurationHistoryAdmin):
    form = ChatbotForm
    history_follow = CHATBOT_FOLLOW

    class Media:
        css = {"all": ["chatbots/admin.css"]}

    inlines = [FlowInline, TemplateAssignmentInline, TextRuleInline, KnowledgeBaseInline]
    list_display = (
        "public_id",
        "name",
        "language",
        "active",
        "routing_mode",
        "flow_count",
        "try_link",
    )
    list_display_links = ("public_id", "name")
    list_filter = ("language", "active", "routing_mode", "image_upload_enabled")
    search_fields = ("public_id", "name")
    readonly_fields = (
        "try_link",
        "widget_key",
        "uuid",
        "created_at",
        "updated_at",
        "live_version_link",
    )
    actions = ["regenerate_widget_key"]
    fieldsets = (
        ("Identity", {"fields": ("public_id", "name", "active", "try_link")}),
        (
            "Widget",
            {
                "fields": (
                    "greeting",
                    "language",
                    "image_upload_enabled",
                    "widget_key",
                    "allowed_origins",
                ),
                "description": "What customers see, and where the widget may be embedded. "
                "To issue a new widget key, use the “Regenerate widget key” action in the list.",
            },
        ),
        (
            "Support",
            {"fields": ("timezone", "opening_hours", "contact_email", "contact_phone")},
        ),
        ("Routing and limits", {"fields": ("routing_mode", "message_rate_limit")}),
        ("Topics", {"fields": ("topics",)}),
        (
            "Publishing",
            {
                "fields": ("publishing", "live_version_link"),
                "description": "Reviewed: saves here make a draft; customers keep the published "
                "version until someone publishes the draft on the Versions page.",
            },
        ),
        ("Record", {"fields": ("uuid", "created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_flow_count=Count("flows"))

    def get_inline_instances(self, request, obj=None):
        inlines = super().get_inline_instances(request, obj)
        # Templates attach to saved flows, which a chatbot being added does not have yet.
        if obj is None:
            inlines = [i for i in inlines if not isinstance(i, TemplateAssignmentInline)]
        return inlines

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        for warning in flow_knowledge_warnings(chatbot_id=form.instance.pk):
            self.message_user(request, warning, messages.WARNING)
        if "publishing" in form.changed_data or (
            form.instance.publishing == Chatbot.Publishing.REVIEWED
            and not form.instance.live_version_id
        ):
            # To reviewed: what customers had (the rows, flows included) becomes version 1.
            chatbot_publishing_set(
                chatbot=form.instance,
                publishing=form.instance.publishing,
                user=request.user,
                request=request,
                previous=form.initial.get("publishing") if change else None,
            )
        elif form.instance.publishing == Chatbot.Publishing.REVIEWED:
            self.message_user(
                request,
                "Saved as a draft: customers keep the published version until you publish it "
                "on the Versions page.",
                messages.INFO,
            )

    @admin.display(description="live version")
    def live_version_link(self, obj: Chatbot | None) -> str:
        if obj is None or obj.pk is None:
            return "Save the chatbot first."
        url = self._versions_url(obj)
        if obj.publishing != Chatbot.Publishing.REVIEWED:
            return format_html('Every save is live. <a href="{}">Versions</a>', url)
        live = obj.live_version
        return format_html(
            '{} <a href="{}">Versions, publish and rollback</a>',
            f"Version {live.number} is live." if live else "Nothing published yet.",
            url,
        )

    @admin.display(description="flows", ordering="_flow_count")
    def flow_count(self, obj: Chatbot) -> int:
        return obj._flow_count

    @admin.display(description="try it")
    def try_link(self, obj: Chatbot | None) -> str:
        if obj is None or obj.pk is None:
            return "Save the chatbot first."
        # The demo page (templates/chat/) serves /chat/<public_id>/.
        return format_html(
            '<a href="/chat/{}/" target="_blank" rel="noopener">Try this chatbot</a>',
            obj.public_id,
        )

    @admin.action(
        description="Regenerate widget key (the old key stops working)", permissions=["change"]
    )
    def regenerate_widget_key(self, request, queryset):
        for chatbot in queryset:
            services.chatbot_widget_key_regenerate(chatbot=chatbot)
        self.message_user(
            request,
            f"New widget keys for {queryset.count()} chatbot(s); update the shops' <script> tags.",
            messages.WARNING,
        )


@admin.register(AIEndpoint)
class AIEndpointAdmin(ConnectionTestMixin, ConfigurationHistoryAdmin):
    form = AIEndpointForm
    formfield_overrides = URL_FIELDS_ASSUME_HTTPS
    list_display = (
        "name",
        "kind",
        "base_url",
        "default_model",
        "key_stored",
        "flow_count",
        "read_timeout",
    )
    list_filter = ("kind",)
    search_fields = ("name", "base_url")
    readonly_fields = ("used_by",)

    def get_fieldsets(self, request, obj=None):
        return (
            (None, {"fields": ("name", "kind", "base_url")}),
            ("Credentials", {"fields": ("api_key",)}),
            *self._model_fieldsets(obj),
            (
                "Timeouts and pool",
                {"fields": ("connect_timeout", "read_timeout", "total_timeout", "pool_size")},
            ),
            ("Used by", {"fields": ("used_by",)}),
        )

    def _model_fieldsets(self, obj: AIEndpoint | None) -> tuple:
        # Only OpenAI-compatible endpoints have a model here (shown on the add page, where the
        # kind is not chosen yet); Flowise flows name their chatflow in the flow row.
        if obj is not None and obj.kind != AIEndpoint.Kind.OPENAI and not obj.default_model:
            return ()
        return (("Model", {"fields": ("default_model",)}),)

    def get_form(self, request, obj=None, change=False, **kwargs):
        known = obj.known_models if obj is not None and isinstance(obj.known_models, list) else []
        untested = obj is not None and obj.kind == AIEndpoint.Kind.OPENAI and not known
        kwargs.setdefault("widgets", {})["default_model"] = ModelChoiceInput(
            models=[str(name) for name in known],
            listed_at=obj.known_models_at if obj is not None else None,
            note="Press “Test connection” to list the models this server offers."
            if untested
            else "",
        )
        return super().get_form(request, obj, change, **kwargs)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_flow_count=Count("flows"))

    def connection_test(self, obj: AIEndpoint) -> tuple[bool, str]:
        return services.ai_endpoint_connection_test(endpoint=obj)

    @admin.display(description="API key", boolean=True)
    def key_stored(self, obj: AIEndpoint) -> bool:
        return bool(obj.api_key)

    @admin.display(description="flows", ordering="_flow_count")
    def flow_count(self, obj: AIEndpoint) -> int:
        return obj._flow_count

    @admin.display(description="flows using this endpoint")
    def used_by(self, obj: AIEndpoint | None) -> str:
        flows = obj.flows.select_related("chatbot") if obj and obj.pk else []
        return _links_to_chatbots(flows) or "No flow uses this endpoint."


def _links_to_chatbots(rows) -> str:
    return format_html_join(
        ", ",
        '<a href="{}">{}</a>',
        (
            (reverse("admin:chatbots_chatbot_change", args=[row.chatbot_id]), str(row))
            for row in rows
        ),
    )


# --- Knowledge -------------------------------------------------------------------------------------
# The knowledge base's page (its entries, documents and retrieval testing) is in knowledge.admin.


@admin.register(KnowledgeEntry)
class KnowledgeEntryAdmin(ShopScopedAdmin, admin.ModelAdmin):
    list_display = ("title", "knowledge_base", "chatbot", "updated_at")
    list_filter = (
        ("knowledge_base__chatbot", admin.RelatedOnlyFieldListFilter),
        ("knowledge_base", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("knowledge_base__chatbot",)
    search_fields = ("title", "text")
    autocomplete_fields = ("knowledge_base",)
    fields = ("knowledge_base", "title", "tags", "text")

    @admin.display(description="chatbot", ordering="knowledge_base__chatbot__public_id")
    def chatbot(self, obj: KnowledgeEntry) -> str:
        return obj.knowledge_base.chatbot.public_id


# --- Prompt templates -------------------------------------------------------------------------------


@admin.register(PromptTemplate)
class PromptTemplateAdmin(ConfigurationHistoryAdmin):
    list_display = ("name", "description", "variable_list", "chatbot_count")
    search_fields = ("name", "description", "text")
    readonly_fields = ("variable_list", "used_by")
    fields = ("name", "description", "text", "variable_list", "variables", "used_by")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_chatbot_count=Count("assignments__chatbot", distinct=True))
        )

    @admin.display(description="variables in the text")
    def variable_list(self, obj: PromptTemplate | None) -> str:
        names = sorted(obj.variable_names()) if obj and obj.text else []
        return ", ".join(names) or "—"

    @admin.display(description="chatbots", ordering="_chatbot_count")
    def chatbot_count(self, obj: PromptTemplate) -> int:
        return obj._chatbot_count

    @admin.display(description="used by")
    def used_by(self, obj: PromptTemplate | None) -> str:
        if obj is None or obj.pk is None:
            return "—"
        rows = obj.assignments.select_related("flow__chatbot", "chatbot")
        return _links_to_chatbots(rows) or "No chatbot uses this template."


# --- Index ------------------------------------------------------------------------------------------
# The order staff work in: the bot, what it talks to, what it knows. Django sorts by name; the
# site's get_app_list is the documented hook, overridden on the instance because the default site
# is shared with the other apps (a custom AdminSite would need config changes).
MODEL_ORDER = ["Chatbot", "AIEndpoint", "PromptTemplate", "KnowledgeBase", "KnowledgeEntry"]
_site_get_app_list = admin.site.get_app_list


def _get_app_list(request: HttpRequest, app_label: str | None = None) -> list[dict]:
    app_list = _site_get_app_list(request, app_label)
    for app in app_list:
        if app["app_label"] == "chatbots":
            app["models"].sort(
                key=lambda m: (
                    MODEL_ORDER.index(m["object_name"])
                    if m["object_name"] in MODEL_ORDER
                    else len(MODEL_ORDER)
                )
            )
    return app_list


admin.site.get_app_list = _get_app_list
