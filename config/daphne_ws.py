"""Daphne's WebSocket protocol with a bound on what the server holds for a client that does not read.

Twisted keeps whatever the kernel will not take in the transport's own buffer, without limit.
Channels hands every frame to Daphne as soon as the consumer sends it, so for a client that
stops reading (a frozen tab, a hostile script) every frame of every answer piles up in the
Daphne process. The protocol below watches that buffer through Twisted's producer API: the
transport pauses its producer when its buffer passes `bufferSize` and resumes it once the buffer
is empty again. Bytes written while paused are waiting in the process; when they pass
settings.WS_SEND_BUFFER_MAX_BYTES the TCP connection is aborted (a close frame would only queue
behind the unread data; the abort is a reset, which frees the kernel's buffers too). The
consumer sees an ordinary disconnect; the turn keeps running in the worker and is stored, so the
widget reconnects and resumes from its `last_event_id`.

Between pause and resume the transport says nothing, so the count is an upper estimate: exact
for a client that reads nothing, too high by what a slow reader took meanwhile. A client that
reads, but not as fast as a burst arrives, is therefore cut once a burst passes the bound. With
the default ANSWER_MAX_CHARS a whole turn replays in less than the default 4 MB.

The transport's producer slot already holds Daphne's HTTP channel (Twisted's HTTPChannel
registers itself when the connection opens and stays registered after the WebSocket upgrade);
the watcher takes the slot and passes every call on to it, so its behaviour (it stops reading
from a client whose output is backed up) is unchanged.

`install()` makes Daphne build this protocol; config/asgi.py calls it when Daphne is installed.
uvicorn (bench servers) bounds its own write buffer and does not use this module.
"""

from __future__ import annotations

import logging
from typing import Any

from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from django.conf import settings
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

logger = logging.getLogger(__name__)


@implementer(IPushProducer)
class OutputWatch:
    """Sits in the transport's producer slot: hears when the transport's send buffer fills up and
    when it has drained, tells the protocol, and passes the call on to the producer that held the
    slot before (if any)."""

    def __init__(self, protocol: BoundedWebSocketProtocol, previous: Any | None) -> None:
        self.protocol = protocol
        self.previous = previous

    def pauseProducing(self) -> None:
        self.protocol.output_backed_up()
        if self.previous is not None:
            self.previous.pauseProducing()

    def resumeProducing(self) -> None:
        self.protocol.output_drained()
        if self.previous is not None:
            self.previous.resumeProducing()

    def stopProducing(self) -> None:
        if self.previous is not None:
            self.previous.stopProducing()


class BoundedWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol, aborting a connection whose unsent output passes the bound."""

    # True between the transport's pauseProducing (its buffer passed bufferSize) and its
    # resumeProducing (the buffer is empty again).
    backed_up = False
    # Bytes handed to the transport while backed up: still in this process, except what the
    # client read meanwhile (see the module docstring).
    held = 0
    aborted_for_backlog = False
    send_buffer_max = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.send_buffer_max = settings.WS_SEND_BUFFER_MAX_BYTES
        self.watch_output()

    def watch_output(self) -> None:
        """Take the transport's producer slot, keeping whoever had it as the next in line."""
        transport = self.transport
        previous = getattr(transport, "producer", None)
        if previous is not None:
            if not getattr(transport, "streamingProducer", False):
                logger.warning(
                    "WebSocket send-buffer bound inactive: the transport has a pull producer"
                )
                return
            transport.unregisterProducer()
        try:
            transport.registerProducer(OutputWatch(self, previous), True)
        except RuntimeError:
            # A transport that hides its producer (e.g. TLS inside Daphne) and already has one.
            logger.warning("WebSocket send-buffer bound inactive: the transport has a producer")

    def output_backed_up(self) -> None:
        self.backed_up = True

    def output_drained(self) -> None:
        self.backed_up = False
        self.held = 0

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Every frame (data, ping, close) goes through here on its way to the transport."""
        if self.aborted_for_backlog:
            return  # the connection is going; don't grow the buffer until it is gone
        super().sendData(data, sync, chopsize)
        if not self.backed_up or self.send_buffer_max <= 0:
            return
        self.held += len(data)
        if self.held > self.send_buffer_max:
            self.abort_for_backlog()

    def abort_for_backlog(self) -> None:
        self.aborted_for_backlog = True
        logger.warning(
            "WebSocket client on %s is not keeping up: %d bytes queued for it since its send"
            " buffer was last empty (limit WS_SEND_BUFFER_MAX_BYTES=%d); connection aborted",
            getattr(getattr(self, "request", None), "path", "?"),
            self.held,
            self.send_buffer_max,
        )
        abort = getattr(self.transport, "abortConnection", None) or self.transport.loseConnection
        abort()


def install() -> None:
    """Make Daphne build BoundedWebSocketProtocol for every WebSocket connection.

    Daphne's Server creates its WebSocketFactory in run(), after the CLI has imported the ASGI
    application; the factory builds `protocol`, a class attribute, so setting it here covers
    factories made before and after."""
    WebSocketFactory.protocol = BoundedWebSocketProtocol
