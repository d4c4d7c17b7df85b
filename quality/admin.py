"""Staff pages of answer quality: each bot's check set (with "add this exchange to the checks"
from a transcript or the dashboard) and the customers' thumbs, read-only."""

from __future__ import annotations

import re
import uuid

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.text import Truncator

from accounts import access
from accounts.scoped_admin import RecordAdmin, ShopScopedAdmin
from conversations.models import Message, Turn
from quality.models import (
    MAX_PHRASE_CHARS,
    MAX_PHRASES,
    AnswerCheck,
    AnswerFeedback,
    validate_phrases,
)
from quality.phrases import key_phrases

LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?")


class PhrasesField(forms.CharField):
    """A list of phrases edited as text, one phrase per line."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(str(v) for v in value)
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        text = super().to_python(value) or ""
        phrases = [" ".join(line.split()) for line in text.splitlines()]
        return [p for p in phrases if p]

    def validate(self, value):
        validate_phrases(value)

    def has_changed(self, initial, data):
        return (initial or []) != self.to_python(data)


def answer_of(user, message_id) -> tuple[Message, Turn | None] | None:
    """An answer the user may see, with its turn (for the question), or None."""
    try:
        message_id = uuid.UUID(str(message_id))
    except ValueError:
        return None
    message = (
        access.scope(Message.objects.select_related("conversation"), user)
        .filter(pk=message_id, role=Message.Role.ASSISTANT)
        .first()
    )
    if message is None:
        return None
    turn = Turn.objects.filter(assistant_message=message).select_related("user_message").first()
    return message, turn


# What a check expects of the answer, and whether and where from it runs: the form's fields and
# the admin page's, after the question (the page adds the answer it came from and the phrases).
CHECK_RULE_FIELDS = (
    "must_contain",
    "must_not_contain",
    "must_cite_source",
    "source_title",
    "expect_handoff",
    "expect_language",
    "enabled",
    "source",
)


class AnswerCheckForm(forms.ModelForm):
    must_contain = PhrasesField(
        required=False,
        help_text=f"One phrase per line (at most {MAX_PHRASES}, {MAX_PHRASE_CHARS} characters "
        "each); the answer must contain each, case and spacing ignored.",
    )
    must_not_contain = PhrasesField(
        required=False, help_text="One phrase per line; the answer must contain none of them."
    )
    picked_phrases = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Phrases of the answer",
    )
    from_message = forms.UUIDField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = AnswerCheck
        fields = ("chatbot", "question", *CHECK_RULE_FIELDS)

    def __init__(self, *args, answer_text: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if "picked_phrases" in self.fields:
            self.fields["picked_phrases"].choices = [(p, p) for p in key_phrases(answer_text)]
            self.fields["picked_phrases"].help_text = (
                f"The answer was: “{Truncator(answer_text).chars(600)}”. Tick the facts a good "
                "answer must keep; they are added to “must contain”."
            )

    def clean_expect_language(self) -> str:
        code = (self.cleaned_data.get("expect_language") or "").strip()
        if code and not LANGUAGE_CODE.fullmatch(code):
            raise ValidationError("Give a language code such as nl, en or pt-BR.")
        return code

    def clean(self):
        data = super().clean()
        picked = data.get("picked_phrases") or []
        if picked:
            merged = list(data.get("must_contain") or [])
            merged += [p for p in picked if p not in merged]
            try:
                validate_phrases(merged)
            except ValidationError as exc:
                self.add_error("must_contain", exc)
            data["must_contain"] = merged
            self.instance.must_contain = merged
        return data


@admin.register(AnswerCheck)
class AnswerCheckAdmin(ShopScopedAdmin, admin.ModelAdmin):
    form = AnswerCheckForm
    list_display = ("question_short", "chatbot", "rules", "enabled", "source", "created_at")
    list_filter = ("enabled", "source", ("chatbot", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("chatbot",)
    search_fields = ("question",)
    readonly_fields = ("source_answer", "created_by", "created_at", "updated_at")

    def get_fields(self, request: HttpRequest, obj=None):
        found = self._answer(request, obj) if obj is None else None
        fields = [
            "chatbot",
            "question",
            *(["source_answer"] if obj is not None and obj.source_message_id else []),
            *(["picked_phrases"] if found and key_phrases(found[0].content) else []),
            *CHECK_RULE_FIELDS,
            "from_message",
        ]
        if obj is not None:
            fields += ["created_by", "created_at", "updated_at"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            readonly += ["source"]
        return readonly

    def _answer(self, request: HttpRequest, obj=None):
        """The answer the check is made from: the saved one, or ?from_message= / the posted
        hidden field on the add page (only an answer the user may see)."""
        if obj is not None and obj.source_message_id:
            return answer_of(request.user, obj.source_message_id)
        wanted = request.POST.get("from_message") or request.GET.get("from_message")
        return answer_of(request.user, wanted) if wanted else None

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        found = self._answer(request, obj)
        answer_text = found[0].content if found else ""

        class Form(form_class):
            def __init__(self, *args, **kw):
                super().__init__(*args, answer_text=answer_text, **kw)

        return Form

    def get_changeform_initial_data(self, request: HttpRequest):
        initial = super().get_changeform_initial_data(request)
        found = self._answer(request)
        if found:
            message, turn = found
            initial.update(
                chatbot=message.conversation.chatbot_id,
                question=turn.user_message.content if turn else "",
                source=request.GET.get("source")
                if request.GET.get("source") in AnswerCheck.Source.values
                else AnswerCheck.Source.TRANSCRIPT,
                from_message=str(message.pk),
            )
        initial.pop("source_message", None)
        return initial

    def save_model(self, request: HttpRequest, obj: AnswerCheck, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
            found = self._answer(request)
            if found and found[0].conversation.chatbot_id == obj.chatbot_id:
                obj.source_message = found[0]
        super().save_model(request, obj, form, change)

    @admin.display(description="answer it was made from")
    def source_answer(self, obj: AnswerCheck) -> str:
        if obj is None or obj.pk is None or not obj.source_message_id:
            return "–"
        return Truncator(obj.source_message.content).chars(600)

    @admin.display(description="question", ordering="question")
    def question_short(self, obj: AnswerCheck) -> str:
        return Truncator(obj.question).chars(80)

    @admin.display(description="rules")
    def rules(self, obj: AnswerCheck) -> str:
        parts = []
        if obj.must_contain:
            parts.append(f"contains {len(obj.must_contain)}")
        if obj.must_not_contain:
            parts.append(f"avoids {len(obj.must_not_contain)}")
        if obj.must_cite_source or obj.source_title:
            parts.append(f"cites {obj.source_title or 'a source'}")
        if obj.expect_handoff is not None:
            parts.append("hands off" if obj.expect_handoff else "no handoff")
        if obj.expect_language:
            parts.append(f"in {obj.expect_language}")
        return " · ".join(parts) or "–"


@admin.register(AnswerFeedback)
class AnswerFeedbackAdmin(RecordAdmin, ShopScopedAdmin, admin.ModelAdmin):
    """Customers' votes, as they gave them: staff read them, nobody edits them."""

    list_display = ("value", "answer_short", "chatbot", "comment", "created_at")
    list_filter = ("value", ("chatbot", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("chatbot", "message")
    fields = ("value", "comment", "message", "conversation", "chatbot", "created_at", "updated_at")
    readonly_fields = fields

    @admin.display(description="answer")
    def answer_short(self, obj: AnswerFeedback) -> str:
        return Truncator(obj.message.content).chars(80)
