"""Daphne's HTTP channel with deadlines for reading a request (issue #18 item 4).

Twisted's HTTP channel has only an idle timeout (12 hours by default) that every received byte
resets, so a client that trickles its headers or body a byte at a time holds its connection,
and Daphne's buffers for it, indefinitely. Like Apache's mod_reqtimeout, this channel gives:

- the request line and headers HTTP_HEADER_TIMEOUT_SECONDS from the moment the server waits for
  them (connection opened, or the previous response sent on a kept-alive connection);
- the body HTTP_BODY_TIMEOUT_SECONDS after the headers, extended by one second for every
  HTTP_BODY_MIN_BYTES_PER_SECOND bytes received, so a large upload on a slow line completes
  while a trickle does not.

Past a deadline a request already begun gets `408` in the error envelope, and the connection
is closed (aborted if the client does not let it close); an idle kept-alive connection is
simply closed. Once a request is read, its time to answer is the application's business (a
chat message may wait for its answer), and a WebSocket upgrade leaves this channel entirely.

`install()` makes Daphne's HTTP factory build this channel; config/asgi.py calls it when
Daphne is installed. A proxy in front (nginx: client_header_timeout, client_body_timeout) may
enforce its own, usually shorter, limits; these hold without one.
"""

from __future__ import annotations

import json
import logging

from daphne.http_protocol import HTTPFactory
from django.conf import settings
from twisted.internet import reactor
from twisted.web import http

from config.errors import ErrorCode, error_body

logger = logging.getLogger(__name__)

# After the 408, how long the client gets to let the connection close before it is reset.
ABORT_AFTER_SECONDS = 2.0


class RequestDeadlineChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel, closing connections whose request arrives too slowly."""

    _deadline = None
    _reading_body = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self._await_headers()

    def _await_headers(self) -> None:
        self._reading_body = False
        self._arm(settings.HTTP_HEADER_TIMEOUT_SECONDS, "headers")

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        if seconds > 0:
            self._deadline = reactor.callLater(seconds, self._too_slow, what, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def dataReceived(self, data: bytes) -> None:
        rate = settings.HTTP_BODY_MIN_BYTES_PER_SECOND
        deadline = self._deadline
        if self._reading_body and rate > 0 and deadline is not None and deadline.active():
            deadline.delay(len(data) / rate)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        super().allHeadersReceived()
        self._reading_body = True
        self._arm(settings.HTTP_BODY_TIMEOUT_SECONDS, "body")

    def allContentReceived(self) -> None:
        # The request is read; Twisted calls this for bodiless requests and upgrades too.
        self._disarm()
        self._reading_body = False
        super().allContentReceived()

    def requestDone(self, request) -> None:
        # Armed before Twisted parses any pipelined data it buffered, which may hold a whole
        # next request (and so disarm it again).
        if self.persistent:
            self._await_headers()
        super().requestDone(request)

    def connectionLost(self, reason) -> None:
        self._disarm()
        super().connectionLost(reason)

    def _too_slow(self, what: str, seconds: float) -> None:
        self._deadline = None
        peer = getattr(self.transport.getPeer(), "host", "?") if self.transport else "?"
        began = bool(self.requests)
        if began:
            logger.warning(
                "HTTP request from %s: %s not received in time (%ss%s); 408 and connection closed",
                peer,
                what,
                seconds,
                ", extended by its rate" if what == "body" else "",
            )
            body = json.dumps(
                error_body(
                    ErrorCode.REQUEST_TIMEOUT,
                    "The request arrived too slowly and was not read to its end.",
                )
            ).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
        self._abortingCall = reactor.callLater(ABORT_AFTER_SECONDS, self.forceAbortClient)
        self.loseConnection()


def _channel(factory: HTTPFactory) -> http._GenericHTTPChannelProtocol:
    # The same wrapper Twisted's factory builds (it picks HTTP/2 when negotiated), around our
    # HTTP/1.1 channel.
    return http._GenericHTTPChannelProtocol(RequestDeadlineChannel())


def install() -> None:
    """Make Daphne's HTTP factory build RequestDeadlineChannel for every connection."""
    HTTPFactory.protocol = _channel
