# -*- test-case-name: rpctransport.test.test_stream -*-
"""
Unit tests of L{rpctransport.adapters.stream.StreamController} on fakes:
Twisted's C{StringTransport} and C{task.Clock}, no sockets.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from rpctransport import (
    ACCEPT,
    DENY,
    DROP,
    END_OF_FILE,
    IMPLIED,
    REJECT,
    Accepted,
    AddressMismatch,
    ControllerBusy,
    ControllerInactive,
    Denied,
    Dropped,
    IncompleteRecord,
    IRpcMultiplexController,
    LocalProtocolError,
    MalformedRecord,
    RecordTooLarge,
    Rejected,
    RpcProtocol,
    StreamController,
)
from rpctransport.test.helpers import (
    HOST,
    PEER,
    HalfCloseableStringTransport,
    connected,
    mark,
    record,
)

class ContractTests(SynchronousTestCase):
    """
    The controller provides the contract and its simple properties.
    """

    def test_verify_object(self) -> None:
        """
        A connected controller provides L{IRpcMultiplexController}.
        """
        controller, _, _ = connected()
        self.assertTrue(verifyObject(IRpcMultiplexController, controller))

    def test_properties(self) -> None:
        """
        The properties tell the protocol, the addresses, and the idle state.
        """
        controller, _, clock = connected()
        self.assertIs(controller.protocol, RpcProtocol.TCP)
        self.assertIs(controller.reactor, clock)
        self.assertEqual(controller.getpeername(), PEER)
        self.assertEqual(controller.getsockname(), HOST)
        self.assertTrue(controller.alive)
        self.assertFalse(controller.reading)
        self.assertFalse(controller.writing)
        self.assertFalse(controller.read_eof)
        self.assertIsNone(controller.tls_session_props)
        self.assertIsNone(controller.peer_user_name)
        self.assertIsNone(controller.peer_credentials)

    def test_registers_as_streaming_producer(self) -> None:
        """
        The controller is its transport's streaming producer, so that the
        transport can push back on writes.
        """
        controller, transport, _ = connected()
        self.assertIs(transport.producer, controller)
        self.assertTrue(transport.streaming)
        self.assertTrue(IPushProducer.providedBy(controller))

    def test_bad_options(self) -> None:
        """
        Limits out of range are refused when the controller is made.
        """
        self.assertRaises(ValueError, StreamController, Clock(), read_buffer_limit=0)
        self.assertRaises(ValueError, StreamController, Clock(), max_fragment_size=0)
        self.assertRaises(ValueError, StreamController, Clock(), max_record_size=-1)


class ReadTests(SynchronousTestCase):
    """
    Reading records.
    """

    def test_read_whole_record(self) -> None:
        """
        A record received whole is delivered as C{(Accepted, peer)}.
        """
        controller, transport, _ = connected()
        d = controller.start_reading()
        self.assertTrue(controller.reading)
        self.assertNoResult(d)
        controller.dataReceived(record(b"call"))
        self.assertEqual(self.successResultOf(d), (Accepted(b"call"), PEER))
        self.assertFalse(controller.reading)

    def test_read_already_buffered(self) -> None:
        """
        A record that arrived before the read is delivered at once: the
        Deferred is already fired.
        """
        controller, _, _ = connected()
        controller.dataReceived(record(b"one") + record(b"two"))
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"one"))
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"two"))

    def test_read_byte_by_byte(self) -> None:
        """
        A multi-fragment record arriving a byte at a time is delivered once,
        whole.
        """
        controller, _, _ = connected()
        d = controller.start_reading()
        data = mark(3, last=False) + b"abc" + mark(0, last=False) + mark(2) + b"de"
        for i in range(len(data) - 1):
            controller.dataReceived(data[i : i + 1])
            self.assertNoResult(d)
        controller.dataReceived(data[-1:])
        self.assertEqual(self.successResultOf(d)[0], Accepted(b"abcde"))

    def test_second_read_is_busy(self) -> None:
        """
        Starting a read while one is pending raises L{ControllerBusy} and
        leaves the pending read intact.
        """
        controller, _, _ = connected()
        d = controller.start_reading()
        self.assertRaises(ControllerBusy, controller.start_reading)
        controller.dataReceived(record(b"x"))
        self.assertEqual(self.successResultOf(d)[0], Accepted(b"x"))

    def test_before_record_sizes_and_peer(self) -> None:
        """
        C{before_record} is called at each fragment header with the size known
        so far and the peer.
        """
        controller, _, _ = connected()
        calls = []

        def before(size: int, peer: object) -> Any:
            calls.append((size, peer))
            return ACCEPT

        d = controller.start_reading(before_record=before)
        controller.dataReceived(
            mark(10, False) + b"a" * 10 + mark(20, False) + b"b" * 20 + mark(30) + b"c" * 30
        )
        self.assertEqual(calls, [(10, PEER), (30, PEER), (60, PEER)])
        self.assertEqual(len(self.successResultOf(d)[0].message), 60)

    def test_rules(self) -> None:
        """
        Each rule gives its record; the stream stays in sync between them.
        """
        controller, _, _ = connected()
        controller.dataReceived(
            record(b"\x00\x00\x00\x01rest") * 3 + record(b"\x00\x00\x00\x04kept")
        )
        results = []
        for rule in (REJECT, DROP, DENY, ACCEPT):
            d = controller.start_reading(before_record=lambda size, peer, rule=rule: rule)
            results.append(self.successResultOf(d)[0])
        self.assertEqual(
            results,
            [Rejected(b"\x00\x00\x00\x01"), Dropped(), Denied(), Accepted(b"\x00\x00\x00\x04kept")],
        )

    def test_deny_reported_at_header(self) -> None:
        """
        C{DENY} completes the read as soon as the deciding header arrives; the
        rest of the record is discarded as it arrives, even with no read
        pending.
        """
        controller, _, _ = connected()
        d = controller.start_reading(before_record=lambda size, peer: DENY)
        controller.dataReceived(mark(100000))
        self.assertEqual(self.successResultOf(d)[0], Denied())
        controller.dataReceived(b"x" * 99999)
        self.assertEqual(controller._reader.buffered, 0)
        controller.dataReceived(b"x" + record(b"next"))
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"next"))

    def test_record_too_large_closes(self) -> None:
        """
        A header beyond C{max_record_size} fails the read with
        L{RecordTooLarge} on the header alone and aborts the connection.
        """
        controller, transport, _ = connected(max_record_size=100)
        d = controller.start_reading()
        controller.dataReceived(mark(101))
        failure = self.failureResultOf(d, RecordTooLarge)
        self.assertIn("101", str(failure.value))
        self.assertIn("100", str(failure.value))
        self.assertTrue(transport.disconnecting)

    def test_http_request_named(self) -> None:
        """
        An HTTP request sent to the port is refused with a message that says
        it looks like one.
        """
        controller, transport, _ = connected()
        d = controller.start_reading()
        controller.dataReceived(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        failure = self.failureResultOf(d, RecordTooLarge)
        self.assertIn("HTTP request", str(failure.value))
        self.assertTrue(transport.disconnecting)

    def test_error_without_pending_read(self) -> None:
        """
        A limit broken while no read is pending (in a discarded record)
        closes the connection at once, and the next read fails with the
        error.
        """
        controller, transport, _ = connected(max_fragments=2)
        d = controller.start_reading(before_record=lambda size, peer: DROP)
        controller.dataReceived(mark(1, False) + b"x")
        self.assertNoResult(d)
        controller.cancel_rd_polling()
        self.failureResultOf(d, CancelledError)
        controller.dataReceived(mark(1, False) + b"x" + mark(1, False))
        self.assertTrue(transport.disconnecting)
        self.failureResultOf(controller.start_reading(), MalformedRecord)

    def test_before_record_raises(self) -> None:
        """
        An exception from C{before_record} fails the read with that exception
        and closes the connection; nothing escapes C{dataReceived}.
        """
        controller, transport, _ = connected()

        class Boom(Exception):
            pass

        def before(size: int, peer: object) -> Any:
            raise Boom(size)

        d = controller.start_reading(before_record=before)
        controller.dataReceived(record(b"abc"))
        self.failureResultOf(d, Boom)
        self.assertTrue(transport.disconnecting)

    def test_peek_called(self) -> None:
        """
        C{peek} is called before each chunk of data is consumed by a read.
        """
        controller, _, _ = connected()
        peeks = []
        d = controller.start_reading(peek=lambda: peeks.append(1))
        controller.dataReceived(mark(4))
        controller.dataReceived(b"ab")
        self.assertEqual(len(peeks), 2)
        controller.dataReceived(b"cd")
        self.assertEqual(len(peeks), 3)
        self.successResultOf(d)

    def test_cancel_keeps_buffered_data(self) -> None:
        """
        C{cancel_rd_polling} fails the read with C{CancelledError}; data
        received so far, even half a record, is kept for the next read.
        """
        controller, _, _ = connected()
        d = controller.start_reading()
        controller.dataReceived(mark(6) + b"abc")
        controller.cancel_rd_polling()
        self.failureResultOf(d, CancelledError)
        self.assertFalse(controller.reading)
        controller.dataReceived(b"def")
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"abcdef"))

    def test_deferred_cancel_is_cancel_rd_polling(self) -> None:
        """
        Cancelling the read's Deferred stops the read like
        C{cancel_rd_polling}.
        """
        controller, _, _ = connected()
        d = controller.start_reading()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertFalse(controller.reading)
        controller.dataReceived(record(b"x"))
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"x"))

    def test_cancel_from_before_record_refused(self) -> None:
        """
        C{cancel_rd_polling} from inside C{before_record} raises, which fails
        the read (the hook raised).
        """
        controller, _, _ = connected()

        def before(size: int, peer: object) -> Any:
            controller.cancel_rd_polling()
            return ACCEPT

        d = controller.start_reading(before_record=before)
        controller.dataReceived(record(b"x"))
        self.failureResultOf(d, LocalProtocolError)

    def test_many_buffered_records_no_recursion(self) -> None:
        """
        A callback that starts the next read is served by the same loop, not
        by recursion: 20,000 records in one chunk all reach a read loop made
        of callbacks.
        """
        controller, _, _ = connected()
        got = []

        def on_record(result: Any) -> None:
            got.append(result[0])
            if len(got) < 20000:
                controller.start_reading().addCallback(on_record)

        controller.start_reading().addCallback(on_record)
        controller.dataReceived(record(b"abcd") * 20000)
        self.assertEqual(len(got), 20000)
        self.assertEqual(got[-1], Accepted(b"abcd"))


class EndOfInputTests(SynchronousTestCase):
    """
    The end of the input, clean or not.
    """

    def test_eof_between_records(self) -> None:
        """
        A clean close between records: records already complete are
        delivered, then C{END_OF_FILE}, again on every later read.
        """
        controller, _, _ = connected()
        controller.dataReceived(record(b"last"))
        controller.readConnectionLost()
        self.assertTrue(controller.read_eof)
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"last"))
        self.assertIs(self.successResultOf(controller.start_reading()), END_OF_FILE)
        self.assertIs(self.successResultOf(controller.start_reading()), END_OF_FILE)

    def test_eof_pending_read(self) -> None:
        """
        A pending read gets C{END_OF_FILE} when the peer closes cleanly.
        """
        controller, _, _ = connected()
        d = controller.start_reading()
        controller.connectionLost(Failure(ConnectionDone()))
        self.assertIs(self.successResultOf(d), END_OF_FILE)
        self.assertFalse(controller.alive)

    def test_eof_inside_header(self) -> None:
        """
        A close inside a record mark fails the read with
        L{IncompleteRecord}.
        """
        controller, _, _ = connected()
        d = controller.start_reading()
        controller.dataReceived(b"\x80\x00")
        controller.readConnectionLost()
        self.failureResultOf(d, IncompleteRecord)

    def test_eof_inside_payload(self) -> None:
        """
        A close inside a fragment fails the read with L{IncompleteRecord}
        whose message has the numbers.
        """
        controller, _, _ = connected()
        d = controller.start_reading()
        controller.dataReceived(mark(10) + b"abc")
        controller.readConnectionLost()
        failure = self.failureResultOf(d, IncompleteRecord)
        self.assertIn("7", str(failure.value))
        self.assertIn("14", str(failure.value))

    def test_connection_lost_fails_with_reason(self) -> None:
        """
        An unclean loss delivers what was complete, then fails reads with the
        transport's reason; a pending write fails with it too.
        """
        controller, _, _ = connected()
        controller.dataReceived(record(b"done") + mark(5))
        controller.pauseProducing()
        write = controller.start_writing(b"reply")
        controller.connectionLost(Failure(ConnectionLost("reset")))
        self.failureResultOf(write, ConnectionLost)
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"done"))
        self.failureResultOf(controller.start_reading(), ConnectionLost)
        self.failureResultOf(controller.start_writing(b"more"), ConnectionLost)


class WriteTests(SynchronousTestCase):
    """
    Writing records.
    """

    def test_write_record(self) -> None:
        """
        A write sends one record mark and the message; its Deferred fires at
        once when the transport is not pushing back.
        """
        controller, transport, _ = connected()
        d = controller.start_writing(b"reply")
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(transport.value(), record(b"reply"))
        self.assertFalse(controller.writing)

    def test_write_pieces_and_fragments(self) -> None:
        """
        A sequence of pieces is sent as one record; C{max_fragment_size}
        splits it into fragments.
        """
        controller, transport, _ = connected(max_fragment_size=4)
        self.successResultOf(controller.start_writing([b"abc", bytearray(b"def"), memoryview(b"g")]))
        self.assertEqual(
            transport.value(), mark(4, False) + b"abcd" + mark(3) + b"efg"
        )

    def test_write_waits_while_pushed_back(self) -> None:
        """
        While the transport pushes back, the write's Deferred waits; it fires
        when the transport resumes. A second write meanwhile is busy.
        """
        controller, transport, _ = connected()
        controller.pauseProducing()
        d = controller.start_writing(b"big")
        self.assertNoResult(d)
        self.assertTrue(controller.writing)
        self.assertRaises(ControllerBusy, controller.start_writing, b"more")
        controller.resumeProducing()
        self.successResultOf(d)
        self.assertFalse(controller.writing)

    def test_write_address(self) -> None:
        """
        The address may be C{IMPLIED} or the peer; another raises
        L{AddressMismatch}.
        """
        controller, transport, _ = connected()
        self.successResultOf(controller.start_writing(b"a", IMPLIED))
        self.successResultOf(controller.start_writing(b"b", PEER))
        self.assertRaises(
            AddressMismatch,
            controller.start_writing,
            b"c",
            IPv4Address("TCP", "192.0.2.8", 40000),
        )
        self.assertEqual(transport.value(), record(b"a") + record(b"b"))


class FlowControlTests(SynchronousTestCase):
    """
    Records that nobody reads push back on the peer.
    """

    def test_pause_when_buffer_full(self) -> None:
        """
        With no read pending, the controller pauses its transport once
        C{read_buffer_limit} bytes wait, and resumes it when a read starts.
        """
        controller, transport, _ = connected(read_buffer_limit=100)
        controller.dataReceived(record(b"x" * 50))
        self.assertEqual(transport.producerState, "producing")
        controller.dataReceived(record(b"y" * 50))
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"x" * 50))
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"y" * 50))


class ShutdownTests(SynchronousTestCase):
    """
    Shutting down: half-close, then the peer's EOF or the linger.
    """

    def test_shutdown_half_closes_and_waits(self) -> None:
        """
        C{start_shutting_down} half-closes and completes when our EOF went
        out and the peer's arrived; C{read_eof} is then true and the
        descriptor is still open.
        """
        controller, transport, _ = connected()
        d = controller.start_shutting_down()
        self.assertTrue(transport.write_closed)
        self.assertIsNone(transport.producer)
        controller.writeConnectionLost()
        self.assertNoResult(d)
        controller.readConnectionLost()
        self.successResultOf(d)
        self.assertTrue(controller.read_eof)
        self.assertFalse(transport.disconnecting)
        self.assertRaises(ControllerInactive, controller.start_writing, b"late")

    def test_shutdown_linger(self) -> None:
        """
        When the peer's EOF never comes, the shutdown still succeeds after
        C{linger} seconds.
        """
        controller, transport, clock = connected(linger=5)
        d = controller.start_shutting_down()
        controller.writeConnectionLost()
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        self.successResultOf(d)
        self.assertTrue(controller.read_eof)

    def test_cancel_shutdown(self) -> None:
        """
        C{cancel_shutting_down} fails the shutdown with C{CancelledError};
        without a shutdown it does nothing.
        """
        controller, _, clock = connected()
        controller.cancel_shutting_down()
        d = controller.start_shutting_down()
        controller.cancel_shutting_down()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_shutdown_completes_pending_write(self) -> None:
        """
        A write still waiting for the transport completes when the shutdown
        starts: the half-close goes out after its bytes.
        """
        controller, transport, _ = connected()
        controller.pauseProducing()
        write = controller.start_writing(b"last words")
        controller.start_shutting_down()
        self.successResultOf(write)


class TimeoutTests(SynchronousTestCase):
    """
    C{set_timeout}: inactivity while an operation is pending.
    """

    def test_timeout_once_and_rearm(self) -> None:
        """
        With a read pending and nothing arriving, C{notify} is called once
        after the timeout; data re-arms it.
        """
        controller, _, clock = connected()
        calls = []
        controller.set_timeout(lambda: calls.append(clock.seconds()), 10)
        clock.advance(100)
        self.assertEqual(calls, [], "no operation pending: no timeout")
        controller.start_reading()
        clock.advance(9)
        controller.dataReceived(mark(10))
        clock.advance(9)
        self.assertEqual(calls, [])
        clock.advance(1)
        self.assertEqual(calls, [119])
        clock.advance(100)
        self.assertEqual(calls, [119])
        controller.dataReceived(b"abc")
        clock.advance(10)
        self.assertEqual(calls, [119, 229])

    def test_timeout_off_when_idle(self) -> None:
        """
        The timer is disarmed when the last pending operation completes, and
        a negative timeout turns it off.
        """
        controller, _, clock = connected()
        calls = []
        controller.set_timeout(lambda: calls.append(1), 10)
        controller.start_reading()
        controller.dataReceived(record(b"x"))
        self.assertEqual(clock.getDelayedCalls(), [])
        controller.start_reading()
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        controller.set_timeout(lambda: calls.append(1), -1)
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(100)
        self.assertEqual(calls, [])


class AbortAndInactivateTests(SynchronousTestCase):
    """
    C{abort_rw} and C{inactivate}.
    """

    def test_abort_rw(self) -> None:
        """
        After C{abort_rw} pending Deferreds never fire, reads and writes are
        refused, buffers are released, and shutdown is still allowed.
        """
        controller, transport, _ = connected()
        controller.dataReceived(mark(100) + b"partial")
        read = controller.start_reading()
        controller.pauseProducing()
        write = controller.start_writing(b"x")
        controller.abort_rw()
        self.assertEqual(controller._reader.buffered, 0)
        controller.dataReceived(b"y" * 93)
        controller.resumeProducing()
        controller.connectionLost(Failure(ConnectionDone()))
        self.assertNoResult(read)
        self.assertNoResult(write)
        self.assertRaises(ControllerInactive, controller.start_reading)
        self.assertRaises(ControllerInactive, controller.start_writing, b"z")
        self.successResultOf(controller.start_shutting_down())

    def test_inactivate(self) -> None:
        """
        C{inactivate} calls C{preclose} once, closes the connection, cancels
        timers, and no Deferred fires afterwards; a second call does nothing.
        """
        calls = []
        controller, transport, clock = connected(preclose=lambda: calls.append("preclose"))
        controller.set_timeout(lambda: calls.append("timeout"), 1)
        read = controller.start_reading()
        shutdown = controller.start_shutting_down()
        controller.inactivate()
        controller.inactivate()
        self.assertEqual(calls, ["preclose"])
        self.assertTrue(transport.disconnecting)
        self.assertFalse(controller.alive)
        self.assertIsNone(controller.file_descr)
        controller.dataReceived(record(b"late"))
        controller.connectionLost(Failure(ConnectionDone()))
        clock.advance(1000)
        self.assertNoResult(read)
        self.assertNoResult(shutdown)
        self.assertEqual(calls, ["preclose"])
        self.assertRaises(ControllerInactive, controller.start_reading)
        self.assertRaises(ControllerInactive, controller.start_writing, b"x")
        self.assertRaises(ControllerInactive, controller.start_shutting_down)

    def test_inactivate_aborts_after_linger(self) -> None:
        """
        A connection whose transport was pushing back when it was
        inactivated (a peer slow to read) is aborted once the linger time has
        passed; one that was not gets no timer.
        """
        controller, transport, clock = connected(linger=3)
        aborted = []
        transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
        controller.pauseProducing()
        controller.inactivate()
        clock.advance(3)
        self.assertEqual(aborted, [True])
        other, _, other_clock = connected(linger=3)
        other.inactivate()
        self.assertEqual(other_clock.getDelayedCalls(), [])

    def test_inactivate_without_close(self) -> None:
        """
        With C{close_inactive_descr=False}, C{inactivate} does not call
        C{preclose} and does not close the connection; it stops reading from
        it, so that nothing the owner may still want is consumed.
        """
        calls = []
        controller, transport, _ = connected(
            close_inactive_descr=False, preclose=lambda: calls.append(1)
        )
        controller.inactivate()
        self.assertEqual(calls, [])
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.producerState, "paused")
        self.assertIsNone(transport.producer)

    def test_abort_after_error_then_lost(self) -> None:
        """
        The connection loss that follows an abort for bad input does not fire
        the failed read again.
        """
        controller, transport, _ = connected(max_record_size=1)
        d = controller.start_reading()
        controller.dataReceived(mark(2) + b"ab")
        self.failureResultOf(d, RecordTooLarge)
        controller.connectionLost(Failure(ConnectionAborted()))
        self.failureResultOf(controller.start_reading(), RecordTooLarge)


class ReadSizeTests(SynchronousTestCase):
    """
    The controller reads in larger chunks while records are large.
    """

    def test_read_size_follows_record_size(self) -> None:
        """
        After a record of 64 KiB or more the transport's C{bufferSize} is
        raised to C{LARGE_READ_SIZE}; after a small record it goes back to
        the transport's own default.
        """
        from rpctransport.adapters.stream import LARGE_READ_SIZE

        transport = HalfCloseableStringTransport(hostAddress=HOST, peerAddress=PEER)
        transport.bufferSize = 65536  # type: ignore[attr-defined]
        controller = StreamController(Clock())
        controller.makeConnection(transport)
        controller.dataReceived(record(b"x" * 70000) + record(b"y"))
        self.successResultOf(controller.start_reading())
        self.assertEqual(transport.bufferSize, LARGE_READ_SIZE)  # type: ignore[attr-defined]
        self.successResultOf(controller.start_reading())
        self.assertEqual(transport.bufferSize, 65536)  # type: ignore[attr-defined]


class EdgeTests(SynchronousTestCase):
    """
    Sequences the redesign's review found untested.
    """

    def test_linger_keeps_flow_control(self) -> None:
        """
        A shutdown cut short by the linger time makes C{read_eof} true, and
        the transport is still paused while records pile up unread and
        resumed when a read takes them.
        """
        controller, transport, clock = connected(linger=5.0, read_buffer_limit=100)
        done = controller.start_shutting_down()
        controller.writeConnectionLost()
        clock.advance(6)
        self.successResultOf(done)
        self.assertTrue(controller.read_eof)
        controller.dataReceived(record(b"x" * 240))
        self.assertEqual(transport.producerState, "paused")
        result = self.successResultOf(controller.start_reading())
        self.assertEqual(result[0], Accepted(b"x" * 240))
        self.assertEqual(transport.producerState, "producing")

    def test_abort_rw_keeps_write_deadline(self) -> None:
        """
        After C{abort_rw}, what the transport still holds for a peer that
        does not read has its write deadline: the connection is closed then.
        """
        controller, transport, clock = connected(write_deadline=5.0)
        controller.pauseProducing()
        controller.start_writing(b"held back")
        controller.abort_rw()
        clock.advance(10)
        self.assertEqual(controller.counters, {"deadline.write": 1})

    def test_hook_aborts(self) -> None:
        """
        A C{before_record} that calls C{abort_rw} ends the read (its
        Deferred never fires) and leaves the connection open for a shutdown.
        """
        controller, transport, clock = connected()

        def hook(size: int, peer: object) -> Any:
            controller.abort_rw()
            return ACCEPT

        reading = controller.start_reading(before_record=hook)
        controller.dataReceived(record(b"abc"))
        self.assertNoResult(reading)
        self.assertTrue(controller.alive)
        self.assertFalse(transport.disconnecting)
