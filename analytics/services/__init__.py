"""Use cases of analytics: analyse turns, record metrics, build the conversation index.

The modules: analysis (verdicts, context chunks, re-analysis), metrics (turn metrics and
retention), conversation_index (seed 004's sync).
"""

from __future__ import annotations


def turn_metrics_cleanup() -> dict[str, int]:
    """Retention of everything analytics stores (turn metrics, analyses, context chunks, index
    entries), in batches. Scheduled by monitoring's maintenance job `turn-metrics-cleanup`."""
    from analytics.services.metrics import analytics_cleanup

    return analytics_cleanup()
