# -*- test-case-name: rpctransport.test.test_proxy_protocol -*-
"""
Tests for the PROXY protocol (HAProxy's, v1 and v2) on stream listeners:
the sans-IO header parser (L{rpctransport.sansio.proxyheader}), the
listener's header reader and the controller behind it on fakes
(L{rpctransport.adapters.peer}), real sockets without a proxy (a client
that bypasses it; a header sent to a listener that does not expect one),
and a real HAProxy started by the test on loopback: C{send-proxy} and
C{send-proxy-v2} from IPv4 and IPv6 clients, TLS passed through to our
implicit-TLS and STARTTLS listeners, TLS ended at HAProxy, and libtirpc's
client through HAProxy to two C{rpctransport serve} processes.

The HAProxy tests skip, saying why, only where C{/usr/sbin/haproxy} is not
installed; the IPv6 ones also where this machine has no IPv6 loopback.
Headers are built here byte by byte from the specification, never with the
code under test.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Generator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import DeferredQueue, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from rpctransport import (
    ACCEPT,
    END_OF_FILE,
    Accepted,
    LocalProtocolError,
    RecordTooLarge,
    StreamController,
    connect_stream,
    listen_stream,
)
from rpctransport.adapters.peer import ProxyHeaderFactory, ProxyHeaderProtocol
from rpctransport.entry.stream import StreamControllerFactory, listener_counters
from rpctransport.program.echo import ECHO_PROGRAM, ECHO_VERSION
from rpctransport.sansio.counters import (
    DEADLINE_PROXY_HEADER,
    EVICTED_UNPROVEN,
    REFUSED_PROXY_HEADER,
    REFUSED_SNIFF,
)
from rpctransport.sansio.proxyheader import (
    DEFAULT_MAX_V2_HEADER,
    DEFAULT_PROXY_HEADER_TIMEOUT,
    MAX_V1_HEADER,
    Command,
    Family,
    InvalidProxyHeader,
    ProxyHeader,
    ProxyHeaderParser,
    ProxyHeaderTimeout,
)
from rpctransport.sansio.record import NEED_DATA
from rpctransport.sansio.sniff import describe_non_rpc
from rpctransport.bench.haproxy import free_port
from rpctransport.test.helpers import (
    HAProxy,
    SocketTestMixin,
    client_options,
    connected,
    echo_call,
    haproxy_skip,
    ipv6_skip,
    mark,
    outcome,
    pki,
    server_options,
    sleep,
    wait_until,
)
from rpctransport.test.interop.build import (
    build_or_skip,
    rpctransport_command,
    rpctransport_env,
    run_program,
    start_server,
)

# -- Headers, built from the specification ----------------------------------------

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
"""The v2 signature, as the specification writes it."""


def v1(protocol: str, source: str = "", destination: str = "", sport: int = 0, dport: int = 0) -> bytes:
    """
    A v1 line: C{PROXY protocol source destination sport dport CRLF}, or
    C{PROXY UNKNOWN CRLF} when only the protocol is given.
    """
    if not source:
        return f"PROXY {protocol}\r\n".encode()
    return f"PROXY {protocol} {source} {destination} {sport} {dport}\r\n".encode()


def v2(command: int = 1, family: int = 1, transport: int = 1, body: bytes = b"", length: int | None = None) -> bytes:
    """
    A v2 header with C{body} (addresses, then TLVs) after its preamble;
    C{length} overrides the length field.
    """
    n = len(body) if length is None else length
    return SIGNATURE + bytes([0x20 | command, family << 4 | transport]) + struct.pack(">H", n) + body


def v2_inet(source: str, destination: str, sport: int, dport: int, tlvs: bytes = b"", command: int = 1) -> bytes:
    """
    A v2 C{PROXY} (or C{LOCAL}) header for TCP over IPv4 or IPv6.
    """
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    body = (
        socket.inet_pton(family, source)
        + socket.inet_pton(family, destination)
        + struct.pack(">HH", sport, dport)
    )
    return v2(command, 2 if family == socket.AF_INET6 else 1, 1, body + tlvs)


def v2_unix(source: bytes, destination: bytes) -> bytes:
    """
    A v2 C{PROXY} header for UNIX stream sockets (108-byte paths).
    """
    return v2(1, 3, 1, source.ljust(108, b"\x00") + destination.ljust(108, b"\x00"))


def tlv(kind: int, value: bytes) -> bytes:
    """One v2 TLV."""
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def parse(data: bytes, step: int | None = None) -> tuple[ProxyHeader, bytes] | Any:
    """
    Feed C{data} to a new parser whole, or C{step} bytes at a time; the
    first result that is not L{NEED_DATA}, with the bytes fed after it.
    """
    parser = ProxyHeaderParser()
    if step is None:
        return parser.feed(data)
    for i in range(0, len(data), step):
        result = parser.feed(data[i : i + step])
        if result is not NEED_DATA:
            header, rest = result
            return header, rest + data[i + step :]
    return NEED_DATA


VALID = {
    "v1 TCP4": (
        v1("TCP4", "192.0.2.7", "198.51.100.1", 4242, 2049),
        ProxyHeader(1, Command.PROXY, Family.INET, ("192.0.2.7", 4242), ("198.51.100.1", 2049), 45),
    ),
    "v1 TCP6": (
        v1("TCP6", "2001:DB8:0:0:0:0:0:7", "::1", 65535, 0),
        ProxyHeader(1, Command.PROXY, Family.INET6, ("2001:db8::7", 65535), ("::1", 0), 45),
    ),
    "v1 UNKNOWN": (
        v1("UNKNOWN"),
        ProxyHeader(1, Command.PROXY, Family.UNSPEC, None, None, 15),
    ),
    "v1 UNKNOWN, long form": (
        v1("UNKNOWN", "ffff:" * 7 + "ffff", "ffff:" * 7 + "ffff", 65535, 65535),
        ProxyHeader(1, Command.PROXY, Family.UNSPEC, None, None, MAX_V1_HEADER),
    ),
    "v2 PROXY IPv4": (
        v2_inet("192.0.2.7", "198.51.100.1", 4242, 2049),
        ProxyHeader(2, Command.PROXY, Family.INET, ("192.0.2.7", 4242), ("198.51.100.1", 2049), 28),
    ),
    "v2 PROXY IPv6 with TLVs": (
        v2_inet("2001:db8::7", "::1", 4242, 2049, tlv(0x01, b"sunrpc") + tlv(0x04, b"")),
        ProxyHeader(2, Command.PROXY, Family.INET6, ("2001:db8::7", 4242), ("::1", 2049), 64),
    ),
    "v2 PROXY UNIX": (
        v2_unix(b"/run/client.sock", b"/run/haproxy.sock"),
        ProxyHeader(2, Command.PROXY, Family.UNIX, b"/run/client.sock", b"/run/haproxy.sock", 232),
    ),
    "v2 PROXY UNIX, abstract": (
        v2_unix(b"\x00client", b""),
        ProxyHeader(2, Command.PROXY, Family.UNIX, b"\x00client", b"", 232),
    ),
    "v2 LOCAL, with addresses to skip": (
        v2_inet("192.0.2.7", "198.51.100.1", 4242, 2049, command=0),
        ProxyHeader(2, Command.LOCAL, Family.UNSPEC, None, None, 28),
    ),
    "v2 LOCAL, empty": (
        v2(0, 0, 0),
        ProxyHeader(2, Command.LOCAL, Family.UNSPEC, None, None, 16),
    ),
    "v2 PROXY UNSPEC": (
        v2(1, 0, 0, b"whatever"),
        ProxyHeader(2, Command.PROXY, Family.UNSPEC, None, None, 24),
    ),
}

INVALID = {
    # (bytes, how many of them the parser may take before refusing)
    "plain RPC (a record mark)": (mark(40) + b"\x00" * 40, 1),
    "HTTP": (b"GET / HTTP/1.1\r\n\r\n", 1),
    "TLS ClientHello": (b"\x16\x03\x01\x00\xf8\x01", 1),
    "lower case": (b"proxy TCP4 1.2.3.4 1.2.3.5 1 2\r\n", 1),
    "no space after PROXY": (b"PROXYTCP4 1.2.3.4 1.2.3.5 1 2\r\n", 6),
    "v1 unknown protocol": (b"PROXY UDP4 1.2.3.4 1.2.3.5 1 2\r\n", 32),
    "v1 double space": (b"PROXY TCP4  1.2.3.4 1.2.3.5 1 2\r\n", 33),
    "v1 missing port": (b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n", 30),
    "v1 extra field": (b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2 3\r\n", 34),
    "v1 IPv6 in TCP4": (b"PROXY TCP4 ::1 ::1 1 2\r\n", 24),
    "v1 IPv4 in TCP6": (b"PROXY TCP6 1.2.3.4 1.2.3.5 1 2\r\n", 32),
    "v1 octal-looking IPv4": (b"PROXY TCP4 010.0.0.1 1.2.3.5 1 2\r\n", 34),
    "v1 IPv6 scope": (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 33),
    "v1 port past 65535": (b"PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n", 36),
    "v1 port with a leading zero": (b"PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n", 33),
    "v1 signed port": (b"PROXY TCP4 1.2.3.4 1.2.3.5 +1 2\r\n", 33),
    "v1 lone LF": (b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n", 31),
    "v1 lone CR": (b"PROXY TCP4 1.2.3.4\r 1.2.3.5 1 2\r\n", 20),
    "v1 control byte": (b"PROXY TCP4 1.2.3.4\x00 1.2.3.5 1 2\r\n", 19),
    "v1 byte past ASCII": (b"PROXY TCP4 1.2.3.4\xff 1.2.3.5 1 2\r\n", 19),
    "v1 108-byte line": (
        b"PROXY UNKNOWN " + b"f" * (MAX_V1_HEADER + 1 - 16) + b"\r\n",
        MAX_V1_HEADER,
    ),
    "v2 broken signature": (SIGNATURE[:11] + b"X" + v2(0, 0, 0)[12:], 12),
    "v2 version 1": (SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, 13),
    "v2 command 2": (SIGNATURE + b"\x22\x11\x00\x0c" + b"\x00" * 12, 13),
    "v2 family 4": (SIGNATURE + b"\x21\x41\x00\x0c" + b"\x00" * 12, 14),
    "v2 transport 3": (SIGNATURE + b"\x21\x13\x00\x0c" + b"\x00" * 12, 14),
    "v2 datagram": (SIGNATURE + b"\x21\x12\x00\x0c" + b"\x00" * 12, 14),
    "v2 IPv4 block too short": (v2(1, 1, 1, b"\x00" * 11), 16),
    "v2 IPv6 block too short": (v2(1, 2, 1, b"\x00" * 35), 16),
    "v2 UNIX block too short": (v2(1, 3, 1, b"\x00" * 215), 16),
    "v2 over the limit": (v2(0, 0, 0, length=DEFAULT_MAX_V2_HEADER - 15), 16),
}


V1_TOKENS = [
    "TCP4",
    "TCP6",
    "UNKNOWN",
    "192.0.2.7",
    "255.255.255.255",
    "256.1.1.1",
    "01.2.3.4",
    "::1",
    "2001:db8::7",
    "fe80::1%lo",
    "::ffff:1.2.3.4",
    "0",
    "65535",
    "65536",
    "007",
    "-1",
    "+1",
    "1_0",
    "",
]
"""Fields a v1 line is made of in L{ProxyHeaderParserTests.test_v1_fields}."""


class ProxyHeaderParserTests(SynchronousTestCase):
    """
    L{ProxyHeaderParser}: every kind of header, whole, one byte at a time
    and with bytes after it; invalid headers refused at the first byte that
    cannot be right; limits at the limit and one past it.
    """

    def test_valid_whole(self) -> None:
        """
        Each valid header fed whole gives its L{ProxyHeader} (addresses in
        canonical form, C{size} the bytes it took) and nothing after it.
        """
        for name, (data, expected) in VALID.items():
            self.assertEqual(parse(data), (expected, b""), name)

    def test_valid_byte_by_byte(self) -> None:
        """
        Fed one byte at a time, each valid header gives the same.
        """
        for name, (data, expected) in VALID.items():
            self.assertEqual(parse(data, 1), (expected, b""), name)

    def test_valid_trailing_bytes(self) -> None:
        """
        The bytes after a header (here a record mark, a TLS record and a
        second header) come back untouched, whole or byte by byte: they
        are the connection's own.
        """
        after = mark(8) + b"12345678" + b"\x16\x03\x01" + VALID["v1 TCP4"][0]
        for name, (data, expected) in VALID.items():
            self.assertEqual(parse(data + after), (expected, after), name)
            self.assertEqual(parse(data + after, 1), (expected, after), name)

    def test_invalid(self) -> None:
        """
        Each invalid header is refused with L{InvalidProxyHeader}, whole or
        byte by byte, as soon as the byte that makes it invalid is in: the
        byte-by-byte parser refuses on exactly that byte and never sees the
        rest.
        """
        for name, (data, at) in INVALID.items():
            error = self.assertRaises(InvalidProxyHeader, parse, data)
            self.assertIn("not a valid PROXY protocol header", str(error), name)
            parser = ProxyHeaderParser()
            fed = 0
            with self.assertRaises(InvalidProxyHeader, msg=name):
                for byte in data:
                    fed += 1
                    self.assertIs(parser.feed(bytes([byte])), NEED_DATA, f"{name}: byte {fed}")
            self.assertEqual(fed, at, name)

    def test_reasons(self) -> None:
        """
        The error says what was wrong, with the numbers.
        """
        cases = {
            b"\x80\x00\x00\x28": "the connection began with b'\\x80\\x00\\x00('",
            b"PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n": "the source port b'65536' is not a number",
            v2(0, 0, 0, length=DEFAULT_MAX_V2_HEADER - 15): (
                f"announces {DEFAULT_MAX_V2_HEADER + 1} bytes, over the limit of "
                f"{DEFAULT_MAX_V2_HEADER}"
            ),
            b"PROXY UNKNOWN " + b"f" * 200: f"no CRLF within the first {MAX_V1_HEADER} bytes",
        }
        for data, reason in cases.items():
            error = self.assertRaises(InvalidProxyHeader, parse, data)
            self.assertIn(reason, str(error))

    def test_v1_limit(self) -> None:
        """
        A v1 line of exactly 107 bytes (CRLF included) is taken; one of 108
        is refused when its 107th byte is in, whatever follows.
        """
        line = VALID["v1 UNKNOWN, long form"][0]
        self.assertEqual(len(line), MAX_V1_HEADER)
        header, rest = parse(line + b"more")
        self.assertEqual((header.size, rest), (MAX_V1_HEADER, b"more"))
        longer = line[:-2] + b"f\r\n"
        parser = ProxyHeaderParser()
        self.assertIs(parser.feed(longer[: MAX_V1_HEADER - 1]), NEED_DATA)
        self.assertRaises(InvalidProxyHeader, parser.feed, longer[MAX_V1_HEADER - 1 :])

    def test_v2_limit(self) -> None:
        """
        A v2 header of exactly the limit is taken; one byte more is refused
        on its 16-byte preamble, before any of the rest is kept; the limit
        is the parser's to set.
        """
        body = b"\x00" * (DEFAULT_MAX_V2_HEADER - 16)
        header, rest = parse(v2(1, 0, 0, body) + b"x")
        self.assertEqual((header.size, rest), (DEFAULT_MAX_V2_HEADER, b"x"))
        parser = ProxyHeaderParser()
        preamble = v2(1, 0, 0, length=DEFAULT_MAX_V2_HEADER - 15)
        self.assertRaises(InvalidProxyHeader, parser.feed, preamble)
        small = ProxyHeaderParser(max_v2_size=16 + 216)
        self.assertRaises(InvalidProxyHeader, small.feed, v2(1, 0, 0, b"\x00" * 217))
        self.assertRaises(ValueError, ProxyHeaderParser, 16 + 215)

    def test_holds_only_the_header(self) -> None:
        """
        However large the chunk it comes in, the parser keeps no more than
        the header: a v1 line without CRLF in a 1 MiB chunk is refused
        after 107 bytes.
        """
        parser = ProxyHeaderParser()
        error = self.assertRaises(
            InvalidProxyHeader, parser.feed, b"PROXY UNKNOWN " + b"f" * (1024 * 1024)
        )
        self.assertEqual(error.received, MAX_V1_HEADER)

    def test_truncated(self) -> None:
        """
        A header not yet whole is L{NEED_DATA}, and the parser says how much
        it holds; the rest completes it.
        """
        for name, (data, expected) in VALID.items():
            parser = ProxyHeaderParser()
            self.assertIs(parser.feed(data[:-1]), NEED_DATA, name)
            self.assertEqual(parser.received, len(data) - 1, name)
            self.assertEqual(parser.feed(data[-1:]), (expected, b""), name)

    def test_feed_after_the_end(self) -> None:
        """
        Feeding a parser that gave its header, or refused, is a programming
        error: the connection's bytes are the next protocol's.
        """
        parser = ProxyHeaderParser()
        parser.feed(VALID["v1 TCP4"][0])
        self.assertRaises(LocalProtocolError, parser.feed, b"x")
        parser = ProxyHeaderParser()
        self.assertRaises(InvalidProxyHeader, parser.feed, b"x")
        self.assertRaises(LocalProtocolError, parser.feed, b"PROXY ")

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.sampled_from(sorted(VALID)),
        st.binary(max_size=64),
        st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=40),
    )
    def test_any_segmentation(self, name: str, after: bytes, sizes: list[int]) -> None:
        """
        Whatever the segments a header and what follows it come in, the
        parser gives the same header and the same following bytes.
        """
        data, expected = VALID[name]
        stream = data + after
        parser = ProxyHeaderParser()
        offset = 0
        result: Any = NEED_DATA
        for size in sizes * (len(stream) // len(sizes) + 1):
            piece = stream[offset : offset + size]
            offset += size
            result = parser.feed(piece)
            if result is not NEED_DATA:
                break
        header, rest = result
        self.assertEqual((header, rest + stream[offset:]), (expected, after))

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=300), st.sampled_from([b"", b"PROXY ", SIGNATURE]))
    def test_garbage(self, data: bytes, start: bytes) -> None:
        """
        Whatever the bytes, the parser answers L{NEED_DATA}, a header, or
        L{InvalidProxyHeader}: nothing else escapes it.
        """
        try:
            parse(start + data)
        except InvalidProxyHeader:
            pass

    @settings(max_examples=500, deadline=None)
    @given(
        st.sampled_from([
            ["TCP4", "192.0.2.7", "198.51.100.1", "4242", "2049"],
            ["TCP6", "2001:db8::7", "::1", "0", "65535"],
        ]),
        st.integers(0, 5),
        st.sampled_from(V1_TOKENS) | st.text(alphabet="0123456789abcdefABCDEF.:%+-_ ", max_size=12),
        st.binary(max_size=40),
    )
    def test_v1_fields(self, fields: list[str], where: int, value: str, after: bytes) -> None:
        """
        A valid v1 line with one field replaced by a plausible or
        implausible one (or one more field) gives a header whose addresses
        are canonical and ports in range, or L{InvalidProxyHeader}: nothing
        else escapes the parser.
        """
        fields = list(fields)
        if where < 5:
            fields[where] = value
        else:
            fields.append(value)
        line = ("PROXY " + " ".join(fields) + "\r\n").encode()
        try:
            result = parse(line + after)
        except InvalidProxyHeader:
            return
        header, rest = result
        self.assertEqual(rest, after)
        for address in (header.source, header.destination):
            if address is not None:
                host, port = address
                self.assertEqual(ipaddress.ip_address(host).compressed, host)
                self.assertIn(port, range(65536))

    @settings(max_examples=500, deadline=None)
    @given(
        st.sampled_from([0x20, 0x21]) | st.integers(0, 255),
        st.sampled_from([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32]) | st.integers(0, 255),
        st.binary(max_size=300),
    )
    def test_v2_fields(self, command: int, family: int, body: bytes) -> None:
        """
        v2 headers with any version, command and family bytes and any body
        give a header or L{InvalidProxyHeader}, and nothing else.
        """
        data = SIGNATURE + bytes([command, family]) + struct.pack(">H", len(body)) + body
        try:
            parse(data)
        except InvalidProxyHeader:
            pass


class SniffTests(SynchronousTestCase):
    """
    A PROXY header sent to a listener that does not expect one is refused as
    bytes that are not RPC, saying what they are.
    """

    def test_described(self) -> None:
        """
        L{describe_non_rpc} names a v1 header (quoting its line) and a v2
        header, from the 4 bytes of a record mark on; bytes that only begin
        like one are not taken for one.
        """
        line = VALID["v1 TCP4"][0]
        self.assertEqual(
            describe_non_rpc(line),
            "a PROXY protocol v1 header ('PROXY TCP4 192.0.2.7 198.51.100.1 4242 2049'), "
            "which this listener does not expect (proxy_protocol is off)",
        )
        for data in (v2_inet("192.0.2.7", "198.51.100.1", 1, 2), SIGNATURE[:4], b"PROX"):
            self.assertIn("a PROXY protocol v", describe_non_rpc(data) or "")
        self.assertEqual(describe_non_rpc(SIGNATURE[:4] + b"X"), None)
        self.assertEqual(describe_non_rpc(b"PROXZ"), "text ('PROX')")

    def test_refused_by_a_plain_controller(self) -> None:
        """
        On a controller that expects no header, a v1 or v2 header fails the
        read with L{RecordTooLarge} on its first 4 bytes, saying it is a
        PROXY header; the connection is closed and counted as sniffed.
        """
        for header in (VALID["v1 TCP4"][0], VALID["v2 PROXY IPv4"][0]):
            controller, transport, _ = connected()
            d = controller.start_reading()
            controller.dataReceived(header + mark(4) + b"ping")
            error = self.failureResultOf(d, RecordTooLarge).value
            self.assertIn("a PROXY protocol v", str(error))
            self.assertTrue(transport.disconnecting)
            self.assertEqual(controller.counters[REFUSED_SNIFF], 1)


# -- The listener's header reader and the controller, on fakes --------------------

PROXY_ADDRESS = IPv4Address("TCP", "10.0.0.2", 51000)
"""The proxy, as the socket says."""
LISTENER_ADDRESS = IPv4Address("TCP", "10.0.0.3", 2049)
"""Our listener, as the socket says."""
CLIENT = IPv4Address("TCP", "192.0.2.7", 4242)
FRONTEND = IPv4Address("TCP", "198.51.100.1", 2049)
HEADER = v1("TCP4", "192.0.2.7", "198.51.100.1", 4242, 2049)


class ProxiedListener:
    """
    A listener's factories on fakes: a L{StreamControllerFactory} behind a
    L{ProxyHeaderFactory}, a clock, and the controllers it handed out.
    """

    def __init__(self, **options: Any) -> None:
        self.clock = Clock()
        self.connected: list[StreamController] = []
        self.controllers = StreamControllerFactory(
            self.connected.append, self.clock, recognise_probes=True, **options
        )
        self.factory = ProxyHeaderFactory(self.controllers, self.clock)

    def accept(self) -> tuple[ProxyHeaderProtocol, StringTransport, StreamController]:
        """
        A new connection from the proxy: its header reader, transport and
        controller (not yet connected).
        """
        protocol = self.factory.buildProtocol(PROXY_ADDRESS)
        assert protocol is not None
        transport = StringTransport(hostAddress=LISTENER_ADDRESS, peerAddress=PROXY_ADDRESS)
        protocol.makeConnection(transport)
        controller = protocol.inner
        assert isinstance(controller, StreamController)
        return protocol, transport, controller


class ControllerBehindProxyTests(SynchronousTestCase):
    """
    A controller behind a L{ProxyHeaderProtocol}: the client the header
    names is its peer everywhere; no header, a bad one or a late one closes
    the connection, counted; the connection counts for admission control
    from its accept.
    """

    def read_one(self, controller: StreamController) -> tuple[Any, list[Any]]:
        """
        Start a read whose C{before_record} notes the peers it is given.
        """
        peers: list[Any] = []

        def hook(size: int, peer: Any) -> Any:
            peers.append(peer)
            return ACCEPT

        return controller.start_reading(before_record=hook), peers

    def test_real_peer(self) -> None:
        """
        With a v1 header and a record in one chunk, C{on_connection} gets
        the controller once the header is in (not before), and
        C{getpeername()}, C{before_record}, the read's peer and
        C{getsockname()} report the client and the address it connected
        to, not the proxy and the listener.
        """
        listener = ProxiedListener()
        protocol, transport, controller = listener.accept()
        protocol.dataReceived(HEADER[:10])
        self.assertEqual(listener.connected, [])
        self.assertEqual(controller.getpeername(), PROXY_ADDRESS)
        protocol.dataReceived(HEADER[10:] + mark(4) + b"ping")
        self.assertEqual(listener.connected, [controller])
        self.assertEqual(controller.getpeername(), CLIENT)
        self.assertEqual(controller.getsockname(), FRONTEND)
        header = controller.proxy_header
        assert header is not None
        self.assertEqual((header.version, header.command), (1, Command.PROXY))
        d, peers = self.read_one(controller)
        self.assertEqual(self.successResultOf(d), (Accepted(b"ping"), CLIENT))
        self.assertEqual(peers, [CLIENT])
        self.assertFalse(transport.disconnecting)
        self.assertEqual(dict(listener.controllers.counters), {})

    def test_byte_by_byte(self) -> None:
        """
        A v2 header and a record, one byte at a time, give the same.
        """
        listener = ProxiedListener()
        protocol, _, controller = listener.accept()
        for byte in v2_inet("192.0.2.7", "198.51.100.1", 4242, 2049) + mark(4) + b"ping":
            protocol.dataReceived(bytes([byte]))
        self.assertEqual(controller.getpeername(), CLIENT)
        d, peers = self.read_one(controller)
        self.assertEqual(self.successResultOf(d), (Accepted(b"ping"), CLIENT))
        self.assertEqual(peers, [CLIENT])

    def test_families(self) -> None:
        """
        IPv6 and UNIX clients are reported as Twisted's C{IPv6Address} and
        C{UNIXAddress}.
        """
        cases = [
            (
                v2_inet("2001:db8::7", "2001:db8::1", 4242, 2049),
                IPv6Address("TCP", "2001:db8::7", 4242),
                IPv6Address("TCP", "2001:db8::1", 2049),
            ),
            (
                v1("TCP6", "2001:db8::7", "2001:db8::1", 4242, 2049),
                IPv6Address("TCP", "2001:db8::7", 4242),
                IPv6Address("TCP", "2001:db8::1", 2049),
            ),
            (
                v2_unix(b"/run/c.sock", b"/run/h.sock"),
                UNIXAddress(b"/run/c.sock"),
                UNIXAddress(b"/run/h.sock"),
            ),
        ]
        for header, peer, local in cases:
            listener = ProxiedListener()
            protocol, _, controller = listener.accept()
            protocol.dataReceived(header)
            self.assertEqual((controller.getpeername(), controller.getsockname()), (peer, local))

    def test_local_and_unknown(self) -> None:
        """
        A v2 C{LOCAL} header (a proxy's health check), v2 C{UNSPEC} and v1
        C{UNKNOWN} keep the connection's own addresses.
        """
        for name in ("v2 LOCAL, with addresses to skip", "v2 PROXY UNSPEC", "v1 UNKNOWN"):
            listener = ProxiedListener()
            protocol, _, controller = listener.accept()
            protocol.dataReceived(VALID[name][0] + mark(2) + b"hi")
            self.assertEqual(
                (controller.getpeername(), controller.getsockname()),
                (PROXY_ADDRESS, LISTENER_ADDRESS),
                name,
            )
            d, peers = self.read_one(controller)
            self.assertEqual(self.successResultOf(d), (Accepted(b"hi"), PROXY_ADDRESS))
            self.assertEqual(peers, [PROXY_ADDRESS])

    def test_no_header_refused_at_once(self) -> None:
        """
        A connection that begins with a record mark (a client that bypassed
        the proxy) is aborted on its first byte, counted as
        C{refused.proxy_header} for the listener, and never reaches
        C{on_connection}; once it is gone, it no longer counts.
        """
        listener = ProxiedListener()
        protocol, transport, controller = listener.accept()
        self.assertEqual(listener.controllers.connections, 1)
        protocol.dataReceived(mark(40)[:1])
        self.assertTrue(transport.disconnected)
        self.assertEqual(dict(listener.controllers.counters), {REFUSED_PROXY_HEADER: 1})
        protocol.dataReceived(mark(40)[1:] + b"\x00" * 40)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(listener.connected, [])
        self.assertEqual(listener.controllers.connections, 0)
        self.assertFalse(controller.alive)

    def test_deadline(self) -> None:
        """
        A connection whose header is not whole within
        C{proxy_header_timeout} is aborted then (not a moment before) and
        counted as C{deadline.proxy_header}.
        """
        listener = ProxiedListener()
        protocol, transport, _ = listener.accept()
        protocol.dataReceived(HEADER[:20])
        listener.clock.advance(DEFAULT_PROXY_HEADER_TIMEOUT - 0.01)
        self.assertFalse(transport.disconnected)
        listener.clock.advance(0.01)
        self.assertTrue(transport.disconnected)
        self.assertEqual(dict(listener.controllers.counters), {DEADLINE_PROXY_HEADER: 1})
        self.assertEqual(listener.connected, [])
        self.assertIn("20 bytes of it received", str(ProxyHeaderTimeout(5.0, 20)))

    def test_silent_peer_deadline(self) -> None:
        """
        A peer that connects and sends nothing is closed at the deadline
        too, with the listener's own timeout.
        """
        listener = ProxiedListener()
        listener.factory = ProxyHeaderFactory(listener.controllers, listener.clock, timeout=1.5)
        _, transport, _ = listener.accept()
        listener.clock.advance(1.5)
        self.assertTrue(transport.disconnected)
        self.assertEqual(dict(listener.controllers.counters), {DEADLINE_PROXY_HEADER: 1})
        self.assertRaises(ValueError, ProxyHeaderFactory, listener.controllers, listener.clock, 0)

    def test_deadline_stops_with_the_header(self) -> None:
        """
        Once the header is in, its deadline no longer runs.
        """
        listener = ProxiedListener()
        protocol, transport, _ = listener.accept()
        protocol.dataReceived(HEADER)
        self.assertEqual(listener.clock.getDelayedCalls(), [])
        listener.clock.advance(DEFAULT_PROXY_HEADER_TIMEOUT * 10)
        self.assertFalse(transport.disconnected)

    def test_end_inside_header(self) -> None:
        """
        A connection that ends inside its header counts as refused; one
        that ends before its first byte (a proxy's plain TCP health check)
        does not. Either way the listener forgets it.
        """
        listener = ProxiedListener()
        protocol, _, _ = listener.accept()
        protocol.dataReceived(HEADER[:7])
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(dict(listener.controllers.counters), {REFUSED_PROXY_HEADER: 1})
        protocol, _, _ = listener.accept()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(dict(listener.controllers.counters), {REFUSED_PROXY_HEADER: 1})
        self.assertEqual(listener.controllers.connections, 0)
        self.assertEqual(listener.clock.getDelayedCalls(), [])

    def test_evicted_while_waiting(self) -> None:
        """
        At C{max_connections}, a connection still waiting for its header is
        evicted first (it proved nothing), its transport aborted and the
        eviction counted; a header that still arrives connects nothing.
        """
        listener = ProxiedListener(max_connections=1)
        first, first_transport, first_controller = listener.accept()
        listener.clock.advance(1)
        _, second_transport, _ = listener.accept()
        self.assertTrue(first_transport.disconnected)
        self.assertFalse(second_transport.disconnected)
        self.assertEqual(dict(listener.controllers.counters), {EVICTED_UNPROVEN: 1})
        first.dataReceived(HEADER)
        self.assertEqual(listener.connected, [])
        first.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(first_controller.alive)
        self.assertEqual(listener.controllers.connections, 1)

    def test_accepted_at(self) -> None:
        """
        The connection is as old as its accept, header time included (what
        admission control ranks the oldest by).
        """
        listener = ProxiedListener()
        listener.clock.advance(100)
        protocol, _, controller = listener.accept()
        listener.clock.advance(2)
        protocol.dataReceived(HEADER)
        self.assertEqual(controller.connected_at, 100)

    def test_inactivated_while_waiting(self) -> None:
        """
        C{inactivate()} on a controller whose header is awaited closes the
        connection.
        """
        listener = ProxiedListener()
        protocol, transport, controller = listener.accept()
        controller.inactivate()
        self.assertTrue(transport.disconnected)
        protocol.dataReceived(HEADER)
        self.assertEqual(listener.connected, [])

    def test_forwards_without_hand_over(self) -> None:
        """
        On a transport that cannot be handed over (not a socket transport),
        the header reader forwards what follows the header, and the end.
        """
        listener = ProxiedListener()
        protocol, _, controller = listener.accept()
        protocol.dataReceived(HEADER)
        d = controller.start_reading()
        protocol.dataReceived(mark(2) + b"hi")
        self.assertEqual(self.successResultOf(d), (Accepted(b"hi"), CLIENT))
        d = controller.start_reading()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), END_OF_FILE)


# -- Real sockets, without a proxy ------------------------------------------------


class _Reflector:
    """
    What a test's listener does with each connection: note it, and send
    back every record it reads, noting the peer C{before_record} and the
    read were given.

    @ivar accepted: the controllers, as they connect.
    @ivar peers: C{(controller, peer before_record saw, peer of the read)},
        per record.
    @ivar failures: the errors reads failed with.
    """

    def __init__(self) -> None:
        self.accepted: DeferredQueue[StreamController] = DeferredQueue()
        self.peers: list[tuple[StreamController, Any, Any]] = []
        self.failures: DeferredQueue[BaseException] = DeferredQueue()

    def __call__(self, controller: StreamController) -> None:
        self.accepted.put(controller)
        self._next(controller)

    def _next(self, controller: StreamController) -> None:
        seen: list[Any] = []

        def hook(size: int, peer: Any) -> Any:
            seen.append(peer)
            return ACCEPT

        def got(result: Any) -> None:
            if result is END_OF_FILE:
                return
            record, peer = result
            self.peers.append((controller, seen[0], peer))
            controller.start_writing(record.message)
            self._next(controller)

        d = controller.start_reading(before_record=hook)
        d.addCallbacks(got, lambda failure: self.failures.put(failure.value))


class _RawSocketMixin(SocketTestMixin):
    """
    Plain client sockets, read without blocking the reactor that serves
    them.
    """

    def raw(self, address: Any) -> socket.socket:
        """A plain client socket connected to C{address} (a port's C{getHost()})."""
        if isinstance(address, UNIXAddress):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            assert address.name is not None
            sock.connect(address.name)
        else:
            sock = socket.create_connection((address.host, address.port))
        sock.setblocking(False)
        return self.track_socket(sock)

    @inlineCallbacks
    def receive(self, sock: socket.socket, n: int) -> Generator[Any, Any, bytes]:
        """The next C{n} bytes from C{sock} (the reactor runs meanwhile)."""
        got = bytearray()

        def some() -> bool:
            try:
                chunk = sock.recv(n - len(got))
            except BlockingIOError:
                return False
            if not chunk:
                raise AssertionError(f"the connection ended after {len(got)} of {n} bytes")
            got.extend(chunk)
            return len(got) >= n

        yield self.until(some, f"{n} bytes")
        return bytes(got)

    def closed_by_peer(self, sock: socket.socket) -> Any:
        """
        Fire once C{sock}'s peer closed it (an EOF, or a reset), with what
        it sent before.
        """
        got = bytearray()

        def ended() -> bool:
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True
            got.extend(chunk)
            return not chunk

        d = self.until(ended, "the connection to be closed")
        d.addCallback(lambda _: bytes(got))
        return d


class DirectSocketTests(_RawSocketMixin, TestCase):
    """
    Real loopback sockets, no proxy: a client that connects straight to a
    listener behind a proxy; a header sent to one that expects none; the
    hand-over of the socket; UNIX credentials; Twisted's C{haproxy:}
    endpoint strings.
    """

    def setUp(self) -> None:
        self._setUpRegistry()
        self.reflector = _Reflector()

    @inlineCallbacks
    def listen(
        self, endpoint: Any = "tcp:0:interface=127.0.0.1", **options: Any
    ) -> Generator[Any, Any, Any]:
        """Listen with L{listen_stream}, serving the reflector; stop at the end."""
        port = yield listen_stream(endpoint, self.reflector, reactor=self.reactor, **options)
        self.addCleanup(port.stopListening)
        return port

    @inlineCallbacks
    def test_bypassing_client_refused(self) -> Generator[Any, Any, None]:
        """
        A client that connects straight to a listener behind a proxy and
        sends a call (or garbage) is closed at once, without an answer, and
        counted as C{refused.proxy_header}; nothing reaches the application.
        """
        port = yield self.listen(proxy_protocol=True)
        for data in (echo_call(1), b"\x00garbage"):
            sock = self.raw(port.getHost())
            sock.sendall(data)
            answer = yield self.closed_by_peer(sock)
            self.assertEqual(answer, b"")
        self.assertEqual(dict(listener_counters(port)), {REFUSED_PROXY_HEADER: 2})
        self.assertEqual(self.reflector.peers, [])
        self.assertEqual(len(self.reflector.accepted.pending), 0)

    @inlineCallbacks
    def test_header_to_plain_listener(self) -> Generator[Any, Any, None]:
        """
        A v1 or v2 header sent to a listener that does not expect one is
        refused as what it is, at once: the read fails with
        L{RecordTooLarge} saying it is a PROXY header, and the refusal is
        counted as sniffed.
        """
        port = yield self.listen()
        for header in (HEADER, v2_inet("192.0.2.7", "198.51.100.1", 1, 2)):
            sock = self.raw(port.getHost())
            sock.sendall(header + echo_call(1))
            error = yield self.within(self.reflector.failures.get(), "the read to fail")
            self.assertIsInstance(error, RecordTooLarge)
            self.assertIn("PROXY protocol v", str(error))
            answer = yield self.closed_by_peer(sock)
            self.assertEqual(answer, b"")
        self.assertEqual(listener_counters(port)[REFUSED_SNIFF], 2)

    @inlineCallbacks
    def test_hand_over(self) -> Generator[Any, Any, None]:
        """
        After the header, the socket transport delivers to the controller
        itself: nothing of the header reader stays on the connection's
        path.
        """
        port = yield self.listen(proxy_protocol=True)
        sock = self.raw(port.getHost())
        sock.sendall(HEADER + mark(4) + b"ping")
        echoed = yield self.receive(sock, 8)
        self.assertEqual(echoed, mark(4) + b"ping")
        server = yield self.within(self.reflector.accepted.get(), "the connection")
        transport: Any = server.transport
        self.assertIs(transport.protocol, server)
        self.assertEqual(self.reflector.peers, [(server, CLIENT, CLIENT)])

    @inlineCallbacks
    def test_haproxy_endpoint_strings(self) -> Generator[Any, Any, None]:
        """
        Twisted's C{haproxy:} endpoint strings, and the endpoints its parser
        makes of them, turn the header on, read by our reader: a header
        split over two segments works (Twisted's own reader drops a
        connection whose first segment is shorter than 8 bytes).
        """
        from twisted.internet.endpoints import serverFromString

        for endpoint in (
            "haproxy:tcp:0:interface=127.0.0.1",
            serverFromString(self.reactor, "haproxy:tcp:0:interface=127.0.0.1"),
        ):
            port = yield self.listen(endpoint)
            sock = self.raw(port.getHost())
            sock.sendall(HEADER[:4])
            yield sleep(0.1)
            sock.sendall(HEADER[4:] + mark(4) + b"ping")
            echoed = yield self.receive(sock, 8)
            self.assertEqual(echoed, mark(4) + b"ping")
            server = yield self.within(self.reflector.accepted.get(), "the connection")
            self.assertEqual(server.getpeername(), CLIENT)

    @inlineCallbacks
    def test_unix_credentials(self) -> Generator[Any, Any, None]:
        """
        On a UNIX socket behind a proxy, the peer process's credentials are
        the proxy's, not the client's: a connection whose header names a
        client has none (and no user name); one with a C{LOCAL} header has
        the connecting process's.
        """
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        port = yield self.listen(f"unix:{os.path.join(directory, 's')}", proxy_protocol=True)
        for header in (HEADER, VALID["v2 LOCAL, empty"][0]):
            sock = self.raw(port.getHost())
            sock.sendall(header + mark(4) + b"ping")
            echoed = yield self.receive(sock, 8)
            self.assertEqual(echoed, mark(4) + b"ping")
            server = yield self.within(self.reflector.accepted.get(), "the connection")
            if header is HEADER:
                self.assertEqual(server.getpeername(), CLIENT)
                self.assertIsNone(server.peer_credentials)
                self.assertIsNone(server.peer_user_name)
            else:
                self.assertIsInstance(server.getpeername(), UNIXAddress)
                credentials = server.peer_credentials
                assert credentials is not None
                self.assertEqual(credentials[1], os.getuid())


# -- A real HAProxy ---------------------------------------------------------------


class HAProxyTests(_RawSocketMixin, TestCase):
    """
    A real HAProxy in front of our listeners: the client's own address (its
    socket's local address) is what the controller's C{getpeername()}, its
    reads and C{before_record} see, over v1 and v2, IPv4 and IPv6; TLS
    passed through keeps the client certificate's identity; TLS ended at
    HAProxy works with our listener in plaintext behind it.
    """

    def setUp(self) -> None:
        why = haproxy_skip()
        if why is not None:
            raise SkipTest(why)
        self._setUpRegistry()
        self.reflector = _Reflector()
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory, True)

    @inlineCallbacks
    def listen(self, **options: Any) -> Generator[Any, Any, Any]:
        """Listen on loopback TCP, serving the reflector; stop at the end."""
        port = yield listen_stream(
            "tcp:0:interface=127.0.0.1", self.reflector, reactor=self.reactor, **options
        )
        self.addCleanup(port.stopListening)
        return port

    def haproxy(self, sections: str) -> HAProxy:
        """Start a HAProxy with C{sections}; stop it at the end."""
        proxy = HAProxy(self.directory, sections)
        proxy.start()
        self.addCleanup(proxy.stop)
        return proxy

    def in_front(self, port: Any, send: str = "send-proxy-v2") -> int:
        """
        Start a HAProxy in front of C{port} (a listening port), sending it
        the PROXY header C{send}; the port HAProxy listens on.
        """
        front = free_port()
        self.haproxy(
            "frontend in\n"
            f"    bind 127.0.0.1:{front}\n"
            "    default_backend ours\n"
            "backend ours\n"
            f"    server ours 127.0.0.1:{port.getHost().port} {send}\n"
        )
        return front

    def pem(self, name: str, data: bytes) -> str:
        """Write C{data} to C{name} in the test's directory; its path."""
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    @inlineCallbacks
    def echo_through(
        self, endpoint: Any, **options: Any
    ) -> Generator[Any, Any, tuple[StreamController, StreamController]]:
        """
        Connect a client through HAProxy, send a record and read it back;
        return the client and the server's controller.
        """
        client = yield self.within(
            connect_stream(endpoint, reactor=self.reactor, **options), "connect through HAProxy"
        )
        self.track(client)
        yield self.within(client.start_writing(b"ping"), "the write")
        result = yield self.within(client.start_reading(), "the echo")
        self.assertEqual(result[0], Accepted(b"ping"))
        server = yield self.within(self.reflector.accepted.get(), "the server's connection")
        self.track(server)
        return client, server

    def assertSeesClient(self, client: StreamController, server: StreamController) -> None:
        """
        The server's controller reports the client's own address everywhere.
        """
        me = client.getsockname()
        self.assertEqual(server.getpeername(), me)
        self.assertEqual(self.reflector.peers[-1], (server, me, me))

    @inlineCallbacks
    def check_version(self, send: str, version: int, host: str) -> Generator[Any, Any, None]:
        """
        HAProxy with C{send} in front of our listener; a client over
        C{host} (IPv4 or IPv6 loopback) through it.
        """
        if ":" in host:
            why = ipv6_skip()
            if why is not None:
                raise SkipTest(why)
        port = yield self.listen(proxy_protocol=True)
        front = free_port(host)
        self.haproxy(
            "frontend in\n"
            f"    bind {'ipv6@' if ':' in host else ''}{host}:{front}\n"
            "    default_backend ours\n"
            "backend ours\n"
            f"    server ours 127.0.0.1:{port.getHost().port} {send}\n"
        )
        cls = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
        client, server = yield self.echo_through(cls(self.reactor, host, front))
        self.assertSeesClient(client, server)
        header = server.proxy_header
        assert header is not None
        self.assertEqual(header.version, version)
        address = IPv6Address if ":" in host else IPv4Address
        self.assertEqual(server.getsockname(), address("TCP", host, front))

    def test_send_proxy_ipv4(self) -> Any:
        """
        C{send-proxy} (v1), an IPv4 client: the server sees the client's own
        address, and as its own the address the client connected to, on
        HAProxy.
        """
        return self.check_version("send-proxy", 1, "127.0.0.1")

    def test_send_proxy_ipv6(self) -> Any:
        """
        C{send-proxy} (v1), an IPv6 client: the same.
        """
        return self.check_version("send-proxy", 1, "::1")

    def test_send_proxy_v2_ipv4(self) -> Any:
        """
        C{send-proxy-v2}, an IPv4 client: the same.
        """
        return self.check_version("send-proxy-v2", 2, "127.0.0.1")

    def test_send_proxy_v2_ipv6(self) -> Any:
        """
        C{send-proxy-v2}, an IPv6 client: the same.
        """
        return self.check_version("send-proxy-v2", 2, "::1")

    @inlineCallbacks
    def test_tls_passthrough(self) -> Generator[Any, Any, None]:
        """
        HAProxy in TCP mode with C{send-proxy-v2} in front of our
        implicit-TLS listener, which requires client certificates: the
        header is read below TLS, the server sees the client's address, and
        the identity in the client's certificate (C{peer_user_name}).
        """
        certificates = pki()
        port = yield self.listen(
            proxy_protocol=True,
            tls=server_options(client_ca=certificates.ca.certificate),
        )
        front = self.in_front(port)
        client, server = yield self.echo_through(
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", front),
            tls=client_options(certificates.cn_client),
        )
        self.assertSeesClient(client, server)
        self.assertEqual(server.peer_user_name, "dave")

    @inlineCallbacks
    def test_starttls_passthrough(self) -> Generator[Any, Any, None]:
        """
        The same in front of our STARTTLS listener: the client probes (RFC
        9289) through HAProxy, upgrades, and the server sees its address and
        its certificate's identity.
        """
        certificates = pki()
        port = yield self.listen(
            proxy_protocol=True,
            starttls=server_options(client_ca=certificates.ca.certificate),
        )
        front = self.in_front(port)
        client = yield self.within(
            connect_stream(
                TCP4ClientEndpoint(self.reactor, "127.0.0.1", front), reactor=self.reactor
            ),
            "connect",
        )
        self.track(client)
        yield self.within(
            client.start_tls(client_options(certificates.cn_client), ECHO_PROGRAM, ECHO_VERSION),
            "STARTTLS",
        )
        yield self.within(client.start_writing(b"ping"), "the write")
        result = yield self.within(client.start_reading(), "the echo")
        self.assertEqual(result[0], Accepted(b"ping"))
        server = yield self.within(self.reflector.accepted.get(), "the server's connection")
        self.track(server)
        self.assertSeesClient(client, server)
        self.assertEqual(server.peer_user_name, "dave")

    @inlineCallbacks
    def test_tls_termination(self) -> Generator[Any, Any, None]:
        """
        HAProxy ends TLS (C{bind ... ssl crt}, client certificates
        required) and sends C{send-proxy-v2-ssl-cn} to our plaintext
        listener: the header's SSL TLVs are skipped, the server sees the
        client's address; it has no TLS, so no certificate identity.
        """
        certificates = pki()
        port = yield self.listen(proxy_protocol=True)
        crt = self.pem("server.pem", certificates.server.pem)
        ca = self.pem("ca.pem", certificates.ca.certificate)
        front = free_port()
        self.haproxy(
            "frontend in\n"
            f"    bind 127.0.0.1:{front} ssl crt {crt} ca-file {ca} verify required alpn sunrpc\n"
            "    default_backend ours\n"
            "backend ours\n"
            f"    server ours 127.0.0.1:{port.getHost().port} send-proxy-v2-ssl-cn\n"
        )
        client, server = yield self.echo_through(
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", front),
            tls=client_options(certificates.cn_client),
        )
        self.assertSeesClient(client, server)
        header = server.proxy_header
        assert header is not None
        self.assertGreater(header.size, 16 + 12, "HAProxy sent no TLVs")
        self.assertIsNone(server.tls_session_props)
        self.assertIsNone(server.peer_user_name)

    @inlineCallbacks
    def test_bypass_beside_haproxy(self) -> Generator[Any, Any, None]:
        """
        While HAProxy's clients are served, a client that connects straight
        to the listener is refused at once and counted; HAProxy's clients
        are not.
        """
        port = yield self.listen(proxy_protocol=True)
        front = self.in_front(port)
        client, server = yield self.echo_through(TCP4ClientEndpoint(self.reactor, "127.0.0.1", front))
        self.assertSeesClient(client, server)
        direct = yield self.within(
            connect_stream(
                TCP4ClientEndpoint(self.reactor, "127.0.0.1", port.getHost().port),
                reactor=self.reactor,
            ),
            "connect directly",
        )
        self.track(direct)
        d = outcome(direct.start_reading())
        outcome(direct.start_writing(echo_call(7)))
        # The end of the input, or a reset: no answer either way.
        ended, result = yield self.within(d, "the direct connection to end")
        self.assertTrue(result is END_OF_FILE or not ended, result)
        self.assertEqual(dict(listener_counters(port)), {REFUSED_PROXY_HEADER: 1})


class TirpcThroughHAProxyTests(SynchronousTestCase):
    """
    libtirpc's client through HAProxy (round robin, C{send-proxy-v2}) to
    two C{rpctransport serve} processes (one listening on Twisted's
    C{haproxy:} endpoint string, one with C{--proxy-protocol} and two
    workers): every call is answered, and both servers took connections.
    """

    def test_round_robin(self) -> None:
        """
        Six runs of C{tirpc_client} (one TCP connection each, 50 ECHO calls
        of 1000 bytes and NULL calls) through HAProxy all succeed; HAProxy
        counts three sessions for each server.
        """
        why = haproxy_skip()
        if why is not None:
            raise SkipTest(why)
        client = build_or_skip("tirpc_client")
        ports = []
        # One server takes Twisted's haproxy: endpoint string, the other
        # serve's own --proxy-protocol (with two workers).
        for options in (
            ("--listen", "haproxy:tcp:0:interface=127.0.0.1"),
            ("--tcp", "127.0.0.1:0", "--proxy-protocol", "--workers", "2"),
        ):
            server = start_server(
                self,
                rpctransport_command("serve", *options),
                kinds=("tcp",),
                env=rpctransport_env(),
            )
            ports.append(server.port("tcp"))
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        front = free_port()
        proxy = HAProxy(
            directory,
            "frontend in\n"
            f"    bind 127.0.0.1:{front}\n"
            "    default_backend serve\n"
            "backend serve\n"
            "    balance roundrobin\n"
            f"    server a 127.0.0.1:{ports[0]} send-proxy-v2\n"
            f"    server b 127.0.0.1:{ports[1]} send-proxy-v2\n",
        )
        proxy.start()
        self.addCleanup(proxy.stop)
        for run in range(6):
            proc = "echo" if run % 2 == 0 else "null"
            finished = run_program(
                [
                    str(client),
                    "tcp",
                    "127.0.0.1",
                    str(front),
                    str(ECHO_PROGRAM),
                    str(ECHO_VERSION),
                    proc,
                    "1000",
                    "50",
                ],
                60,
            )
            self.assertEqual(finished.returncode, 0, f"{finished.describe()}\n{proxy.log()}")
            self.assertIn("calls 50/50", finished.stdout)
        self.assertTrue(
            wait_until(lambda: proxy.sessions("serve") == {"a": 3, "b": 3}, 10),
            proxy.sessions("serve"),
        )
