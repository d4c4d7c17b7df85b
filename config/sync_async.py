"""The base of middleware that runs under both WSGI and ASGI without a thread hop.

Django wraps a sync-only middleware in sync_to_async under ASGI (a thread per request); one
that says it is both, and marks itself a coroutine function when the next handler is one, is
called directly on the event loop. The three lines that decide this were copied into every such
middleware; they live here once.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class SyncAsyncMiddleware:
    """Subclasses implement `__call__` (which returns `self.__acall__(request)` when
    `self.is_async`) and `async __acall__`; this keeps `get_response` and picks the mode."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
