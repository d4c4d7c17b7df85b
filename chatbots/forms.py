"""Admin form pieces: write-only secret inputs that show only whether a value is set."""

from __future__ import annotations

from django import forms

from chatbots.secrets import MASK, SecretValue


class SecretWidget(forms.PasswordInput):
    """Never renders the value; shows a masked placeholder when one is stored."""

    def __init__(self, attrs=None):
        super().__init__(
            attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False
        )

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        if value:
            context["widget"]["attrs"]["placeholder"] = f"{MASK} (stored; type to replace)"
        return context


class SecretFormField(forms.CharField):
    """Empty input keeps the stored secret; a typed value replaces it; a clear box removes it."""

    widget = SecretWidget

    def __init__(self, *args, **kwargs):
        kwargs.pop("max_length", None)
        kwargs["required"] = False
        kwargs.setdefault("strip", True)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        return bool(value)

    def has_changed(self, initial, data):
        return bool(data)

    def bound_data(self, data, initial):
        return data or initial

    def clean(self, value):
        value = super().clean(value)
        return value or None


class SecretFieldsFormMixin:
    """ModelForm mixin: blank secret inputs keep the stored secret; `clear_<field>` removes it."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            if name in self.fields:
                self.fields[f"clear_{name}"] = forms.BooleanField(
                    required=False,
                    label=f"Remove stored {self.fields[name].label or name}",
                )

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            if name not in self.fields:
                continue
            if cleaned.get(f"clear_{name}"):
                cleaned[name] = SecretValue()
            elif not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name, None) or SecretValue()
        return cleaned
