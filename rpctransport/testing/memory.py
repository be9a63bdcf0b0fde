# -*- test-case-name: rpctransport.test.test_memory -*-
"""
An in-memory connection between two stream controllers.

L{controller_pair} gives two real L{StreamController}s joined by a pair of
in-memory transports, with no sockets and no reactor: a write is delivered to
the other side synchronously, before C{start_writing} returns. Deliveries are
queued and pumped by one loop, so a ping-pong between the two controllers
never recurses. Timers run on a L{Clock} that the test advances.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IProducer,
    IPushProducer,
    ITransport,
)
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from ..adapters.stream import StreamController

__all__ = ["MemoryTransport", "controller_pair"]


class _Pipe:
    """
    The shared queue of both directions: what each side sent and has not
    yet been delivered, pumped by one loop.
    """

    def __init__(self) -> None:
        self._queue: deque[tuple[MemoryTransport, str, Any]] = deque()
        self._pumping = False

    def post(self, to: MemoryTransport, kind: str, payload: Any = None) -> None:
        self._queue.append((to, kind, payload))
        self.pump()

    def pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            held: deque[tuple[MemoryTransport, str, Any]] = deque()
            while self._queue:
                item = self._queue.popleft()
                to = item[0]
                if to.paused and item[1] != "lost":
                    held.append(item)
                    continue
                to.deliver(item[1], item[2])
            self._queue.extendleft(reversed(held))
        finally:
            self._pumping = False


@implementer(ITransport, IConsumer, IPushProducer)
class MemoryTransport:
    """
    One end of an in-memory stream connection.

    It speaks enough of Twisted's TCP transport for a L{StreamController}:
    writes, half-close (C{loseWriteConnection}), close, abort, producer
    registration, and pausing. It never pushes back on its producer: memory
    is the buffer.

    @ivar paused: whether the protocol paused reading; deliveries to it wait.
    """

    disconnecting = False

    def __init__(self, pipe: _Pipe, host: IAddress, peer: IAddress) -> None:
        self._pipe = pipe
        self._host = host
        self._peer_address = peer
        self.other: MemoryTransport | None = None
        self.protocol: Any = None
        self.producer: IProducer | None = None
        self.paused = False
        self._write_open = True
        self._read_open = True
        self._lost = False

    # ITransport

    def write(self, data: bytes) -> None:
        """
        Deliver C{data} to the other side (dropped once it is gone or we
        half-closed, as a socket would refuse it).
        """
        if self._write_open and not self._lost and self.other is not None and data:
            self._pipe.post(self.other, "data", data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        Deliver each piece in order.
        """
        for piece in data:
            self.write(piece)

    def loseWriteConnection(self) -> None:
        """
        Half-close: the other side reads EOF once what was sent is delivered.
        """
        if self._write_open and not self._lost:
            self._write_open = False
            assert self.other is not None
            self._pipe.post(self.other, "eof")
            self._pipe.post(self, "write_closed")

    def loseConnection(self) -> None:
        """
        Close both directions cleanly.
        """
        if self._lost or self.disconnecting:
            return
        self.disconnecting = True
        self.loseWriteConnection()
        self._pipe.post(self, "lost", Failure(ConnectionDone("closed")))

    def abortConnection(self) -> None:
        """
        Close at once; the other side sees the connection lost.
        """
        if self._lost:
            return
        self._pipe.post(self, "lost", Failure(ConnectionAborted("aborted")))
        if self.other is not None:
            self._pipe.post(self.other, "lost", Failure(ConnectionLost("peer aborted")))

    def getPeer(self) -> IAddress:
        """
        The other side's address.
        """
        return self._peer_address

    def getHost(self) -> IAddress:
        """
        This side's address.
        """
        return self._host

    # IConsumer

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        Remember the producer; it is never paused.
        """
        self.producer = producer

    def unregisterProducer(self) -> None:
        """
        Forget the producer.
        """
        self.producer = None

    # IPushProducer: the protocol pauses our deliveries to it.

    def pauseProducing(self) -> None:
        """
        Hold deliveries to this side.
        """
        self.paused = True

    def resumeProducing(self) -> None:
        """
        Deliver what was held.
        """
        self.paused = False
        self._pipe.pump()

    def stopProducing(self) -> None:
        """
        Close, as Twisted's transports do.
        """
        self.loseConnection()

    def deliver(self, kind: str, payload: Any) -> None:
        """
        Hand one queued event to our protocol.
        """
        if self._lost:
            return
        protocol = self.protocol
        if kind == "data":
            if self._read_open:
                protocol.dataReceived(payload)
        elif kind == "eof":
            if self._read_open:
                self._read_open = False
                protocol.readConnectionLost()
        elif kind == "write_closed":
            protocol.writeConnectionLost()
        elif kind == "lost":
            self._lost = True
            other = self.other
            if (
                other is not None
                and not other._lost
                and other._read_open
                and payload.check(ConnectionDone)
            ):
                # The other side reads EOF (its writes now go nowhere).
                self._pipe.post(other, "eof")
            protocol.connectionLost(payload)


def controller_pair(
    clock: Clock | None = None,
    *,
    client_address: IAddress | None = None,
    server_address: IAddress | None = None,
    **options: Any,
) -> tuple[StreamController, StreamController]:
    """
    Two connected stream controllers, client and server, without sockets.

    Writes are delivered synchronously; timers (C{set_timeout}, the shutdown
    linger) run on C{clock}, which the test advances.

    @param clock: the clock for timers (a new L{Clock} by default; it is the
        controllers' C{reactor}).
    @param client_address: the client's address as the server sees it
        (C{IPv4Address("TCP", "127.0.0.1", 40000)} by default).
    @param server_address: the server's address as the client sees it
        (C{IPv4Address("TCP", "127.0.0.1", 111)} by default).
    @param options: limits and options for both controllers, as for
        L{StreamController}.
    @return: C{(client, server)}.
    """
    if clock is None:
        clock = Clock()
    if client_address is None:
        client_address = IPv4Address("TCP", "127.0.0.1", 40000)
    if server_address is None:
        server_address = IPv4Address("TCP", "127.0.0.1", 111)
    pipe = _Pipe()
    client_side = MemoryTransport(pipe, client_address, server_address)
    server_side = MemoryTransport(pipe, server_address, client_address)
    client_side.other = server_side
    server_side.other = client_side
    client = StreamController(clock, **options)
    server = StreamController(clock, **options)
    client_side.protocol = client
    server_side.protocol = server
    server.makeConnection(server_side)
    client.makeConnection(client_side)
    return client, server
