# -*- test-case-name: rpctransport.test.test_deadlines -*-
"""
Tests for the deadlines of stream connections: the sans-IO
L{ConnectionDeadlines}, and the stream controller closing connections at
each deadline on a fake transport and a C{task.Clock}; its counters and
eviction; and at-once rejections and non-RPC refusals through a controller.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from rpctransport import (
    ACCEPT,
    Counters,
    Evicted,
    IdleTimeout,
    RecordDeadlineExceeded,
    RecordTooLarge,
    RejectedWith,
    RejectWith,
    ServerError,
    WriteDeadlineExceeded,
)
from rpctransport.sansio.deadlines import ConnectionDeadlines, Deadlines, Expiry
from rpctransport.test.helpers import connected, mark, record


class DeadlinesTests(SynchronousTestCase):
    """
    L{Deadlines} and L{ConnectionDeadlines}, without a clock of their own.
    """

    def test_validation(self) -> None:
        """
        A deadline is more than 0 seconds, or L{None}; C{enabled} says whether
        any is set.
        """
        with self.assertRaises(ValueError):
            Deadlines(record_deadline=0)
        with self.assertRaises(ValueError):
            Deadlines(idle_timeout=-1)
        self.assertFalse(Deadlines().enabled)
        self.assertTrue(Deadlines(write_deadline=1).enabled)
        self.assertTrue(Deadlines.for_serve().enabled)

    def test_record(self) -> None:
        """
        A record in progress expires C{record_deadline} after it began.
        """
        track = ConnectionDeadlines(Deadlines(record_deadline=30), 0.0)
        self.assertIsNone(track.next_check(0.0, True))
        track.record_since = 5.0
        self.assertEqual(track.next_check(6.0, True), 35.0)
        self.assertIsNone(track.expired(34.9, True))
        self.assertIs(track.expired(35.0, True), Expiry.RECORD)

    def test_idle_first_record_then_idle(self) -> None:
        """
        An unproven connection is idle after C{first_record_timeout}, a proven
        one after C{idle_timeout}, counted from its last activity.
        """
        track = ConnectionDeadlines(Deadlines(idle_timeout=300, first_record_timeout=10), 0.0)
        self.assertEqual(track.next_check(0.0, True), 10.0)
        self.assertIs(track.expired(10.0, True), Expiry.FIRST_RECORD)
        track.proven = True
        track.last_activity = 8.0
        self.assertIsNone(track.expired(10.0, True))
        self.assertEqual(track.next_check(10.0, True), 308.0)
        self.assertIs(track.expired(308.0, True), Expiry.IDLE)

    def test_not_idle_while_busy(self) -> None:
        """
        A connection whose application is busy, or with a record in progress
        or a write pushed back, is not idle; while the application is busy the
        idle timeout is looked at again a quarter period later.
        """
        track = ConnectionDeadlines(Deadlines(idle_timeout=100), 0.0)
        self.assertIsNone(track.expired(500.0, False))
        self.assertIsNone(track.idle_since(False))
        self.assertEqual(track.next_check(500.0, False), 525.0)
        track.write_since = 400.0
        self.assertIsNone(track.expired(500.0, True))
        self.assertIsNone(track.idle_since(True))
        track.write_since = None
        self.assertEqual(track.idle_since(True), 0.0)

    def test_write(self) -> None:
        """
        A write pushed back expires C{write_deadline} after it was.
        """
        track = ConnectionDeadlines(Deadlines(write_deadline=60), 0.0)
        track.write_since = 10.0
        self.assertEqual(track.next_check(11.0, False), 70.0)
        self.assertIs(track.expired(70.0, False), Expiry.WRITE)


class ControllerDeadlineTests(SynchronousTestCase):
    """
    The stream controller closes the connection at each deadline, failing
    the pending operation with the deadline's error, and counts it.
    """

    def test_record_deadline(self) -> None:
        """
        A record begun while a read waits must be whole within
        C{record_deadline}, however it trickles.
        """
        controller, transport, clock = connected(record_deadline=30)
        d = controller.start_reading()
        controller.dataReceived(mark(1000))
        for _ in range(29):
            clock.advance(1)
            controller.dataReceived(b"x")
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)
        error = self.failureResultOf(d, RecordDeadlineExceeded).value
        self.assertEqual(error.received, 4 + 29)
        self.assertEqual(controller.counters, {"deadline.record": 1})

    def test_record_deadline_per_record(self) -> None:
        """
        Each record gets its own deadline: records that each take most of it
        never trip it.
        """
        controller, transport, clock = connected(record_deadline=10)
        for _ in range(5):
            d = controller.start_reading()
            controller.dataReceived(mark(2))
            clock.advance(9)
            controller.dataReceived(b"ab")
            self.assertEqual(self.successResultOf(d)[0].message, b"ab")
        clock.advance(100)
        self.assertFalse(transport.disconnecting)

    def test_first_record_then_idle(self) -> None:
        """
        A connection that never sent a whole record is closed after
        C{first_record_timeout}; once it has, after C{idle_timeout}.
        """
        controller, transport, clock = connected(idle_timeout=300, first_record_timeout=10)
        d = controller.start_reading()
        clock.advance(9.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        error = self.failureResultOf(d, IdleTimeout).value
        self.assertFalse(error.proven)
        self.assertEqual(controller.counters, {"deadline.first_record": 1})

        controller, transport, clock = connected(idle_timeout=300, first_record_timeout=10)
        d = controller.start_reading()
        clock.advance(5)
        controller.dataReceived(record(b"call"))
        self.successResultOf(d)
        d = controller.start_reading()
        clock.advance(299)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertTrue(self.failureResultOf(d, IdleTimeout).value.proven)
        self.assertEqual(controller.counters, {"deadline.idle": 1})

    def test_idle_not_while_application_busy(self) -> None:
        """
        While the application holds a record (no read pending), the
        connection is not idle; the timeout counts again once it reads.
        """
        controller, transport, clock = connected(idle_timeout=100)
        clock.advance(1000)
        self.assertFalse(transport.disconnecting)
        d = controller.start_reading()
        clock.advance(150)
        self.assertTrue(transport.disconnecting)
        self.assertIn("(idle_timeout)", str(self.failureResultOf(d, IdleTimeout).value))

    def test_write_deadline(self) -> None:
        """
        A write the transport pushes back on must be drained within
        C{write_deadline}; then the connection is closed and the write
        fails.
        """
        controller, transport, clock = connected(write_deadline=60)
        transport.producer.pauseProducing()
        d = controller.start_writing(b"x" * 1000)
        clock.advance(59)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)
        controller.connectionLost(Failure(ConnectionDone()))
        error = self.failureResultOf(d, WriteDeadlineExceeded).value
        self.assertEqual(error.pending, 1004)
        self.assertEqual(controller.counters, {"deadline.write": 1})

    def test_write_drained_in_time(self) -> None:
        """
        A write drained before the deadline cancels it.
        """
        controller, transport, clock = connected(write_deadline=60)
        transport.producer.pauseProducing()
        d = controller.start_writing(b"x")
        clock.advance(30)
        transport.producer.resumeProducing()
        self.successResultOf(d)
        clock.advance(100)
        self.assertFalse(transport.disconnecting)

    def test_no_deadlines_no_timers(self) -> None:
        """
        Without deadlines the controller schedules nothing.
        """
        controller, _, clock = connected()
        controller.start_reading()
        controller.dataReceived(mark(10))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_inactivate_cancels(self) -> None:
        """
        L{inactivate} cancels the deadline timer.
        """
        controller, _, clock = connected(idle_timeout=10)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        controller.inactivate()
        self.assertEqual(clock.getDelayedCalls(), [])


class CountersAndEvictionTests(SynchronousTestCase):
    """
    Counters per reason, with a parent; eviction; what admission control
    reads.
    """

    def test_refusals_counted_into_parent(self) -> None:
        """
        Records refused by rule, by limit and as non-RPC are counted, in the
        controller and in its parent.
        """
        parent = Counters()
        controller, _, _ = connected(counters_parent=parent, max_record_size=100)
        d = controller.start_reading(before_record=lambda size, peer: RejectWith(ServerError.GARBAGE_ARGS))
        controller.dataReceived(record(b"abcdefgh"))
        self.successResultOf(d)
        d = controller.start_reading()
        controller.dataReceived(mark(1000))
        self.failureResultOf(d, RecordTooLarge)
        self.assertEqual(controller.counters, {"refused.rule": 1, "refused.limit": 1})

        other, _, _ = connected(counters_parent=parent)
        d = other.start_reading()
        other.dataReceived(b"GET / HTTP/1.1\r\n")
        self.assertIn("HTTP request", str(self.failureResultOf(d, RecordTooLarge).value))
        self.assertEqual(
            parent.view, {"refused.rule": 1, "refused.limit": 1, "refused.sniff": 1}
        )
        with self.assertRaises(TypeError):
            controller.counters["x"] = 1  # type: ignore[index]

    def test_proven_idle_since_connected_at(self) -> None:
        """
        C{connected_at}, C{proven} and C{idle_since} say what eviction needs.
        """
        controller, _, clock = connected()
        self.assertEqual(controller.connected_at, 0.0)
        self.assertFalse(controller.proven)
        self.assertIsNone(controller.idle_since)
        controller.start_reading()
        self.assertEqual(controller.idle_since, 0.0)
        clock.advance(5)
        controller.dataReceived(mark(10))
        self.assertIsNone(controller.idle_since)
        controller.dataReceived(b"0123456789")
        self.assertTrue(controller.proven)
        controller.start_reading()
        self.assertEqual(controller.idle_since, 5.0)

    def test_evict(self) -> None:
        """
        L{evict} closes the connection; the pending read fails with the
        error, which is counted.
        """
        controller, transport, _ = connected()
        d = controller.start_reading()
        controller.evict(Evicted("unproven", 10))
        self.assertTrue(transport.disconnecting)
        self.failureResultOf(d, Evicted)
        self.assertEqual(controller.counters, {"evicted.unproven": 1})

    def test_on_lost(self) -> None:
        """
        C{on_lost} is called once, when the connection is gone, and the
        controller then lets go of the transport (which may still hold what
        the peer never read).
        """
        lost = []
        controller, _, _ = connected(on_lost=lost.append)
        controller.connectionLost(Failure(ConnectionDone()))
        controller.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(lost, [controller])
        self.assertIsNone(controller.transport)
        self.assertIsNotNone(controller.getsockname())


class AtOnceRejectionTests(SynchronousTestCase):
    """
    C{RejectWith(error, at_once=True)} through the controller: the read fires
    from the xid; the rest is discarded; the next read gets the next record.
    """

    def test_reported_from_xid(self) -> None:
        """
        A 2 GiB record is reported as soon as its xid is in.
        """
        controller, transport, _ = connected()
        rule = RejectWith(ServerError.GARBAGE_ARGS, at_once=True)

        def hook(size: int, peer: object) -> object:
            return ACCEPT if size <= 100 else rule

        d = controller.start_reading(before_record=hook)
        controller.dataReceived(mark(0x7FFFFFFF) + b"\x00\x00")
        self.assertNoResult(d)
        controller.dataReceived(b"\x00\x07" + b"y" * 1000)
        self.assertEqual(self.successResultOf(d)[0], RejectedWith(b"\x00\x00\x00\x07", ServerError.GARBAGE_ARGS))
        self.assertFalse(transport.disconnecting)

    def test_next_record_after_discard(self) -> None:
        """
        After an at-once rejection, the rest of the record is discarded and
        the next read delivers the record after it.
        """
        controller, _, _ = connected()
        rule = RejectWith(ServerError.GARBAGE_ARGS, at_once=True)

        def hook(size: int, peer: object) -> object:
            return ACCEPT if size <= 10 else rule

        data = (
            mark(1, last=False) + b"\x00" + mark(1, last=False) + b"\x00"
            + mark(1, last=False) + b"\x00" + mark(1, last=False) + b"\x09"
            + mark(50) + b"z" * 50 + record(b"next")
        )
        results = []
        for byte in range(len(data)):
            if not controller.reading:
                controller.start_reading(before_record=hook).addCallback(results.append)
            controller.dataReceived(data[byte : byte + 1])
        self.assertEqual(len(results), 2, results)
        self.assertEqual(results[0][0], RejectedWith(b"\x00\x00\x00\x09", ServerError.GARBAGE_ARGS))
        self.assertEqual(results[1][0].message, b"next")

    def test_not_at_once_waits_for_end(self) -> None:
        """
        Without C{at_once}, a rejection is reported when the record ends.
        """
        controller, _, _ = connected()
        d = controller.start_reading(before_record=lambda size, peer: RejectWith(ServerError.GARBAGE_ARGS))
        controller.dataReceived(mark(100) + b"\x00\x00\x00\x07" + b"y" * 50)
        self.assertNoResult(d)
        controller.dataReceived(b"y" * 46)
        self.assertEqual(self.successResultOf(d)[0].head, b"\x00\x00\x00\x07")
