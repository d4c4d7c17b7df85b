"""Which flows a turn runs: the router's label picks an answer flow, else the main flow.

It reads nothing but the bot's configuration (chatbots.selectors), so it sits in chatbots, below
the turn runner, the tool loop and the analyses that all ask it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chatbots.config_types import ChatbotConfig, FlowConfig


def main_flow(config: ChatbotConfig) -> FlowConfig | None:
    for flow in config["flows"]:
        if flow["is_main"]:
            return flow
    answers = [f for f in config["flows"] if f["role"] == "answer"]
    return answers[0] if answers else None


def router_flow(config: ChatbotConfig) -> FlowConfig | None:
    return next((f for f in config["flows"] if f["role"] == "router"), None)


def flow_by_role(config: ChatbotConfig, role: str) -> FlowConfig | None:
    return next((f for f in config["flows"] if f["role"] == role), None)


def routable_keys(config: ChatbotConfig) -> list[str]:
    return [f["routing_key"] for f in config["flows"] if f["role"] == "answer" and f["routing_key"]]


def parse_label(text: str, keys: list[str]) -> str | None:
    """Read a routing key out of a router's answer: JSON {"route": …}, a bare word, or a mention."""
    text = (text or "").strip()
    if not text or not keys:
        return None
    lowered = {k.lower(): k for k in keys}
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            payload = json.loads(match.group(0))
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            for field in ("route", "label", "flow", "routing_key", "category", "intent"):
                value = payload.get(field)
                if isinstance(value, str) and value.strip().lower() in lowered:
                    return lowered[value.strip().lower()]
    bare = text.strip().strip("\"'`.!:;").lower()
    if bare in lowered:
        return lowered[bare]
    words = re.findall(r"[a-z0-9_-]+", text.lower())
    # Longest key first: "productfilter" must win over "product".
    for key in sorted(lowered, key=len, reverse=True):
        if key in words:
            return lowered[key]
    return None


def answer_flow_for(config: ChatbotConfig, label: str | None) -> FlowConfig | None:
    if label:
        for flow in config["flows"]:
            if flow["role"] == "answer" and flow["routing_key"] == label:
                return flow
    return main_flow(config)


def extractor_for(config: ChatbotConfig, answer: FlowConfig) -> FlowConfig | None:
    """The extractor that reads the question before `answer` runs (applies_to its key, or all)."""
    specific = None
    general = None
    for flow in config["flows"]:
        if flow["role"] != "extractor":
            continue
        applies = flow.get("applies_to") or ""
        if applies and applies == answer.get("routing_key"):
            specific = specific or flow
        elif not applies:
            general = general or flow
    return specific or general


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in an extractor's answer (models like to wrap JSON in prose)."""
    match = re.search(r"\{.*\}", text or "", re.DOTALL)
    if not match:
        return None
    try:
        value = json.loads(match.group(0))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
