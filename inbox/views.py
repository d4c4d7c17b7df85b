"""The inbox page inside the admin site and its JSON actions (admin session + CSRF).

Thin: authenticate (the admin's session, via admin_site.admin_view) → validate → one service or
selector call → JSON. Errors use the API's envelope and status.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from accounts import access
from config.errors import ApiError, ErrorCode, error_response
from config.input_guard import json_object_parse
from inbox import selectors, services


def _json(view):
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not access.is_member(request.user):
            return error_response(
                ApiError(ErrorCode.PERMISSION_DENIED, "Only shop members use the inbox.")
            )
        try:
            return JsonResponse(view(request, *args, **kwargs), safe=False)
        except ApiError as err:
            return error_response(err)

    wrapped.__name__ = view.__name__
    return wrapped


def _body(request: HttpRequest) -> dict[str, Any]:
    return json_object_parse(request.body, what="The request body")


def _text(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ApiError(ErrorCode.VALIDATION_ERROR, f"`{name}` must be text.")
    return value


@require_GET
def inbox_page(request: HttpRequest) -> HttpResponse:
    if not access.is_member(request.user):
        return HttpResponse("Only shop members use the inbox.", status=403)
    context = {
        **admin.site.each_context(request),
        "title": "Live inbox",
        "subtitle": None,
        "counts": selectors.inbox_counts(user=request.user),
    }
    return render(request, "admin/inbox/inbox.html", context)


@require_GET
@_json
def conversations(request: HttpRequest) -> dict[str, Any]:
    view = request.GET.get("view", "waiting")
    label = request.GET.get("label", "").strip().lower()
    if label and not services.LABEL.match(label):
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            "`label` is 1 to 40 letters, digits, spaces, - or _.",
            details={"parameter": "label"},
        )
    return {
        "counts": selectors.inbox_counts(user=request.user),
        "conversations": selectors.inbox_conversations(user=request.user, view=view, label=label),
    }


@require_GET
@_json
def conversation(request: HttpRequest, conversation_id) -> dict[str, Any]:
    return selectors.conversation_detail(user=request.user, conversation_id=conversation_id)


@require_GET
@_json
def figures(request: HttpRequest) -> dict[str, Any]:
    raw = request.GET.get("days", "7")
    days = int(raw) if raw.isdigit() and len(raw) < 4 else -1
    return selectors.inbox_figures(user=request.user, days=days)


@require_GET
@_json
def canned(request: HttpRequest) -> list[dict[str, str]]:
    return selectors.canned_for(user=request.user)


def _act(request: HttpRequest, conversation_id, action: str) -> dict[str, Any]:
    user = request.user
    body = _body(request)
    if action == "take":
        services.conversation_take(conversation_id=conversation_id, agent=user)
    elif action == "assign":
        assignee_id = body.get("user_id")
        if not isinstance(assignee_id, int) or isinstance(assignee_id, bool):
            raise ApiError(ErrorCode.VALIDATION_ERROR, "`user_id` must be a user id.")
        assignee = get_user_model().objects.filter(pk=assignee_id, is_active=True).first()
        if assignee is None:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                "Assign the conversation to an agent, admin or owner of its shop.",
            )
        services.conversation_take(conversation_id=conversation_id, agent=user, assignee=assignee)
    elif action == "reply":
        services.agent_reply(conversation_id=conversation_id, agent=user, text=_text(body, "text"))
    elif action == "typing":
        services.agent_typing(
            conversation_id=conversation_id, agent=user, typing=bool(body.get("typing"))
        )
    elif action == "hand-back":
        services.conversation_hand_back(conversation_id=conversation_id, agent=user)
    elif action == "resolve":
        services.conversation_resolve_by_agent(conversation_id=conversation_id, agent=user)
    elif action == "labels":
        services.conversation_labels_set(
            conversation_id=conversation_id, agent=user, labels=body.get("labels")
        )
    elif action == "note":
        services.note_add(conversation_id=conversation_id, agent=user, text=_text(body, "text"))
    else:
        raise ApiError(ErrorCode.NOT_FOUND, "No such action.")
    return selectors.conversation_detail(user=user, conversation_id=conversation_id)


@require_POST
@_json
def act(request: HttpRequest, conversation_id, action: str) -> dict[str, Any]:
    return _act(request, conversation_id, action)
