"""Clients for the AI services a chatbot answers with (Flowise, OpenAI-compatible, Pinecone).

Django-free: only httpx and the standard library, so the turn runner can drive them from one
long-lived asyncio loop per worker.
"""

from aiclients.errors import UpstreamError, redact
from aiclients.flowise import abort_flowise, stream_flowise
from aiclients.openai_compat import stream_openai
from aiclients.pool import make_async_client
from aiclients.types import (
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
