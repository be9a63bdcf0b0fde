# -*- test-case-name: rpctransport.test.test_stream -*-
"""
The reading part of a stream controller: received bytes in, records out to
the pending read.

L{StreamReads} feeds what the transport delivers to the sans-IO connection,
runs the pending read's C{before_record} when the connection returns a
L{FragmentHeader <rpctransport.sansio.record.FragmentHeader>}, fires the
read's Deferred with each record, and pauses the transport while records
pile up unread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from ..interfaces import BeforeRecord
from ..sansio.connection import Life, Move, Side
from ..sansio.errors import ControllerBusy, IncompleteRecord
from ..sansio.record import NEED_DATA, FragmentHeader
from ..sansio.rpcmsg import TLSProbeAnswer
from ..sansio.types import END_OF_FILE, Accepted
from ._twisted import read_size, set_read_size
from .common import cancelled_read
from .link import StreamLink
from .starttls import TLSDriver

__all__ = ["LARGE_READ_SIZE", "LARGE_RECORD", "StreamReads"]

LARGE_RECORD: Final = 64 * 1024
LARGE_READ_SIZE: Final = 256 * 1024
"""
After a record of C{LARGE_RECORD} bytes or more, the controller reads
C{LARGE_READ_SIZE} bytes per reactor turn instead of Twisted's 64 KiB: fewer
turns and fewer chunks to join for large records (the benchmark's receive
cases chose it; a 1 MiB read was slower). Small records go back to Twisted's
default.
"""


class StreamReads:
    """
    The reads of one stream controller (see the module docstring).

    @ivar read_buffer_limit: bytes kept while no read is pending before the
        transport is paused.
    """

    def __init__(self, link: StreamLink, tls: TLSDriver, read_buffer_limit: int) -> None:
        self._link = link
        self._conn = link.conn
        self._reader = link.conn.reader
        self._tls = tls
        self.read_buffer_limit = read_buffer_limit
        # Reads started from a read's callback are served by the loop that
        # fired it, not by recursion.
        self._pumping = False
        self._default_size: int | None = None
        self._size: int | None = None

    def connected(self, transport: Any) -> None:
        """
        A plaintext socket transport is there: note its read size.
        """
        self._default_size = self._size = read_size(transport)

    def start(
        self, peek: Callable[[], object] | None, before_record: BeforeRecord | None
    ) -> Deferred[Any]:
        """
        Start one read; see L{IRpcMultiplexController.start_reading
        <rpctransport.interfaces.IRpcMultiplexController.start_reading>}.
        """
        link = self._link
        read = link.read
        conn = self._conn
        if read.d is not None or conn.reader_side is not Side.IDLE or (
            conn.life is Life.INACTIVE
        ):
            conn.check_read()
            raise ControllerBusy("start_reading: a read is already pending")
        d = read.begin(peek, before_record)
        self._reader.accept_all = before_record is None
        if link.timer.enabled:
            link.timer.busy(True)
        if peek is not None and self._reader.buffered:
            try:
                peek()
            except Exception as e:
                self.protocol_error(e)
                return d
        self.pump()
        return d

    def cancel(self) -> None:
        """
        Stop the pending read (its Deferred fails with C{CancelledError});
        what was received stays for the next read.
        """
        link = self._link
        d = link.read.take_for_cancel()
        if d is not None:
            link.timer.busy(link.busy())
            self.flow()
            d.errback(cancelled_read())

    def received(self, data: bytes) -> None:
        """
        Bytes arrived: feed them, and serve the pending read.
        """
        link = self._link
        conn = self._conn
        if conn.reader_side is Side.ABORTED or conn.life is Life.INACTIVE:
            return
        read = link.read
        try:
            if read.d is not None:
                link.timer.activity(True)
                if read.peek is not None:
                    read.peek()
            conn.receive(data, link.reactor.seconds())
        except Exception as e:
            self.protocol_error(e)
            return
        if read.d is not None:
            self.pump()
        elif self._reader.buffered >= self.read_buffer_limit:
            self.flow()

    def pump(self) -> None:
        """
        Hand out records to pending reads while the connection has them,
        running a read's C{before_record} at each fragment header the
        connection asks about (what it raises fails the reader).

        This is the per-record path of every read: what does not change from
        record to record is looked up once, and the timer and the read size
        are touched only when they are in use.
        """
        if self._pumping:
            return
        self._pumping = True
        delivered = False
        link = self._link
        read = link.read
        try:
            timer = link.timer
            next_event = self._conn.next_event
            decide = self._conn.decide
            while read.d is not None:
                try:
                    event = next_event()
                    while type(event) is FragmentHeader:
                        read.in_hook = True
                        try:
                            rule = read.before_record(event.size, link.peer)
                        finally:
                            read.in_hook = False
                        if read.d is None:
                            # The hook ended the read (abort_rw, inactivate).
                            event = NEED_DATA
                            break
                        event = decide(rule)
                except Exception as e:
                    self.protocol_error(e)
                    break
                if event is NEED_DATA:
                    break
                delivered = True
                if type(event) is TLSProbeAnswer:
                    self._tls.answer_probe(event)
                    continue
                d = read.take()
                if d is None:
                    break
                if timer.enabled:
                    timer.activity(link.busy())
                if event is END_OF_FILE:
                    self._end_of_file(d)
                    continue
                if self._size is not None and type(event) is Accepted:
                    self._size_for(len(event.message))
                d.callback((event, link.peer))
        finally:
            self._pumping = False
        self._pumped(delivered)

    def _pumped(self, delivered: bool) -> None:
        """
        After handing out records (C{delivered}) or not: start the record
        deadline of a record now half received while a read waits for it,
        and pause or resume the transport.
        """
        link = self._link
        conn = self._conn
        if conn.after_delivery(delivered, link.read.d is not None):
            link.arm_deadline(conn.record_begun(link.reactor.seconds()))
        self.flow()

    def _end_of_file(self, d: Deferred[Any]) -> None:
        reason = self._link.lost_reason
        if reason is not None and not reason.check(ConnectionDone):
            d.errback(reason)
        else:
            d.callback(END_OF_FILE)

    def _size_for(self, size: int) -> None:
        """
        Read in large chunks while records are large, in Twisted's default
        chunks otherwise (looked at after each accepted record of C{size}
        bytes).
        """
        large = size >= LARGE_RECORD
        if large is not (self._size == LARGE_READ_SIZE):
            self._size = LARGE_READ_SIZE if large else self._default_size
            assert self._size is not None
            set_read_size(self._link.transport, self._size)

    def read_failed(self, error: Exception) -> None:
        """
        The connection raised: a remote error, the hook's exception, or the
        end of input inside a record.
        """
        link = self._link
        reason = link.lost_reason
        if (
            isinstance(error, IncompleteRecord)
            and reason is not None
            and not reason.check(ConnectionDone)
        ):
            # The connection broke; the transport's reason says more.
            link.fail_read(reason)
        elif self._conn.life is Life.OPEN:
            link.abort_with(error, read_last=True)
        else:
            link.fail_read(Failure(error))

    def protocol_error(self, error: Exception) -> None:
        """
        Bad input or a failing hook outside of the read loop: fail the
        reader for good and close the connection.
        """
        if self._reader.failed is None:
            self._reader.close(error)
        self.read_failed(error)

    def input_ended(self) -> None:
        """
        The input ended (the peer's EOF, or the connection's end).
        """
        self._conn.input_ended()
        if self._link.read.d is not None:
            self.pump()

    def flow(self) -> None:
        """
        Pause the transport while no read is pending and the buffer is full;
        resume it otherwise.
        """
        link = self._link
        move = self._conn.input_flow(link.read.d is not None, self.read_buffer_limit)
        if move is Move.PAUSE:
            link.transport.pauseProducing()
        elif move is Move.RESUME:
            link.transport.resumeProducing()
