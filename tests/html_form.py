"""What a browser would submit for a form on a page, read from the page's HTML.

Tests that post admin forms through Django's test client build their data with this, so they
send exactly what the page shows (a textarea's text, a password box's empty value, the
selected option) — the earlier helper built data from the form objects and skipped the inputs
it found awkward, which hid a page that put the word "True" into every key box.
"""

from __future__ import annotations

from html.parser import HTMLParser

# Buttons are sent only when they are the one pressed; these never are.
_NOT_SUBMITTED = {"submit", "button", "reset", "image", "file"}


class _FormParser(HTMLParser):
    def __init__(self, form_id: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.depth = 0  # >0 while inside the wanted <form>
        self.found = False
        self.fields: list[tuple[str, str]] = []
        self._textarea: tuple[str, list[str]] | None = None
        self._select: dict | None = None
        self._option: dict | None = None

    def _wanted(self, form_id: str) -> bool:
        if self.form_id is not None:
            return form_id == self.form_id
        # An admin page's header holds the logout form; its change form is "<model>_form".
        return form_id.endswith("_form")

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            if self.depth:
                self.depth += 1
            elif not self.found and self._wanted(a.get("id", "")):
                self.depth, self.found = 1, True
            return
        if not self.depth or "disabled" in a:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in _NOT_SUBMITTED:
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((name, a.get("value", "on")))
                return
            self.fields.append((name, a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea = (name, [])
        elif tag == "select" and name:
            self._select = {"name": name, "multiple": "multiple" in a, "options": []}
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "text": []}
            self._select["options"].append(self._option)

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1].append(data)
        if self._option is not None:
            self._option["text"].append(data)

    def handle_endtag(self, tag):
        if tag == "form" and self.depth:
            self.depth -= 1
        elif tag == "textarea" and self._textarea is not None:
            name, parts = self._textarea
            text = "".join(parts)
            # Browsers drop the one newline that follows <textarea>.
            if text.startswith("\n"):
                text = text[1:]
            self.fields.append((name, text.replace("\r\n", "\n").replace("\n", "\r\n")))
            self._textarea = None
        elif tag == "option":
            self._option = None
        elif tag == "select" and self._select is not None:
            options = self._select["options"]
            values = [
                o["value"] if o["value"] is not None else "".join(o["text"]).strip()
                for o in options
            ]
            chosen = [v for o, v in zip(options, values, strict=True) if o["selected"]]
            if not self._select["multiple"]:
                # A single select sends its last selected option, or its first option.
                chosen = chosen[-1:] or values[:1]
            self.fields.extend((self._select["name"], v) for v in chosen)
            self._select = None


def form_fields(html: str, *, form_id: str | None = None) -> list[tuple[str, str]]:
    """(name, value) pairs in document order, as the browser would send them; without
    form_id, the first form whose id ends in "_form" (an admin change form)."""
    parser = _FormParser(form_id)
    parser.feed(html)
    parser.close()
    if not parser.found:
        raise AssertionError(f"no <form{f' id={form_id!r}' if form_id else ''}> on the page")
    return parser.fields


def form_data(html: str, *, form_id: str | None = None) -> dict[str, str | list[str]]:
    """form_fields() as a dict for Django's test client (repeated names become lists)."""
    data: dict[str, str | list[str]] = {}
    for name, value in form_fields(html, form_id=form_id):
        if name in data:
            existing = data[name]
            data[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            data[name] = value
    return data
