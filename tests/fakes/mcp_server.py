"""A real MCP server built with the official `mcp` SDK, served on 127.0.0.1 for tests.

Tools: `add` (arguments), `order_status` (arguments, a text result), `slow` (sleeps), `fail`
(raises: an isError result), `huge` (a result of `size` characters) and `vanish` (the server
goes away in the middle of the call). Both transports: streamable HTTP at `/mcp` and HTTP+SSE at
`/sse` (+ `/messages/`). `required_headers` makes every request without them a 401.

Run standalone: `python -m tests.fakes.mcp_server --port 8105`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import threading
import time
from typing import Any, Self

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Mount


def build_server(fake: FakeMCPServer) -> MCPServer:
    server = MCPServer("fake-shop-tools")

    @server.tool(description="Add two numbers.")
    def add(a: int, b: int) -> int:
        fake.calls.append(("add", {"a": a, "b": b}))
        return a + b

    @server.tool(description="The status of an order.")
    def order_status(order_number: str) -> str:
        fake.calls.append(("order_status", {"order_number": order_number}))
        return f"Order {order_number} is packed and leaves tomorrow."

    @server.tool(description="Takes a long time.")
    async def slow(seconds: float = 30.0) -> str:
        fake.calls.append(("slow", {"seconds": seconds}))
        await asyncio.sleep(seconds)
        return "done"

    @server.tool(description="Always fails.")
    def fail() -> str:
        fake.calls.append(("fail", {}))
        raise RuntimeError("the warehouse database is down (password hunter2)")

    @server.tool(description="A very long answer.")
    def huge(size: int = 200_000) -> str:
        fake.calls.append(("huge", {"size": size}))
        return "y" * size

    @server.tool(description="The server goes away during this call.")
    async def vanish() -> str:
        fake.calls.append(("vanish", {}))
        fake.stop_soon()
        await asyncio.sleep(30)
        return "never"

    return server


class _HeaderGuard:
    """401 for requests without the configured headers (what an API-key-protected server does)."""

    def __init__(self, app: Any, fake: FakeMCPServer) -> None:
        self.app, self.fake = app, fake

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.fake.required_headers:
            got = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            for name, value in self.fake.required_headers.items():
                if got.get(name.lower()) != value:
                    await JSONResponse({"error": "unauthorized"}, status_code=401)(
                        scope, receive, send
                    )
                    return
        self.fake.requests += 1
        await self.app(scope, receive, send)


class FakeMCPServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, **headers: str) -> None:
        self.host, self.port = host, port
        self.required_headers: dict[str, str] = dict(headers)
        self.calls: list[tuple[str, dict]] = []
        self.requests = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _app(self) -> Starlette:
        mcp = build_server(self)
        http_app = mcp.streamable_http_app(host=self.host)
        sse_app = mcp.sse_app()
        # The streamable app's lifespan runs its session manager; SSE needs none.
        return Starlette(
            routes=[Mount("/sse-transport", app=sse_app), Mount("/", app=http_app)],
            middleware=[Middleware(_HeaderGuard, fake=self)],
            lifespan=lambda app: http_app.router.lifespan_context(app),
        )

    def start(self) -> Self:
        if not self.port:
            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        config = uvicorn.Config(
            self._app(), host=self.host, port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake MCP server did not start")
            time.sleep(0.02)
        return self

    def stop_soon(self) -> None:
        """Drop every connection now (the `vanish` tool): the server process 'dies'."""
        assert self._server is not None
        self._server.should_exit = True
        self._server.force_exit = True

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8105)
    args = parser.parse_args()
    srv = FakeMCPServer(port=args.port).start()
    print(f"fake MCP server on {srv.url}/mcp (streamable HTTP) and {srv.url}/sse-transport/sse")
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
