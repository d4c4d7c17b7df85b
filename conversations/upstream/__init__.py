"""Clients for the AI services a chatbot answers with (Flowise, OpenAI-compatible, Pinecone).

Django-free: only httpx and the standard library, so the turn runner can drive them from one
long-lived asyncio loop per worker.
"""

from conversations.upstream.errors import UpstreamError, redact
from conversations.upstream.flowise import abort_flowise, stream_flowise
from conversations.upstream.openai_compat import stream_openai
from conversations.upstream.pool import make_async_client
from conversations.upstream.types import (
    CallStats,
    RetryPolicy,
    Timeouts,
    UpstreamEvent,
    UpstreamRequest,
)

__all__ = [
    "CallStats",
    "RetryPolicy",
    "Timeouts",
    "UpstreamError",
    "UpstreamEvent",
    "UpstreamRequest",
    "abort_flowise",
    "make_async_client",
    "redact",
    "stream_flowise",
    "stream_openai",
]
