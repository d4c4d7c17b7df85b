"""Per-tool counters for GET /metrics: calls by tool and outcome, and time spent in them.

Like every figure of /metrics (monitoring/metrics.py) they live in Redis, so any web process
answers for every worker: the tool loop adds one round's calls in one pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, cast

from prometheus_client.core import CounterMetricFamily, Metric

from config.redis import get_redis

logger = logging.getLogger(__name__)

CALLS_KEY = "cb:tools:calls"  # field "<tool>\x1f<outcome>" -> calls
MS_KEY = "cb:tools:ms"  # field "<tool>" -> milliseconds spent
SEP = "\x1f"
NOT_ALLOWED = "(not allowed)"  # a name the model made up is no label of ours


def _label(call: dict[str, Any]) -> str:
    return NOT_ALLOWED if call["outcome"] == "refused" else str(call["tool"])[:100]


async def tool_calls_count(redis: Any, calls: list[dict[str, Any]]) -> None:
    """Add a round's call records (tools.loop) to the counters; a Redis hiccup costs figures,
    never the turn."""
    if not calls:
        return
    try:
        pipe = redis.pipeline(transaction=False)
        for call in calls:
            label = _label(call)
            pipe.hincrby(CALLS_KEY, f"{label}{SEP}{call['outcome']}", 1)
            pipe.hincrby(MS_KEY, label, int(call["duration_ms"]))
        await pipe.execute()
    except Exception:
        logger.warning("tool call counters not updated", exc_info=True)


def collect() -> Iterator[Metric]:
    redis = get_redis()
    calls = CounterMetricFamily(
        "chatbot_tool_calls", "Tool calls by tool and outcome.", labels=["tool", "outcome"]
    )
    # The shared client answers bytes (config.redis: no decode_responses).
    for field, count in sorted(cast(dict[bytes, bytes], redis.hgetall(CALLS_KEY)).items()):
        tool, _, outcome = field.decode().partition(SEP)
        calls.add_metric([tool, outcome], int(count))
    yield calls
    seconds = CounterMetricFamily(
        "chatbot_tool_call_seconds", "Time spent in tool calls.", labels=["tool"]
    )
    for field, ms in sorted(cast(dict[bytes, bytes], redis.hgetall(MS_KEY)).items()):
        seconds.add_metric([field.decode()], int(ms) / 1000)
    yield seconds
