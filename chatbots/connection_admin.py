"""The admin's "Test connection": one mixin for every model whose page can try its outside
service with the stored key (AI endpoints, knowledge bases, order sources, helpdesks). The
model's admin supplies `connection_test(obj) -> (ok, message)`, usually a service function."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from chatbots.admin_urls import object_admin_paths

# What the mixin is mixed into, for the type checker only (at run time the admin class supplies
# message_user, model, admin_site, get_object and the permission checks).
if TYPE_CHECKING:
    _AdminBase = admin.ModelAdmin
else:
    _AdminBase = object


class ConnectionTestMixin(_AdminBase):
    """A "Test connection" action and change-form button that report through messages."""

    actions = ["test_connection"]
    change_form_template = "admin/chatbots/connection_test_change_form.html"

    def connection_test(self, obj) -> tuple[bool, str]:
        raise NotImplementedError

    def _report(self, request: HttpRequest, obj, ok: bool, message: str) -> None:
        self.message_user(request, f"{obj}: {message}", messages.SUCCESS if ok else messages.ERROR)

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset):
        for obj in queryset:
            self._report(request, obj, *self.connection_test(obj))

    def get_urls(self):
        pages = [("test-connection/", self.test_connection_view, "test_connection")]
        return [*object_admin_paths(self, pages), *super().get_urls()]

    def _save_and_test(self, request: HttpRequest, obj) -> HttpResponse:
        # "Save and test connection": one click from a new endpoint to its model list.
        self.message_user(request, f"“{obj}” was saved.", messages.SUCCESS)
        self._report(request, obj, *self.connection_test(obj))
        info = self.model._meta.app_label, self.model._meta.model_name
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:{info[0]}_{info[1]}_change", args=[quote(obj.pk)])
        )

    def response_add(self, request, obj, post_url_continue=None):
        if "_save_and_test" in request.POST:
            return self._save_and_test(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if "_save_and_test" in request.POST:
            return self._save_and_test(request, obj)
        return super().response_change(request, obj)

    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such object.")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        # The test makes an outbound request: only the button's POST (with CSRF) runs it.
        if request.method == "POST":
            self._report(request, obj, *self.connection_test(obj))
        info = self.model._meta.app_label, self.model._meta.model_name
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:{info[0]}_{info[1]}_change", args=[quote(obj.pk)])
        )
