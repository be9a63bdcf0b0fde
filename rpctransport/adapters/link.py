# -*- test-case-name: rpctransport.test.test_stream -*-
"""
What the parts of one stream controller share.

A L{StreamController <rpctransport.adapters.stream.StreamController>} is a
thin C{Protocol} over three parts, each an object it holds:
L{StreamReads <rpctransport.adapters.reads.StreamReads>},
L{StreamWrites <rpctransport.adapters.writes.StreamWrites>} and
L{StreamClosing <rpctransport.adapters.closing.StreamClosing>}. They share
one L{StreamLink}: the sans-IO connection state, the transport, the peer,
why the connection ended, the pending operations' Deferreds, the timers, and
the one way to close the connection because of an error.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..sansio.connection import Life, Move, StreamConnection
from ..sansio.errors import DeadlineExceeded
from ._timer import Alarm, InactivityTimer
from .common import PendingRead

__all__ = ["StreamLink"]


class StreamLink:
    """
    The state the parts of one stream controller share (see the module
    docstring).

    @ivar conn: the connection's sans-IO state.
    @ivar reactor: the reactor for timers.
    @ivar timer: the inactivity timer behind C{set_timeout}.
    @ivar transport: the transport, while the connection is there.
    @ivar peer: the peer's address, once connected.
    @ivar read: the pending read.
    @ivar write_d: the Deferred of the write that waits, or L{None}.
    @ivar shutdown_d: the Deferred of the shutdown in progress, or L{None}.
    @ivar lost_reason: why the connection ended, once it did.
    @ivar close_reason: why we closed it ourselves, which the operations
        the close fails fail with (rather than Twisted's
        C{ConnectionAborted}).
    """

    log = Logger(namespace="rpctransport.adapters.stream.StreamController")

    def __init__(self, conn: StreamConnection, reactor: Any, cancel_read: Any) -> None:
        self.conn = conn
        self.reactor = reactor
        self.timer = InactivityTimer(reactor)
        self.transport: Any = None
        self.peer: IAddress | None = None
        self.read = PendingRead(cancel_read)
        self.write_d: Deferred[None] | None = None
        self.shutdown_d: Deferred[None] | None = None
        self.lost_reason: Failure | None = None
        self.close_reason: Failure | None = None
        self.deadline = Alarm(reactor, self._deadline_due)

    def busy(self) -> bool:
        """
        Whether a read, a write or a shutdown is pending.
        """
        read = self.read
        return (
            read.d is not None
            or read.stream is not None
            or self.write_d is not None
            or self.shutdown_d is not None
        )

    def fail_read(self, reason: Failure) -> None:
        """
        Fail the pending read, if any, with C{reason}; or end the stream of
        records with it.
        """
        d = self.read.take()
        if d is not None:
            self.timer.busy(self.busy())
            d.errback(reason)
        elif self.read.stream is not None or self.read.held is not None:
            self.end_stream(reason)

    def end_stream(self, reason: Failure) -> None:
        """
        End the stream of records, delivering or paused: the receiver's
        C{receiving_ended} gets C{reason}.
        """
        stream = self.read.take_stream()
        if stream is not None:
            self.conn.stream_moves(Move.STOP_STREAM)
            self.conn.reader.accept_all = False
            self.timer.busy(self.busy())
            stream.ended(reason)

    def drop_stream(self) -> None:
        """
        Forget the stream of records, if any, without a word to its receiver
        (C{abort_rw}, C{inactivate}).
        """
        if self.read.take_stream() is not None:
            self.conn.stream_moves(Move.STOP_STREAM)

    def take_write(self) -> Deferred[None] | None:
        """
        Take the waiting write off its slot, to fire it.
        """
        d, self.write_d = self.write_d, None
        if d is not None:
            self.conn.write_done()
        return d

    def abort_with(self, error: Exception, quiet: bool = False, read_last: bool = False) -> None:
        """
        Close the connection because of C{error}, which every pending
        operation fails with.

        @param quiet: log at debug level only (whoever closes it logs).
        @param read_last: fail the pending read after the transport is
            aborted, not before (for errors met while reading, so that the
            read's errback finds the connection already closing).
        """
        log = self.log.debug if quiet else self.log.info
        log("closing the connection from {peer}: {error}", peer=self.peer, error=error)
        self.conn.closing_for(error)
        reason = self.close_reason = Failure(error)
        if read_last:
            self.abort_transport()
            self.fail_read(reason)
        else:
            self.fail_read(reason)
            self.abort_transport()

    def abort_transport(self) -> None:
        """
        Drop the connection now (or close it, when the transport cannot
        abort).
        """
        transport = self.transport
        if transport is None:
            return
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()

    def arm_deadline(self, when: float | None) -> None:
        """
        Make sure the deadline timer runs no later than C{when}.
        """
        if when is not None and self.conn.life is Life.OPEN and self.conn.deadlines.enabled:
            self.deadline.at_latest(when)

    def _deadline_due(self) -> None:
        """
        The deadline timer ran: close the connection if a deadline passed,
        else look again when the next one may.
        """
        conn = self.conn
        if conn.life is not Life.OPEN:
            return
        result = conn.expired(self.reactor.seconds(), self.read.wanted)
        if isinstance(result, DeadlineExceeded):
            self.abort_with(result)
        else:
            self.arm_deadline(result)
