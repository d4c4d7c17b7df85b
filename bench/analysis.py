"""Turns client traces plus the fake's emission and request logs into the reported figures."""

from __future__ import annotations

from collections import defaultdict

from bench.client import Trace
from bench.measure import percentiles


def index_emissions(emissions: list[list]) -> dict[str, dict[int, float]]:
    """chatId -> token index -> monotonic emission time."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for key, index, _wall, mono in emissions:
        out[str(key)][int(index)] = mono
    return out


def index_requests(requests: list[dict]) -> dict[str, dict]:
    """overrideConfig.sessionId (our conversation id, or the floor's own id) -> request."""
    out: dict[str, dict] = {}
    for req in requests:
        body = req.get("body")
        if req.get("method") != "POST" or not isinstance(body, dict):
            continue
        override = body.get("overrideConfig") or {}
        session = override.get("sessionId") if isinstance(override, dict) else None
        if session:
            out[str(session)] = {"chat_id": body.get("chatId"), "time": req["time"]}
    return out


def peak_concurrency(emitted: dict[str, dict[int, float]]) -> int:
    """Most upstream streams emitting at the same moment (from first to last token)."""
    edges = []
    for times in emitted.values():
        if times:
            edges.append((min(times.values()), 1))
            edges.append((max(times.values()), -1))
    edges.sort()
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def analyze(
    traces: list[Trace],
    *,
    emissions: list[list],
    requests: list[dict],
    tokens_per_stream: int,
    turn_created: dict[str, float] | None = None,
    relay: bool = True,
) -> dict:
    emitted = index_emissions(emissions)
    by_session = index_requests(requests)
    delays: list[float] = []
    timeline: list[tuple[float, float]] = []  # (emission time, delay)
    ttft: list[float] = []
    platform_client: list[float] = []
    platform_server: list[float] = []
    post_latency: list[float] = []
    visible_ttft: list[float] = []
    late_subscribe = 0
    delivered = duplicates = out_of_order = complete = gaps = 0
    frames = 0
    errors: list[str] = []
    expected = list(range(tokens_per_stream))
    for tr in traces:
        req = by_session.get(tr.session_id)
        if req is not None:
            tr.chat_id = tr.chat_id or str(req["chat_id"])
            platform_client.append((req["time"] - tr.post_sent_wall) * 1000)
            if turn_created and tr.turn_id in turn_created:
                platform_server.append((req["time"] - turn_created[tr.turn_id]) * 1000)
        if tr.post_done_mono:
            post_latency.append((tr.post_done_mono - tr.post_sent_mono) * 1000)
        if tr.error:
            errors.append(tr.error)
        times = emitted.get(tr.chat_id, {})
        received: list[int] = []
        first_token_at = None
        for at, _event_id, _event, tokens in tr.frames:
            frames += 1
            for i in tokens:
                received.append(i)
                if i in times:
                    delays.append((at - times[i]) * 1000)
                    timeline.append((times[i], delays[-1]))
            if tokens and first_token_at is None:
                first_token_at = at
                if 0 in tokens and 0 in times:
                    if tr.resume_sent_mono > times[0]:
                        # The client asked to follow the turn after its first token existed:
                        # that wait is the client's, not the relay's.
                        late_subscribe += 1
                    else:
                        ttft.append((at - times[0]) * 1000)
        if first_token_at is not None:
            visible_ttft.append((first_token_at - tr.post_sent_mono) * 1000)
        unique = set(received)
        delivered += len(unique)
        duplicates += len(received) - len(unique)
        if received != sorted(received):
            out_of_order += 1
        if received == expected:
            complete += 1
        if relay:
            ids = [event_id for _, event_id, _, _ in tr.frames]
            if ids and ids != list(range(ids[0], ids[0] + len(ids))):
                gaps += 1
    expected_total = tokens_per_stream * len(traces)
    return {
        "streams": len(traces),
        "streams_complete": complete,
        "tokens_expected": expected_total,
        "tokens_delivered": delivered,
        "delivered_pct": round(100 * delivered / expected_total, 3) if expected_total else None,
        "duplicates": duplicates,
        "streams_out_of_order": out_of_order,
        "streams_with_id_gaps": gaps,
        "frames_received": frames,
        "peak_concurrent_upstream_streams": peak_concurrency(
            {tr.chat_id: emitted.get(tr.chat_id, {}) for tr in traces}
        ),
        "emission_to_receipt_ms": percentiles(delays),
        "delay_by_second": _by_second(timeline),
        "ttft_added_ms": percentiles(ttft),
        "ttft_late_subscribe": late_subscribe,
        "platform_added_client_ms": percentiles(platform_client),
        "platform_added_server_ms": percentiles(platform_server),
        "post_latency_ms": percentiles(post_latency),
        "post_to_first_token_ms": percentiles(visible_ttft),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
    }


def _by_second(timeline: list[tuple[float, float]]) -> list[dict]:
    """Delay percentiles per second of the run (by emission time): start-up burst vs steady."""
    if not timeline:
        return []
    start = min(t for t, _ in timeline)
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, delay in timeline:
        buckets[int(t - start)].append(delay)
    return [
        {"second": k, **{p: v for p, v in percentiles(buckets[k], 1).items() if p != "mean"}}
        for k in sorted(buckets)
    ]


def throughput(tr: Trace, emissions: list[list]) -> dict:
    """Tokens per second of one flat-out stream: at the client, and at the upstream."""
    receipts = [(at, len(tokens)) for at, _, _, tokens in tr.frames if tokens]
    emitted = sorted(e[3] for e in emissions)
    out: dict = {"tokens_received": sum(n for _, n in receipts), "frames": len(receipts)}
    if len(receipts) >= 2:
        span = receipts[-1][0] - receipts[0][0]
        out["client_span_s"] = round(span, 4)
        # The first frame's tokens arrived at the start of the span, so they do not count.
        out["tokens_per_s"] = (
            round((out["tokens_received"] - receipts[0][1]) / span) if span else None
        )
    if len(emitted) >= 2:
        span = emitted[-1] - emitted[0]
        out["upstream_span_s"] = round(span, 4)
        out["upstream_tokens_per_s"] = round((len(emitted) - 1) / span) if span else None
        if receipts:
            out["last_token_lag_ms"] = round((receipts[-1][0] - emitted[-1]) * 1000, 2)
    return out
