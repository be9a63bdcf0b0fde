# -*- test-case-name: rpctransport.test.test_datagram_sockets -*-
"""
Integration tests of L{rpctransport.adapters.datagram.DatagramController}
over real loopback UDP sockets, IPv4 (127.0.0.1) and IPv6 (::1), on the real
reactor.

The controllers come from L{rpctransport.entry.datagram}'s
C{listen_datagram}, C{connect_datagram} and
C{datagram_rpc_multiplex_controller}; the misbehaving peers are plain
non-blocking sockets (and, for a source port no socket can have, a raw
socket, when the test may open one); the servers that must survive them
run the L{rpctransport.program.echo.EchoServer} loop of C{rpctransport serve}. Every test closes its controllers and sockets so that
trial never finds the reactor dirty. Nothing here asserts how long anything
takes: waits are bounded only so that a broken controller fails a test
instead of hanging it.
"""

from __future__ import annotations

import errno
import gc
import os
import random
import socket
import struct
import sys
import tracemalloc
from collections.abc import Generator
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface.verify import verifyObject

from rpctransport.adapters.datagram import (
    MAX_UDP_PAYLOAD_IPV4,
    MAX_UDP_PAYLOAD_IPV6,
    DatagramController,
)
from rpctransport.entry.datagram import (
    connect_datagram,
    datagram_rpc_multiplex_controller,
    listen_datagram,
)
from rpctransport.program.echo import (
    ECHO_PROGRAM,
    ECHO_VERSION,
    PROC_NULL,
    CallStats,
    EchoServer,
    run_calls,
)
from rpctransport.interfaces import IRpcMultiplexController
from rpctransport.sansio.errors import (
    AddressRequired,
    ControllerInactive,
    DatagramTooLarge,
    NotConnected,
    SendFailed,
)
from rpctransport.sansio.rpcmsg import CallHeader, encode_call_header
from rpctransport.sansio.types import (
    ACCEPT,
    DENY,
    DROP,
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
from rpctransport.test.helpers import (
    WAIT,
    MixinBase,
    eventually,
    get_reactor,
    ipv6_skip,
    pattern,
)

KiB = 1024

MEMORY_BUDGET = 256 * KiB
"""
How much more traced memory the controller may hold after ten thousand
garbage datagrams than before them: a few counters' worth, never the
datagrams.
"""

ROUND_TRIP_SIZES = (0, 3, 4, 100, 8192, 9000, 65000)

DOCS = Path(__file__).resolve().parents[2] / "docs"

LINUX = sys.platform.startswith("linux")

NO_ERROR_QUEUE = "ICMP errors on sockets with no peer are read through Linux's IP_RECVERR"

DEPARTED_CLIENTS = 1000
"""
Clients that send a call and close their socket before the reply, after
the first one: each reply meets a closed port, and Linux answers it with an
ICMP port unreachable (which it may rate limit: a burst of 50, then 1000 a
second, though not on loopback here). Enough to see the server survive a
stream of them, in well under a second.
"""

DEPARTED_BATCH = 100
"""
Departing clients sent at once: their 100 calls of 40 bytes fit in the
server's socket receive buffer (each costs the kernel about 1 KiB), so none
is dropped before the server reads it.
"""

NULL_CALL = encode_call_header(CallHeader(0x00C0FFEE, ECHO_PROGRAM, ECHO_VERSION, PROC_NULL))
"""A NULL call of the echo program, as the departing clients send it."""


def within(d: Deferred[Any]) -> Deferred[Any]:
    """
    C{d}, failing with a timeout after L{WAIT} seconds.
    """
    return d.addTimeout(WAIT, get_reactor())


_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
"""version and header length, TOS, total length, id, fragment, TTL,
protocol, checksum, source, destination (RFC 791)."""

_UDP_HEADER = struct.Struct("!HHHH")
"""source port, destination port, length, checksum (RFC 768)."""


def _raw_ipv4_socket() -> socket.socket:
    """
    A raw IPv4 socket that sends whole packets, headers included.

    @raise SkipTest: not permitted here.
    """
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError as e:
        raise SkipTest(
            "forging a datagram with source port 0 needs a raw socket, which "
            f"needs root or CAP_NET_RAW: {e}"
        ) from e


def _forged_udp(host: str, source_port: int, port: int, payload: bytes) -> bytes:
    """
    An IPv4 packet carrying one UDP datagram from C{host:source_port} to
    C{host:port}, with whatever source port a real socket would not use.
    The UDP checksum is 0, "none", which IPv4 allows.
    """
    udp = _UDP_HEADER.pack(source_port, port, _UDP_HEADER.size + len(payload), 0) + payload
    address = socket.inet_aton(host)
    fields = [0x45, 0, _IPV4_HEADER.size + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0]
    header = _IPV4_HEADER.pack(*fields, address, address)
    total = sum(struct.unpack(f"!{_IPV4_HEADER.size // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    fields[7] = ~total & 0xFFFF
    return _IPV4_HEADER.pack(*fields, address, address) + udp


class LoopbackMixin(MixinBase):
    """
    The tests, for one address family. Subclasses set C{host}, C{family}
    and C{address_type}.
    """

    host: str
    family: socket.AddressFamily
    address_type: type[IPv4Address] | type[IPv6Address]
    max_payload: int

    def setUp(self) -> None:
        self.reactor = get_reactor()

    def own(self, controller: DatagramController) -> DatagramController:
        """
        Inactivate C{controller} at the end of the test and wait for its
        socket to close.
        """

        def close() -> Deferred[None]:
            controller.inactivate()
            return controller.when_closed()

        self.addCleanup(close)
        return controller

    def server(self, **limits: Any) -> DatagramController:
        return self.own(listen_datagram(0, self.host, self.reactor, **limits))

    def client(self, port: int, **limits: Any) -> DatagramController:
        return self.own(
            connect_datagram(self.host, port, self.reactor, interface=self.host, **limits)
        )

    def raw(self) -> socket.socket:
        """
        A plain non-blocking UDP socket on the loopback address.
        """
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind((self.host, 0))
        sock.setblocking(False)
        return sock

    def closed_port(self) -> int:
        """
        A UDP port nobody listens on (bound, then closed).
        """
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        sock.bind((self.host, 0))
        port: int = sock.getsockname()[1]
        sock.close()
        return port

    def port_of(self, controller: DatagramController) -> int:
        address: Any = controller.getsockname()
        port: int = address.port
        return port

    def address(self, port: int) -> IPv4Address | IPv6Address:
        return self.address_type("UDP", self.host, port)

    def echo_server(self, **limits: Any) -> DatagramController:
        """
        A server socket served by an L{EchoServer}, the loop
        C{rpctransport serve} runs.
        """
        server = self.server(**limits)
        EchoServer().serve(server)
        return server

    def null_call(self, port: int) -> Deferred[CallStats]:
        """
        One NULL call from a new client socket to C{port}, checked by
        L{run_calls}; it fails after L{WAIT} seconds without a reply.
        """
        return run_calls(self.client(port), self.reactor, count=1, timeout=WAIT)

    # -- Round trips -------------------------------------------------------

    @inlineCallbacks
    def test_round_trip_sizes(self) -> Generator[Deferred[Any], Any, None]:
        """
        Records of 0, 3, 4, 100, 8192, 9000 and 65000 bytes go from a client
        to a server and back exactly; the server sees the client's address
        as a Twisted address of type UDP.
        """
        server = self.server()
        client = self.client(self.port_of(server))
        client_address = self.address(self.port_of(client))
        for size in ROUND_TRIP_SIZES:
            reading = server.start_reading()
            yield client.start_writing(pattern(size))
            record, sender = yield within(reading)
            self.assertEqual(record, Accepted(pattern(size)))
            self.assertEqual(sender, client_address)
            reply = client.start_reading()
            yield server.start_writing(pattern(size, seed=1), sender)
            record, sender = yield within(reply)
            self.assertEqual(record, Accepted(pattern(size, seed=1)))
            self.assertEqual(sender, self.address(self.port_of(server)))
        self.assertEqual(server.stats["datagrams_in"], len(ROUND_TRIP_SIZES))
        self.assertEqual(server.stats["bytes_in"], sum(ROUND_TRIP_SIZES))
        self.assertEqual(client.stats["datagrams_out"], len(ROUND_TRIP_SIZES))

    @inlineCallbacks
    def test_largest_datagram(self) -> Generator[Deferred[Any], Any, None]:
        """
        The largest UDP payload of the family arrives whole.
        """
        server = self.server()
        client = self.client(self.port_of(server))
        reading = server.start_reading()
        yield client.start_writing(pattern(self.max_payload))
        record, _ = yield within(reading)
        self.assertEqual(record, Accepted(pattern(self.max_payload)))

    @inlineCallbacks
    def test_rules(self) -> Generator[Deferred[Any], Any, None]:
        """
        Each rule gives its record over a real socket: C{ACCEPT} the
        datagram, C{REJECT} and C{RejectWith} its first 4 bytes, C{DENY}
        and C{DROP} nothing; each is counted.
        """
        server = self.server()
        client = self.client(self.port_of(server))
        message = b"\x00\x00\x00\x2a" + pattern(500)
        rules: list[tuple[InRule, object]] = [
            (ACCEPT, Accepted(message)),
            (REJECT, Rejected(b"\x00\x00\x00\x2a")),
            (
                RejectWith(ServerError.PROC_UNAVAIL),
                RejectedWith(b"\x00\x00\x00\x2a", ServerError.PROC_UNAVAIL),
            ),
            (DENY, Denied()),
            (DROP, Dropped()),
        ]
        for rule, expected in rules:
            sizes: list[int] = []

            def hook(size: int, peer: object, rule: InRule = rule) -> InRule:
                sizes.append(size)
                return rule

            reading = server.start_reading(before_record=hook)
            yield client.start_writing(message)
            record, _ = yield within(reading)
            self.assertEqual(record, expected)
            self.assertEqual(sizes, [len(message)])
        stats = server.stats
        self.assertEqual(
            (stats["accepted"], stats["rejected"], stats["denied"], stats["dropped"]),
            (1, 2, 1, 1),
        )

    @inlineCallbacks
    def test_short_datagrams(self) -> Generator[Deferred[Any], Any, None]:
        """
        Datagrams shorter than 4 bytes are offered to the rule like any
        other: delivered when accepted, refused otherwise.
        """
        server = self.server()
        client = self.client(self.port_of(server))

        def hook(size: int, peer: object) -> InRule:
            return ACCEPT if size != 2 else DROP

        cases = ((b"", Accepted(b"")), (b"ab", Dropped()), (b"abc", Accepted(b"abc")))
        for message, expected in cases:
            reading = server.start_reading(before_record=hook)
            yield client.start_writing(message)
            record, _ = yield within(reading)
            self.assertEqual(record, expected)

    @inlineCallbacks
    def test_receive_too_large(self) -> Generator[Deferred[Any], Any, None]:
        """
        A datagram over C{max_record_size} is never delivered, not even
        shortened; the next one is.
        """
        server = self.server(max_record_size=1000)
        peer = self.raw()
        reading = server.start_reading()
        peer.sendto(pattern(1001), (self.host, self.port_of(server)))
        peer.sendto(pattern(1000, seed=3), (self.host, self.port_of(server)))
        record, _ = yield within(reading)
        self.assertEqual(record, Accepted(pattern(1000, seed=3)))
        self.assertEqual(server.stats["too_large"], 1)

    # -- The queue ---------------------------------------------------------

    @inlineCallbacks
    def test_queue_overflow(self) -> Generator[Deferred[Any], Any, None]:
        """
        With no read pending, datagrams are queued up to the bound, the rest
        dropped and counted; the queued ones are read in order, and
        cancelling a read keeps the queue.
        """
        server = self.server(max_queued_datagrams=3)
        peer = self.raw()
        for i in range(6):
            peer.sendto(b"d%d" % i, (self.host, self.port_of(server)))
        yield eventually(lambda: server.stats["datagrams_in"] == 6, "6 datagrams in")
        self.assertEqual(server.stats["queue_overflow"], 3)
        for expected in (b"d0", b"d1", b"d2"):
            record, _ = yield server.start_reading()
            self.assertEqual(record, Accepted(expected))
        waiting = server.start_reading()
        self.assertNoResult(waiting)
        server.cancel_rd_polling()
        yield self.assertFailure(waiting, CancelledError)
        peer.sendto(b"later", (self.host, self.port_of(server)))
        yield eventually(lambda: server.stats["datagrams_in"] == 7, "the 7th datagram")
        record, _ = yield server.start_reading()
        self.assertEqual(record, Accepted(b"later"))

    # -- Addresses and limits ---------------------------------------------

    @inlineCallbacks
    def test_implied_and_explicit(self) -> Generator[Deferred[Any], Any, None]:
        """
        A server socket needs an explicit address (a tuple or a Twisted
        address); a client socket sends to its server with C{IMPLIED} or
        with the server's address.
        """
        server = self.server()
        client = self.client(self.port_of(server))
        self.assertRaises(AddressRequired, server.start_writing, b"x")
        reading = server.start_reading()
        yield client.start_writing(b"implied")
        record, sender = yield within(reading)
        self.assertEqual(record, Accepted(b"implied"))
        reading = server.start_reading()
        yield client.start_writing(b"explicit", self.address(self.port_of(server)))
        record, _ = yield within(reading)
        self.assertEqual(record, Accepted(b"explicit"))
        for to in (sender, (sender.host, sender.port)):
            reply = client.start_reading()
            yield server.start_writing(b"reply", to)
            record, _ = yield within(reply)
            self.assertEqual(record, Accepted(b"reply"))

    @inlineCallbacks
    def test_datagram_too_large(self) -> Generator[Deferred[Any], Any, None]:
        """
        A message one byte over the family's limit raises
        L{DatagramTooLarge} and nothing is sent.
        """
        server = self.server()
        client = self.client(self.port_of(server))
        e = self.assertRaises(
            DatagramTooLarge, client.start_writing, pattern(self.max_payload + 1)
        )
        self.assertEqual(e.limit, self.max_payload)
        reading = server.start_reading()
        yield client.start_writing(b"marker")
        record, _ = yield within(reading)
        self.assertEqual(record, Accepted(b"marker"))
        self.assertEqual(server.stats["datagrams_in"], 1)
        self.assertEqual(client.stats["datagrams_out"], 1)

    def test_contract(self) -> None:
        """
        Real controllers provide L{IRpcMultiplexController}; a server socket
        has no peer, a client socket's peer is its server; both are UDP and
        have a descriptor.
        """
        server = self.server()
        client = self.client(self.port_of(server))
        for controller in (server, client):
            self.assertTrue(verifyObject(IRpcMultiplexController, controller))
            self.assertIs(controller.protocol, RpcProtocol.UDP)
            self.assertTrue(controller.alive)
            fd = controller.file_descr
            assert fd is not None
            self.assertEqual(os.fstat(fd).st_mode & 0o170000, 0o140000)
        self.assertRaises(NotConnected, server.getpeername)
        self.assertEqual(client.getpeername(), self.address(self.port_of(server)))
        self.assertEqual(server.getsockname(), self.address(self.port_of(server)))

    # -- Strangers -----------------------------------------------------------

    @inlineCallbacks
    def test_client_ignores_stranger(self) -> Generator[Deferred[Any], Any, None]:
        """
        A client socket ignores (and counts) a datagram from anyone but its
        server, and still gets its server's reply.
        """
        server = self.server()
        client = self.client(self.port_of(server))
        stranger = self.raw()
        reply = client.start_reading()
        stranger.sendto(b"\x00\x00\x00\x01spoofed", (self.host, self.port_of(client)))
        yield eventually(lambda: client.stats["from_strangers"] == 1, "the stranger's datagram")
        self.assertNoResult(reply)
        reading = server.start_reading()
        yield client.start_writing(b"\x00\x00\x00\x01call")
        _, sender = yield within(reading)
        yield server.start_writing(b"\x00\x00\x00\x01reply", sender)
        record, sender = yield within(reply)
        self.assertEqual(record, Accepted(b"\x00\x00\x00\x01reply"))
        self.assertEqual(sender, self.address(self.port_of(server)))

    # -- Errors from the network -------------------------------------------

    @inlineCallbacks
    def test_closed_port_fails_read(self) -> Generator[Deferred[Any], Any, None]:
        """
        A client writing to a closed port: the pending read fails with
        C{ConnectionRefusedError} naming the port, and the socket stays
        open.
        """
        if not LINUX:
            raise SkipTest(NO_ERROR_QUEUE)
        dead = self.closed_port()
        client = self.client(dead)
        reading = client.start_reading()
        yield client.start_writing(b"\x00\x00\x00\x01ping")
        error = yield self.assertFailure(within(reading), ConnectionRefusedError)
        self.assertIn(f"{dead}", str(error))
        self.assertIn("port unreachable", str(error))
        self.assertTrue(client.alive)
        self.assertEqual(client.stats["errors"], 1)
        self.assertEqual(dict(client.counters), {"udp.ECONNREFUSED": 1})

    @inlineCallbacks
    def test_connected_socket_refused(self) -> Generator[Deferred[Any], Any, None]:
        """
        An adopted kernel-connected socket (a client socket) whose server
        port is closed: the pending read fails with
        C{ConnectionRefusedError}, counted, and the socket stays open.
        """
        dead = self.closed_port()
        owner = socket.socket(self.family, socket.SOCK_DGRAM)
        self.addCleanup(owner.close)
        owner.bind((self.host, 0))
        owner.connect((self.host, dead))
        client = self.own(
            datagram_rpc_multiplex_controller(
                owner.fileno(), self.reactor, close_inactive_descr=False
            )
        )
        reading = client.start_reading()
        yield client.start_writing(b"\x00\x00\x00\x01ping")
        yield self.assertFailure(within(reading), ConnectionRefusedError)
        self.assertTrue(client.alive)
        self.assertEqual(client.counters["udp.ECONNREFUSED"], 1)

    @inlineCallbacks
    def test_closed_port_fails_next_write(self) -> Generator[Deferred[Any], Any, None]:
        """
        With no read pending, the refusal fails the next write, which sends
        nothing.
        """
        if not LINUX:
            raise SkipTest(NO_ERROR_QUEUE)
        client = self.client(self.closed_port())
        yield client.start_writing(b"\x00\x00\x00\x01ping")
        yield eventually(lambda: client.stats["errors"] == 1, "the ICMP error")
        yield self.assertFailure(client.start_writing(b"again"), ConnectionRefusedError)
        self.assertEqual(client.stats["datagrams_out"], 1)
        self.assertTrue(client.alive)

    @inlineCallbacks
    def test_server_survives_refusals(self) -> Generator[Deferred[Any], Any, None]:
        """
        A server's reply to a peer that went away leaves the server's
        pending read pending: the ICMP port unreachable is counted as
        C{udp.ECONNREFUSED} and offered to C{on_peer_error} with the
        peer's address and an error naming it; the read then gets the next
        peer's call.
        """
        if not LINUX:
            raise SkipTest(NO_ERROR_QUEUE)
        seen: list[tuple[Exception, object]] = []
        server = self.server(on_peer_error=lambda e, a: seen.append((e, a)))
        dead = self.closed_port()
        reading = server.start_reading()
        yield server.start_writing(b"\x00\x00\x00\x01reply", (self.host, dead))
        yield eventually(lambda: bool(seen), "the ICMP error")
        self.assertNoResult(reading)
        [(error, address)] = seen
        self.assertIsInstance(error, ConnectionRefusedError)
        self.assertIn(f"{dead}", str(error))
        self.assertEqual(address, self.address(dead))
        self.assertEqual(dict(server.counters), {"udp.ECONNREFUSED": 1})
        client = self.client(self.port_of(server))
        yield client.start_writing(b"\x00\x00\x00\x02call")
        record, _ = yield within(reading)
        self.assertEqual(record, Accepted(b"\x00\x00\x00\x02call"))
        self.assertTrue(server.alive)

    @inlineCallbacks
    def test_refusal_does_not_eat_next_send(self) -> Generator[Deferred[Any], Any, None]:
        """
        Linux reports a pending refusal from the next C{sendto} instead of
        sending; the controller reads the error and sends again, so a
        datagram to a live peer right after one to a closed port arrives.
        The refusal is counted and fails no read.
        """
        if not LINUX:
            raise SkipTest(NO_ERROR_QUEUE)
        server = self.server()
        live = self.raw()
        dead = self.closed_port()
        yield server.start_writing(b"to the dead", (self.host, dead))
        yield server.start_writing(b"to the living", live.getsockname()[:2])
        received: list[bytes] = []

        def got_it() -> bool:
            try:
                received.append(live.recv(100))
            except BlockingIOError:
                pass
            return bool(received)

        yield eventually(got_it, "the datagram to the live peer")
        self.assertEqual(received, [b"to the living"])
        self.assertEqual(dict(server.counters), {"udp.ECONNREFUSED": 1})
        reading = server.start_reading()
        live.sendto(b"\x00\x00\x00\x03call", (self.host, self.port_of(server)))
        record, _ = yield within(reading)
        self.assertEqual(record, Accepted(b"\x00\x00\x00\x03call"))

    @inlineCallbacks
    def test_port_closed_under_us(self) -> Generator[Deferred[Any], Any, None]:
        """
        When someone else closes the controller's port, the pending read
        fails with C{ConnectionLost} and later writes fail too.
        """
        server = self.server()
        reading = server.start_reading()
        transport: Any = server.transport
        yield transport.stopListening()
        yield self.assertFailure(reading, ConnectionLost)
        self.assertFalse(server.alive)
        yield self.assertFailure(server.start_writing(b"x", (self.host, 9)), ConnectionLost)

    # -- Adopted descriptors -----------------------------------------------

    def test_adopt_keep_descriptor(self) -> Deferred[None]:
        """
        An adopted blocking socket serves as a controller; with
        C{close_inactive_descr} false, after C{inactivate()} the owner's
        socket is as it was (blocking, no error queue) and fully usable.
        """
        return self.adopt_and_give_back(blocking=True)

    def test_adopt_keep_nonblocking_descriptor(self) -> Deferred[None]:
        """
        An adopted non-blocking socket goes back to its owner non-blocking.
        """
        return self.adopt_and_give_back(blocking=False)

    @inlineCallbacks
    def adopt_and_give_back(self, blocking: bool) -> Generator[Deferred[Any], Any, None]:
        owner = socket.socket(self.family, socket.SOCK_DGRAM)
        self.addCleanup(owner.close)
        owner.bind((self.host, 0))
        os.set_blocking(owner.fileno(), blocking)
        controller = self.own(
            datagram_rpc_multiplex_controller(
                owner.fileno(), self.reactor, close_inactive_descr=False
            )
        )
        self.assertEqual(controller.file_descr, owner.fileno())
        self.assertRaises(NotConnected, controller.getpeername)
        peer = self.raw()
        reading = controller.start_reading()
        peer.sendto(b"adopted", owner.getsockname()[:2])
        record, sender = yield within(reading)
        self.assertEqual(record, Accepted(b"adopted"))
        yield controller.start_writing(b"answer", sender)
        self.assertFalse(os.get_blocking(owner.fileno()))
        controller.inactivate()
        yield controller.when_closed()
        self.assertEqual(os.get_blocking(owner.fileno()), blocking)
        if LINUX:
            level, name = (41, 25) if self.family == socket.AF_INET6 else (0, 11)
            self.assertEqual(owner.getsockopt(level, name), 0)
        owner.settimeout(WAIT)
        peer.sendto(b"still there", owner.getsockname()[:2])
        self.assertEqual(owner.recv(100), b"still there")

    @inlineCallbacks
    def test_adopt_close_descriptor(self) -> Generator[Deferred[Any], Any, None]:
        """
        With C{close_inactive_descr}, C{inactivate()} calls C{preclose()}
        and closes the descriptor.
        """
        owner = socket.socket(self.family, socket.SOCK_DGRAM)
        owner.bind((self.host, 0))
        fd = owner.detach()
        inode = os.fstat(fd).st_ino
        closes: list[None] = []
        controller = self.own(
            datagram_rpc_multiplex_controller(
                fd, self.reactor, preclose=lambda: closes.append(None)
            )
        )
        controller.inactivate()
        yield controller.when_closed()
        self.assertEqual(closes, [None])
        self.assertFalse(controller.alive)
        try:
            # The number may already be reused by another descriptor.
            self.assertNotEqual(os.fstat(fd).st_ino, inode)
        except OSError as e:
            self.assertEqual(e.errno, errno.EBADF)
        self.assertRaises(ControllerInactive, controller.start_reading)

    @inlineCallbacks
    def test_adopt_connected(self) -> Generator[Deferred[Any], Any, None]:
        """
        An adopted connected socket is a client socket: its peer is fixed
        and C{IMPLIED} goes there.
        """
        server = self.server()
        owner = socket.socket(self.family, socket.SOCK_DGRAM)
        self.addCleanup(owner.close)
        owner.bind((self.host, 0))
        owner.connect((self.host, self.port_of(server)))
        controller = self.own(
            datagram_rpc_multiplex_controller(
                owner.fileno(), self.reactor, close_inactive_descr=False
            )
        )
        self.assertEqual(controller.getpeername(), self.address(self.port_of(server)))
        reading = server.start_reading()
        yield controller.start_writing(b"hello")
        record, sender = yield within(reading)
        self.assertEqual(record, Accepted(b"hello"))
        reply = controller.start_reading()
        yield server.start_writing(b"hi", sender)
        record, _ = yield within(reply)
        self.assertEqual(record, Accepted(b"hi"))

    @inlineCallbacks
    def test_adopt_shut_down_under_us(self) -> Generator[Deferred[Any], Any, None]:
        """
        When the owner shuts the adopted socket down, the pending read fails
        with C{ConnectionLost} instead of the reactor spinning on it.
        """
        if not LINUX:
            raise SkipTest("shutdown() of an unconnected UDP socket wakes pollers on Linux")
        owner = socket.socket(self.family, socket.SOCK_DGRAM)
        self.addCleanup(owner.close)
        owner.bind((self.host, 0))
        controller = self.own(
            datagram_rpc_multiplex_controller(
                owner.fileno(), self.reactor, close_inactive_descr=False
            )
        )
        reading = controller.start_reading()
        try:
            owner.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # ENOTCONN, but the socket is shut down all the same
        error = yield self.assertFailure(within(reading), ConnectionLost)
        self.assertIn("shut down", str(error))
        self.assertFalse(controller.alive)

    def test_adopt_not_datagram(self) -> None:
        """
        A stream socket is refused with C{ValueError}.
        """
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        self.assertRaises(
            ValueError, datagram_rpc_multiplex_controller, sock.fileno(), self.reactor
        )

    # -- Hostile peers ---------------------------------------------------------

    @inlineCallbacks
    def test_garbage_flood(self) -> Generator[Deferred[Any], Any, None]:
        """
        Ten thousand garbage and short datagrams from one peer leave the
        server serving another peer, with flat memory.
        """
        server = self.server()
        port = self.port_of(server)
        served = {"calls": 0}

        def before_record(size: int, peer: object) -> InRule:
            return ACCEPT if size >= 4 else DROP

        @inlineCallbacks
        def serve() -> Generator[Deferred[Any], Any, None]:
            while True:
                try:
                    record, sender = yield server.start_reading(before_record=before_record)
                except Exception:
                    return
                if isinstance(record, Accepted) and record.message.startswith(b"GOOD"):
                    served["calls"] += 1
                    yield server.start_writing(record.message, sender)

        serve()
        attacker = self.raw()
        rng = random.Random(5377)
        sent = 0

        def batch(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                garbage = rng.randbytes(rng.choice((0, 1, 2, 3, rng.randrange(4, 200))))
                if garbage.startswith(b"GOOD"):
                    garbage = b"BAD!" + garbage
                attacker.sendto(garbage, (self.host, port))
                sent += 1

        # Warm up: the first datagrams and the first call allocate what stays.
        batch(50)
        yield eventually(lambda: server.stats["datagrams_in"] >= sent, "the warm-up")
        gc.collect()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            batch(50)
            yield eventually(lambda: server.stats["datagrams_in"] >= sent, "the flood to drain")
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        self.assertLess(after - before, MEMORY_BUDGET)
        self.assertEqual(server.stats["datagrams_in"], 10050)
        self.assertEqual(server.stats["queue_overflow"], 0)
        self.assertTrue(server.alive)

        client = self.client(port)
        reply = client.start_reading()
        yield client.start_writing(b"GOOD call")
        record, _ = yield within(reply)
        self.assertEqual(record, Accepted(b"GOOD call"))
        self.assertEqual(served["calls"], 1)


    @inlineCallbacks
    def test_departed_clients(self) -> Generator[Deferred[Any], Any, None]:
        """
        A client that closes its socket before the reply comes, then
        L{DEPARTED_CLIENTS} more: each reply bounces (ICMP port
        unreachable), and the echo server keeps serving, counting the
        bounces; a good NULL call then succeeds.
        """
        server = self.echo_server()
        port = self.port_of(server)
        sent = 0

        def depart(count: int) -> None:
            nonlocal sent
            clients = [socket.socket(self.family, socket.SOCK_DGRAM) for _ in range(count)]
            try:
                for sock in clients:
                    sock.sendto(NULL_CALL, (self.host, port))
                    sent += 1
            finally:
                for sock in clients:
                    sock.close()

        def replied() -> bool:
            return not server.alive or server.stats["datagrams_out"] >= sent

        depart(1)
        yield eventually(replied, "the reply to the first departed client")
        for _ in range(DEPARTED_CLIENTS // DEPARTED_BATCH):
            depart(DEPARTED_BATCH)
            yield eventually(replied, f"the replies to {sent} departed clients")
            self.assertTrue(server.alive, f"the server stopped after {sent} departed clients")
        stats = yield self.null_call(port)
        self.assertTrue(stats.ok, stats.reasons)
        self.assertTrue(server.alive)
        self.assertEqual(server.stats["datagrams_out"], sent + 1)
        if LINUX:
            yield eventually(lambda: "udp.ECONNREFUSED" in server.counters, "an ICMP error")


class IPv4Tests(LoopbackMixin, TestCase):
    """
    The loopback tests over IPv4, on 127.0.0.1.
    """

    host = "127.0.0.1"
    family = socket.AF_INET
    address_type = IPv4Address
    max_payload = MAX_UDP_PAYLOAD_IPV4

    @inlineCallbacks
    def test_forged_source_port_zero(self) -> Generator[Deferred[Any], Any, None]:
        """
        A call forged with source port 0 (through a raw socket) gets a reply
        the kernel refuses to send (C{EINVAL}): that write fails with
        L{SendFailed} and is counted as C{udp.send.EINVAL}, the echo server
        keeps serving, and a good NULL call then succeeds.
        """
        server = self.echo_server()
        port = self.port_of(server)
        forge = _raw_ipv4_socket()
        self.addCleanup(forge.close)
        forge.sendto(_forged_udp(self.host, 0, port, NULL_CALL), (self.host, 0))
        yield eventually(lambda: server.stats["errors"] >= 1, "the refused reply")
        self.assertTrue(server.alive)
        self.assertEqual(server.stats["datagrams_in"], 1)
        self.assertEqual(server.stats["datagrams_out"], 0)
        self.assertEqual(dict(server.counters), {"udp.send.EINVAL": 1})
        stats = yield self.null_call(port)
        self.assertTrue(stats.ok, stats.reasons)
        self.assertEqual(server.stats["datagrams_out"], 1)

    def test_send_to_port_zero(self) -> None:
        """
        A reply addressed to port 0 fails its write with L{SendFailed}
        (C{EINVAL}, the address), and leaves the pending read pending.
        """
        server = self.server()
        reading = server.start_reading()
        failure = self.failureResultOf(server.start_writing(b"reply", (self.host, 0)), SendFailed)
        self.assertEqual(failure.value.errno, errno.EINVAL)
        self.assertEqual(failure.value.address, self.address(0))
        self.assertNoResult(reading)
        self.assertTrue(server.alive)


class IPv6Tests(LoopbackMixin, TestCase):
    """
    The loopback tests over IPv6, on ::1.
    """

    host = "::1"
    family = socket.AF_INET6
    address_type = IPv6Address
    max_payload = MAX_UDP_PAYLOAD_IPV6
    skip = ipv6_skip()
