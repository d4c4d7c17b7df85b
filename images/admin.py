"""Admin of images customers sent: a read-only list with thumbnails that only staff can open."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.scoped_admin import ShopScopedAdmin
from images.models import ImageUpload


@admin.register(ImageUpload)
class ImageUploadAdmin(ShopScopedAdmin, admin.ModelAdmin):
    list_display = (
        "preview",
        "created_at",
        "chatbot",
        "conversation_link",
        "mime",
        "dimensions",
        "size",
        "description_status",
    )
    list_filter = (("chatbot", admin.RelatedOnlyFieldListFilter), "mime", "description_status")
    list_select_related = ("chatbot",)
    search_fields = ("=id", "=conversation__id", "sha256")
    date_hierarchy = "created_at"
    readonly_fields = (
        "preview_large",
        "id",
        "conversation_link",
        "chatbot",
        "mime",
        "dimensions",
        "size",
        "received_size",
        "frames",
        "sha256",
        "original_name",
        "description",
        "description_status",
        "description_error",
        "described_at",
        "created_at",
        "storage_name",
        "thumbnail_name",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # images come from customers only

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # what the customer sent is evidence; nobody edits it

    @admin.display(description="size")
    def dimensions(self, obj: ImageUpload) -> str:
        return f"{obj.width}×{obj.height}"

    @admin.display(description="conversation")
    def conversation_link(self, obj: ImageUpload) -> str:
        return str(obj.conversation_id)

    def _thumb_url(self, obj: ImageUpload) -> str:
        return reverse("admin:images_imageupload_thumbnail", args=[obj.pk])

    @admin.display(description="")
    def preview(self, obj: ImageUpload) -> str:
        if not obj.thumbnail_name:
            return "—"
        return format_html(
            '<img src="{}" alt="" style="max-height:64px;max-width:96px" loading="lazy">',
            self._thumb_url(obj),
        )

    @admin.display(description="preview")
    def preview_large(self, obj: ImageUpload) -> str:
        if not obj.thumbnail_name:
            return "—"
        return format_html('<img src="{}" alt="">', self._thumb_url(obj))

    def get_urls(self):
        return [
            path(
                "<uuid:image_id>/thumbnail/",
                self.admin_site.admin_view(self.thumbnail_view),
                name="images_imageupload_thumbnail",
            ),
            *super().get_urls(),
        ]

    def thumbnail_view(self, request: HttpRequest, image_id) -> FileResponse:
        # admin_view already requires an active staff session; the model permission decides.
        if not self.has_view_permission(request):
            raise PermissionDenied
        # Another shop's image is answered like one that does not exist.
        image = self.get_queryset(request).filter(pk=image_id).first()
        if image is None or not image.thumbnail_name:
            raise Http404
        try:
            handle = default_storage.open(image.thumbnail_name, "rb")
        except FileNotFoundError as exc:
            raise Http404 from exc
        response = FileResponse(handle, content_type=image.thumbnail_mime or "image/jpeg")
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, max-age=3600"
        return response
