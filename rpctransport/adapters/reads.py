# -*- test-case-name: rpctransport.test.test_stream -*-
"""
The reading part of a stream controller: received bytes in, records out to
the pending read or to the stream of records.

L{StreamReads} feeds what the transport delivers to the sans-IO connection,
runs the pending read's C{before_record} when the connection returns a
L{FragmentHeader <rpctransport.sansio.record.FragmentHeader>}, fires the
read's Deferred with each record, and pauses the transport while records
pile up unread.

A stream of records (C{receive_records}) takes the whole records of each
chunk in one batch (L{StreamConnection.take_records
<rpctransport.sansio.connection.StreamConnection.take_records>}) and calls
its receiver for each, with no event object and no Deferred per record;
what the batch cannot take (fragmented records, records across chunks,
probes, the end) goes through the same events as one-shot reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.python.failure import Failure

from ..interfaces import BeforeRecord, IRecordReceiver, ReadResult
from ..sansio.connection import Life, Move, Reading, Side
from ..sansio.errors import ControllerBusy, IncompleteRecord
from ..sansio.record import NEED_DATA, FragmentHeader
from ..sansio.rpcmsg import TLSProbeAnswer
from ..sansio.types import ACCEPT, END_OF_FILE, Accepted, InRecord, InRule, record_for_rule
from ._twisted import read_size, set_read_size
from .common import RecordStream, accept_all, cancelled_read
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
        self._read = link.read
        self._timer = link.timer
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
    ) -> Deferred[ReadResult]:
        """
        Start one read; see L{IRpcMultiplexController.start_reading
        <rpctransport.interfaces.IRpcMultiplexController.start_reading>}.
        """
        read = self._read
        conn = self._conn
        # (An inactive connection's reader is aborted too.)
        if (
            read.d is not None
            or conn.reader_side is not Side.IDLE
            or conn.reading is not Reading.ONE_SHOT
        ):
            conn.check_read()
            raise ControllerBusy("start_reading: a read is already pending")
        # read.begin(), inline: this is the per-record path of a read loop.
        d: Deferred[ReadResult] = Deferred(read.canceller)
        read.d = d
        read.peek = peek
        if before_record is not None:
            read.before_record = before_record
        self._reader.accept_all = before_record is None
        if self._timer.enabled:
            self._timer.busy(True)
        if peek is not None and self._reader.buffered:
            try:
                peek()
            except Exception as e:
                self.protocol_error(e)
                return d
        if not self._pumping:
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

    def receive_records(
        self, receiver: IRecordReceiver, before_record: BeforeRecord | None
    ) -> RecordStream:
        """
        Start a stream of records; see L{IRecordStreaming.receive_records
        <rpctransport.interfaces.IRecordStreaming.receive_records>}.
        """
        link = self._link
        conn = self._conn
        if link.read.d is not None:
            conn.check_read("receive_records")
            raise ControllerBusy("receive_records: a one-shot read is pending")
        conn.check_stream()
        stream = RecordStream(receiver, before_record, self)
        conn.stream_moves(Move.STREAM)
        link.read.stream = stream
        self._reader.accept_all = before_record is None
        link.timer.busy(True)
        self.pump()
        return stream

    def pause_stream(self, stream: RecordStream) -> None:
        """
        Stop delivering to C{stream} (the transport is paused once the
        buffer is full).
        """
        if self._read.hold(stream):
            self._conn.stream_moves(Move.PAUSE_STREAM)
            self._not_delivering()

    def resume_stream(self, stream: RecordStream) -> None:
        """
        Deliver to C{stream} again, starting with what waits.
        """
        if self._read.unhold(stream):
            self._conn.stream_moves(Move.RESUME_STREAM)
            self._reader.accept_all = stream.before_record is None
            self._timer.busy(True)
            self.pump()

    def stop_stream(self, stream: RecordStream) -> None:
        """
        End C{stream} without a word to its receiver; what is buffered stays
        for the next read.
        """
        if self._read.has_stream(stream):
            self._read.take_stream()
            self._conn.stream_moves(Move.STOP_STREAM)
            self._not_delivering()

    def _not_delivering(self) -> None:
        """
        The stream no longer delivers: the timer, the record deadline and
        the transport's flow follow.
        """
        link = self._link
        link.timer.busy(link.busy())
        self._conn.after_delivery(False, False)
        self.flow()

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
            elif read.stream is not None and link.timer.enabled:
                link.timer.activity(True)
            conn.receive(data, link.reactor.seconds())
        except Exception as e:
            self.protocol_error(e)
            return
        if read.d is not None or read.stream is not None:
            self.pump()
        elif self._reader.buffered >= self.read_buffer_limit:
            self.flow()

    def pump(self) -> None:
        """
        Hand out records while the connection has them: to pending reads,
        or to the stream of records, whichever the application has now
        (a callback may switch from one to the other).
        """
        if self._pumping:
            return
        self._pumping = True
        delivered = False
        read = self._link.read
        try:
            while True:
                if read.d is not None:
                    got, more = self._pump_reads()
                elif read.stream is not None:
                    got, more = self._pump_stream(read.stream)
                else:
                    break
                delivered = delivered or got
                if not more:
                    break
        finally:
            self._pumping = False
        self._pumped(delivered)

    def _pump_reads(self) -> tuple[bool, bool]:
        """
        Hand out records to pending reads while the connection has them,
        running a read's C{before_record} at each fragment header the
        connection asks about (what it raises fails the reader).

        This is the per-record path of every read: what does not change from
        record to record is looked up once, and the timer and the read size
        are touched only when they are in use.

        @return: whether records were delivered, and whether to look again
            (the application switched to a stream of records).
        """
        delivered = False
        link = self._link
        read = link.read
        timer = link.timer
        conn = self._conn
        next_event = conn.next_event
        decide = conn.decide
        peer = _peer_of(link)
        while read.d is not None:
            try:
                records = conn.take_records()
                if records:
                    delivered = True
                    self._batch_done(records, self._deliver_batch(records))
                    continue
                event = next_event()
                while type(event) is FragmentHeader:
                    read.in_hook = True
                    try:
                        rule = read.before_record(event.size, peer)
                    finally:
                        read.in_hook = False
                    if read.d is None:
                        # The hook ended the read (abort_rw, inactivate).
                        return delivered, False
                    event = decide(rule)
            except Exception as e:
                self.protocol_error(e)
                return delivered, False
            if event is NEED_DATA:
                return delivered, False
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
            d.callback((cast(InRecord, event), peer))
        return delivered, read.stream is not None

    def _batch_done(self, records: list[bytes], n: int) -> None:
        """
        C{n} of a batch of whole C{records} were handed out: give the rest
        back, note the activity, follow the records' size.
        """
        if n < len(records):
            self._reader.put_back(records[n:])
        link = self._link
        if link.timer.enabled:
            link.timer.activity(link.busy())
        if n and self._size is not None:
            self._size_for(len(records[n - 1]))

    def _deliver_batch(self, records: list[bytes]) -> int:
        """
        Fire pending reads with whole records taken at once, while a read is
        pending (each callback may start the next); returns how many were
        handed out.
        """
        link = self._link
        read = link.read
        peer = _peer_of(link)
        n = 0
        for message in records:
            d = read.d
            if d is None:
                break
            hook = read.before_record
            if hook is accept_all:
                record: InRecord = Accepted(message)
            else:
                read.in_hook = True
                try:
                    rule = hook(len(message), peer)
                finally:
                    read.in_hook = False
                if read.d is not d:
                    # The hook ended the read (abort_rw, inactivate).
                    break
                if rule is ACCEPT:
                    record = Accepted(message)
                else:
                    record = record_for_rule(rule, message)
                    self._conn.refused()
            n += 1
            # read.take(), inline: this is the per-record path.
            read.d = read.peek = None
            read.before_record = accept_all
            d.callback((record, peer))
        return n

    def _pump_stream(self, stream: RecordStream) -> tuple[bool, bool]:
        """
        Deliver records to C{stream} while the connection has them and the
        stream is on: whole records a batch at a time, the rest event by
        event as L{_pump_reads} does.

        @return: as L{_pump_reads}.
        """
        delivered = False
        link = self._link
        read = link.read
        conn = self._conn
        peer = _peer_of(link)
        receiver = stream.receiver
        on_record = receiver.record_received
        hook = stream.before_record
        take = conn.take_records
        timer = link.timer
        try:
            while read.stream is stream:
                records = take()
                if records:
                    delivered = True
                    n = 0
                    if hook is None:
                        for message in records:
                            n += 1
                            on_record(message, peer)
                            if read.stream is not stream:
                                break
                    else:
                        n = self._decide_batch(stream, records, peer)
                    self._batch_done(records, n)
                    continue
                event = conn.next_event()
                while type(event) is FragmentHeader:
                    rule = ACCEPT if hook is None else self._ask(stream, event.size, peer)
                    if read.stream is not stream:
                        return delivered, True
                    event = conn.decide(rule)
                if event is NEED_DATA:
                    return delivered, False
                delivered = True
                if type(event) is TLSProbeAnswer:
                    self._tls.answer_probe(event)
                    continue
                if timer.enabled:
                    timer.activity(link.busy())
                if event is END_OF_FILE:
                    link.end_stream(self._end_reason())
                elif type(event) is Accepted:
                    if self._size is not None:
                        self._size_for(len(event.message))
                    on_record(event.message, peer)
                else:
                    receiver.record_refused(cast(InRecord, event), peer)
        except Exception as e:
            self.protocol_error(e)
            return delivered, False
        return delivered, True

    def _decide_batch(self, stream: RecordStream, records: list[bytes], peer: IAddress) -> int:
        """
        Deliver whole records to C{stream} as its C{before_record} decides,
        while the stream is on; returns how many were handed out.
        """
        read = self._link.read
        on_record = stream.receiver.record_received
        n = 0
        for message in records:
            rule = self._ask(stream, len(message), peer)
            if read.stream is not stream:
                # The hook paused or ended the stream: this one is not taken.
                return n
            n += 1
            if rule is ACCEPT:
                on_record(message, peer)
            else:
                record = record_for_rule(rule, message)
                self._conn.refused()
                stream.receiver.record_refused(record, peer)
            if read.stream is not stream:
                break
        return n

    def _ask(self, stream: RecordStream, size: int, peer: IAddress) -> InRule:
        """
        The rule of C{stream}'s C{before_record} for a record of C{size}
        bytes so far.
        """
        read = self._link.read
        hook = stream.before_record
        assert hook is not None
        read.in_hook = True
        try:
            return hook(size, peer)
        finally:
            read.in_hook = False

    def _pumped(self, delivered: bool) -> None:
        """
        After handing out records (C{delivered}) or not: start the record
        deadline of a record now half received while a read waits for it,
        and pause or resume the transport.
        """
        link = self._link
        conn = self._conn
        if conn.after_delivery(delivered, link.read.wanted):
            link.arm_deadline(conn.record_begun(link.reactor.seconds()))
        self.flow()

    def _end_of_file(self, d: Deferred[ReadResult]) -> None:
        reason = self._link.lost_reason
        if reason is not None and not reason.check(ConnectionDone):
            d.errback(reason)
        else:
            d.callback(END_OF_FILE)

    def _end_reason(self) -> Failure:
        """
        What a stream of records ends with at the end of the input: the
        transport's reason, or C{ConnectionDone} for a clean end.
        """
        reason = self._link.lost_reason
        if reason is not None and not reason.check(ConnectionDone):
            return reason
        return Failure(ConnectionDone("the peer closed the connection between records"))

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
        if self._link.read.wanted:
            self.pump()

    def flow(self) -> None:
        """
        Pause the transport while no read is pending and the buffer is full;
        resume it otherwise.
        """
        link = self._link
        move = self._conn.input_flow(link.read.wanted, self.read_buffer_limit)
        if move is Move.PAUSE:
            link.transport.pauseProducing()
        elif move is Move.RESUME:
            link.transport.resumeProducing()


def _peer_of(link: StreamLink) -> IAddress:
    """
    The peer of C{link}, which records come from: set when the connection
    is made, before any byte can arrive.
    """
    return cast(IAddress, link.peer)
