"""Admin form pieces: write-only secret inputs that show only whether a value is stored.

Every `EncryptedSecretField` gets this form field from its own `formfield()`, so any ModelForm
(admin page, inline, a form written later) behaves the same way: the input is an empty
password box whose placeholder says whether a value is stored; left empty, the stored value is
kept; typed, it is replaced; the "remove" box beside it clears it. The value itself, or a bool
standing in for it, is never put into the page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from chatbots.secrets import MASK, SecretValue

# Longer than any real key or token; a pasted document is a mistake worth telling.
SECRET_MAX_CHARS = 8192


class _Keep:
    """What a secret input cleans to when it was left empty: keep whatever is stored."""

    _instance: _Keep | None = None

    def __new__(cls) -> _Keep:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "KEEP_STORED_SECRET"


KEEP_STORED_SECRET = _Keep()


def clear_input_name(name: str) -> str:
    return f"clear_{name}"


class SecretWidget(forms.Widget):
    """An empty password input plus, when a value is stored, a "remove" checkbox.

    A multi-line secret (a tool's auth headers, one per line) gets an empty textarea instead:
    a password input cannot hold a line break, so only one header could ever be typed.
    """

    template_name = "chatbots/widgets/secret.html"

    def __init__(self, attrs: dict[str, Any] | None = None, *, multiline: bool = False) -> None:
        self.multiline = multiline
        defaults = {"rows": 3, "cols": 60} if multiline else {}
        super().__init__(attrs={"autocomplete": "new-password", **defaults, **(attrs or {})})

    def format_value(self, value: Any) -> None:
        return None  # never put a stored value into the page

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        stored = bool(value)
        context = super().get_context(name, None, attrs)
        widget = context["widget"]
        widget["value"] = None
        widget["stored"] = stored
        widget["multiline"] = self.multiline
        widget["clear_name"] = clear_input_name(name)
        widget["clear_id"] = f"{widget['attrs'].get('id') or 'id_' + name}_clear"
        # Short enough for the admin's narrow input; the field's help text says the rest.
        widget["attrs"]["placeholder"] = f"{MASK} stored; empty keeps it" if stored else "not set"
        if not self.multiline:
            widget["attrs"]["size"] = widget["attrs"].get("size", 32)
        return context

    def value_from_datadict(self, data, files, name: str) -> dict[str, Any]:
        clear = data.get(clear_input_name(name))
        return {
            "value": data.get(name) or "",
            "clear": clear not in (None, "", "off", "false", "0"),
        }

    def value_omitted_from_data(self, data, files, name: str) -> bool:
        return name not in data and clear_input_name(name) not in data


class SecretFormField(forms.Field):
    """Cleans to the new plaintext, an empty SecretValue (remove) or KEEP_STORED_SECRET."""

    widget = SecretWidget

    def __init__(self, *args: Any, multiline: bool = False, **kwargs: Any) -> None:
        for unused in ("max_length", "min_length", "strip", "empty_value"):
            kwargs.pop(unused, None)
        kwargs["required"] = False
        self.multiline = multiline
        kwargs.setdefault("widget", SecretWidget(multiline=multiline))
        super().__init__(*args, **kwargs)

    def _typed(self, data: Any) -> str:
        if isinstance(data, dict):
            typed = str(data.get("value") or "").strip()
            # Browsers send a textarea's line breaks as CRLF; what is stored has LF.
            return typed.replace("\r\n", "\n") if self.multiline else typed
        return ""

    @staticmethod
    def _clear(data: Any) -> bool:
        return isinstance(data, dict) and bool(data.get("clear"))

    def bound_data(self, data: Any, initial: Any) -> Any:
        # A re-rendered form (another field had an error) shows what is stored, never what
        # was typed.
        return initial

    def prepare_value(self, value: Any) -> Any:
        return value

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(self._typed(data)) or self._clear(data)

    def to_python(self, value: Any) -> Any:
        typed = self._typed(value)
        if typed:
            if len(typed) > SECRET_MAX_CHARS:
                raise ValidationError(
                    f"This is longer than any key ({len(typed):,} characters; at most "
                    f"{SECRET_MAX_CHARS:,}). Paste only the key itself.",
                    code="secret_too_long",
                )
            if self.multiline and ("\x00" in typed or "\r" in typed):
                raise ValidationError(
                    "This holds control characters; type plain lines of text.",
                    code="secret_control_characters",
                )
            if not self.multiline and ("\x00" in typed or any(ch in typed for ch in "\r\n")):
                raise ValidationError(
                    "A key is one line of text; this one holds line breaks or control "
                    "characters. Paste only the key itself.",
                    code="secret_not_one_line",
                )
            return typed
        if self._clear(value):
            return SecretValue()
        return KEEP_STORED_SECRET

    def validate(self, value: Any) -> None:
        pass  # never required: empty means "keep"


class UntouchedFieldsKeptMixin:
    """ModelForm mixin: saving a change form changes only the fields the person changed.

    A page cannot always show a stored value exactly: the admin's date and time inputs drop
    microseconds, browsers send a textarea's line breaks as CRLF, a secret is never shown at
    all. Without this, pressing Save on an untouched page rewrites such values. Fields whose
    input did not change are left out of what is written, so the instance keeps what is stored.
    """

    def _widget_data_value(self, widget, html_name):
        # BaseForm's one place where submitted data is read (for cleaning and changed_data).
        value = super()._widget_data_value(widget, html_name)
        if isinstance(widget, forms.Textarea) and isinstance(value, str):
            # Browsers submit a textarea's line breaks as CRLF (HTML's form-submission
            # rules); what was stored, and what the person typed, has LF.
            value = value.replace("\r\n", "\n")
        return value

    def _post_clean(self):
        # _post_clean copies cleaned_data onto the instance; untouched fields sit out of that
        # copy only, and are back afterwards for formset-wide checks (FlowFormSet.clean).
        if self.instance._state.adding:
            return super()._post_clean()
        changed = set(self.changed_data)
        untouched = {
            name: self.cleaned_data.pop(name)
            for name in list(self.cleaned_data)
            if name in self.fields and name not in changed
        }
        try:
            super()._post_clean()
        finally:
            self.cleaned_data.update(untouched)


def admin_forms_keep_untouched_fields() -> None:
    """Give every registered ModelAdmin's form and inline form the UntouchedFieldsKeptMixin,
    ours and third-party ones (auth, django-celery-beat) alike. Called once from
    ChatbotsConfig.ready(), after django.contrib.admin has imported every admin module."""
    from django.contrib import admin

    def wrap(holder) -> None:
        form = holder.form
        if not issubclass(form, UntouchedFieldsKeptMixin):
            holder.form = type(form.__name__, (UntouchedFieldsKeptMixin, form), {})

    for model_admin in admin.site._registry.values():
        wrap(model_admin)
        for inline in model_admin.inlines:
            wrap(inline)
