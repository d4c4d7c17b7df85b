"""Admin inputs that show configuration the way staff think of it: opening hours as a week table
(read from and written to the same JSON), model names chosen from what the AI server offers."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from chatbots.models import WEEKDAYS

DAY_LABELS = dict(
    zip(
        WEEKDAYS,
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        strict=True,
    )
)
# Time inputs send HH:MM, or HH:MM:SS when a browser was given seconds.
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(:00(\.0+)?)?$")
# More ranges a day than any shop has; bounds what a crafted POST makes us read.
MAX_RANGES_PER_DAY = 12


class ModelNameInput(forms.TextInput):
    """A text input with the model names an AI server offered as suggestions (a <datalist>).

    `models` holds (name, label) pairs; the label says where a name came from."""

    template_name = "chatbots/widgets/model_name.html"

    def __init__(
        self,
        *,
        models: list[tuple[str, str]] | None = None,
        listed_at: dt.datetime | None = None,
        note: str = "",
        attrs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(attrs={"autocomplete": "off", **(attrs or {})})
        self.models = list(models or [])
        self.listed_at = listed_at
        self.note = note

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        if self.models:
            widget["attrs"]["list"] = f"{widget['attrs'].get('id') or name}_models"
        widget["models"] = self.models
        widget["listed_at"] = self.listed_at
        widget["note"] = self.note
        return context


OTHER_MODEL = "__other__"


class ModelChoiceInput(forms.Widget):
    """The endpoint's default model: a list of the names the server offered at the last "Test
    connection", plus "another model" with a box for a name the server does not list (Azure
    deployments). Before any test it is a plain text box. Works without JavaScript; a small
    script keeps the list and the box in step."""

    template_name = "chatbots/widgets/model_choice.html"

    class Media:
        css = {"all": ["chatbots/widgets.css"]}
        js = ["chatbots/model-choice.js"]

    def __init__(
        self,
        *,
        models: list[str] | None = None,
        listed_at: dt.datetime | None = None,
        note: str = "",
        attrs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(attrs=attrs)
        self.models = [m for m in dict.fromkeys(models or []) if m and m != OTHER_MODEL]
        self.listed_at = listed_at
        self.note = note

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        value = "" if value is None else str(value)
        listed = value in self.models
        base = context["widget"]["attrs"].get("id") or f"id_{name}"
        context["widget"].update(
            models=self.models,
            chosen=value if listed or not value else OTHER_MODEL,
            other_value="" if listed else value,
            other=OTHER_MODEL,
            choice_name=f"{name}_choice",
            choice_id=f"{base}_choice",
            listed_at=self.listed_at,
            note=self.note,
        )
        return context

    def id_for_label(self, id_: str) -> str:
        return f"{id_}_choice" if id_ and self.models else id_

    def value_from_datadict(self, data, files, name: str) -> Any:
        text = str(data.get(name) or "").strip()
        choice = data.get(f"{name}_choice")
        if choice is None or choice == OTHER_MODEL:
            # No list on the page (never tested, or a script posting the field), or "another".
            return text
        # A name typed while "none" is selected is what the person meant.
        return str(choice) or text

    def value_omitted_from_data(self, data, files, name: str) -> bool:
        return name not in data and f"{name}_choice" not in data


# --- Opening hours ------------------------------------------------------------------------------


@dataclass
class SubmittedDay:
    closed: bool
    spans: list[tuple[str, str]] = field(default_factory=list)  # as typed, empty pairs included


@dataclass
class SubmittedWeek:
    """What the week table posted, before it is read into the stored JSON."""

    days: dict[str, SubmittedDay]
    original: str  # the JSON the page was rendered from (a hidden input)


def _normalized(hours: Any) -> dict[str, list[tuple[str, str]]] | None:
    """Open days with their ranges in time order: two values that mean the same hours compare
    equal (a closed day written as [] or left out, ranges in another order)."""
    if not isinstance(hours, dict):
        return None
    try:
        return {
            day: sorted((str(a), str(b)) for a, b in spans) for day, spans in hours.items() if spans
        }
    except (TypeError, ValueError):
        return None


def same_hours(a: Any, b: Any) -> bool:
    left, right = _normalized(a), _normalized(b)
    return left is not None and left == right


def _loads(text: Any) -> Any:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _hhmm(value: str, day: str) -> str:
    match = _TIME.match(value)
    if not match:
        raise ValidationError(f"{DAY_LABELS[day]}: “{value[:20]}” is not a time such as 09:00.")
    return f"{match.group(1)}:{match.group(2)}"


def hours_from_table(week: SubmittedWeek) -> dict[str, list[list[str]]]:
    """The stored JSON for what the table shows. Saving an untouched table returns the JSON it
    was rendered from, byte for byte; a changed one lists every day, closed days as []."""
    original = _loads(week.original)
    errors: list[ValidationError] = []
    result: dict[str, list[list[str]]] = {}
    for day in WEEKDAYS:
        row = week.days.get(day, SubmittedDay(closed=True))
        label = DAY_LABELS[day]
        spans: list[tuple[str, str]] = []
        for start, end in row.spans:
            start, end = start.strip(), end.strip()
            if not start and not end:
                continue
            if not start or not end:
                errors.append(
                    ValidationError(f"{label}: enter both the opening and the closing time.")
                )
                continue
            try:
                spans.append((_hhmm(start, day), _hhmm(end, day)))
            except ValidationError as exc:
                errors.append(exc)
        spans.sort()
        if row.closed:
            before = (_normalized(original) or {}).get(day, []) if original is not None else []
            if spans and spans != before:
                errors.append(
                    ValidationError(
                        f"{label} is ticked “closed” but has new opening times: untick "
                        "“closed”, or clear the times."
                    )
                )
            spans = []
        for start, end in spans:
            if start >= end:
                errors.append(ValidationError(f"{label}: {start}–{end} ends before it starts."))
        for (_, end), (start, next_end) in itertools.pairwise(spans):
            if start < end:
                errors.append(
                    ValidationError(f"{label}: the ranges ending {end} and {next_end} overlap.")
                )
        result[day] = [[start, end] for start, end in spans]
    if errors:
        raise ValidationError(errors)
    if original is not None and same_hours(result, original):
        return original
    if not any(result.values()):
        return {}
    return result


class OpeningHoursWidget(forms.Widget):
    """A row per weekday: a "closed" box and two from–to ranges of time inputs (a split day),
    more where stored hours have more. Plain inputs: it submits without JavaScript."""

    template_name = "chatbots/widgets/opening_hours.html"

    class Media:
        css = {"all": ["chatbots/widgets.css"]}

    def _rows(self, value: Any) -> tuple[list[tuple[str, SubmittedDay]], str]:
        if isinstance(value, SubmittedWeek):
            days = [(day, value.days.get(day, SubmittedDay(closed=True))) for day in WEEKDAYS]
            return days, value.original
        hours = _loads(value) if isinstance(value, str) else value
        original = value if isinstance(value, str) else json.dumps(hours or {})
        if not isinstance(hours, dict):
            hours = {}
        days = []
        for day in WEEKDAYS:
            spans = hours.get(day) or []
            pairs = [
                (str(span[0]), str(span[1]))
                for span in (spans if isinstance(spans, list) else [])
                if isinstance(span, list | tuple) and len(span) == 2
            ]
            days.append((day, SubmittedDay(closed=not pairs, spans=pairs)))
        return days, original

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        days, original = self._rows(value)
        longest = max((len(row.spans) for _, row in days), default=0)
        # Two ranges a day (room for a lunch break), more only where a day already has more.
        columns = min(max(2, longest), MAX_RANGES_PER_DAY)
        base = context["widget"]["attrs"].get("id") or f"id_{name}"
        rows = []
        for day, row in days:
            spans = row.spans + [("", "")] * (columns - len(row.spans))
            rows.append(
                {
                    "day": day,
                    "label": DAY_LABELS[day],
                    "closed": row.closed,
                    "closed_name": f"{name}_{day}_closed",
                    "closed_id": f"{base}_{day}_closed",
                    "slots": [
                        {
                            "number": number,
                            "from": start,
                            "to": end,
                            "from_name": f"{name}_{day}_{number}_from",
                            "to_name": f"{name}_{day}_{number}_to",
                            "from_id": f"{base}_{day}_{number}_from",
                            "to_id": f"{base}_{day}_{number}_to",
                        }
                        for number, (start, end) in enumerate(spans)
                    ],
                }
            )
        context["widget"].update(
            rows=rows, original=original, columns=range(columns), table_id=base
        )
        return context

    def id_for_label(self, id_: str) -> str:
        return f"{id_}_mon_0_from" if id_ else id_

    def value_from_datadict(self, data, files, name: str) -> Any:
        if f"{name}_mon_0_from" not in data:
            # Not the table (a script posting the JSON itself): the JSON as sent.
            return data.get(name)
        days = {}
        for day in WEEKDAYS:
            spans = []
            for number in range(MAX_RANGES_PER_DAY):
                start = data.get(f"{name}_{day}_{number}_from")
                end = data.get(f"{name}_{day}_{number}_to")
                if start is None and end is None:
                    break
                spans.append((str(start or ""), str(end or "")))
            days[day] = SubmittedDay(closed=bool(data.get(f"{name}_{day}_closed")), spans=spans)
        return SubmittedWeek(days=days, original=str(data.get(name) or ""))

    def value_omitted_from_data(self, data, files, name: str) -> bool:
        return name not in data and f"{name}_mon_0_from" not in data


class OpeningHoursField(forms.Field):
    """Opening hours edited as a week table; cleans to the JSON stored on the chatbot."""

    widget = OpeningHoursWidget

    def __init__(self, *, encoder=None, decoder=None, **kwargs) -> None:
        # A model JSONField passes its encoder and decoder; the table needs neither.
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, SubmittedWeek | str):
            return value
        return json.dumps(value if value is not None else {})

    def to_python(self, value: Any) -> Any:
        if isinstance(value, SubmittedWeek):
            return hours_from_table(value)
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            loaded = _loads(value)
            if loaded is None:
                raise ValidationError(
                    'Opening hours must be JSON such as {"mon": [["09:00", "17:00"]]}.'
                )
            return loaded
        return value

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            value = self.to_python(data)
        except ValidationError:
            return True
        return not same_hours(value, initial if initial is not None else {})
