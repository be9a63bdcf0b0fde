# -*- test-case-name: rpctransport.test.test_datagram_streaming -*-
"""
Tests of the streaming API (L{IRecordStreaming}) of
L{rpctransport.adapters.datagram.DatagramController}: C{receive_records}
and its handle, C{send_record}, C{send_records} and the producer, first on
a fake UDP port and a L{Clock}, then over real loopback UDP sockets on the
real reactor.

The fakes (L{FakePort}, L{make}, L{Hook}, L{refused}) are those of
L{rpctransport.test.test_datagram}, trimmed to what is used here: a test
module imports helpers from L{rpctransport.test.helpers} only, never from
another test module.

Where the one-shot read already defines the answer (records, counters,
errors), a test asks both and compares.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Generator
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from rpctransport.adapters.datagram import MAX_UDP_PAYLOAD_IPV4, DatagramController
from rpctransport.entry.datagram import connect_datagram, listen_datagram
from rpctransport.interfaces import IRecordReceiver, IRecordStreaming, IRpcMultiplexController
from rpctransport.sansio.connection import Move, Reading
from rpctransport.sansio.errors import (
    AddressMismatch,
    AddressRequired,
    ControllerBusy,
    ControllerInactive,
    DatagramTooLarge,
    LocalProtocolError,
)
from rpctransport.sansio.types import (
    ACCEPT,
    DENY,
    DROP,
    REJECT,
    Accepted,
    Denied,
    Dropped,
    InRecord,
    InRule,
    Rejected,
    RejectedWith,
    RejectWith,
    ServerError,
)
from rpctransport.test.helpers import (
    WAIT,
    Hook,
    MixinBase,
    RecordingProducer,
    eventually,
    get_reactor,
    ipv6_skip,
    make_datagram,
    pattern,
    refused,
)

CLIENT = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40001)
SERVER = ("127.0.0.1", 111)
CALL = b"\x00\x00\x00\x07call"


@implementer(IRecordReceiver)
class Receiver:
    """
    An L{IRecordReceiver} that notes every call, in order, and may be told
    to act (pause, stop, raise...) when a record comes.

    @ivar events: C{("received", message, peer)}, C{("refused", record,
        peer)} and C{("ended", failure)}.
    @ivar on_record: called with the message after each C{record_received}
        is noted.
    """

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.on_record: Any = None
        self.on_refused: Any = None
        self.on_ended: Any = None

    def record_received(self, message: bytes, peer: object) -> None:
        self.events.append(("received", message, peer))
        if self.on_record is not None:
            self.on_record(message)

    def record_refused(self, record: InRecord, peer: object) -> None:
        self.events.append(("refused", record, peer))
        if self.on_refused is not None:
            self.on_refused(record)

    def receiving_ended(self, reason: Failure) -> None:
        self.events.append(("ended", reason))
        if self.on_ended is not None:
            self.on_ended(reason)

    @property
    def messages(self) -> list[bytes]:
        """The messages received, in order."""
        return [e[1] for e in self.events if e[0] == "received"]

    @property
    def ends(self) -> list[Failure]:
        """The reasons C{receiving_ended} got."""
        return [e[1] for e in self.events if e[0] == "ended"]


def at(addr: tuple[str, int]) -> IPv4Address:
    """The Twisted address a read reports for the sender C{addr}."""
    return IPv4Address("UDP", *addr)


# -- On the fake port ------------------------------------------------------------


class ContractTests(SynchronousTestCase):
    """
    The controller provides the streaming contract besides the multiplex
    one, and the stream's handle is a push producer.
    """

    def test_verify_object(self) -> None:
        """
        A datagram controller provides L{IRecordStreaming} and still
        L{IRpcMultiplexController}; C{receive_records} returns an
        L{IPushProducer}.
        """
        controller, _, _ = make_datagram()
        self.assertTrue(verifyObject(IRecordStreaming, controller))
        self.assertTrue(verifyObject(IRpcMultiplexController, controller))
        self.assertTrue(verifyObject(IPushProducer, controller.receive_records(Receiver())))


class DeliveryTests(SynchronousTestCase):
    """
    Every datagram goes to the receiver in the turn it arrived, in order,
    with its sender, as a one-shot read would report it.
    """

    def test_in_order_with_senders(self) -> None:
        """
        Datagrams from several peers are delivered in order, each with its
        sender as a Twisted C{IPv4Address} of type UDP; they are counted as
        a read counts them, and no one-shot read is pending.
        """
        controller, _, _ = make_datagram()
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.datagramReceived(b"one", CLIENT)
        controller.datagramReceived(b"two", OTHER)
        controller.datagramReceived(b"", CLIENT)
        self.assertEqual(
            receiver.events,
            [
                ("received", b"one", at(CLIENT)),
                ("received", b"two", at(OTHER)),
                ("received", b"", at(CLIENT)),
            ],
        )
        stats = controller.stats
        self.assertEqual((stats["datagrams_in"], stats["bytes_in"], stats["accepted"]), (3, 6, 3))
        self.assertFalse(controller.reading)

    def test_queued_delivered_first(self) -> None:
        """
        Datagrams queued before the stream starts are delivered, in order,
        before C{receive_records} returns; later ones follow.
        """
        controller, _, _ = make_datagram()
        controller.datagramReceived(b"a", CLIENT)
        controller.datagramReceived(b"b", OTHER)
        receiver = Receiver()
        controller.receive_records(receiver)
        self.assertEqual(receiver.messages, [b"a", b"b"])
        controller.datagramReceived(b"c", CLIENT)
        self.assertEqual(receiver.messages, [b"a", b"b", b"c"])

    def test_queue_not_needed(self) -> None:
        """
        A delivering stream takes each datagram as it arrives, as a pending
        read does: the queue's bounds concern only datagrams that wait, so
        with no room at all nothing is lost until the stream pauses.
        """
        controller, _, _ = make_datagram(max_queued_datagrams=0, max_queued_bytes=0)
        receiver = Receiver()
        stream = controller.receive_records(receiver)
        for name in (b"a", b"b", b"c"):
            controller.datagramReceived(name, CLIENT)
        self.assertEqual(receiver.messages, [b"a", b"b", b"c"])
        stream.pauseProducing()
        controller.datagramReceived(b"d", CLIENT)
        stream.resumeProducing()
        self.assertEqual(receiver.messages, [b"a", b"b", b"c"])
        self.assertEqual(controller.stats["queue_overflow"], 1)

    def test_ipv6_sender(self) -> None:
        """
        On an IPv6 socket the sender is a Twisted C{IPv6Address} of type
        UDP, and C{before_record} is asked with it.
        """
        controller, _, _ = make_datagram(inet6=True)
        hook = Hook()
        receiver = Receiver()
        controller.receive_records(receiver, hook)
        controller.datagramReceived(b"abcd", ("::1", 4000))
        sender = IPv6Address("UDP", "::1", 4000)
        self.assertEqual(receiver.events, [("received", b"abcd", sender)])
        self.assertEqual(hook.calls, [(4, sender)])

    def test_client_form(self) -> None:
        """
        A client socket streams its server's datagrams, with the sender a
        one-shot read reports; datagrams from anyone else are ignored and
        counted.
        """
        controller, _, _ = make_datagram(peer=SERVER)
        d = controller.start_reading()
        controller.datagramReceived(b"reply0", SERVER)
        _, one_shot_sender = self.successResultOf(d)
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.datagramReceived(b"spoof", OTHER)
        controller.datagramReceived(b"reply1", SERVER)
        self.assertEqual(receiver.events, [("received", b"reply1", one_shot_sender)])
        self.assertEqual(one_shot_sender, at(SERVER))
        self.assertEqual(controller.stats["from_strangers"], 1)


RULES: list[tuple[InRule, InRecord]] = [
    (ACCEPT, Accepted(CALL)),
    (REJECT, Rejected(CALL[:4])),
    (RejectWith(ServerError.PROG_UNAVAIL), RejectedWith(CALL[:4], ServerError.PROG_UNAVAIL)),
    (
        RejectWith(ServerError.GARBAGE_ARGS, at_once=True),
        RejectedWith(CALL[:4], ServerError.GARBAGE_ARGS),
    ),
    (DENY, Denied()),
    (DROP, Dropped()),
]


class RuleTests(SynchronousTestCase):
    """
    C{before_record} is asked once per datagram, as for a one-shot read,
    and the receiver gets the record the one-shot read gives.
    """

    def test_same_records_as_one_shot(self) -> None:
        """
        For each rule the stream reports what a one-shot read delivers:
        C{record_received} with the message for C{ACCEPT}, and
        C{record_refused} with the same C{Rejected}, C{RejectedWith}
        (C{at_once} or not), C{Denied} or C{Dropped}; the hook sees the
        same size and sender, and the stats and counters are the same.
        """
        one_shot, _, _ = make_datagram()
        streaming, _, _ = make_datagram()
        for rule, expected in RULES:
            hook_read, hook_stream = Hook(rule), Hook(rule)
            d = one_shot.start_reading(before_record=hook_read)
            one_shot.datagramReceived(CALL, CLIENT)
            record, sender = self.successResultOf(d)
            self.assertEqual(record, expected)
            receiver = Receiver()
            stream = streaming.receive_records(receiver, hook_stream)
            streaming.datagramReceived(CALL, CLIENT)
            stream.stopProducing()
            if rule is ACCEPT:
                self.assertEqual(receiver.events, [("received", CALL, sender)])
            else:
                self.assertEqual(receiver.events, [("refused", record, sender)])
            self.assertEqual(hook_stream.calls, hook_read.calls)
            self.assertEqual(hook_stream.calls, [(len(CALL), at(CLIENT))])
        self.assertEqual(streaming.stats, one_shot.stats)
        self.assertEqual(dict(streaming.counters), dict(one_shot.counters))
        self.assertEqual(dict(streaming.counters), {"refused.rule": 5})

    def test_no_hook_accepts_all(self) -> None:
        """
        Without C{before_record} every datagram is accepted, even an empty
        one.
        """
        controller, _, _ = make_datagram()
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.datagramReceived(b"", CLIENT)
        self.assertEqual(receiver.events, [("received", b"", at(CLIENT))])

    def test_too_large(self) -> None:
        """
        A datagram over C{max_record_size}, or one that fills the receive
        buffer, is refused before the rule is asked, as for a one-shot read:
        nothing is delivered, it is counted as C{too_large} and
        C{refused.limit}, and the stream goes on.
        """
        controller, _, _ = make_datagram(max_record_size=100)
        hook = Hook()
        receiver = Receiver()
        controller.receive_records(receiver, hook)
        controller.datagramReceived(b"x" * 101, CLIENT)
        self.assertEqual((receiver.events, hook.calls), ([], []))
        controller.datagramReceived(b"y" * 100, CLIENT)
        self.assertEqual(receiver.messages, [b"y" * 100])
        self.assertEqual(controller.stats["too_large"], 1)
        self.assertEqual(dict(controller.counters), {"refused.limit": 1})

    def test_truncated(self) -> None:
        """
        A datagram that fills the receive buffer was truncated by the
        kernel: refused even when C{max_record_size} is larger.
        """
        controller, _, _ = make_datagram(max_record_size=1 << 20)
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.datagramReceived(b"x" * controller.receive_buffer_size, CLIENT)
        self.assertEqual(receiver.events, [])
        self.assertEqual(controller.stats["too_large"], 1)


class PauseTests(SynchronousTestCase):
    """
    The handle pauses, resumes and stops the stream; paused, datagrams are
    queued as while no read is pending.
    """

    def test_pause_queues(self) -> None:
        """
        Paused, nothing is delivered and datagrams are queued; resumed, the
        queue is delivered in order, then the stream goes on.
        """
        controller, _, _ = make_datagram()
        receiver = Receiver()
        stream = controller.receive_records(receiver)
        controller.datagramReceived(b"a", CLIENT)
        stream.pauseProducing()
        controller.datagramReceived(b"b", CLIENT)
        controller.datagramReceived(b"c", OTHER)
        self.assertEqual(receiver.messages, [b"a"])
        stream.resumeProducing()
        self.assertEqual(
            receiver.events[1:], [("received", b"b", at(CLIENT)), ("received", b"c", at(OTHER))]
        )
        controller.datagramReceived(b"d", CLIENT)
        self.assertEqual(receiver.messages, [b"a", b"b", b"c", b"d"])
        stream.resumeProducing()
        self.assertEqual(len(receiver.events), 4)

    def test_pause_bounded(self) -> None:
        """
        Paused, the queue keeps its bound: past C{max_queued_datagrams} the
        datagrams are dropped and counted as C{queue_overflow}.
        """
        controller, _, _ = make_datagram(max_queued_datagrams=2)
        receiver = Receiver()
        stream = controller.receive_records(receiver)
        stream.pauseProducing()
        for i in range(5):
            controller.datagramReceived(b"d%d" % i, CLIENT)
        self.assertEqual(controller.stats["queue_overflow"], 3)
        stream.resumeProducing()
        self.assertEqual(receiver.messages, [b"d0", b"d1"])

    def test_stop_keeps_queue(self) -> None:
        """
        C{stopProducing} ends the stream without C{receiving_ended}; what
        was queued meanwhile goes to the next one-shot reads, in order.
        """
        controller, _, _ = make_datagram()
        receiver = Receiver()
        stream = controller.receive_records(receiver)
        stream.pauseProducing()
        controller.datagramReceived(b"a", CLIENT)
        controller.datagramReceived(b"b", OTHER)
        stream.stopProducing()
        stream.resumeProducing()
        controller.datagramReceived(b"c", CLIENT)
        self.assertEqual(receiver.events, [])
        self.assertEqual(
            self.successResultOf(controller.start_reading()), (Accepted(b"a"), at(CLIENT))
        )
        self.assertEqual(
            self.successResultOf(controller.start_reading()), (Accepted(b"b"), at(OTHER))
        )
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"c"))
        self.assertEqual(receiver.events, [])

    def test_stop_from_receiver(self) -> None:
        """
        A receiver that stops the stream while queued datagrams are
        delivered leaves the rest to the next read; it may start that read
        from C{record_received}.
        """
        controller, _, _ = make_datagram()
        receiver = Receiver()
        stream = controller.receive_records(receiver)
        stream.pauseProducing()
        for name in (b"a", b"b", b"c"):
            controller.datagramReceived(name, CLIENT)
        reads: list[Deferred[Any]] = []

        def stop(message: bytes) -> None:
            stream.stopProducing()
            reads.append(controller.start_reading())

        receiver.on_record = stop
        stream.resumeProducing()
        self.assertEqual(receiver.messages, [b"a"])
        self.assertEqual(self.successResultOf(reads[0])[0], Accepted(b"b"))
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"c"))

    def test_pause_from_receiver(self) -> None:
        """
        A receiver that pauses the stream gets nothing more until it
        resumes it.
        """
        controller, _, _ = make_datagram()
        receiver = Receiver()
        stream = controller.receive_records(receiver)
        stream.pauseProducing()
        for name in (b"a", b"b", b"c"):
            controller.datagramReceived(name, CLIENT)
        receiver.on_record = lambda message: stream.pauseProducing()
        stream.resumeProducing()
        self.assertEqual(receiver.messages, [b"a"])
        receiver.on_record = None
        stream.resumeProducing()
        self.assertEqual(receiver.messages, [b"a", b"b", b"c"])

    def test_hook_pauses(self) -> None:
        """
        A C{before_record} that pauses the stream leaves the datagram it
        was asked about at the head of the queue: after the resume the hook
        is asked again and the datagram delivered, before the next one.
        """
        controller, _, _ = make_datagram()
        calls: list[int] = []

        def hook(size: int, peer: object) -> InRule:
            calls.append(size)
            if len(calls) == 1:
                stream.pauseProducing()
            return ACCEPT

        receiver = Receiver()
        stream = controller.receive_records(receiver, hook)
        controller.datagramReceived(b"first", CLIENT)
        controller.datagramReceived(b"second!", CLIENT)
        self.assertEqual((receiver.events, calls), ([], [5]))
        stream.resumeProducing()
        self.assertEqual(receiver.messages, [b"first", b"second!"])
        self.assertEqual(calls, [5, 5, 7])
        self.assertEqual(controller.stats["accepted"], 2)

    def test_hook_stops(self) -> None:
        """
        A C{before_record} that stops the stream leaves the datagram for the
        next read.
        """
        controller, _, _ = make_datagram()

        def hook(size: int, peer: object) -> InRule:
            stream.stopProducing()
            return DROP

        receiver = Receiver()
        stream = controller.receive_records(receiver, hook)
        controller.datagramReceived(b"kept", CLIENT)
        self.assertEqual(receiver.events, [])
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"kept"))
        self.assertEqual(controller.stats["dropped"], 0)

    def test_timeout(self) -> None:
        """
        A delivering stream counts as a pending read for C{set_timeout}: a
        datagram re-arms it; a paused or stopped stream does not.
        """
        controller, _, clock = make_datagram()
        calls: list[None] = []
        controller.set_timeout(lambda: calls.append(None), 10)
        stream = controller.receive_records(Receiver())
        clock.advance(9)
        controller.datagramReceived(b"x", CLIENT)
        clock.advance(9)
        self.assertEqual(calls, [])
        stream.pauseProducing()
        clock.advance(100)
        self.assertEqual(calls, [])
        stream.resumeProducing()
        clock.advance(10)
        self.assertEqual(calls, [None])
        stream.stopProducing()
        controller.datagramReceived(b"y", CLIENT)
        clock.advance(100)
        self.assertEqual(calls, [None])

    def test_timeout_set_while_streaming(self) -> None:
        """
        A timeout set while a stream delivers is armed at once; a datagram
        sent meanwhile re-arms it, as one received does.
        """
        controller, _, clock = make_datagram()
        controller.receive_records(Receiver())
        calls: list[None] = []
        controller.set_timeout(lambda: calls.append(None), 10)
        clock.advance(10)
        self.assertEqual(calls, [None])
        controller.datagramReceived(b"x", CLIENT)
        clock.advance(5)
        controller.send_record(b"x", CLIENT)
        clock.advance(9)
        self.assertEqual(calls, [None])
        clock.advance(1)
        self.assertEqual(calls, [None, None])


class ModeTests(SynchronousTestCase):
    """
    One read mode at a time: one-shot reads, or a stream.
    """

    def test_mode_follows(self) -> None:
        """
        The reading side's mode is one-shot, streaming or paused, and
        one-shot again once the stream is stopped.
        """
        controller, _, _ = make_datagram()
        inbound: Any = controller._inbound
        self.assertIs(inbound.mode, Reading.ONE_SHOT)
        stream = controller.receive_records(Receiver())
        self.assertIs(inbound.mode, Reading.STREAMING)
        stream.pauseProducing()
        self.assertIs(inbound.mode, Reading.PAUSED)
        stream.resumeProducing()
        self.assertIs(inbound.mode, Reading.STREAMING)
        stream.stopProducing()
        self.assertIs(inbound.mode, Reading.ONE_SHOT)

    def test_start_reading_while_streaming(self) -> None:
        """
        A one-shot read while records stream, delivering or paused, raises
        L{ControllerBusy} saying so.
        """
        controller, _, _ = make_datagram()
        stream = controller.receive_records(Receiver())
        e = self.assertRaises(ControllerBusy, controller.start_reading)
        self.assertIn("streaming", str(e))
        stream.pauseProducing()
        e = self.assertRaises(ControllerBusy, controller.start_reading)
        self.assertIn("paused", str(e))
        stream.stopProducing()
        self.assertNoResult(controller.start_reading())

    def test_receive_records_while_reading(self) -> None:
        """
        C{receive_records} while a one-shot read is pending raises
        L{ControllerBusy}; the read is untouched.
        """
        controller, _, _ = make_datagram()
        d = controller.start_reading()
        e = self.assertRaises(ControllerBusy, controller.receive_records, Receiver())
        self.assertIn("one-shot read is pending", str(e))
        controller.datagramReceived(b"x", CLIENT)
        self.assertEqual(self.successResultOf(d)[0], Accepted(b"x"))

    def test_receive_records_twice(self) -> None:
        """
        A second stream while one exists, delivering or paused, raises
        L{ControllerBusy}.
        """
        controller, _, _ = make_datagram()
        stream = controller.receive_records(Receiver())
        self.assertRaises(ControllerBusy, controller.receive_records, Receiver())
        stream.pauseProducing()
        self.assertRaises(ControllerBusy, controller.receive_records, Receiver())

    def test_inactive(self) -> None:
        """
        C{receive_records} on an inactive controller, an aborted reader or a
        shut down controller raises L{ControllerInactive}.
        """
        for end in ("inactivate", "abort_rw", "start_shutting_down"):
            controller, _, _ = make_datagram()
            getattr(controller, end)()
            e = self.assertRaises(ControllerInactive, controller.receive_records, Receiver())
            self.assertTrue(str(e).startswith("receive_records: "), str(e))

    def test_bad_move(self) -> None:
        """
        The mode moves only as the transitions say: a pause without a
        stream is refused.
        """
        controller, _, _ = make_datagram()
        inbound: Any = controller._inbound
        e = self.assertRaises(LocalProtocolError, inbound._move, Move.PAUSE_STREAM)
        self.assertIn("one-shot", str(e))


class EndTests(SynchronousTestCase):
    """
    C{receiving_ended} comes once, with what a one-shot read would fail
    with; never after C{inactivate()} or C{abort_rw()}.
    """

    def test_inactivate(self) -> None:
        """
        After C{inactivate()}, nothing more is delivered and
        C{receiving_ended} is not called; the handle does nothing.
        """
        controller, _, _ = make_datagram()
        receiver = Receiver()
        stream = controller.receive_records(receiver)
        controller.datagramReceived(b"a", CLIENT)
        controller.inactivate()
        controller.datagramReceived(b"late", CLIENT)
        controller.errorReceived(ConnectionRefusedError(), CLIENT)
        stream.pauseProducing()
        stream.resumeProducing()
        stream.stopProducing()
        self.assertEqual(receiver.events, [("received", b"a", at(CLIENT))])

    def test_inactivate_from_receiver(self) -> None:
        """
        A receiver that inactivates the controller gets nothing more, not
        even the datagrams that were queued.
        """
        controller, _, _ = make_datagram()
        controller.datagramReceived(b"a", CLIENT)
        controller.datagramReceived(b"b", CLIENT)
        receiver = Receiver()
        receiver.on_record = lambda message: controller.inactivate()
        controller.receive_records(receiver)
        self.assertEqual(receiver.events, [("received", b"a", at(CLIENT))])

    def test_abort_rw(self) -> None:
        """
        After C{abort_rw()}, a stream, delivering or paused, gets no
        further call.
        """
        for pause in (False, True):
            controller, _, _ = make_datagram()
            receiver = Receiver()
            stream = controller.receive_records(receiver)
            if pause:
                stream.pauseProducing()
            controller.abort_rw()
            controller.datagramReceived(b"late", CLIENT)
            stream.resumeProducing()
            self.successResultOf(controller.start_shutting_down())
            self.assertEqual(receiver.events, [])

    def test_shutdown(self) -> None:
        """
        A shutdown ends the stream, delivering or paused, with
        C{ConnectionDone}, once; the queue is dropped.
        """
        for pause in (False, True):
            controller, _, _ = make_datagram()
            receiver = Receiver()
            stream = controller.receive_records(receiver)
            if pause:
                stream.pauseProducing()
                controller.datagramReceived(b"queued", CLIENT)
            self.successResultOf(controller.start_shutting_down())
            stream.resumeProducing()
            controller.datagramReceived(b"late", CLIENT)
            [reason] = receiver.ends
            reason.trap(ConnectionDone)
            self.assertEqual(receiver.events, [("ended", reason)])

    def test_port_lost(self) -> None:
        """
        When the port goes away under the controller, the queued datagrams
        are delivered, then the stream ends with the port's reason; a
        paused stream gets them once resumed.
        """
        controller, port, _ = make_datagram()
        receiver = Receiver()
        stream = controller.receive_records(receiver)
        stream.pauseProducing()
        controller.datagramReceived(b"queued", CLIENT)
        controller.portFailed(Failure(ConnectionLost("shut down under us")))
        port.stopListening()
        self.assertEqual(receiver.events, [])
        stream.resumeProducing()
        self.assertEqual(receiver.messages, [b"queued"])
        [reason] = receiver.ends
        reason.trap(ConnectionLost)
        self.assertIn("shut down under us", str(reason.value))
        self.assertEqual(len(receiver.events), 2)

    def test_port_closed_delivering(self) -> None:
        """
        A port closed without a reason ends the delivering stream with
        C{ConnectionLost}, as it fails a pending read; a new stream then
        ends at once, as a new read fails.
        """
        controller, port, _ = make_datagram()
        receiver = Receiver()
        controller.receive_records(receiver)
        port.stopListening()
        [reason] = receiver.ends
        reason.trap(ConnectionLost)
        again = Receiver()
        controller.receive_records(again)
        again.ends[0].trap(ConnectionLost)

    def test_client_error(self) -> None:
        """
        On a client socket, an error about its server ends the stream with
        it, as it fails a pending read: counted, and the socket stays open
        for the next stream.
        """
        controller, _, _ = make_datagram(peer=SERVER)
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.errorReceived(refused(111), SERVER, errno.ECONNREFUSED)
        [reason] = receiver.ends
        reason.trap(ConnectionRefusedError)
        self.assertIn("127.0.0.1:111", str(reason.value))
        self.assertEqual(dict(controller.counters), {"udp.ECONNREFUSED": 1})
        self.assertTrue(controller.alive)
        again = Receiver()
        controller.receive_records(again)
        controller.datagramReceived(b"reply", SERVER)
        self.assertEqual(again.messages, [b"reply"])

    def test_client_error_paused(self) -> None:
        """
        On a client socket whose stream is paused, the error is kept: on
        resuming, the queued datagrams come first, then the end.
        """
        controller, _, _ = make_datagram(peer=SERVER)
        receiver = Receiver()
        stream = controller.receive_records(receiver)
        stream.pauseProducing()
        controller.datagramReceived(b"before", SERVER)
        controller.errorReceived(refused(111), SERVER)
        self.assertEqual(receiver.events, [])
        stream.resumeProducing()
        self.assertEqual(receiver.messages, [b"before"])
        receiver.ends[0].trap(ConnectionRefusedError)

    def test_server_error(self) -> None:
        """
        On a server socket, an error about one peer leaves the stream the
        other peers are served by untouched.
        """
        seen: list[object] = []
        controller, _, _ = make_datagram(on_peer_error=lambda e, a: seen.append(a))
        receiver = Receiver()
        controller.receive_records(receiver)
        controller.errorReceived(refused(9), ("127.0.0.1", 9), errno.ECONNREFUSED)
        controller.datagramReceived(b"next", CLIENT)
        self.assertEqual(receiver.events, [("received", b"next", at(CLIENT))])
        self.assertEqual(seen, [at(("127.0.0.1", 9))])


class RaisingTests(SynchronousTestCase):
    """
    What C{before_record} or the receiver raises fails that datagram as
    C{before_record} raising fails a one-shot read: the stream ends with
    it, and the socket goes on serving.
    """

    def check_ended(self, receiver: Receiver, controller: DatagramController) -> None:
        """
        C{receiver} got C{receiving_ended} with the C{ZeroDivisionError},
        logged once and counted; the next datagram goes to the next read.
        """
        [reason] = receiver.ends
        reason.trap(ZeroDivisionError)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(controller.stats["errors"], 1)
        before = list(receiver.events)
        controller.datagramReceived(b"next", OTHER)
        self.assertEqual(receiver.events, before)
        self.assertEqual(
            self.successResultOf(controller.start_reading()), (Accepted(b"next"), at(OTHER))
        )
        self.assertTrue(controller.alive)

    def test_hook_raises(self) -> None:
        """
        A C{before_record} that raises ends the stream with its exception,
        as it fails a one-shot read; the datagram is consumed.
        """
        one_shot, _, _ = make_datagram()

        def broken(size: int, peer: object) -> InRule:
            raise ZeroDivisionError("hook")

        d = one_shot.start_reading(before_record=broken)
        one_shot.datagramReceived(b"abcd", CLIENT)
        self.failureResultOf(d, ZeroDivisionError)
        self.flushLoggedErrors(ZeroDivisionError)

        controller, _, _ = make_datagram()
        receiver = Receiver()
        controller.receive_records(receiver, broken)
        controller.datagramReceived(b"abcd", CLIENT)
        self.assertEqual(len(receiver.events), 1)
        self.check_ended(receiver, controller)
        # The same counts as the one-shot read's, and the "next" datagram.
        expected = one_shot.stats | {"datagrams_in": 2, "bytes_in": 8, "accepted": 1}
        self.assertEqual(controller.stats, expected)

    def test_not_a_rule(self) -> None:
        """
        A hook that answers something other than a rule ends the stream
        with C{TypeError}.
        """
        controller, _, _ = make_datagram()
        not_a_rule: Any = lambda size, peer: "yes"
        receiver = Receiver()
        controller.receive_records(receiver, not_a_rule)
        controller.datagramReceived(b"abcd", CLIENT)
        receiver.ends[0].trap(TypeError)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_receiver_raises(self) -> None:
        """
        A C{record_received} that raises ends the stream with its exception;
        the datagrams still queued stay for the next read.
        """
        controller, _, _ = make_datagram()
        controller.datagramReceived(b"a", CLIENT)
        controller.datagramReceived(b"b", CLIENT)
        receiver = Receiver()

        def broken(message: bytes) -> None:
            raise ZeroDivisionError("receiver")

        receiver.on_record = broken
        controller.receive_records(receiver)
        self.assertEqual(receiver.messages, [b"a"])
        [reason] = receiver.ends
        reason.trap(ZeroDivisionError)
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"b"))
        controller.cancel_rd_polling()
        self.check_ended(receiver, controller)

    def test_refused_raises(self) -> None:
        """
        A C{record_refused} that raises ends the stream too.
        """
        controller, _, _ = make_datagram()
        receiver = Receiver()

        def broken(record: InRecord) -> None:
            raise ZeroDivisionError("refused")

        receiver.on_refused = broken
        controller.receive_records(receiver, Hook(DENY))
        controller.datagramReceived(b"abcd", CLIENT)
        self.assertEqual(receiver.events[0], ("refused", Denied(), at(CLIENT)))
        self.check_ended(receiver, controller)

    def test_ended_raises(self) -> None:
        """
        A C{receiving_ended} that raises is logged; the controller goes on.
        """
        controller, _, _ = make_datagram()
        receiver = Receiver()

        def broken(reason: Failure) -> None:
            raise ValueError("ended")

        receiver.on_ended = broken
        controller.receive_records(receiver)
        self.successResultOf(controller.start_shutting_down())
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(len(receiver.ends), 1)

    def test_new_stream_from_ended(self) -> None:
        """
        A new stream may start from C{receiving_ended}; it gets the datagrams
        queued after the one that failed.
        """
        controller, _, _ = make_datagram()
        for name in (b"bad", b"good"):
            controller.datagramReceived(name, CLIENT)
        second = Receiver()

        def hook(size: int, peer: object) -> InRule:
            raise ZeroDivisionError("hook")

        first = Receiver()
        first.on_ended = lambda reason: controller.receive_records(second)
        controller.receive_records(first, hook)
        self.assertEqual(len(first.ends), 1)
        self.assertEqual(second.messages, [b"good"])
        self.flushLoggedErrors(ZeroDivisionError)


class SendTests(SynchronousTestCase):
    """
    C{send_record} and C{send_records} send at once, without a Deferred,
    under the rules of C{start_writing}.
    """

    def test_send_record(self) -> None:
        """
        A datagram goes to the address given (a tuple or a Twisted address),
        or to a client socket's peer with C{IMPLIED}; it is counted.
        """
        controller, port, _ = make_datagram()
        self.assertIsNone(controller.send_record(b"one", CLIENT))
        controller.send_record([b"t", b"wo"], at(OTHER))
        self.assertEqual(port.written, [(b"one", CLIENT), (b"two", OTHER)])
        self.assertEqual((controller.stats["datagrams_out"], controller.stats["bytes_out"]), (2, 6))
        client, client_port, _ = make_datagram(peer=SERVER)
        client.send_record(b"call")
        self.assertEqual(client_port.written, [(b"call", SERVER)])

    def test_send_records(self) -> None:
        """
        Several messages go out as several datagrams, in order.
        """
        controller, port, _ = make_datagram()
        controller.send_records([b"a", b"bb", memoryview(b"ccc")], CLIENT)
        self.assertEqual(port.written, [(b"a", CLIENT), (b"bb", CLIENT), (b"ccc", CLIENT)])
        controller.send_records([], CLIENT)
        self.assertEqual(controller.stats["datagrams_out"], 3)

    def test_too_large(self) -> None:
        """
        A message over C{max_datagram_size} raises L{DatagramTooLarge}
        saying which, and nothing is sent, not even the messages before it.
        """
        controller, port, _ = make_datagram(max_record_size=10)
        e = self.assertRaises(
            DatagramTooLarge, controller.send_records, [b"ok", b"x" * 11, b"ok"], CLIENT
        )
        self.assertEqual((e.size, e.limit), (11, 10))
        self.assertIn("message 2 of 3 given to send_records", str(e))
        self.assertRaises(DatagramTooLarge, controller.send_record, b"x" * 11, CLIENT)
        self.assertEqual(port.written, [])

    def test_addresses(self) -> None:
        """
        The address rules of C{start_writing}: C{IMPLIED} needs a fixed
        peer, a client socket sends to its peer only, an address must be
        one; each error names the operation.
        """
        controller, port, _ = make_datagram()
        e = self.assertRaises(AddressRequired, controller.send_record, b"x")
        self.assertIn("send_record:", str(e))
        self.assertRaises(TypeError, controller.send_records, [b"x"], "127.0.0.1")
        client, client_port, _ = make_datagram(peer=SERVER)
        e2 = self.assertRaises(AddressMismatch, client.send_record, b"x", OTHER)
        self.assertIn("send_record: 127.0.0.1:40001", str(e2))
        self.assertEqual((port.written, client_port.written), ([], []))

    def test_refused_for_one_peer(self) -> None:
        """
        A datagram the socket refuses for its destination raises nothing:
        it is counted (C{errors}, C{udp.send.<ERRNO>}) and logged at debug
        level as C{start_writing} counts it, and the next one goes out.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        controller, port, _ = make_datagram()
        for number in (errno.EINVAL, errno.EAGAIN, errno.ECONNREFUSED):
            port.write_error = OSError(number, "refused")
            controller.send_record(b"x", ("127.0.0.1", 0))
        controller.send_record(b"y", CLIENT)
        self.assertEqual(port.written, [(b"y", CLIENT)])
        self.assertEqual(controller.stats["errors"], 3)
        self.assertEqual(
            dict(controller.counters),
            {"udp.send.EINVAL": 1, "udp.send.EAGAIN": 1, "udp.send.ECONNREFUSED": 1},
        )
        levels = [
            e["log_level"] for e in events if "DatagramController" in e.get("log_namespace", "")
        ]
        self.assertEqual(levels, [LogLevel.debug] * 3)

    def test_socket_unusable(self) -> None:
        """
        An unusable socket (C{EBADF}) is not one peer's refusal: with no
        Deferred to fail, it is counted and logged as an error.
        """
        controller, port, _ = make_datagram()
        port.write_error = OSError(errno.EBADF, "Bad file descriptor")
        controller.send_record(b"x", CLIENT)
        [logged] = self.flushLoggedErrors(OSError)
        self.assertIn("sending 1 bytes to 127.0.0.1:40000", str(logged.value))
        self.assertEqual(controller.stats["errors"], 1)

    def test_misuse_raises(self) -> None:
        """
        After C{inactivate()}, C{abort_rw()} or a shutdown, sending raises
        L{ControllerInactive} naming the operation; before the port is
        bound too.
        """
        for end in ("inactivate", "abort_rw", "start_shutting_down"):
            controller, port, _ = make_datagram()
            getattr(controller, end)()
            e = self.assertRaises(ControllerInactive, controller.send_record, b"x", CLIENT)
            self.assertTrue(str(e).startswith("send_record: "), str(e))
            self.assertRaises(ControllerInactive, controller.send_records, [b"x"], CLIENT)
            self.assertEqual(port.written, [])
        unbound = DatagramController(Clock())
        e = self.assertRaises(ControllerInactive, unbound.send_record, b"x", CLIENT)
        self.assertIn("no socket yet", str(e))

    def test_port_lost_discards(self) -> None:
        """
        Once the port was closed under the controller, datagrams are
        discarded, as a transport discards what is written after its end.
        """
        controller, port, _ = make_datagram()
        port.stopListening()
        controller.send_record(b"x", CLIENT)
        controller.send_records([b"y"], CLIENT)
        self.assertEqual(port.written, [])
        self.assertEqual(controller.stats["datagrams_out"], 0)

    def test_kept_error_left(self) -> None:
        """
        A client socket's kept error about its server is left for the next
        read, which can report it; C{send_record} sends anyway.
        """
        controller, port, _ = make_datagram(peer=SERVER)
        controller.errorReceived(refused(111), SERVER)
        controller.send_record(b"x")
        self.assertEqual(port.written, [(b"x", SERVER)])
        self.failureResultOf(controller.start_reading(), ConnectionRefusedError)

    def test_producer(self) -> None:
        """
        A registered producer is never paused (UDP never pushes back); a
        second registration raises C{RuntimeError}; after unregistering,
        another may register.
        """

        controller, port, _ = make_datagram()
        producer = RecordingProducer()
        controller.register_producer(producer)
        e = self.assertRaises(RuntimeError, controller.register_producer, RecordingProducer())
        self.assertIn("already registered", str(e))
        port.write_error = OSError(errno.EAGAIN, "full")
        controller.send_records([b"x"] * 100, CLIENT)
        self.assertEqual(producer.calls, [])
        controller.unregister_producer()
        controller.unregister_producer()
        controller.register_producer(RecordingProducer())


# -- Over real loopback sockets ----------------------------------------------------


class LoopbackStreamingMixin(MixinBase):
    """
    Streaming over real loopback UDP sockets, for one address family.
    Subclasses set C{host}, C{family} and C{address_type}.
    """

    host: str
    family: socket.AddressFamily
    address_type: type[IPv4Address] | type[IPv6Address]

    def setUp(self) -> None:
        self.reactor = get_reactor()

    def own(self, controller: DatagramController) -> DatagramController:
        def close() -> Deferred[None]:
            controller.inactivate()
            return controller.when_closed()

        self.addCleanup(close)
        return controller

    def server(self, **limits: Any) -> DatagramController:
        return self.own(listen_datagram(0, self.host, self.reactor, **limits))

    def client(self, port: int) -> DatagramController:
        return self.own(connect_datagram(self.host, port, self.reactor, interface=self.host))

    def raw(self) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind((self.host, 0))
        sock.setblocking(False)
        return sock

    def port_of(self, controller: DatagramController) -> int:
        address: Any = controller.getsockname()
        port: int = address.port
        return port

    def address(self, port: int) -> IPv4Address | IPv6Address:
        return self.address_type("UDP", self.host, port)

    @inlineCallbacks
    def test_stream_from_peers(self) -> Generator[Deferred[Any], Any, None]:
        """
        A server streams the datagrams of two plain sockets in the order
        each sent them, with each sender's address, under its rule; records
        refused by the rule come as a one-shot read gives them.
        """
        server = self.server()
        receiver = Receiver()

        def hook(size: int, peer: object) -> InRule:
            return ACCEPT if size != 2 else RejectWith(ServerError.GARBAGE_ARGS, at_once=True)

        server.receive_records(receiver, hook)
        one, two = self.raw(), self.raw()
        to = (self.host, self.port_of(server))
        for i in range(5):
            one.sendto(b"one%d" % i, to)
            two.sendto(b"two%d" % i, to)
        one.sendto(b"ab", to)
        yield eventually(lambda: len(receiver.events) == 11, "11 datagrams")
        by = {
            self.address(one.getsockname()[1]): [b"one%d" % i for i in range(5)],
            self.address(two.getsockname()[1]): [b"two%d" % i for i in range(5)],
        }
        for sender, messages in by.items():
            got = [e[1] for e in receiver.events if e[0] == "received" and e[2] == sender]
            self.assertEqual(got, messages)
        self.assertEqual(
            receiver.events[-1][:2],
            ("refused", RejectedWith(b"ab", ServerError.GARBAGE_ARGS)),
        )
        self.assertEqual(receiver.ends, [])

    @inlineCallbacks
    def test_send_and_stream_round_trip(self) -> Generator[Deferred[Any], Any, None]:
        """
        A client's C{send_record} and C{send_records} reach a streaming
        server; the server answers each sender with C{send_record} from
        C{record_received}, which the client streams back.
        """
        server = self.server()
        client = self.client(self.port_of(server))
        server_receiver = Receiver()

        def answer(message: bytes) -> None:
            _, _, sender = server_receiver.events[-1]
            server.send_record(b"re:" + message, sender)

        server_receiver.on_record = answer
        server.receive_records(server_receiver)
        client_receiver = Receiver()
        client.receive_records(client_receiver)
        client.send_record(b"first")
        client.send_records([b"second", pattern(1000)])
        yield eventually(lambda: len(client_receiver.events) == 3, "3 replies")
        self.assertEqual(server_receiver.messages, [b"first", b"second", pattern(1000)])
        self.assertEqual(
            client_receiver.events[0], ("received", b"re:first", self.address(self.port_of(server)))
        )
        self.assertEqual(
            client_receiver.messages, [b"re:first", b"re:second", b"re:" + pattern(1000)]
        )
        self.assertEqual(client.stats["datagrams_out"], 3)
        self.assertEqual(server.stats["datagrams_out"], 3)

    @inlineCallbacks
    def test_pause_resume_stop(self) -> Generator[Deferred[Any], Any, None]:
        """
        Paused, a server reads datagrams off the socket and queues them
        without delivering; resumed, it delivers them in order; stopped, it
        leaves them to a one-shot read.
        """
        server = self.server()
        receiver = Receiver()
        stream = server.receive_records(receiver)
        stream.pauseProducing()
        peer = self.raw()
        to = (self.host, self.port_of(server))
        for i in range(3):
            peer.sendto(b"d%d" % i, to)
        yield eventually(lambda: server.stats["datagrams_in"] == 3, "3 datagrams in")
        self.assertEqual(receiver.events, [])
        stream.resumeProducing()
        self.assertEqual(receiver.messages, [b"d0", b"d1", b"d2"])
        stream.pauseProducing()
        peer.sendto(b"later", to)
        yield eventually(lambda: server.stats["datagrams_in"] == 4, "the 4th datagram")
        stream.stopProducing()
        record, sender = yield server.start_reading().addTimeout(WAIT, self.reactor)
        self.assertEqual((record, sender), (Accepted(b"later"), self.address(peer.getsockname()[1])))
        self.assertEqual(receiver.ends, [])

    def test_send_to_port_zero(self) -> None:
        """
        A datagram to port 0 (which the kernel refuses with C{EINVAL}) raises
        nothing and is counted as C{udp.send.EINVAL}; the stream of the
        other peers goes on.
        """
        server = self.server()
        receiver = Receiver()
        server.receive_records(receiver)
        server.send_record(b"reply", (self.host, 0))
        self.assertEqual(dict(server.counters), {"udp.send.EINVAL": 1})
        self.assertEqual(receiver.ends, [])
        self.assertTrue(server.alive)

    @inlineCallbacks
    def test_port_closed_under_us(self) -> Generator[Deferred[Any], Any, None]:
        """
        When someone else closes the port, the stream ends with
        C{ConnectionLost}; later sends are discarded.
        """
        server = self.server()
        receiver = Receiver()
        server.receive_records(receiver)
        transport: Any = server.transport
        yield transport.stopListening()
        [reason] = receiver.ends
        reason.trap(ConnectionLost)
        server.send_record(b"x", (self.host, 9))

    @inlineCallbacks
    def test_client_refused(self) -> Generator[Deferred[Any], Any, None]:
        """
        A streaming client whose server port is closed: the ICMP port
        unreachable ends the stream with C{ConnectionRefusedError}, as it
        fails a one-shot read; the socket stays open.
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("ICMP errors are read through Linux's IP_RECVERR")
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        sock.bind((self.host, 0))
        dead = sock.getsockname()[1]
        sock.close()
        client = self.client(dead)
        receiver = Receiver()
        client.receive_records(receiver)
        client.send_record(b"\x00\x00\x00\x01ping")
        yield eventually(lambda: bool(receiver.ends), "the end of the stream")
        reason = receiver.ends[0]
        reason.trap(ConnectionRefusedError)
        self.assertIn(f"{dead}", str(reason.value))
        self.assertTrue(client.alive)
        self.assertEqual(client.counters["udp.ECONNREFUSED"], 1)


class IPv4StreamingTests(LoopbackStreamingMixin, TestCase):
    """
    Streaming over IPv4, on 127.0.0.1.
    """

    host = "127.0.0.1"
    family = socket.AF_INET
    address_type = IPv4Address

    def test_largest_datagram(self) -> None:
        """
        C{send_record} refuses one byte over the IPv4 payload, nothing sent.
        """
        server = self.server()
        self.assertRaises(
            DatagramTooLarge, server.send_record, b"x" * (MAX_UDP_PAYLOAD_IPV4 + 1), (self.host, 9)
        )
        self.assertEqual(server.stats["datagrams_out"], 0)


class IPv6StreamingTests(LoopbackStreamingMixin, TestCase):
    """
    Streaming over IPv6, on ::1.
    """

    host = "::1"
    family = socket.AF_INET6
    address_type = IPv6Address
    skip = ipv6_skip()
