# -*- test-case-name: rpctransport.test.test_datagram -*-
"""
Tests of L{rpctransport.adapters.datagram.DatagramController} on a fake UDP
port and a L{Clock}: rules, the queue, addresses, limits, errors, timeouts
and the life cycle, without sockets. The real-socket tests are in
L{rpctransport.test.test_datagram_sockets}.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    InvalidAddressError,
)
from twisted.internet.interfaces import IUDPTransport
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from rpctransport.adapters.datagram import (
    DEFAULT_DATAGRAM_MAX_RECORD_SIZE,
    MAX_UDP_PAYLOAD_IPV4,
    MAX_UDP_PAYLOAD_IPV6,
    STAT_KEYS,
    DatagramController,
)
from rpctransport.interfaces import IRpcMultiplexController
from rpctransport.sansio.errors import (
    AddressMismatch,
    AddressRequired,
    ControllerBusy,
    ControllerInactive,
    DatagramTooLarge,
    LocalProtocolError,
    NotConnected,
)
from rpctransport.sansio.types import (
    ACCEPT,
    DENY,
    DROP,
    IMPLIED,
    REJECT,
    Accepted,
    Denied,
    Dropped,
    InRule,
    Rejected,
    RejectedWith,
    RejectWith,
    RpcProtocol,
    ServerError,
)

CLIENT = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40001)
SERVER = ("127.0.0.1", 111)


@implementer(IUDPTransport)
class FakePort:
    """
    A UDP port in memory: records what is written, can be told to fail
    writes, and closes (telling its protocol) when asked.

    @ivar written: C{(datagram, addr)} for each write.
    @ivar write_error: raised by the next L{write}, when set.
    @ivar reading: whether the protocol wants datagrams.
    """

    def __init__(self, host: IPv4Address | IPv6Address) -> None:
        self.host = host
        self.written: list[tuple[bytes, Any]] = []
        self.write_error: Exception | None = None
        self.reading = True
        self.stopped = False
        self.protocol: DatagramController | None = None

    def attach(self, protocol: DatagramController) -> None:
        self.protocol = protocol
        protocol.makeConnection(self)

    def write(self, packet: bytes, addr: Any = None) -> None:
        if self.write_error is not None:
            error, self.write_error = self.write_error, None
            raise error
        self.written.append((packet, addr))

    def connect(self, host: str, port: int) -> None:
        raise AssertionError("the controller must not connect its socket")

    def getHost(self) -> IPv4Address | IPv6Address:
        return self.host

    def stopListening(self) -> Deferred[None]:
        self.stopped = True
        self.reading = False
        assert self.protocol is not None
        self.protocol.doStop()
        return succeed(None)

    def stopReading(self) -> None:
        self.reading = False

    def setBroadcastAllowed(self, enabled: bool) -> None:
        pass

    def getBroadcastAllowed(self) -> bool:
        return False


def make(
    inet6: bool = False, **options: Any
) -> tuple[DatagramController, FakePort, Clock]:
    """
    A controller on a L{FakePort}, with a L{Clock} for its timers.
    """
    clock = Clock()
    controller = DatagramController(clock, **options)
    host: IPv4Address | IPv6Address = (
        IPv6Address("UDP", "::1", 5000) if inet6 else IPv4Address("UDP", "127.0.0.1", 5000)
    )
    port = FakePort(host)
    port.attach(controller)
    return controller, port, clock


class Hook:
    """
    A C{before_record} hook that answers C{rule} and remembers its calls.
    """

    def __init__(self, rule: InRule = ACCEPT) -> None:
        self.rule = rule
        self.calls: list[tuple[int, object]] = []

    def __call__(self, size: int, peer: object) -> InRule:
        self.calls.append((size, peer))
        return self.rule


class ContractTests(SynchronousTestCase):
    """
    The controller provides the contract and says what it is.
    """

    def test_verify_object(self) -> None:
        """
        A datagram controller provides L{IRpcMultiplexController}.
        """
        controller, _, _ = make()
        self.assertTrue(verifyObject(IRpcMultiplexController, controller))

    def test_properties(self) -> None:
        """
        The controller is UDP, alive once bound, with no TLS, no peer user,
        nothing pending and no EOF.
        """
        controller = DatagramController(Clock())
        self.assertFalse(controller.alive)
        FakePort(IPv4Address("UDP", "127.0.0.1", 5000)).attach(controller)
        self.assertIs(controller.protocol, RpcProtocol.UDP)
        self.assertTrue(controller.alive)
        self.assertIsNone(controller.tls_session_props)
        self.assertIsNone(controller.peer_user_name)
        self.assertIsNone(controller.file_descr)
        self.assertFalse(controller.reading)
        self.assertFalse(controller.writing)
        self.assertFalse(controller.read_eof)

    def test_getsockname(self) -> None:
        """
        C{getsockname()} is the port's address.
        """
        controller, _, _ = make()
        self.assertEqual(controller.getsockname(), IPv4Address("UDP", "127.0.0.1", 5000))

    def test_getpeername_server(self) -> None:
        """
        A socket with no fixed peer raises L{NotConnected} for
        C{getpeername()}.
        """
        controller, _, _ = make()
        self.assertRaises(NotConnected, controller.getpeername)

    def test_getpeername_client(self) -> None:
        """
        The client form's peer is its server, as a Twisted address of type
        UDP, in the canonical form of the address.
        """
        controller, _, _ = make(peer=SERVER)
        self.assertEqual(controller.getpeername(), IPv4Address("UDP", *SERVER))
        controller6, _, _ = make(inet6=True, peer=("0:0:0:0:0:0:0:1", 111))
        self.assertEqual(controller6.getpeername(), IPv6Address("UDP", "::1", 111))

    def test_peer_must_be_an_address(self) -> None:
        """
        A host name is not a peer: it must be resolved first.
        """
        self.assertRaises(
            InvalidAddressError, DatagramController, Clock(), peer=("localhost", 111)
        )

    def test_bad_limits(self) -> None:
        """
        Negative limits are refused when the controller is made.
        """
        for option in ("max_record_size", "max_queued_datagrams", "max_queued_bytes"):
            self.assertRaises(ValueError, DatagramController, Clock(), **{option: -1})

    def test_stats_snapshot(self) -> None:
        """
        C{stats} is a plain C{dict} with every counter, a copy that later
        traffic does not change.
        """
        controller, _, _ = make()
        stats = controller.stats
        self.assertIs(type(stats), dict)
        self.assertEqual(sorted(stats), sorted(STAT_KEYS))
        self.assertEqual(set(stats.values()), {0})
        controller.datagramReceived(b"abcd", CLIENT)
        self.assertEqual(stats["datagrams_in"], 0)
        self.assertEqual(controller.stats["datagrams_in"], 1)
        self.assertEqual(controller.stats["bytes_in"], 4)

    def test_receive_buffer_size(self) -> None:
        """
        The receive buffer is one byte larger than the largest datagram
        delivered, and never more than 65536 bytes.
        """
        self.assertEqual(DatagramController(Clock()).receive_buffer_size, 65536)
        self.assertEqual(
            DatagramController(Clock(), max_record_size=1000).receive_buffer_size, 1001
        )
        self.assertEqual(
            DatagramController(Clock(), max_record_size=1 << 24).receive_buffer_size, 65536
        )
        self.assertEqual(DEFAULT_DATAGRAM_MAX_RECORD_SIZE, 65535)


class RuleTests(SynchronousTestCase):
    """
    C{before_record} is asked once per datagram and its answer decides the
    record.
    """

    def read(self, rule: InRule, datagram: bytes) -> tuple[object, object, Hook]:
        controller, _, _ = make()
        hook = Hook(rule)
        d = controller.start_reading(before_record=hook)
        controller.datagramReceived(datagram, CLIENT)
        record, sender = self.successResultOf(d)
        self.assertEqual(hook.calls, [(len(datagram), IPv4Address("UDP", *CLIENT))])
        self.assertEqual(sender, IPv4Address("UDP", *CLIENT))
        self.assertFalse(controller.reading)
        return record, controller.stats, hook

    def test_accept(self) -> None:
        """
        C{ACCEPT} gives the whole datagram.
        """
        record, stats, _ = self.read(ACCEPT, b"\x00\x00\x00\x07call")
        self.assertEqual(record, Accepted(b"\x00\x00\x00\x07call"))
        self.assertEqual(stats["accepted"], 1)  # type: ignore[index]

    def test_no_hook_accepts(self) -> None:
        """
        Without C{before_record} every datagram is accepted, even an empty
        one.
        """
        controller, _, _ = make()
        d = controller.start_reading()
        controller.datagramReceived(b"", CLIENT)
        self.assertEqual(self.successResultOf(d), (Accepted(b""), IPv4Address("UDP", *CLIENT)))

    def test_reject(self) -> None:
        """
        C{REJECT} keeps the first 4 bytes, the xid.
        """
        record, stats, _ = self.read(REJECT, b"\x00\x00\x00\x07call")
        self.assertEqual(record, Rejected(b"\x00\x00\x00\x07"))
        self.assertEqual(stats["rejected"], 1)  # type: ignore[index]

    def test_reject_short(self) -> None:
        """
        A rejected datagram shorter than 4 bytes gives the bytes there are.
        """
        record, _, _ = self.read(REJECT, b"ab")
        self.assertEqual(record, Rejected(b"ab"))

    def test_reject_with(self) -> None:
        """
        C{RejectWith} keeps the xid and the reason.
        """
        rule = RejectWith(ServerError.PROG_UNAVAIL)
        record, stats, _ = self.read(rule, b"\x00\x00\x00\x07call")
        self.assertEqual(record, RejectedWith(b"\x00\x00\x00\x07", ServerError.PROG_UNAVAIL))
        self.assertEqual(stats["rejected"], 1)  # type: ignore[index]

    def test_deny(self) -> None:
        """
        C{DENY} gives L{Denied} and keeps nothing.
        """
        record, stats, _ = self.read(DENY, b"garbage")
        self.assertEqual(record, Denied())
        self.assertEqual(stats["denied"], 1)  # type: ignore[index]

    def test_drop(self) -> None:
        """
        C{DROP} gives L{Dropped} and keeps nothing.
        """
        record, stats, _ = self.read(DROP, b"garbage")
        self.assertEqual(record, Dropped())
        self.assertEqual(stats["dropped"], 1)  # type: ignore[index]

    def test_ipv6_sender(self) -> None:
        """
        On an IPv6 socket the sender is a Twisted C{IPv6Address} of type
        UDP.
        """
        controller, _, _ = make(inet6=True)
        hook = Hook()
        d = controller.start_reading(before_record=hook)
        controller.datagramReceived(b"abcd", ("::1", 4000))
        self.assertEqual(
            self.successResultOf(d), (Accepted(b"abcd"), IPv6Address("UDP", "::1", 4000))
        )
        self.assertEqual(hook.calls, [(4, IPv6Address("UDP", "::1", 4000))])

    def test_peek(self) -> None:
        """
        C{peek()} is called once just before each datagram is consumed.
        """
        controller, _, _ = make()
        calls: list[int] = []
        d = controller.start_reading(peek=lambda: calls.append(len(calls)))
        self.assertEqual(calls, [])
        controller.datagramReceived(b"abcd", CLIENT)
        self.successResultOf(d)
        self.assertEqual(calls, [0])

    def test_hook_raises(self) -> None:
        """
        A hook that raises fails that read with its exception, counts an
        error, and the socket goes on serving.
        """
        controller, port, _ = make()

        def broken(size: int, peer: object) -> InRule:
            raise ZeroDivisionError("hook")

        d = controller.start_reading(before_record=broken)
        controller.datagramReceived(b"abcd", CLIENT)
        self.failureResultOf(d, ZeroDivisionError)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(controller.stats["errors"], 1)
        self.assertTrue(controller.alive)
        self.assertFalse(port.stopped)
        d = controller.start_reading()
        controller.datagramReceived(b"next", OTHER)
        self.assertEqual(self.successResultOf(d)[0], Accepted(b"next"))

    def test_not_a_rule(self) -> None:
        """
        A hook that answers something other than a rule fails the read with
        C{TypeError}.
        """
        controller, _, _ = make()
        not_a_rule: Any = lambda size, peer: "yes"
        d = controller.start_reading(before_record=not_a_rule)
        controller.datagramReceived(b"abcd", CLIENT)
        self.failureResultOf(d, TypeError)
        self.flushLoggedErrors(TypeError)

    def test_cancel_from_hook(self) -> None:
        """
        C{cancel_rd_polling} from inside C{before_record} is refused.
        """
        controller, _, _ = make()
        seen: list[Exception] = []

        def hook(size: int, peer: object) -> InRule:
            try:
                controller.cancel_rd_polling()
            except LocalProtocolError as e:
                seen.append(e)
            return ACCEPT

        d = controller.start_reading(before_record=hook)
        controller.datagramReceived(b"abcd", CLIENT)
        self.assertEqual(len(seen), 1)
        self.assertEqual(self.successResultOf(d)[0], Accepted(b"abcd"))

    def test_inactivate_from_hook(self) -> None:
        """
        A hook that inactivates the controller: the read never fires.
        """
        controller, _, _ = make()

        def hook(size: int, peer: object) -> InRule:
            controller.inactivate()
            return ACCEPT

        d = controller.start_reading(before_record=hook)
        controller.datagramReceived(b"abcd", CLIENT)
        self.assertNoResult(d)

    def test_too_large(self) -> None:
        """
        A datagram larger than C{max_record_size} is never delivered, not
        even shortened, and the rule is not asked: it is counted as
        C{too_large}. One of exactly the limit is delivered.
        """
        controller, _, _ = make(max_record_size=100)
        hook = Hook()
        d = controller.start_reading(before_record=hook)
        controller.datagramReceived(b"x" * 101, CLIENT)
        self.assertNoResult(d)
        self.assertEqual(hook.calls, [])
        controller.datagramReceived(b"y" * 100, CLIENT)
        self.assertEqual(self.successResultOf(d)[0], Accepted(b"y" * 100))
        self.assertEqual(controller.stats["too_large"], 1)

    def test_truncated(self) -> None:
        """
        A datagram that fills the receive buffer was truncated by the
        kernel: it is too large even when C{max_record_size} is larger.
        """
        controller, _, _ = make(max_record_size=1 << 20)
        d = controller.start_reading()
        controller.datagramReceived(b"x" * controller.receive_buffer_size, CLIENT)
        self.assertNoResult(d)
        self.assertEqual(controller.stats["too_large"], 1)


class QueueTests(SynchronousTestCase):
    """
    Datagrams that arrive with no read pending are kept, within bounds.
    """

    def test_queued_in_order(self) -> None:
        """
        Datagrams queued while no read was pending are delivered in order,
        each with its sender.
        """
        controller, _, _ = make()
        controller.datagramReceived(b"one", CLIENT)
        controller.datagramReceived(b"two", OTHER)
        self.assertEqual(
            self.successResultOf(controller.start_reading()),
            (Accepted(b"one"), IPv4Address("UDP", *CLIENT)),
        )
        self.assertEqual(
            self.successResultOf(controller.start_reading()),
            (Accepted(b"two"), IPv4Address("UDP", *OTHER)),
        )
        self.assertNoResult(controller.start_reading())

    def test_overflow_count(self) -> None:
        """
        Past C{max_queued_datagrams} datagrams are dropped and counted.
        """
        controller, _, _ = make(max_queued_datagrams=2)
        for i in range(5):
            controller.datagramReceived(b"d%d" % i, CLIENT)
        self.assertEqual(controller.stats["queue_overflow"], 3)
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"d0"))
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"d1"))
        self.assertNoResult(controller.start_reading())

    def test_overflow_bytes(self) -> None:
        """
        Past C{max_queued_bytes} datagrams are dropped and counted; a
        smaller one that still fits is kept.
        """
        controller, _, _ = make(max_queued_bytes=10)
        controller.datagramReceived(b"x" * 6, CLIENT)
        controller.datagramReceived(b"y" * 5, CLIENT)
        controller.datagramReceived(b"z" * 4, CLIENT)
        self.assertEqual(controller.stats["queue_overflow"], 1)
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"x" * 6))
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"z" * 4))

    def test_cancel_keeps_queue(self) -> None:
        """
        C{cancel_rd_polling} fails the pending read with C{CancelledError}
        and keeps what is queued for the next read.
        """
        controller, _, _ = make()
        d = controller.start_reading()
        controller.cancel_rd_polling()
        self.failureResultOf(d, CancelledError)
        controller.datagramReceived(b"kept", CLIENT)
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"kept"))

    def test_deferred_cancel(self) -> None:
        """
        Cancelling the read's Deferred is C{cancel_rd_polling}.
        """
        controller, _, _ = make()
        d = controller.start_reading()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertFalse(controller.reading)

    def test_busy(self) -> None:
        """
        A second read while one is pending raises L{ControllerBusy}.
        """
        controller, _, _ = make()
        controller.start_reading()
        self.assertRaises(ControllerBusy, controller.start_reading)

    def test_read_from_callback(self) -> None:
        """
        A read started from a read's callback is served from the queue.
        """
        controller, _, _ = make()
        got: list[object] = []

        def again(result: tuple[object, object]) -> None:
            got.append(result[0])
            if len(got) < 3:
                controller.start_reading().addCallback(again)

        controller.datagramReceived(b"a", CLIENT)
        controller.datagramReceived(b"b", CLIENT)
        controller.datagramReceived(b"c", CLIENT)
        controller.start_reading().addCallback(again)
        self.assertEqual(got, [Accepted(b"a"), Accepted(b"b"), Accepted(b"c")])


class ClientFormTests(SynchronousTestCase):
    """
    A controller with a fixed peer talks to it only.
    """

    def test_stranger_ignored(self) -> None:
        """
        Datagrams from any other address are ignored and counted.
        """
        controller, _, _ = make(peer=SERVER)
        d = controller.start_reading()
        controller.datagramReceived(b"spoof", OTHER)
        controller.datagramReceived(b"spoof", (SERVER[0], SERVER[1] + 1))
        self.assertNoResult(d)
        controller.datagramReceived(b"reply", SERVER)
        self.assertEqual(
            self.successResultOf(d), (Accepted(b"reply"), IPv4Address("UDP", *SERVER))
        )
        self.assertEqual(controller.stats["from_strangers"], 2)
        self.assertEqual(controller.stats["datagrams_in"], 3)

    def test_implied(self) -> None:
        """
        C{IMPLIED} sends to the peer.
        """
        controller, port, _ = make(peer=SERVER)
        self.successResultOf(controller.start_writing(b"call"))
        self.assertEqual(port.written, [(b"call", SERVER)])

    def test_explicit_peer(self) -> None:
        """
        The peer may be named, as a Twisted address or a tuple.
        """
        controller, port, _ = make(peer=SERVER)
        self.successResultOf(controller.start_writing(b"a", IPv4Address("UDP", *SERVER)))
        self.successResultOf(controller.start_writing(b"b", SERVER))
        self.assertEqual(port.written, [(b"a", SERVER), (b"b", SERVER)])

    def test_other_address(self) -> None:
        """
        Any other address raises L{AddressMismatch} and sends nothing.
        """
        controller, port, _ = make(peer=SERVER)
        self.assertRaises(AddressMismatch, controller.start_writing, b"x", OTHER)
        self.assertEqual(port.written, [])


class WriteTests(SynchronousTestCase):
    """
    Writes on a socket with no fixed peer.
    """

    def test_implied_needs_peer(self) -> None:
        """
        C{IMPLIED} on a socket with no fixed peer raises L{AddressRequired},
        which says why.
        """
        controller, port, _ = make()
        e = self.assertRaises(AddressRequired, controller.start_writing, b"x")
        self.assertIn("no fixed peer", str(e))
        self.assertIn("IMPLIED", str(e))
        self.assertEqual(port.written, [])

    def test_explicit(self) -> None:
        """
        A write completes at once and is counted; the address may be a
        tuple or a Twisted address.
        """
        controller, port, _ = make()
        self.assertIsNone(self.successResultOf(controller.start_writing(b"abc", CLIENT)))
        self.successResultOf(controller.start_writing(b"de", IPv4Address("UDP", *OTHER)))
        self.assertEqual(port.written, [(b"abc", CLIENT), (b"de", OTHER)])
        self.assertEqual(controller.stats["datagrams_out"], 2)
        self.assertEqual(controller.stats["bytes_out"], 5)
        self.assertFalse(controller.writing)

    def test_pieces(self) -> None:
        """
        A sequence of bytes-like pieces goes out as one datagram.
        """
        controller, port, _ = make()
        self.successResultOf(
            controller.start_writing([b"ab", bytearray(b"cd"), memoryview(b"ef")], CLIENT)
        )
        self.successResultOf(controller.start_writing(bytearray(b"gh"), CLIENT))
        self.assertEqual(port.written, [(b"abcdef", CLIENT), (b"gh", CLIENT)])
        self.assertIs(type(port.written[1][0]), bytes)

    def test_bad_addresses(self) -> None:
        """
        A host name, an address of the other family, or something that is
        not an address is refused at once.
        """
        controller, port, _ = make()
        self.assertRaises(InvalidAddressError, controller.start_writing, b"x", ("localhost", 9))
        self.assertRaises(InvalidAddressError, controller.start_writing, b"x", ("::1", 9))
        self.assertRaises(TypeError, controller.start_writing, b"x", "127.0.0.1:9")
        controller6, _, _ = make(inet6=True)
        self.assertRaises(InvalidAddressError, controller6.start_writing, b"x", CLIENT)
        self.assertEqual(port.written, [])

    def test_ipv6_scope(self) -> None:
        """
        An C{IPv6Address} with a scope keeps it for the kernel.
        """
        controller, port, _ = make(inet6=True)
        self.successResultOf(
            controller.start_writing(b"x", IPv6Address("UDP", "fe80::1", 9, scopeID=2))
        )
        self.assertEqual(port.written, [(b"x", ("fe80::1", 9, 0, 2))])

    def test_too_large_ipv4(self) -> None:
        """
        Over IPv4 a message of 65507 bytes goes out; one more byte raises
        L{DatagramTooLarge}, which gives the numbers, and nothing is sent.
        """
        controller, port, _ = make()
        self.successResultOf(controller.start_writing(b"x" * MAX_UDP_PAYLOAD_IPV4, CLIENT))
        e = self.assertRaises(
            DatagramTooLarge, controller.start_writing, b"x" * (MAX_UDP_PAYLOAD_IPV4 + 1), CLIENT
        )
        self.assertEqual((e.size, e.limit), (65508, 65507))
        self.assertIn("65508", str(e))
        self.assertIn("65507", str(e))
        self.assertEqual(len(port.written), 1)

    def test_too_large_ipv6(self) -> None:
        """
        Over IPv6 the limit is 65527 bytes.
        """
        controller, port, _ = make(inet6=True)
        self.assertEqual(controller.max_datagram_size, MAX_UDP_PAYLOAD_IPV6)
        self.successResultOf(controller.start_writing(b"x" * 65527, ("::1", 9)))
        self.assertRaises(DatagramTooLarge, controller.start_writing, b"x" * 65528, ("::1", 9))
        self.assertEqual(len(port.written), 1)

    def test_too_large_record_limit(self) -> None:
        """
        A smaller C{max_record_size} bounds what is sent too.
        """
        controller, port, _ = make(max_record_size=10)
        e = self.assertRaises(DatagramTooLarge, controller.start_writing, b"x" * 11, CLIENT)
        self.assertEqual(e.limit, 10)
        self.assertIn("max_record_size", str(e))
        self.assertEqual(port.written, [])

    def test_socket_errors(self) -> None:
        """
        C{EAGAIN} and C{ENOBUFS} fail the write's Deferred, keep their errno,
        name the destination, and are counted; nothing is raised.
        """
        controller, port, _ = make()
        for number in (errno.EAGAIN, errno.ENOBUFS):
            port.write_error = OSError(number, "nope")
            f = self.failureResultOf(controller.start_writing(b"x", CLIENT), OSError)
            self.assertEqual(f.value.errno, number)
            self.assertIn("127.0.0.1:40000", str(f.value))
        self.assertEqual(controller.stats["errors"], 2)
        self.assertEqual(controller.stats["datagrams_out"], 0)
        self.successResultOf(controller.start_writing(b"y", CLIENT))


class SocketErrorTests(SynchronousTestCase):
    """
    Errors the socket reports about earlier datagrams fail the pending read,
    or the next read or write.
    """

    def refused(self) -> ConnectionRefusedError:
        return ConnectionRefusedError(string="the datagram sent to 127.0.0.1:9 failed")

    def test_fails_pending_read(self) -> None:
        """
        With a read pending, the error fails it.
        """
        controller, _, _ = make()
        d = controller.start_reading()
        controller.errorReceived(self.refused(), ("127.0.0.1", 9))
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(controller.stats["errors"], 1)
        self.assertTrue(controller.alive)

    def test_fails_next_write(self) -> None:
        """
        With no read pending, the error fails the next write, which sends
        nothing; the write after that goes out.
        """
        controller, port, _ = make()
        controller.errorReceived(self.refused(), ("127.0.0.1", 9))
        self.failureResultOf(controller.start_writing(b"x", CLIENT), ConnectionRefusedError)
        self.assertEqual(port.written, [])
        self.successResultOf(controller.start_writing(b"y", CLIENT))
        self.assertEqual(port.written, [(b"y", CLIENT)])

    def test_fails_next_read_after_queue(self) -> None:
        """
        With no read pending, datagrams queued before are read first, then
        the error fails a read; only the first error is kept.
        """
        controller, _, _ = make()
        controller.datagramReceived(b"before", CLIENT)
        controller.errorReceived(self.refused(), ("127.0.0.1", 9))
        controller.errorReceived(ConnectionRefusedError(string="second"), ("127.0.0.1", 10))
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"before"))
        f = self.failureResultOf(controller.start_reading(), ConnectionRefusedError)
        self.assertIn("127.0.0.1:9", str(f.value))
        self.assertNoResult(controller.start_reading())
        self.assertEqual(controller.stats["errors"], 2)

    def test_port_lost(self) -> None:
        """
        When the port goes away under the controller, the pending read fails
        with the reason, later reads fail after what was queued, writes
        fail, and the controller is no longer alive.
        """
        controller, port, _ = make()
        controller.datagramReceived(b"queued", CLIENT)
        controller.datagramReceived(b"queued2", CLIENT)
        self.successResultOf(controller.start_reading())
        controller.portFailed(Failure(ConnectionLost("shut down under us")))
        port.stopListening()
        self.assertFalse(controller.alive)
        self.assertTrue(controller.read_eof)
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"queued2"))
        f = self.failureResultOf(controller.start_reading(), ConnectionLost)
        self.assertIn("shut down under us", str(f.value))
        self.failureResultOf(controller.start_writing(b"x", CLIENT), ConnectionLost)
        self.failureResultOf(controller.start_shutting_down(), ConnectionLost)
        self.successResultOf(controller.when_closed())

    def test_port_closed_pending_read(self) -> None:
        """
        A port closed without a reason fails the pending read with
        C{ConnectionLost}.
        """
        controller, port, _ = make()
        d = controller.start_reading()
        port.stopListening()
        self.failureResultOf(d, ConnectionLost)


class LifeTests(SynchronousTestCase):
    """
    Timeouts, shutdown, abort and inactivation.
    """

    def test_timeout(self) -> None:
        """
        A read pending for the timeout calls C{notify()} once; a datagram
        re-arms it; with no read pending it never fires.
        """
        controller, _, clock = make()
        calls: list[None] = []
        controller.set_timeout(lambda: calls.append(None), 10)
        clock.advance(20)
        self.assertEqual(calls, [])
        controller.start_reading()
        clock.advance(9)
        controller.datagramReceived(b"x", CLIENT)
        controller.start_reading()
        clock.advance(9)
        self.assertEqual(calls, [])
        clock.advance(1)
        self.assertEqual(calls, [None])
        clock.advance(100)
        self.assertEqual(calls, [None])

    def test_shutdown(self) -> None:
        """
        A shutdown succeeds at once: the pending read fails with
        C{ConnectionDone}, C{read_eof} is true, the queue is dropped, the
        socket is no longer read, later reads and writes raise
        L{ControllerInactive}; the socket stays open.
        """
        controller, port, _ = make()
        controller.datagramReceived(b"queued", CLIENT)
        d0 = controller.start_reading()
        self.successResultOf(d0)
        d = controller.start_reading()
        self.successResultOf(controller.start_shutting_down())
        self.failureResultOf(d, ConnectionDone)
        self.assertTrue(controller.read_eof)
        self.assertFalse(port.reading)
        self.assertFalse(port.stopped)
        self.assertTrue(controller.alive)
        self.assertRaises(ControllerInactive, controller.start_reading)
        self.assertRaises(ControllerInactive, controller.start_writing, b"x", CLIENT)
        controller.cancel_shutting_down()
        self.successResultOf(controller.start_shutting_down())

    def test_abort_rw(self) -> None:
        """
        After C{abort_rw()} the pending read never fires, reads and writes
        raise L{ControllerInactive}, the socket is no longer read; shutdown
        and C{inactivate()} remain allowed.
        """
        controller, port, _ = make()
        controller.datagramReceived(b"queued", CLIENT)
        d = controller.start_reading()
        self.successResultOf(d)
        d = controller.start_reading()
        controller.abort_rw()
        controller.datagramReceived(b"late", CLIENT)
        self.assertNoResult(d)
        self.assertFalse(port.reading)
        self.assertRaises(ControllerInactive, controller.start_reading)
        self.assertRaises(ControllerInactive, controller.start_writing, b"x", CLIENT)
        self.successResultOf(controller.start_shutting_down())
        controller.inactivate()
        self.assertTrue(port.stopped)

    def test_inactivate(self) -> None:
        """
        C{inactivate()} calls C{preclose()}, closes the port, fires nothing
        afterwards, makes every operation raise, and may be called again.
        """
        closes: list[None] = []
        controller, port, clock = make(preclose=lambda: closes.append(None))
        calls: list[None] = []
        controller.set_timeout(lambda: calls.append(None), 1)
        d = controller.start_reading()
        controller.inactivate()
        self.assertEqual(closes, [None])
        self.assertTrue(port.stopped)
        self.assertFalse(controller.alive)
        self.assertIsNone(controller.file_descr)
        self.assertIs(controller.getsockname(), IMPLIED)
        controller.datagramReceived(b"late", CLIENT)
        controller.errorReceived(ConnectionRefusedError(), CLIENT)
        clock.advance(10)
        self.assertNoResult(d)
        self.assertEqual(calls, [])
        self.assertRaises(ControllerInactive, controller.start_reading)
        self.assertRaises(ControllerInactive, controller.start_writing, b"x", CLIENT)
        self.assertRaises(ControllerInactive, controller.start_shutting_down)
        controller.inactivate()
        self.assertEqual(closes, [None])
        self.successResultOf(controller.when_closed())

    def test_inactivate_keep_descriptor(self) -> None:
        """
        With C{close_inactive_descr} false, C{preclose()} is not called.
        """
        closes: list[None] = []
        controller, port, _ = make(
            close_inactive_descr=False, preclose=lambda: closes.append(None)
        )
        controller.inactivate()
        self.assertEqual(closes, [])
        self.assertTrue(port.stopped)

    def test_preclose_raises(self) -> None:
        """
        A failing C{preclose()} is logged; the socket is closed anyway.
        """

        def preclose() -> None:
            raise ZeroDivisionError("preclose")

        controller, port, _ = make(preclose=preclose)
        controller.inactivate()
        self.assertTrue(port.stopped)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
