# -*- test-case-name: rpctransport.test.test_datagram -*-
"""
Tests of L{rpctransport.adapters.datagram.DatagramController} on a fake UDP
port and a L{Clock}: rules, the queue, addresses, limits, errors, timeouts
and the life cycle, without sockets. The real-socket tests are in
L{rpctransport.test.test_datagram_sockets}.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    InvalidAddressError,
    MessageLengthError,
    NoRouteError,
)
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from rpctransport.adapters.recverr import ErrorQueuePort
from rpctransport.adapters.datagram import (
    DEFAULT_DATAGRAM_MAX_RECORD_SIZE,
    MAX_UDP_PAYLOAD_IPV4,
    MAX_UDP_PAYLOAD_IPV6,
    PEER_ERROR_LOG_INTERVAL,
    STAT_KEYS,
    DatagramController,
)
from rpctransport.interfaces import IRpcMultiplexController
from rpctransport.sansio.counters import Counters
from rpctransport.sansio.errors import (
    AddressMismatch,
    AddressRequired,
    ControllerBusy,
    ControllerInactive,
    DatagramTooLarge,
    LocalProtocolError,
    NotConnected,
    SendFailed,
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
from rpctransport.test.helpers import FakePort, Hook, make_datagram, refused

CLIENT = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40001)
SERVER = ("127.0.0.1", 111)


class FakeSocket:
    """
    The C{sendto} of a socket, failing with the errors it is given, one per
    call, then sending; no error queue, no pending error.

    @ivar sent: C{(datagram, addr)} for each datagram sent.
    @ivar attempts: calls of C{sendto}.
    """

    def __init__(self, errors: list[OSError]) -> None:
        self.errors = errors
        self.sent: list[tuple[bytes, Any]] = []
        self.attempts = 0

    def sendto(self, datagram: bytes, addr: Any) -> int:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((datagram, addr))
        return len(datagram)

    def getsockopt(self, level: int, name: int) -> int:
        return 0

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 5000)


class ContractTests(SynchronousTestCase):
    """
    The controller provides the contract and says what it is.
    """

    def test_verify_object(self) -> None:
        """
        A datagram controller provides L{IRpcMultiplexController}.
        """
        controller, _, _ = make_datagram()
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
        controller, _, _ = make_datagram()
        self.assertEqual(controller.getsockname(), IPv4Address("UDP", "127.0.0.1", 5000))

    def test_getpeername_server(self) -> None:
        """
        A socket with no fixed peer raises L{NotConnected} for
        C{getpeername()}.
        """
        controller, _, _ = make_datagram()
        self.assertRaises(NotConnected, controller.getpeername)

    def test_getpeername_client(self) -> None:
        """
        The client form's peer is its server, as a Twisted address of type
        UDP, in the canonical form of the address.
        """
        controller, _, _ = make_datagram(peer=SERVER)
        self.assertEqual(controller.getpeername(), IPv4Address("UDP", *SERVER))
        controller6, _, _ = make_datagram(inet6=True, peer=("0:0:0:0:0:0:0:1", 111))
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
        controller, _, _ = make_datagram()
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
        controller, _, _ = make_datagram()
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
        controller, _, _ = make_datagram()
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
        controller, _, _ = make_datagram(inet6=True)
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
        controller, _, _ = make_datagram()
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
        controller, port, _ = make_datagram()

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
        controller, _, _ = make_datagram()
        not_a_rule: Any = lambda size, peer: "yes"
        d = controller.start_reading(before_record=not_a_rule)
        controller.datagramReceived(b"abcd", CLIENT)
        self.failureResultOf(d, TypeError)
        self.flushLoggedErrors(TypeError)

    def test_cancel_from_hook(self) -> None:
        """
        C{cancel_rd_polling} from inside C{before_record} is refused.
        """
        controller, _, _ = make_datagram()
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
        controller, _, _ = make_datagram()

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
        controller, _, _ = make_datagram(max_record_size=100)
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
        controller, _, _ = make_datagram(max_record_size=1 << 20)
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
        controller, _, _ = make_datagram()
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
        controller, _, _ = make_datagram(max_queued_datagrams=2)
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
        controller, _, _ = make_datagram(max_queued_bytes=10)
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
        controller, _, _ = make_datagram()
        d = controller.start_reading()
        controller.cancel_rd_polling()
        self.failureResultOf(d, CancelledError)
        controller.datagramReceived(b"kept", CLIENT)
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"kept"))

    def test_deferred_cancel(self) -> None:
        """
        Cancelling the read's Deferred is C{cancel_rd_polling}.
        """
        controller, _, _ = make_datagram()
        d = controller.start_reading()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertFalse(controller.reading)

    def test_busy(self) -> None:
        """
        A second read while one is pending raises L{ControllerBusy}.
        """
        controller, _, _ = make_datagram()
        controller.start_reading()
        self.assertRaises(ControllerBusy, controller.start_reading)

    def test_read_from_callback(self) -> None:
        """
        A read started from a read's callback is served from the queue.
        """
        controller, _, _ = make_datagram()
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
        controller, _, _ = make_datagram(peer=SERVER)
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
        controller, port, _ = make_datagram(peer=SERVER)
        self.successResultOf(controller.start_writing(b"call"))
        self.assertEqual(port.written, [(b"call", SERVER)])

    def test_explicit_peer(self) -> None:
        """
        The peer may be named, as a Twisted address or a tuple.
        """
        controller, port, _ = make_datagram(peer=SERVER)
        self.successResultOf(controller.start_writing(b"a", IPv4Address("UDP", *SERVER)))
        self.successResultOf(controller.start_writing(b"b", SERVER))
        self.assertEqual(port.written, [(b"a", SERVER), (b"b", SERVER)])

    def test_other_address(self) -> None:
        """
        Any other address raises L{AddressMismatch} and sends nothing.
        """
        controller, port, _ = make_datagram(peer=SERVER)
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
        controller, port, _ = make_datagram()
        e = self.assertRaises(AddressRequired, controller.start_writing, b"x")
        self.assertIn("no fixed peer", str(e))
        self.assertIn("IMPLIED", str(e))
        self.assertEqual(port.written, [])

    def test_explicit(self) -> None:
        """
        A write completes at once and is counted; the address may be a
        tuple or a Twisted address.
        """
        controller, port, _ = make_datagram()
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
        controller, port, _ = make_datagram()
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
        controller, port, _ = make_datagram()
        self.assertRaises(InvalidAddressError, controller.start_writing, b"x", ("localhost", 9))
        self.assertRaises(InvalidAddressError, controller.start_writing, b"x", ("::1", 9))
        self.assertRaises(TypeError, controller.start_writing, b"x", "127.0.0.1:9")
        controller6, _, _ = make_datagram(inet6=True)
        self.assertRaises(InvalidAddressError, controller6.start_writing, b"x", CLIENT)
        self.assertEqual(port.written, [])

    def test_ipv6_scope(self) -> None:
        """
        An C{IPv6Address} with a scope keeps it for the kernel.
        """
        controller, port, _ = make_datagram(inet6=True)
        self.successResultOf(
            controller.start_writing(b"x", IPv6Address("UDP", "fe80::1", 9, scopeID=2))
        )
        self.assertEqual(port.written, [(b"x", ("fe80::1", 9, 0, 2))])

    def test_too_large_ipv4(self) -> None:
        """
        Over IPv4 a message of 65507 bytes goes out; one more byte raises
        L{DatagramTooLarge}, which gives the numbers, and nothing is sent.
        """
        controller, port, _ = make_datagram()
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
        controller, port, _ = make_datagram(inet6=True)
        self.assertEqual(controller.max_datagram_size, MAX_UDP_PAYLOAD_IPV6)
        self.successResultOf(controller.start_writing(b"x" * 65527, ("::1", 9)))
        self.assertRaises(DatagramTooLarge, controller.start_writing, b"x" * 65528, ("::1", 9))
        self.assertEqual(len(port.written), 1)

    def test_too_large_record_limit(self) -> None:
        """
        A smaller C{max_record_size} bounds what is sent too.
        """
        controller, port, _ = make_datagram(max_record_size=10)
        e = self.assertRaises(DatagramTooLarge, controller.start_writing, b"x" * 11, CLIENT)
        self.assertEqual(e.limit, 10)
        self.assertIn("max_record_size", str(e))
        self.assertEqual(port.written, [])

    def test_socket_errors(self) -> None:
        """
        C{EAGAIN} and C{ENOBUFS} fail the write's Deferred with
        L{SendFailed}, which keeps the errno and names the destination, and
        are counted; nothing is raised, and the next write goes out.
        """
        controller, port, _ = make_datagram()
        for number in (errno.EAGAIN, errno.ENOBUFS):
            port.write_error = OSError(number, "nope")
            f = self.failureResultOf(controller.start_writing(b"x", CLIENT), SendFailed)
            self.assertEqual(f.value.errno, number)
            self.assertEqual(f.value.address, IPv4Address("UDP", *CLIENT))
            self.assertIn("to 127.0.0.1:40000:", str(f.value))
            self.assertIn(errno.errorcode[number], str(f.value))
        self.assertEqual(controller.stats["errors"], 2)
        self.assertEqual(controller.stats["datagrams_out"], 0)
        self.assertEqual(
            dict(controller.counters), {"udp.send.EAGAIN": 1, "udp.send.ENOBUFS": 1}
        )
        self.successResultOf(controller.start_writing(b"y", CLIENT))

    def test_refused_for_one_address(self) -> None:
        """
        A C{sendto} refused for one destination (C{EINVAL} for port 0,
        C{ENETUNREACH}, C{EHOSTUNREACH}, C{EACCES}, C{EPERM}) fails that
        write alone with L{SendFailed}, carrying the address and the errno:
        the pending read stays pending, the controller alive, and the next
        write goes out.
        """
        controller, port, _ = make_datagram()
        reading = controller.start_reading()
        dead = ("127.0.0.1", 0)
        refusals = (errno.EINVAL, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES, errno.EPERM)
        for number in refusals:
            port.write_error = OSError(number, os.strerror(number))
            f = self.failureResultOf(controller.start_writing(b"reply", dead), SendFailed)
            self.assertEqual((f.value.address, f.value.errno), (IPv4Address("UDP", *dead), number))
            self.assertIn("5 bytes", str(f.value))
        self.assertNoResult(reading)
        self.assertTrue(controller.alive)
        self.assertEqual(controller.counters["udp.send.EINVAL"], 1)
        self.successResultOf(controller.start_writing(b"next", CLIENT))
        controller.datagramReceived(b"call", CLIENT)
        self.assertEqual(self.successResultOf(reading)[0], Accepted(b"call"))

    def test_message_length_error(self) -> None:
        """
        Twisted's own C{MessageLengthError} (a plain port's C{EMSGSIZE})
        fails the write with L{SendFailed} and C{EMSGSIZE}.
        """
        controller, port, _ = make_datagram()
        port.write_error = MessageLengthError("message too long")
        f = self.failureResultOf(controller.start_writing(b"x", CLIENT), SendFailed)
        self.assertEqual(f.value.errno, errno.EMSGSIZE)
        self.assertEqual(controller.counters["udp.send.EMSGSIZE"], 1)

    def test_socket_unusable(self) -> None:
        """
        C{EBADF} says the socket itself is gone: the write fails with the
        C{OSError}, not L{SendFailed}, naming the destination.
        """
        controller, port, _ = make_datagram()
        port.write_error = OSError(errno.EBADF, "Bad file descriptor")
        f = self.failureResultOf(controller.start_writing(b"x", CLIENT), OSError)
        self.assertEqual(f.value.errno, errno.EBADF)
        self.assertIn("127.0.0.1:40000", str(f.value))
        self.assertEqual(dict(controller.counters), {})


class PeerErrorTests(SynchronousTestCase):
    """
    On a server socket (no fixed peer), an error about an earlier datagram
    concerns one peer among many: it is counted, logged and offered to
    C{on_peer_error}, and never fails a read or a write.
    """

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def logged(self, level: LogLevel) -> list[str]:
        return [
            formatEvent(e)
            for e in self.events
            if e.get("log_level") is level
            and e.get("log_namespace", "").endswith("DatagramController")
        ]

    def test_read_not_failed(self) -> None:
        """
        With a read pending, an ICMP port unreachable leaves it pending; the
        next datagram is delivered to it, and the controller stays alive.
        """
        controller, _, _ = make_datagram()
        reading = controller.start_reading()
        controller.errorReceived(refused(), ("127.0.0.1", 9), errno.ECONNREFUSED)
        self.assertNoResult(reading)
        self.assertTrue(controller.alive)
        controller.datagramReceived(b"call", CLIENT)
        self.assertEqual(
            self.successResultOf(reading), (Accepted(b"call"), IPv4Address("UDP", *CLIENT))
        )

    def test_not_kept(self) -> None:
        """
        With no read pending, the error is not kept: the next write goes
        out and the next read waits for a datagram.
        """
        controller, port, _ = make_datagram()
        controller.errorReceived(refused(), ("127.0.0.1", 9), errno.ECONNREFUSED)
        self.successResultOf(controller.start_writing(b"x", CLIENT))
        self.assertEqual(port.written, [(b"x", CLIENT)])
        self.assertNoResult(controller.start_reading())

    def test_counted_per_kind(self) -> None:
        """
        Each error is counted in C{counters} under C{udp.<errno name>} (and
        in C{stats["errors"]}); without an errno the kind comes from the
        error's type; a parent's counters count the same.
        """
        parent = Counters()
        controller, _, _ = make_datagram(counters_parent=parent)
        for _ in range(3):
            controller.errorReceived(refused(), ("127.0.0.1", 9), errno.ECONNREFUSED)
        no_route = NoRouteError(string="no route")
        controller.errorReceived(no_route, ("127.0.0.1", 9), errno.ENETUNREACH)
        controller.errorReceived(refused(), None)
        controller.errorReceived(NoRouteError(string="no route"), None)
        expected = {"udp.ECONNREFUSED": 4, "udp.ENETUNREACH": 1, "udp.EHOSTUNREACH": 1}
        self.assertEqual(dict(controller.counters), expected)
        self.assertEqual(dict(parent.view), expected)
        self.assertEqual(controller.stats["errors"], 6)

    def test_counters_read_only(self) -> None:
        """
        C{counters} is a read-only mapping that follows the counts.
        """
        controller, _, _ = make_datagram()
        counters = controller.counters
        self.assertIsInstance(counters, Mapping)
        with self.assertRaises(TypeError):
            counters["udp.ECONNREFUSED"] = 5  # type: ignore[index]
        controller.errorReceived(refused(), None, errno.ECONNREFUSED)
        self.assertEqual(counters["udp.ECONNREFUSED"], 1)

    def test_callback(self) -> None:
        """
        C{on_peer_error} gets each error with the address the datagram was
        sent to, as a Twisted address (L{None} when unknown).
        """
        seen: list[tuple[Exception, object]] = []
        controller, _, _ = make_datagram(on_peer_error=lambda e, a: seen.append((e, a)))
        first, second = refused(9), refused(10)
        controller.errorReceived(first, ("127.0.0.1", 9), errno.ECONNREFUSED)
        controller.errorReceived(second, None, errno.ECONNREFUSED)
        self.assertEqual(seen, [(first, IPv4Address("UDP", "127.0.0.1", 9)), (second, None)])
        controller6, _, _ = make_datagram(inet6=True, on_peer_error=lambda e, a: seen.append((e, a)))
        controller6.errorReceived(first, ("::1", 9, 0, 0), errno.ECONNREFUSED)
        self.assertEqual(seen[-1][1], IPv6Address("UDP", "::1", 9))

    def test_callback_raises(self) -> None:
        """
        What C{on_peer_error} raises is logged, never propagated; the
        controller goes on.
        """

        def broken(error: Exception, address: object) -> None:
            raise RuntimeError("broken callback")

        controller, _, _ = make_datagram(on_peer_error=broken)
        reading = controller.start_reading()
        controller.errorReceived(refused(), ("127.0.0.1", 9), errno.ECONNREFUSED)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertNoResult(reading)
        self.assertTrue(controller.alive)

    def test_callback_inactivates(self) -> None:
        """
        A callback that inactivates the controller ends the handling of the
        error there.
        """
        controller: DatagramController
        controller, _, _ = make_datagram(on_peer_error=lambda e, a: controller.inactivate())
        controller.errorReceived(refused(), ("127.0.0.1", 9), errno.ECONNREFUSED)
        self.assertFalse(controller.alive)
        controller.errorReceived(refused(), ("127.0.0.1", 9), errno.ECONNREFUSED)
        self.assertEqual(controller.counters["udp.ECONNREFUSED"], 1)

    def test_log_rate_limited(self) -> None:
        """
        The first error of a kind is logged at info level, naming the
        address; the others within L{PEER_ERROR_LOG_INTERVAL} at debug
        level; the next info line says how many there were meanwhile. Each
        kind has its own interval.
        """
        controller, _, clock = make_datagram()
        for port in range(100, 200):
            controller.errorReceived(refused(port), ("127.0.0.1", port), errno.ECONNREFUSED)
        controller.errorReceived(NoRouteError(string="to 127.0.0.1:7"), None, errno.EHOSTUNREACH)
        info = self.logged(LogLevel.info)
        self.assertEqual(len(info), 2, info)
        self.assertIn("127.0.0.1:100", info[0])
        self.assertIn("ECONNREFUSED: 1 on this socket, 0 since", info[0])
        self.assertIn("EHOSTUNREACH", info[1])
        self.assertEqual(len(self.logged(LogLevel.debug)), 99)
        clock.advance(PEER_ERROR_LOG_INTERVAL - 1)
        controller.errorReceived(refused(200), ("127.0.0.1", 200), errno.ECONNREFUSED)
        self.assertEqual(len(self.logged(LogLevel.info)), 2)
        clock.advance(1)
        controller.errorReceived(refused(201), ("127.0.0.1", 201), errno.ECONNREFUSED)
        info = self.logged(LogLevel.info)
        self.assertEqual(len(info), 3)
        self.assertIn("127.0.0.1:201", info[2])
        self.assertIn("ECONNREFUSED: 102 on this socket, 100 since the last", info[2])


class ClientSocketErrorTests(SynchronousTestCase):
    """
    On a client socket (one fixed peer, its server), an error about an
    earlier datagram fails the pending read, or the next read or write; it
    is counted and offered to C{on_peer_error} too.
    """

    def test_fails_pending_read(self) -> None:
        """
        With a read pending, the error fails it; it is counted.
        """
        seen: list[object] = []
        controller, _, _ = make_datagram(peer=SERVER, on_peer_error=lambda e, a: seen.append(a))
        d = controller.start_reading()
        controller.errorReceived(refused(111), SERVER, errno.ECONNREFUSED)
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(controller.stats["errors"], 1)
        self.assertEqual(dict(controller.counters), {"udp.ECONNREFUSED": 1})
        self.assertEqual(seen, [IPv4Address("UDP", *SERVER)])
        self.assertTrue(controller.alive)

    def test_logged_at_debug(self) -> None:
        """
        The error reaches the caller through the read, so it is logged at
        debug level only.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        controller, _, _ = make_datagram(peer=SERVER)
        d = controller.start_reading()
        controller.errorReceived(refused(111), SERVER, errno.ECONNREFUSED)
        self.failureResultOf(d, ConnectionRefusedError)
        namespace = "DatagramController"
        levels = [e["log_level"] for e in events if namespace in e.get("log_namespace", "")]
        self.assertEqual(levels, [LogLevel.debug])

    def test_fails_next_write(self) -> None:
        """
        With no read pending, the error fails the next write, which sends
        nothing; the write after that goes out.
        """
        controller, port, _ = make_datagram(peer=SERVER)
        controller.errorReceived(refused(111), SERVER)
        self.failureResultOf(controller.start_writing(b"x"), ConnectionRefusedError)
        self.assertEqual(port.written, [])
        self.successResultOf(controller.start_writing(b"y"))
        self.assertEqual(port.written, [(b"y", SERVER)])

    def test_fails_next_read_after_queue(self) -> None:
        """
        With no read pending, datagrams queued before are read first, then
        the error fails a read; only the first error is kept.
        """
        controller, _, _ = make_datagram(peer=SERVER)
        controller.datagramReceived(b"before", SERVER)
        controller.errorReceived(refused(111), SERVER)
        controller.errorReceived(ConnectionRefusedError(string="second"), SERVER)
        self.assertEqual(self.successResultOf(controller.start_reading())[0], Accepted(b"before"))
        f = self.failureResultOf(controller.start_reading(), ConnectionRefusedError)
        self.assertIn("127.0.0.1:111", str(f.value))
        self.assertNoResult(controller.start_reading())
        self.assertEqual(controller.stats["errors"], 2)


class PortWriteTests(SynchronousTestCase):
    """
    The port's C{write} tells an error about an earlier datagram, which
    Linux reports from the next C{sendto}, from a refusal of this one.
    """

    def port(self, *errors: OSError) -> tuple[ErrorQueuePort, FakeSocket, DatagramController]:
        controller = DatagramController(Clock())
        port = ErrorQueuePort(0, controller, "127.0.0.1", 100, Clock())
        sock = FakeSocket(list(errors))
        port.socket = sock
        controller.makeConnection(port)
        return port, sock, controller

    def test_earlier_error_then_sent(self) -> None:
        """
        A C{sendto} that fails with C{ECONNREFUSED} (about an earlier
        datagram, whose details the error queue no longer has) is sent
        again; the error goes to the protocol without an address.
        """
        port, sock, controller = self.port(OSError(errno.ECONNREFUSED, "refused"))
        port.write(b"reply", ("127.0.0.1", 40000))
        self.assertEqual(sock.sent, [(b"reply", ("127.0.0.1", 40000))])
        self.assertEqual(dict(controller.counters), {"udp.ECONNREFUSED": 1})

    def test_own_refusal(self) -> None:
        """
        A C{sendto} that fails twice with C{ENETUNREACH} concerns this
        datagram: the port raises it and reports nothing else.
        """
        error = OSError(errno.ENETUNREACH, "Network is unreachable")
        port, sock, controller = self.port(error, error)
        e = self.assertRaises(OSError, port.write, b"reply", ("10.0.0.1", 9))
        self.assertEqual(e.errno, errno.ENETUNREACH)
        self.assertEqual(sock.sent, [])
        self.assertEqual(dict(controller.counters), {})

    def test_port_zero(self) -> None:
        """
        C{EINVAL} (port 0) is raised at once, without a second try.
        """
        port, sock, _ = self.port(OSError(errno.EINVAL, "Invalid argument"))
        e = self.assertRaises(OSError, port.write, b"reply", ("127.0.0.1", 0))
        self.assertEqual(e.errno, errno.EINVAL)
        self.assertEqual(sock.attempts, 1)


    def test_port_lost(self) -> None:
        """
        When the port goes away under the controller, the pending read fails
        with the reason, later reads fail after what was queued, writes
        fail, and the controller is no longer alive.
        """
        controller, port, _ = make_datagram()
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
        controller, port, _ = make_datagram()
        d = controller.start_reading()
        port.stopListening()
        self.failureResultOf(d, ConnectionLost)


class CountersTests(SynchronousTestCase):
    """
    Records a rule refused and datagrams over the limit are counted per
    reason.
    """

    def test_refused_by_rule(self) -> None:
        """
        Each record delivered as rejected, denied or dropped counts once as
        C{refused.rule}; accepted ones do not.
        """
        controller, _, _ = make_datagram()
        for rule in (ACCEPT, REJECT, RejectWith(ServerError.GARBAGE_ARGS), DENY, DROP):
            d = controller.start_reading(before_record=Hook(rule))
            controller.datagramReceived(b"\0\0\0\1call", CLIENT)
            self.successResultOf(d)
        self.assertEqual(dict(controller.counters), {"refused.rule": 4})

    def test_refused_by_limit(self) -> None:
        """
        A datagram over C{max_record_size} counts as C{refused.limit}.
        """
        controller, _, _ = make_datagram(max_record_size=10)
        controller.datagramReceived(b"x" * 11, CLIENT)
        self.assertEqual(dict(controller.counters), {"refused.limit": 1})


class LifeTests(SynchronousTestCase):
    """
    Timeouts, shutdown, abort and inactivation.
    """

    def test_timeout(self) -> None:
        """
        A read pending for the timeout calls C{notify()} once; a datagram
        re-arms it; with no read pending it never fires.
        """
        controller, _, clock = make_datagram()
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
        controller, port, _ = make_datagram()
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
        controller, port, _ = make_datagram()
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
        controller, port, clock = make_datagram(preclose=lambda: closes.append(None))
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
        controller, port, _ = make_datagram(
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

        controller, port, _ = make_datagram(preclose=preclose)
        controller.inactivate()
        self.assertTrue(port.stopped)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
