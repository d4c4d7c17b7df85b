"""Admin of uploaded knowledge: documents (upload or paste, progress, reason of a failure)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.utils.html import format_html

from accounts.scoped_admin import ShopScopedAdmin, ShopScopedInline
from chatbots.models import KnowledgeBase
from knowledge import services
from knowledge.models import KnowledgeChunk, KnowledgeDocument
from knowledge.parsing import DocumentUnreadable, document_kind


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
    verbose_name_plural = "chunks (as the bot retrieves them)"


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
