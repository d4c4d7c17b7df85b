"""Admin of knowledge: the knowledge base page (its entries, documents and retrieval testing; the
model is chatbots', the page is here because it shows this app's parts) and uploaded documents
(upload or paste, progress, reason of a failure)."""

from __future__ import annotations

import reversion
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts import access
from accounts.scoped_admin import ShopScopedAdmin, ShopScopedInline
from chatbots import services as chatbot_services
from chatbots.admin import (
    URL_FIELDS_ASSUME_HTTPS,
    ConfigurationHistoryAdmin,
    KnowledgeBaseForm,
    flow_knowledge_warnings,
)
from chatbots.connection_admin import ConnectionTestMixin
from chatbots.models import KnowledgeBase, KnowledgeEntry
from knowledge import services
from knowledge.models import KnowledgeChunk, KnowledgeDocument
from knowledge.parsing import DocumentUnreadable, document_kind
from knowledge.selectors import knowledge_base_test


class KnowledgeDocumentForm(forms.ModelForm):
    class Meta:
        model = KnowledgeDocument
        fields = ("knowledge_base", "title", "file", "text", "source_url")

    def clean(self):
        cleaned = super().clean()
        upload, text = cleaned.get("file"), (cleaned.get("text") or "").strip()
        if not upload and not text:
            raise forms.ValidationError("Upload a file or paste some text.")
        kb = cleaned.get("knowledge_base")
        if kb is not None and kb.kind != KnowledgeBase.Kind.BUILTIN:
            self.add_error(
                "knowledge_base",
                "Documents go into builtin knowledge bases; a Pinecone index is filled in Pinecone.",
            )
        if upload and "file" in self.changed_data:
            try:
                document_kind(upload.name)
                if kb is not None:
                    services.document_limits_check(knowledge_base=kb, size_bytes=upload.size)
            except DocumentUnreadable as exc:
                self.add_error("file", str(exc))
        return cleaned


class RetrievalTestForm(forms.Form):
    knowledge_base = forms.ModelChoiceField(queryset=KnowledgeBase.objects.none())
    question = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 80}))
    top_k = forms.IntegerField(label="Top k", min_value=1, max_value=20)

    def __init__(self, *args, bases, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["knowledge_base"].queryset = bases


def retrieval_test_link(knowledge_base: KnowledgeBase | None) -> str:
    if knowledge_base is None or knowledge_base.pk is None:
        return "Save the knowledge base first."
    url = reverse("admin:knowledge_retrieval_test") + f"?knowledge_base={knowledge_base.pk}"
    return format_html('<a href="{}">Test retrieval with a question</a>', url)


def _progress_html(document: KnowledgeDocument) -> str:
    status = document.get_status_display()
    if document.status in (KnowledgeDocument.Status.PENDING, KnowledgeDocument.Status.PROCESSING):
        return format_html(
            '<progress max="100" value="{}" title="{} %"></progress> {} {} %',
            document.progress,
            document.progress,
            status,
            document.progress,
        )
    if document.status == KnowledgeDocument.Status.FAILED:
        return format_html('<span class="errornote-inline">{}: {}</span>', status, document.error)
    return status


class KnowledgeChunkInline(ShopScopedInline, admin.TabularInline):
    model = KnowledgeChunk
    fields = ("position", "heading", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    verbose_name_plural = "chunks (as the bot retrieves them; the first 50)"

    def get_queryset(self, request):
        # A long manual makes thousands of chunks: the page shows how it was cut, not all of it.
        return super().get_queryset(request).filter(position__lt=50)


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(ShopScopedAdmin, admin.ModelAdmin):
    form = KnowledgeDocumentForm
    # A link typed without a scheme is https (as in chatbots.admin).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = (
        "title",
        "knowledge_base",
        "kind",
        "progress_display",
        "chunk_count",
        "updated_at",
    )
    list_filter = ("status", "kind", ("knowledge_base", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("knowledge_base__chatbot",)
    search_fields = ("title",)
    readonly_fields = ("progress_display", "kind", "size_bytes", "chunk_count", "processed_at")
    fieldsets = (
        (None, {"fields": ("knowledge_base", "title", "source_url")}),
        ("Content", {"fields": ("file", "text")}),
        (
            "Reading",
            {"fields": ("progress_display", "kind", "size_bytes", "chunk_count", "processed_at")},
        ),
    )
    inlines = [KnowledgeChunkInline]
    actions = ["read_again"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "knowledge_base":
            kwargs["queryset"] = KnowledgeBase.objects.filter(kind=KnowledgeBase.Kind.BUILTIN)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="status")
    def progress_display(self, obj: KnowledgeDocument) -> str:
        return _progress_html(obj)

    def save_model(self, request, obj, form, change):
        replaced = None
        if change and "file" in form.changed_data:
            replaced = KnowledgeDocument.objects.get(pk=obj.pk).file
        super().save_model(request, obj, form, change)
        if not change or {"file", "text"} & set(form.changed_data):
            services.document_submit(document=obj)
            self.message_user(
                request,
                f"“{obj.title}” is being read; its chunks replace the old ones when it is done.",
                messages.INFO,
            )
        if replaced and replaced.name != obj.file.name:
            # The chunks keep the text; the old file is not needed once this save commits.
            storage, name = replaced.storage, replaced.name
            transaction.on_commit(lambda: storage.delete(name))

    def get_urls(self):
        return [
            path(
                "retrieval-test/",
                self.admin_site.admin_view(self.retrieval_test_view),
                name="knowledge_retrieval_test",
            ),
            *super().get_urls(),
        ]

    def retrieval_test_view(self, request: HttpRequest) -> HttpResponse:
        """Type a question, see what each method retrieves and what the bot would get."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        bases = access.scope(
            KnowledgeBase.objects.select_related("chatbot", "embedding_endpoint"), request.user
        ).order_by("chatbot__public_id", "name")
        # The test may call an embedding endpoint and Pinecone: only a POST (with CSRF) runs it.
        form = RetrievalTestForm(
            request.POST if request.method == "POST" else None,
            bases=bases,
            initial={"knowledge_base": request.GET.get("knowledge_base"), "top_k": 5},
        )
        result = None
        if form.is_valid():
            result = knowledge_base_test(
                knowledge_base=form.cleaned_data["knowledge_base"],
                question=form.cleaned_data["question"],
                top_k=form.cleaned_data["top_k"],
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Retrieval testing",
            "form": form,
            "result": result,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/knowledge/retrieval_test.html", context)

    @admin.action(description="Read the selected documents again", permissions=["change"])
    def read_again(self, request, queryset):
        for document in queryset:
            services.document_submit(document=document)
        self.message_user(request, f"{queryset.count()} document(s) queued.", messages.INFO)


class KnowledgeDocumentInline(ShopScopedInline, admin.TabularInline):
    """The documents of a knowledge base, on its page (uploads happen on the document page)."""

    model = KnowledgeDocument
    fields = ("title", "kind", "progress_display", "chunk_count", "updated_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="status")
    def progress_display(self, obj: KnowledgeDocument) -> str:
        return _progress_html(obj)


# --- The knowledge base's page (the model is chatbots', the page is this app's) ---


class KnowledgeEntryInline(ShopScopedInline, admin.StackedInline):
    model = KnowledgeEntry
    fields = ("title", "tags", "text")
    extra = 0
    show_change_link = True


@admin.register(KnowledgeBase)
# The two ignores are django-stubs' reading of reversion's VersionAdmin (object_history_template)
# and of a narrower formfield_overrides dict; chatbots.admin's AIEndpointAdmin has the same two.
class KnowledgeBaseAdmin(ConnectionTestMixin, ConfigurationHistoryAdmin):  # type: ignore[misc]
    form = KnowledgeBaseForm
    formfield_overrides = URL_FIELDS_ASSUME_HTTPS  # type: ignore[assignment]
    inlines = [KnowledgeEntryInline, KnowledgeDocumentInline]
    list_display = ("name", "chatbot", "kind", "index_name", "entry_count")
    list_filter = ("kind", ("chatbot", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("chatbot",)
    search_fields = ("name", "index_name", "chatbot__public_id", "chatbot__name")
    autocomplete_fields = ("chatbot",)

    def get_fieldsets(self, request, obj=None):
        return (
            (None, {"fields": ("chatbot", "name", "kind")}),
            (
                "Pinecone",
                {
                    "fields": ("index_name", "host", "namespace", "api_key", "control_url"),
                    "description": "Only for Pinecone knowledge bases; leave empty for builtin.",
                },
            ),
            (
                "Retrieval",
                {
                    "fields": (
                        "embedding_endpoint",
                        "embedding_model",
                        ("chunk_size", "chunk_overlap"),
                        "retrieval_test",
                    ),
                    "description": "How questions (and uploaded documents) become vectors, and "
                    "how documents are cut into chunks. See docs/knowledge.md.",
                },
            ),
        )

    readonly_fields = ("retrieval_test",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_entry_count=Count("entries"))

    @admin.display(description="retrieval testing")
    def retrieval_test(self, obj: KnowledgeBase | None) -> str:
        return retrieval_test_link(obj)

    def connection_test(self, obj: KnowledgeBase) -> tuple[bool, str]:
        return chatbot_services.knowledge_base_connection_test(knowledge_base=obj)

    @admin.display(description="entries", ordering="_entry_count")
    def entry_count(self, obj: KnowledgeBase) -> int:
        return obj._entry_count  # type: ignore[attr-defined]  # annotated by get_queryset

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Record the whole chatbot too, so that its history shows this change and can undo it.
        if reversion.is_active():
            reversion.add_to_revision(form.instance.chatbot)
        for warning in flow_knowledge_warnings(chatbot_id=form.instance.chatbot_id):
            self.message_user(request, warning, messages.WARNING)

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        # The comment also appears in the chatbot's history, where "Changed namespace" is vague.
        if reversion.is_active():
            reversion.set_comment(f"Knowledge base “{obj.name}”: {entry.get_change_message()}")
        return entry
