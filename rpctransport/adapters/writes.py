# -*- test-case-name: rpctransport.test.test_stream -*-
"""
The writing part of a stream controller: records out to the transport, and
a write's Deferred that waits while the transport pushes back (or a TLS
handshake holds writes); or records sent without a Deferred, with the
backpressure passed on to the producer the application registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure

from ..interfaces import Message
from ..sansio.connection import Life, Output, Side, TLSState
from ..sansio.errors import AddressMismatch
from ..sansio.record import encode_record
from ..sansio.types import IMPLIED
from .link import StreamLink
from ._twisted import held_bytes
from .sameturn import SameTurnWrites, Turn

__all__ = ["StreamWrites"]


class StreamWrites:
    """
    The writes of one stream controller (see the module docstring).

    @ivar max_fragment_size: written records are split into fragments of at
        most this many bytes (L{None}: one fragment per record).
    @ivar same_turn: same-turn replies, on a socket transport (or Twisted's
        TLS over one) with C{prompt_writes}; else L{None}.
    """

    def __init__(self, link: StreamLink, max_fragment_size: int | None) -> None:
        self._link = link
        self._conn = link.conn
        self.max_fragment_size = max_fragment_size
        self.same_turn: SameTurnWrites | None = None
        self.producer: IPushProducer | None = None

    def start(self, message: Message, addr: object) -> Deferred[None]:
        """
        Send one record; see L{IRpcMultiplexController.start_writing
        <rpctransport.interfaces.IRpcMultiplexController.start_writing>}.
        """
        link = self._link
        conn = self._conn
        if (
            conn.writer_side is not Side.IDLE
            or conn.life is not Life.OPEN
            or link.lost_reason is not None
            or (addr is not IMPLIED and addr != link.peer)
        ):
            refused = self._refuse(addr)
            if refused is not None:
                return refused
        transport: Any = link.transport
        pieces = encode_record(message, max_fragment_size=self.max_fragment_size)
        same_turn = self.same_turn
        if same_turn is None or same_turn.turn is Turn.OUTSIDE:
            transport.writeSequence(pieces)
        else:
            same_turn.write(
                transport, pieces, conn.tls is TLSState.PLAIN, conn.reader.buffered > 0
            )
        lost = link.lost_reason
        if (
            conn.output is not Output.PUSHED_BACK and conn.tls is not TLSState.HANDSHAKING
        ) or lost is not None:
            if link.timer.enabled:
                link.timer.activity(link.busy())
            return succeed(None) if lost is None else fail(lost)
        d: Deferred[None] = Deferred(self._cancel)
        link.write_d = d
        link.timer.activity(True)
        link.arm_deadline(conn.write_waiting(sum(map(len, pieces)), link.reactor.seconds()))
        return d

    def send(self, messages: Sequence[Message], addr: object, what: str) -> None:
        """
        Send records now, without a Deferred; see L{IRecordStreaming.send_records
        <rpctransport.interfaces.IRecordStreaming.send_records>}. Once the
        connection is gone they are discarded, as Twisted's transports
        discard what is written after the end.
        """
        link = self._link
        conn = self._conn
        if conn.writer_side is Side.SHUT or conn.writer_side is Side.ABORTED or (
            conn.life is Life.INACTIVE
        ):
            conn.check_write(what)
        if addr is not IMPLIED and addr != link.peer:
            raise AddressMismatch(f"{what}: {addr} is not this connection's peer {link.peer}")
        transport: Any = link.transport
        if conn.life is not Life.OPEN or link.lost_reason is not None or transport is None:
            return
        size = self.max_fragment_size
        if len(messages) == 1:
            pieces = encode_record(messages[0], max_fragment_size=size)
        else:
            pieces = []
            for message in messages:
                pieces += encode_record(message, max_fragment_size=size)
        same_turn = self.same_turn
        if same_turn is None or same_turn.turn is Turn.OUTSIDE:
            transport.writeSequence(pieces)
        else:
            same_turn.write(
                transport, pieces, conn.tls is TLSState.PLAIN, conn.reader.buffered > 0
            )
        if link.timer.enabled:
            link.timer.activity(link.busy())

    def send_one(self, message: Message, addr: object) -> None:
        """
        L{send} for one record: the per-reply path of a server, with what
        is rare (a write pending, an address given, the connection gone)
        left to L{send}.
        """
        conn = self._conn
        link = self._link
        if (
            conn.writer_side is not Side.IDLE
            or conn.life is not Life.OPEN
            or addr is not IMPLIED
            or link.lost_reason is not None
        ):
            self.send((message,), addr, "send_record")
            return
        pieces = encode_record(message, max_fragment_size=self.max_fragment_size)
        same_turn = self.same_turn
        if same_turn is None or same_turn.turn is Turn.OUTSIDE:
            link.transport.writeSequence(pieces)
        else:
            same_turn.write(
                link.transport, pieces, conn.tls is TLSState.PLAIN, conn.reader.buffered > 0
            )
        if link.timer.enabled:
            link.timer.activity(link.busy())

    def pushed_back(self) -> None:
        """
        The transport's buffer is full: writes wait, and so does the
        registered producer; the write deadline runs for what was sent.
        """
        conn = self._conn
        link = self._link
        conn.pushed_back()
        if conn.deadlines.write_deadline is not None and link.transport is not None:
            size = held_bytes(link.transport)
            link.arm_deadline(conn.sends_waiting(size, link.reactor.seconds()))
        producer = self.producer
        if producer is not None:
            producer.pauseProducing()

    def register_producer(self, producer: IPushProducer) -> None:
        """
        See L{IRecordStreaming.register_producer
        <rpctransport.interfaces.IRecordStreaming.register_producer>}.
        """
        if self.producer is not None:
            raise RuntimeError(f"register_producer: {self.producer!r} is already registered")
        self.producer = producer
        if self._conn.output is Output.PUSHED_BACK:
            producer.pauseProducing()

    def _refuse(self, addr: object) -> Deferred[None] | None:
        """
        Why a write may not start now: raise a local error, or return the
        failed Deferred of a connection that is gone; L{None} if it may.
        """
        link = self._link
        self._conn.check_write()
        if addr is not IMPLIED and addr != link.peer:
            raise AddressMismatch(f"start_writing: {addr} is not this connection's peer {link.peer}")
        if link.lost_reason is not None or link.transport is None:
            return fail(link.lost_reason or Failure(ConnectionDone("not connected")))
        return None

    def _cancel(self, d: Deferred[None]) -> None:
        # What the transport accepted cannot be taken back; the caller only
        # stops waiting.
        link = self._link
        if link.write_d is d:
            link.take_write()
            link.timer.busy(link.busy())

    def drained(self) -> None:
        """
        The transport drained: a waiting write completes (once the TLS
        handshake, if any, is done).
        """
        if self._conn.drained():
            link = self._link
            d = link.take_write()
            if d is not None:
                link.timer.activity(link.busy())
                d.callback(None)
        producer = self.producer
        if producer is not None and self._conn.output is Output.FLOWING:
            producer.resumeProducing()

    def tls_established(self) -> None:
        """
        TLS is on: a write that waited for the handshake completes, unless
        the transport pushes back.
        """
        link = self._link
        link.timer.activity(link.busy())
        if self._conn.output is not Output.PUSHED_BACK:
            d = link.take_write()
            if d is not None:
                d.callback(None)

    def release(self) -> None:
        """
        Stop being the transport's producer, so that a close or half-close is
        not held up by a paused producer. A write waiting for the transport
        to drain completes now: its bytes go out before the close.
        """
        link = self._link
        # Not "transport.producer is self": TLS wraps us in its membrane.
        if self._conn.release() and link.transport is not None:
            link.transport.unregisterProducer()
        d = link.take_write()
        if d is not None:
            d.callback(None)
