"""Incremental byte-level Server-Sent Events parser shared by the Flowise and OpenAI clients.

Follows the WHATWG event-stream rules; bytes may arrive cut at any point, including inside a UTF-8
character or between the CR and LF of a line ending.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

DEFAULT_MAX_EVENT_BYTES = 2 * 1024 * 1024

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEError(Exception):
    """Base class for event-stream problems."""


class SSEEventTooLarge(SSEError):
    """One event grew past the size cap without being terminated."""


class SSETruncated(SSEError):
    """The stream ended in the middle of an event (no terminating blank line)."""


class SSEParser:
    """Feed raw bytes, get complete events back.

    `max_event_bytes` caps the text buffered for a single event (counted in characters, which is
    never more than the bytes received), so a peer cannot make us buffer without bound.
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):
        self.max_event_bytes = max_event_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""  # the current, unterminated line
        self._skip_lf = False  # previous chunk ended with CR: a leading LF belongs to it
        self._started = False
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._pending_fields = False  # any field seen since the last dispatch

    @property
    def has_pending(self) -> bool:
        """True when bytes of an unfinished event are buffered."""
        return bool(self._buf) or self._pending_fields or bool(self._decoder.getstate()[0])

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        events: list[SSEEvent] = []
        # The buffered partial line holds no line break, so scanning starts at the new text.
        buf = self._buf + text
        if "\r" not in buf:
            # The common case (LF line endings): one C-level split instead of a regex search per
            # line; this is the hot path of every streamed token.
            *lines, self._buf = buf.split("\n")
            for line in lines:
                self._line(line, events)
            if len(self._buf) + self._data_size > self.max_event_bytes:
                raise SSEEventTooLarge(f"SSE event larger than {self.max_event_bytes} bytes")
            return events
        pos = 0
        search_from = len(self._buf)
        while True:
            m = _LINE_END.search(buf, search_from)
            if m is None:
                break
            if m.end() == len(buf) and m.group() == "\r":
                self._skip_lf = True
            self._line(buf[pos : m.start()], events)
            pos = search_from = m.end()
        self._buf = buf[pos:] if pos else buf
        if len(self._buf) + self._data_size > self.max_event_bytes:
            raise SSEEventTooLarge(f"SSE event larger than {self.max_event_bytes} bytes")
        return events

    def close(self) -> None:
        """Signal end of stream; raises SSETruncated when an event was left unfinished."""
        tail = self._decoder.decode(b"", final=True)
        if tail or self.has_pending:
            raise SSETruncated("event stream ended inside an event")

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line[0] == ":":
            return  # comment, e.g. Flowise's `:heartbeat`
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            self._pending_fields = True
            if self._data_size > self.max_event_bytes:
                raise SSEEventTooLarge(f"SSE event larger than {self.max_event_bytes} bytes")
        elif name == "event":
            self._event = value
            self._pending_fields = True
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
            self._pending_fields = True
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
            self._pending_fields = True
        else:
            # Unknown fields (Flowise's `message:` / bare `message`) carry nothing, per the spec,
            # but they do start an event, so EOF after one is still a truncation.
            self._pending_fields = True

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(
                SSEEvent(
                    event=self._event or "message",
                    data="\n".join(self._data),
                    id=self._last_id,
                    retry=self._retry,
                )
            )
        self._data = []
        self._data_size = 0
        self._event = ""
        self._retry = None
        self._pending_fields = False
