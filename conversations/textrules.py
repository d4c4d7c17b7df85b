"""The chatbot's text rules applied to an answer while it streams.

Each rule is a streaming find/replace stage that holds back only the few characters that could
begin a match, so a match split across two tokens is still replaced and the streamed text equals
the rules applied to the whole answer (str.replace semantics, rules in order).
"""

from __future__ import annotations

from chatbots.config_types import TextRuleConfig


class _ReplaceStage:
    __slots__ = ("buffer", "find", "replace")

    def __init__(self, find: str, replace: str) -> None:
        self.find = find
        self.replace = replace
        self.buffer = ""

    def feed(self, chunk: str) -> str:
        buf = self.buffer + chunk
        find = self.find
        out: list[str] = []
        i = 0
        while True:
            j = buf.find(find, i)
            if j == -1:
                break
            out.append(buf[i:j])
            out.append(self.replace)
            i = j + len(find)
        rest = buf[i:]
        # Hold back the longest tail of `rest` that is the start of `find`.
        hold = 0
        for k in range(min(len(find) - 1, len(rest)), 0, -1):
            if find.startswith(rest[-k:]):
                hold = k
                break
        out.append(rest[: len(rest) - hold])
        self.buffer = rest[len(rest) - hold :]
        return "".join(out)

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


class StreamingRewriter:
    """Feed tokens in, get rewritten text out; call flush() at the end of the answer."""

    def __init__(self, rules: list[TextRuleConfig]) -> None:
        self.stages: list[_ReplaceStage] = []
        for rule in rules:
            if rule.get("kind") == "exclamation":
                self.stages.append(_ReplaceStage("!", rule.get("replace") or "."))
            elif rule.get("find"):
                self.stages.append(_ReplaceStage(rule["find"], rule.get("replace", "")))

    def feed(self, text: str) -> str:
        for stage in self.stages:
            text = stage.feed(text)
        return text

    def flush(self) -> str:
        text = ""
        for stage in self.stages:
            text = stage.feed(text) + stage.flush()
        return text


def rewrite_all(text: str, rules: list[TextRuleConfig]) -> str:
    """The non-streaming meaning of the rules, for tests and for whole answers."""
    rewriter = StreamingRewriter(rules)
    return rewriter.feed(text) + rewriter.flush()
