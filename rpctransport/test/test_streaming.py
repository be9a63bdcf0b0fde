# -*- test-case-name: rpctransport.test.test_streaming -*-
"""
The stream controller's streaming API (L{IRecordStreaming}): what the one
contract of L{rpctransport.test.test_read_modes} does not cover — pausing,
resuming and stopping a stream of records, switching read modes, sends
without a Deferred and their backpressure — on fakes, then on real loopback
TCP and UNIX sockets.
"""

from __future__ import annotations

import os
import random
import socket
import tempfile
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from rpctransport import (
    END_OF_FILE,
    Accepted,
    ControllerBusy,
    ControllerInactive,
    IRecordStreaming,
    WriteDeadlineExceeded,
    listen_stream,
)
from rpctransport.sansio.record import RecordReader
from rpctransport.test.helpers import RecordingProducer, SocketTestMixin, connected, mark, record


class Receiver:
    """
    A receiver that writes down what it got, and can act on each record.
    """

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.refused: list[Any] = []
        self.ended: list[Failure] = []
        self.on_record: Any = None

    def record_received(self, message: bytes, peer: object) -> None:
        self.messages.append(message)
        if self.on_record is not None:
            self.on_record(message)

    def record_refused(self, record: Any, peer: object) -> None:
        self.refused.append(record)

    def receiving_ended(self, reason: Failure) -> None:
        self.ended.append(reason)


def records(*messages: bytes) -> bytes:
    return b"".join(record(m) for m in messages)


class TakeWholeTests(SynchronousTestCase):
    """
    L{RecordReader.take_whole} and L{RecordReader.put_back}, the batch
    decoder both read modes use.
    """

    def test_takes_whole_records_only(self) -> None:
        """
        It takes the whole single-fragment records at the head of the first
        chunk and stops at a fragmented one, a partial one or one over the
        limit; L{next_event} reads the rest.
        """
        reader = RecordReader(max_record_size=10)
        reader.feed(records(b"a", b"bb") + mark(1, last=False) + b"c" + mark(1) + b"d")
        self.assertEqual(reader.take_whole(), [b"a", b"bb"])
        self.assertEqual(reader.take_whole(), [])
        reader.accept_all = True
        self.assertEqual(reader.next_event(), Accepted(b"cd"))
        reader.feed(record(b"x" * 11) + record(b"y"))
        self.assertEqual(reader.take_whole(), [])

    def test_put_back(self) -> None:
        """
        Records given back are handed out again, and count as buffered.
        """
        reader = RecordReader()
        data = records(b"one", b"two", b"three")
        reader.feed(data)
        self.assertEqual(reader.take_whole(), [b"one", b"two", b"three"])
        self.assertEqual(reader.buffered, 0)
        reader.put_back([b"two", b"three"])
        self.assertEqual(reader.buffered, len(record(b"two") + record(b"three")))
        self.assertFalse(reader.at_record_boundary)
        # One was used of the batch: the next batch is one record, then two.
        self.assertEqual(reader.take_whole(), [b"two"])
        self.assertEqual(reader.take_whole(), [b"three"])
        self.assertTrue(reader.at_record_boundary)

    def test_batch_follows_consumer(self) -> None:
        """
        A batch is at most as large as what its consumer used of the last
        one, and doubles while batches are used up: a consumer that takes
        one record at a time is not handed a whole chunk each time (that
        would make a chunk of small records cost its square).
        """
        reader = RecordReader()
        reader.feed(records(*[b""] * 20000))
        sizes = []
        for _ in range(6):
            batch = reader.take_whole()
            sizes.append(len(batch))
            reader.put_back(batch[1:])
        self.assertEqual(sizes, [16, 1, 2, 1, 2, 1])
        got = 6
        while True:
            batch = reader.take_whole()
            if not batch:
                break
            sizes.append(len(batch))
            got += len(batch)
        self.assertEqual(got, 20000)
        self.assertLessEqual(max(sizes), 4096)
        self.assertIn(4096, sizes)

    def test_put_back_partial_chunk(self) -> None:
        """
        Giving back from a chunk that still holds more (a partial record)
        keeps that too.
        """
        reader = RecordReader()
        reader.accept_all = True
        reader.feed(records(b"one", b"two") + mark(4) + b"th")
        self.assertEqual(reader.take_whole(), [b"one", b"two"])
        reader.put_back([b"two"])
        reader.feed(b"re")
        self.assertEqual(reader.next_event(), Accepted(b"two"))
        self.assertEqual(reader.next_event(), Accepted(b"thre"))

    def test_put_back_keeps_nothing(self) -> None:
        """
        The reader keeps no reference to a batch's chunk once it is taken
        whole: records given back are marked again, in order, before what
        was fed after them.
        """
        reader = RecordReader()
        reader.accept_all = True
        reader.feed(records(b"one", b"two", b"three"))
        batch = reader.take_whole()
        self.assertEqual(reader.buffered, 0)
        reader.feed(record(b"four"))
        reader.put_back(batch[1:])
        self.assertEqual([reader.next_event() for _ in range(3)], [
            Accepted(b"two"), Accepted(b"three"), Accepted(b"four")
        ])
        self.assertTrue(reader.at_record_boundary)

    def test_random_segmentation(self) -> None:
        """
        Whatever the segmentation, batches and events together give every
        record once, in order.
        """
        rng = random.Random(12)
        messages = [bytes([i % 256]) * rng.randrange(0, 300) for i in range(400)]
        data = records(*messages)
        reader = RecordReader()
        reader.accept_all = True
        got: list[bytes] = []
        pos = 0
        while pos < len(data):
            step = rng.randrange(1, 2000)
            reader.feed(data[pos : pos + step])
            pos += step
            while True:
                batch = reader.take_whole()
                if batch:
                    keep = rng.randrange(0, len(batch) + 1)
                    got += batch[:keep]
                    reader.put_back(batch[keep:])
                    if keep:
                        continue
                event = reader.next_event()
                if type(event) is not Accepted:
                    break
                got.append(event.message)
        self.assertEqual(got, messages)


class StreamingTests(SynchronousTestCase):
    """
    A stream of records on a fake transport.
    """

    def test_provides(self) -> None:
        """
        The stream controller provides L{IRecordStreaming}; the stream's
        handle is an C{IPushProducer}.
        """
        controller, _, _ = connected()
        verifyObject(IRecordStreaming, controller)
        verifyObject(IPushProducer, controller.receive_records(Receiver()))

    def test_buffered_delivered_at_once(self) -> None:
        """
        Records that arrived before the stream started are delivered before
        C{receive_records} returns.
        """
        controller, _, _ = connected()
        controller.dataReceived(records(b"a", b"b"))
        receiver = Receiver()
        controller.receive_records(receiver)
        self.assertEqual(receiver.messages, [b"a", b"b"])
        self.assertTrue(controller.reading)

    def test_pause_in_callback(self) -> None:
        """
        Pausing from C{record_received} stops the deliveries at once, in the
        middle of a chunk; resuming delivers the rest, in order.
        """
        controller, _, _ = connected()
        receiver = Receiver()
        handle = controller.receive_records(receiver)
        receiver.on_record = lambda m: handle.pauseProducing() if m == b"b" else None
        controller.dataReceived(records(b"a", b"b", b"c", b"d"))
        self.assertEqual(receiver.messages, [b"a", b"b"])
        self.assertFalse(controller.reading)
        receiver.on_record = None
        handle.resumeProducing()
        self.assertEqual(receiver.messages, [b"a", b"b", b"c", b"d"])

    def test_pause_pauses_transport(self) -> None:
        """
        While paused, bytes are kept up to C{read_buffer_limit}; then the
        transport is paused, and resumed with the stream.
        """
        controller, transport, _ = connected(read_buffer_limit=100)
        receiver = Receiver()
        handle = controller.receive_records(receiver)
        handle.pauseProducing()
        controller.dataReceived(records(b"x" * 60))
        self.assertEqual(transport.producerState, "producing")
        controller.dataReceived(records(b"y" * 60))
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(receiver.messages, [])
        handle.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(receiver.messages, [b"x" * 60, b"y" * 60])

    def test_stop_then_one_shot(self) -> None:
        """
        After C{stopProducing} (from a callback), the records still buffered
        go to the next one-shot read; no C{receiving_ended}.
        """
        controller, _, _ = connected()
        receiver = Receiver()
        handle = controller.receive_records(receiver)
        receiver.on_record = lambda m: handle.stopProducing()
        controller.dataReceived(records(b"a", b"b", b"c"))
        self.assertEqual(receiver.messages, [b"a"])
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"b"))
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"c"))
        controller.readConnectionLost()
        self.assertEqual(receiver.ended, [])

    def test_switch_from_callback(self) -> None:
        """
        A one-shot read's callback may start a stream: the stream gets the
        records after the one the read got.
        """
        controller, _, _ = connected()
        receiver = Receiver()
        got: list[Any] = []

        def first(result: Any) -> None:
            got.append(result[0])
            controller.receive_records(receiver)

        controller.start_reading().addCallback(first)
        controller.dataReceived(records(b"a", b"b", b"c"))
        self.assertEqual(got, [Accepted(b"a")])
        self.assertEqual(receiver.messages, [b"b", b"c"])

    def test_modes_exclude_each_other(self) -> None:
        """
        A one-shot read while a stream exists (paused or not), or a second
        stream, is refused with L{ControllerBusy}; so is a stream while a
        read is pending.
        """
        controller, _, _ = connected()
        handle = controller.receive_records(Receiver())
        self.assertRaises(ControllerBusy, controller.start_reading)
        self.assertRaises(ControllerBusy, controller.receive_records, Receiver())
        handle.pauseProducing()
        self.assertRaises(ControllerBusy, controller.start_reading)
        handle.stopProducing()
        controller.start_reading()
        self.assertRaises(ControllerBusy, controller.receive_records, Receiver())

    def test_inactive(self) -> None:
        """
        No stream on an inactive controller; inactivating ends a stream
        without a call.
        """
        controller, _, _ = connected()
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.inactivate()
        controller.dataReceived(records(b"a"))
        self.assertEqual((receiver.messages, receiver.ended), ([], []))
        self.assertRaises(ControllerInactive, controller.receive_records, Receiver())

    def test_abort_rw(self) -> None:
        """
        C{abort_rw} ends a stream without a call; a new one is refused.
        """
        controller, _, _ = connected()
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.abort_rw()
        controller.dataReceived(records(b"a"))
        controller.connectionLost(Failure(ConnectionDone()))
        self.assertEqual((receiver.messages, receiver.ended), ([], []))
        self.assertRaises(ControllerInactive, controller.receive_records, Receiver())

    def test_receiver_raises(self) -> None:
        """
        What C{record_received} raises ends the stream with it and closes
        the connection; no later record is delivered.
        """
        controller, transport, _ = connected()
        receiver = Receiver()

        def boom(message: bytes) -> None:
            raise ZeroDivisionError(message)

        receiver.on_record = boom
        controller.receive_records(receiver)
        controller.dataReceived(records(b"a", b"b"))
        self.assertEqual(receiver.messages, [b"a"])
        self.assertEqual(len(receiver.ended), 1)
        self.assertTrue(receiver.ended[0].check(ZeroDivisionError))
        self.assertTrue(transport.disconnecting or transport.disconnected)

    def test_end_while_paused(self) -> None:
        """
        The end of input while paused waits for the records before it:
        resuming delivers them, then C{receiving_ended}.
        """
        controller, _, _ = connected()
        receiver = Receiver()
        handle = controller.receive_records(receiver)
        handle.pauseProducing()
        controller.dataReceived(records(b"a"))
        controller.readConnectionLost()
        self.assertEqual(receiver.ended, [])
        handle.resumeProducing()
        self.assertEqual(receiver.messages, [b"a"])
        self.assertEqual(len(receiver.ended), 1)
        self.assertTrue(receiver.ended[0].check(ConnectionDone))
        self.assertIs(self.successResultOf(controller.start_reading()), END_OF_FILE)


class SendTests(SynchronousTestCase):
    """
    Sends without a Deferred, and their backpressure.
    """

    def test_send_record_and_records(self) -> None:
        """
        C{send_record} writes one record; C{send_records} several, at once.
        """
        controller, transport, _ = connected()
        controller.send_record(b"one")
        controller.send_records([b"two", [b"th", b"ree"]])
        self.assertEqual(transport.value(), records(b"one", b"two", b"three"))

    def test_send_after_shutdown(self) -> None:
        """
        Sending on a shut writer, or an inactive controller, raises; after
        the connection is gone, what is sent is discarded.
        """
        controller, transport, _ = connected()
        controller.connectionLost(Failure(ConnectionDone()))
        controller.send_record(b"late")
        self.assertEqual(transport.value(), b"")
        controller.inactivate()
        self.assertRaises(ControllerInactive, controller.send_record, b"x")
        other, _, _ = connected()
        other.start_shutting_down()
        self.assertRaises(ControllerInactive, other.send_records, [b"x"])

    def test_producer_follows_backpressure(self) -> None:
        """
        The registered producer is paused when the transport pushes back and
        resumed when it drains; a second registration is refused.
        """
        controller, _, _ = connected()
        producer = RecordingProducer()
        controller.register_producer(producer)
        self.assertRaises(RuntimeError, controller.register_producer, RecordingProducer())
        controller.pauseProducing()
        controller.resumeProducing()
        self.assertEqual(producer.calls, ["pause", "resume"])
        controller.unregister_producer()
        controller.pauseProducing()
        self.assertEqual(producer.calls, ["pause", "resume"])

    def test_stream_as_producer(self) -> None:
        """
        A stream registered as the producer stops taking records while the
        replies cannot go out, and goes on when they can.
        """
        controller, _, _ = connected()
        receiver = Receiver()
        controller.register_producer(controller.receive_records(receiver))
        controller.pauseProducing()
        controller.dataReceived(records(b"a", b"b"))
        self.assertEqual(receiver.messages, [])
        controller.resumeProducing()
        self.assertEqual(receiver.messages, [b"a", b"b"])

    def test_write_deadline(self) -> None:
        """
        Records sent without a Deferred that stay pushed back past the write
        deadline close the connection.
        """
        controller, transport, clock = connected(write_deadline=5.0)
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.pauseProducing()
        controller.send_record(b"x" * 100)
        clock.advance(4)
        self.assertEqual(receiver.ended, [])
        clock.advance(2)
        self.assertEqual(len(receiver.ended), 1)
        self.assertTrue(receiver.ended[0].check(WriteDeadlineExceeded))

    def test_drain_clears_write_deadline(self) -> None:
        """
        Once the transport drains, the write deadline no longer runs.
        """
        controller, transport, clock = connected(write_deadline=5.0)
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.pauseProducing()
        controller.send_record(b"x")
        clock.advance(4)
        controller.resumeProducing()
        clock.advance(10)
        self.assertEqual(receiver.ended, [])


class ReviewRegressionTests(SynchronousTestCase):
    """
    What the review of the streaming work found, each seen failing before
    its fix.
    """

    def test_serve_ends_when_lost_while_pushed_back(self) -> None:
        """
        A stream paused by the transport's backpressure (its registered
        producer) when the connection is lost is resumed, so it delivers what
        waits and ends: C{serve} lets go of the controller.
        """
        from rpctransport.program.echo import EchoServer

        controller, _, _ = connected()
        server = EchoServer()
        done = server.serve(controller)
        controller.pauseProducing()
        controller.dataReceived(record(b"\0\0\0\1"))
        controller.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(done)
        self.assertEqual(server.controllers, set())

    def test_shutdown_after_pushback(self) -> None:
        """
        A shutdown after the transport pushed back on records sent without
        a Deferred is not cut short by the write deadline: the close has its
        linger time.
        """
        controller, transport, clock = connected(write_deadline=5.0, linger=60.0)
        controller.send_record(b"x" * 100)
        controller.pauseProducing()
        d = controller.start_shutting_down()
        controller.writeConnectionLost()
        clock.advance(6)
        self.assertNoResult(d)
        self.assertFalse(transport.disconnecting)
        self.assertNotIn("deadline.write", controller.counters)

    def test_cancelled_write_keeps_deadline(self) -> None:
        """
        Cancelling a one-shot write while the transport still pushes back
        leaves the write deadline running for what else was sent.
        """
        controller, transport, clock = connected(write_deadline=5.0)
        receiver = Receiver()
        controller.register_producer(controller.receive_records(receiver))
        controller.send_record(b"reply")
        controller.pauseProducing()
        d = controller.start_writing(b"one-shot")
        d.addErrback(lambda f: None)
        d.cancel()
        clock.advance(6)
        self.assertEqual(controller.counters.get("deadline.write"), 1)
        self.assertTrue(receiver.ended[0].check(WriteDeadlineExceeded))


class EchoReceiver(Receiver):
    """
    Sends every record back on its controller, with the stream as the
    controller's producer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.done: Deferred[None] = Deferred()

    def start(self, controller: Any) -> None:
        self.controller = controller
        controller.register_producer(controller.receive_records(self))

    def record_received(self, message: bytes, peer: object) -> None:
        self.controller.send_record(message)

    def receiving_ended(self, reason: Failure) -> None:
        self.controller.inactivate()
        self.done.callback(None)


class SocketStreamingTests(SocketTestMixin, TestCase):
    """
    A stream of records and sends on real loopback sockets, the peer a raw
    socket that writes in random pieces.
    """

    def setUp(self) -> None:
        self._setUpRegistry()

    @inlineCallbacks
    def serve(self, endpoint: str) -> Any:
        """
        Listen on C{endpoint} with an echo server made of a stream of
        records and sends; returns the port and the list of its receivers.
        """
        from twisted.internet.endpoints import serverFromString

        receivers: list[EchoReceiver] = []

        def on_connection(controller: Any) -> None:
            self.track(controller)
            receiver = EchoReceiver()
            receivers.append(receiver)
            receiver.start(controller)

        port = yield listen_stream(serverFromString(self.reactor, endpoint), on_connection)
        self.addCleanup(port.stopListening)
        return port, receivers

    @inlineCallbacks
    def check_echo(self, endpoint: str, family: int, address: Any) -> Any:
        port, _ = yield self.serve(endpoint)
        if family == socket.AF_INET:
            address = ("127.0.0.1", port.getHost().port)
        rng = random.Random(7)
        messages = [bytes([i % 256]) * rng.randrange(0, 3000) for i in range(500)]
        data = records(*messages)
        peer = self.track_socket(socket.socket(family, socket.SOCK_STREAM))
        peer.connect(address)
        peer.setblocking(False)
        got: list[bytes] = []
        pos = 0
        buffer = bytearray()

        def step() -> bool:
            nonlocal pos
            while pos < len(data):
                try:
                    pos += peer.send(data[pos : pos + rng.randrange(1, 9000)])
                except BlockingIOError:
                    break
            try:
                buffer.extend(peer.recv(1 << 20))
            except BlockingIOError:
                pass
            while len(buffer) >= 4:
                size = int.from_bytes(buffer[:4], "big") & 0x7FFFFFFF
                if len(buffer) < 4 + size:
                    break
                got.append(bytes(buffer[4 : 4 + size]))
                del buffer[: 4 + size]
            return len(got) == len(messages)

        yield self.until(step, "every record echoed")
        self.assertEqual(got, messages)

    def test_echo_tcp(self) -> Any:
        """
        Records echoed over TCP come back byte for byte, in order.
        """
        return self.check_echo("tcp:0:interface=127.0.0.1", socket.AF_INET, None)

    def test_echo_unix(self) -> Any:
        """
        The same over a UNIX socket.
        """
        path = os.path.join(tempfile.mkdtemp(), "s")
        return self.check_echo(f"unix:{path}", socket.AF_UNIX, path)

    @inlineCallbacks
    def test_never_reading_peer_pauses_stream(self) -> Any:
        """
        A peer that sends calls and never reads the replies: the stream,
        registered as the producer, is paused, the controller stops taking
        records and then stops reading, so TCP pushes back on the peer.
        """
        port, receivers = yield self.serve("tcp:0:interface=127.0.0.1")
        peer = self.track_socket(socket.socket())
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(("127.0.0.1", port.getHost().port))
        peer.setblocking(False)
        chunk = records(*([b"r" * 1000] * 64))
        sent = 0
        blocked = 0

        def flood() -> bool:
            nonlocal sent, blocked
            try:
                sent += peer.send(chunk)
                blocked = 0
            except BlockingIOError:
                blocked += 1
            return blocked > 20

        yield self.until(flood, "the peer's sends to block")
        self.assertEqual(len(receivers), 1)
        controller = receivers[0].controller
        self.assertFalse(controller.reading)
        self.assertLess(sent, 32 * 1024 * 1024)
        # The server would flush to this peer for its linger time.
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        peer.close()
