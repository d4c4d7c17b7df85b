"""config/daphne_ws.py: Daphne aborts a WebSocket whose client leaves too much unread.

The protocol is built by Daphne's own factory and connected to a Twisted FileDescriptor whose
socket is simulated (`room` bytes are accepted per write attempt), so the buffering, pausing and
resuming are Twisted's real code. The whole server, with a client that never reads, is in
tests/reliability/test_05_hostile_input.py.
"""

from __future__ import annotations

import pytest
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactor

from config import daphne_ws
from config.daphne_ws import BoundedWebSocketProtocol, OutputWatch

FRAME = b"x" * 30_000


class SimulatedSocket(FileDescriptor):
    """A connected transport whose peer takes `room` bytes, then nothing until given more."""

    def __init__(self) -> None:
        super().__init__(reactor=MemoryReactor())
        self.connected = 1
        self.room = 0
        self.delivered = 0
        self.aborted = False

    def writeSomeData(self, data) -> int:
        taken = min(len(data), self.room)
        self.room -= taken
        self.delivered += taken
        return taken

    def abortConnection(self) -> None:
        self.aborted = True

    def client_reads(self, count: int) -> None:
        self.room += count
        self.doWrite()

    def getPeer(self):
        return IPv4Address("TCP", "127.0.0.1", 50000)

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 8000)


class HttpChannel:
    """Stands for Twisted's HTTPChannel, which Daphne leaves registered on the transport."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


@pytest.fixture
def connection(settings):
    settings.WS_SEND_BUFFER_MAX_BYTES = 200_000
    transport = SimulatedSocket()
    channel = HttpChannel()
    transport.registerProducer(channel, True)
    factory = WebSocketFactory(object, server="daphne")
    factory.protocol = BoundedWebSocketProtocol
    protocol = factory.buildProtocol(transport.getPeer())
    protocol.makeConnection(transport)
    return protocol, transport, channel


def test_install_makes_daphnes_factory_build_the_bounded_protocol(monkeypatch):
    monkeypatch.setattr(WebSocketFactory, "protocol", WebSocketFactory.protocol)
    daphne_ws.install()
    factory = WebSocketFactory(object, server="daphne")
    assert isinstance(factory.buildProtocol(None), BoundedWebSocketProtocol)


def test_the_watch_takes_the_producer_slot_and_keeps_daphnes_channel_informed(connection):
    protocol, transport, channel = connection
    assert isinstance(transport.producer, OutputWatch)
    for _ in range(3):  # 90 kB: past Twisted's 64 kB buffer
        protocol.sendData(FRAME)
    assert protocol.backed_up and channel.calls[0] == "pause"
    transport.client_reads(10**6)
    assert not protocol.backed_up and protocol.held == 0
    assert channel.calls[-1] == "resume"
    assert not transport.aborted


def test_a_client_that_does_not_read_is_aborted_past_the_bound(connection, caplog):
    protocol, transport, _ = connection
    sent = 0
    while not transport.aborted and sent < 20:
        protocol.sendData(FRAME)
        sent += 1
    assert transport.aborted
    assert 200_000 < protocol.held <= 200_000 + len(FRAME)
    assert "not keeping up" in caplog.text and "WS_SEND_BUFFER_MAX_BYTES=200000" in caplog.text
    # Nothing more is buffered for a connection that is going away.
    protocol.sendData(FRAME)
    transport.client_reads(10**7)
    assert transport.delivered == sent * len(FRAME)


def test_a_client_that_keeps_reading_is_never_aborted(connection):
    protocol, transport, channel = connection
    for _ in range(20):  # 3 MB in all, far past the bound, in bursts the client reads up
        for _ in range(5):
            protocol.sendData(FRAME)
        assert protocol.backed_up
        transport.client_reads(10**6)
    assert transport.delivered == 100 * len(FRAME)
    assert not transport.aborted
    assert channel.calls.count("resume") == 20


def test_a_bound_of_zero_turns_the_check_off(connection):
    protocol, transport, _ = connection
    protocol.send_buffer_max = 0
    for _ in range(20):
        protocol.sendData(FRAME)
    assert not transport.aborted
