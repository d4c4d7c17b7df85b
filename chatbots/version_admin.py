"""The chatbot admin's "Versions and publishing" page: the live version, what publishing the
draft would change, publish (with a confirmation when the draft's latest check run failed) and
roll back to any earlier version (docs/versions.md)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from chatbots import checkruns, preview, versions
from chatbots.admin_urls import object_admin_paths
from chatbots.models import Chatbot, CheckRun


class VersionsAdminMixin:
    """For ChatbotAdmin. Only who may change the bot may publish or roll back (the admin's
    change permission, i.e. accounts.access); who may view it sees the page."""

    def get_urls(self):
        pages = [
            ("versions/", self.versions_view, "versions"),
            ("versions/publish/", self.version_publish_view, "version_publish"),
            ("versions/<int:number>/rollback/", self.version_rollback_view, "version_rollback"),
            ("preview/", self.preview_view, "preview"),
            ("preview/start/", self.preview_start_view, "preview_start"),
            ("checks/", self.checks_view, "checks"),
            ("checks/<int:run_id>/", self.check_run_view, "check_run"),
            ("checks/<int:run_id>/progress/", self.check_run_progress_view, "check_run_progress"),
        ]
        return [*object_admin_paths(self, pages), *super().get_urls()]

    def _versions_url(self, obj: Chatbot) -> str:
        return reverse(f"{self.admin_site.name}:chatbots_chatbot_versions", args=[quote(obj.pk)])

    def _chatbot(self, request: HttpRequest, object_id: str, *, change: bool) -> Chatbot:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such chatbot.")
        allowed = (
            self.has_change_permission(request, obj)
            if change
            else self.has_view_or_change_permission(request, obj)
        )
        if not allowed:
            raise PermissionDenied
        return obj

    def versions_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self._chatbot(request, object_id, change=False)
        reviewed = obj.publishing == Chatbot.Publishing.REVIEWED
        changes = versions.draft_diff(chatbot=obj) if reviewed else []
        failing = versions.draft_failing_checks(chatbot=obj) if changes else ""
        context = {
            **self.admin_site.each_context(request),
            "title": f"Versions of {obj}",
            "subtitle": None,
            "opts": self.model._meta,
            "original": obj,
            "reviewed": reviewed,
            "versions": obj.versions.select_related("created_by", "copied_from"),
            "changes": changes,
            "failing_checks": failing,
            "can_publish": self.has_change_permission(request, obj),
            "change_url": reverse(
                f"{self.admin_site.name}:chatbots_chatbot_change", args=[quote(obj.pk)]
            ),
            "checks_url": versions.checks_url(chatbot=obj),
            "preview_url": versions.preview_url(chatbot=obj),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/chatbots/chatbot/versions.html", context)

    def version_publish_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self._chatbot(request, object_id, change=True)
        if request.method != "POST":
            return HttpResponseRedirect(self._versions_url(obj))
        if obj.publishing != Chatbot.Publishing.REVIEWED:
            self.message_user(
                request,
                "This chatbot publishes every save at once; there is no draft to publish.",
                messages.ERROR,
            )
            return HttpResponseRedirect(self._versions_url(obj))
        if not versions.draft_diff(chatbot=obj):
            self.message_user(
                request, "Nothing to publish: the draft is the live version.", messages.WARNING
            )
            return HttpResponseRedirect(self._versions_url(obj))
        failing = versions.draft_failing_checks(chatbot=obj)
        if failing and request.POST.get("confirm_failing") != "on":
            self.message_user(
                request,
                f"The latest check run of this draft failed: {failing}. Tick “Publish anyway” "
                "to publish it knowingly, or fix the draft and run the checks again.",
                messages.ERROR,
            )
            return HttpResponseRedirect(self._versions_url(obj))
        version = versions.version_publish(
            chatbot=obj,
            user=request.user,
            request=request,
            note=request.POST.get("note", "").strip(),
            failing_checks=failing,
        )
        self.message_user(
            request, f"Published version {version.number}: customers get it now.", messages.SUCCESS
        )
        return HttpResponseRedirect(self._versions_url(obj))

    def version_rollback_view(
        self, request: HttpRequest, object_id: str, number: int
    ) -> HttpResponse:
        obj = self._chatbot(request, object_id, change=True)
        version = obj.versions.filter(number=number).first()
        if version is None:
            raise Http404("No such version of this chatbot.")
        if request.method != "POST":
            return HttpResponseRedirect(self._versions_url(obj))
        new = versions.version_rollback(
            chatbot=obj, version=version, user=request.user, request=request
        )
        self.message_user(
            request,
            f"Version {number} is live again (published as version {new.number}). The draft is "
            "unchanged.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._versions_url(obj))

    # --- Preview chat --------------------------------------------------------------------------

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A chat panel that talks to the draft or a chosen version over the widget's
        WebSocket protocol, showing each turn's sources, tool steps, timings and errors."""
        obj = self._chatbot(request, object_id, change=True)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview {obj}",
            "subtitle": None,
            "opts": self.model._meta,
            "original": obj,
            "versions": obj.versions.all(),
            "live_number": obj.live_version.number if obj.live_version_id else None,
            "reviewed": obj.publishing == Chatbot.Publishing.REVIEWED,
            "change_url": reverse(
                f"{self.admin_site.name}:chatbots_chatbot_change", args=[quote(obj.pk)]
            ),
            "versions_url": self._versions_url(obj),
            "start_url": reverse(
                f"{self.admin_site.name}:chatbots_chatbot_preview_start", args=[quote(obj.pk)]
            ),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/chatbots/chatbot/preview.html", context)

    def preview_start_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: a new preview conversation and its token, for this staff session only (the
        admin's login and the bot's change permission; another shop's bot is a 404)."""
        obj = self._chatbot(request, object_id, change=True)
        if request.method != "POST":
            return _error(405, "METHOD_NOT_ALLOWED", "Start a preview with POST.")
        try:
            conversation, token = preview.preview_conversation_start(
                chatbot=obj, choice=request.POST.get("version", "draft"), user=request.user
            )
        except preview.PreviewChoiceError as exc:
            return _error(400, "VALIDATION_ERROR", str(exc))
        return JsonResponse(
            {
                "success": True,
                "session_id": str(conversation.pk),
                "conversation_token": token,
                "preview": conversation.preview,
                "websocket_path": f"/ws/conversations/{conversation.pk}/",
            },
            status=201,
        )


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(
        {"success": False, "error": {"code": code, "message": message, "details": {}}},
        status=status,
    )


class CheckRunsAdminMixin:
    """For ChatbotAdmin: "Run checks", the progress bar's JSON and the side-by-side results."""

    def _check_run(self, request: HttpRequest, object_id: str, run_id: int, *, change: bool):
        obj = self._chatbot(request, object_id, change=change)
        run = CheckRun.objects.filter(chatbot=obj, pk=run_id).first()
        if run is None:
            raise Http404("No such check run of this chatbot.")
        return obj, run

    def _run_url(self, obj: Chatbot, run: CheckRun) -> str:
        return reverse(
            f"{self.admin_site.name}:chatbots_chatbot_check_run", args=[quote(obj.pk), run.pk]
        )

    def checks_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self._chatbot(request, object_id, change=True)
        if request.method == "POST":
            if not checkruns.enabled_check_count(chatbot=obj):
                self.message_user(
                    request, "This chatbot has no enabled checks to run yet.", messages.ERROR
                )
                return HttpResponseRedirect(checkruns.checks_url(chatbot=obj))
            run = checkruns.check_run_start(chatbot=obj, user=request.user)
            return HttpResponseRedirect(self._run_url(obj, run))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Checks of {obj}",
            "subtitle": None,
            "opts": self.model._meta,
            "original": obj,
            "check_count": checkruns.enabled_check_count(chatbot=obj),
            "runs": obj.check_runs.select_related("live_version", "created_by")[:20],
            "change_url": reverse(
                f"{self.admin_site.name}:chatbots_chatbot_change", args=[quote(obj.pk)]
            ),
            "versions_url": self._versions_url(obj),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/chatbots/chatbot/checks.html", context)

    def check_run_view(self, request: HttpRequest, object_id: str, run_id: int) -> HttpResponse:
        obj, run = self._check_run(request, object_id, run_id, change=True)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Check run {run.pk} of {obj}",
            "subtitle": None,
            "opts": self.model._meta,
            "original": obj,
            "run": run,
            "rows": checkruns.check_run_rows(run=run),
            "progress": checkruns.check_run_progress(run=run),
            "progress_url": reverse(
                f"{self.admin_site.name}:chatbots_chatbot_check_run_progress",
                args=[quote(obj.pk), run.pk],
            ),
            "checks_url": checkruns.checks_url(chatbot=obj),
            "versions_url": self._versions_url(obj),
            "change_url": reverse(
                f"{self.admin_site.name}:chatbots_chatbot_change", args=[quote(obj.pk)]
            ),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/chatbots/chatbot/check_run.html", context)

    def check_run_progress_view(
        self, request: HttpRequest, object_id: str, run_id: int
    ) -> HttpResponse:
        _obj, run = self._check_run(request, object_id, run_id, change=True)
        return JsonResponse(checkruns.check_run_progress(run=run))
