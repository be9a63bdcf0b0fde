# -*- test-case-name: rpctransport.test.test_rpcbind -*-
"""
Tests for rpcbind registration: the values of L{rpctransport.sansio.rpcb}
and the client of L{rpctransport.rpc.rpcbind}.

First on fakes: the request bytes against hand-built ones, and the paths
tried, against an rpcbind in memory (L{FakeRpcbind}: an L{RpcServer} over
in-memory controllers, answering as rpcbind does) with a L{Clock}. Then
against a real rpcbind that the test starts (C{rpcbind -f}, as root, on
port 111), checked with C{rpcinfo}; skipped, saying why, where it cannot
run.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Generator
from functools import partial
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import CancelledError, Deferred, fail, inlineCallbacks, succeed
from twisted.internet.error import ConnectError, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, LogEvent, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from rpctransport.test.interop.rpcbind import RunningRpcbind
from rpctransport.adapters.stream import StreamController
from rpctransport.entry.datagram import listen_datagram
from rpctransport.entry.stream import listen_stream
from rpctransport.rpc.client import RpcClient
from rpctransport.rpc.rpcbind import (
    SOCKET_PATHS,
    Entry,
    ProgramNotRegistered,
    Registration,
    RegistrationRefused,
    Rpcbind,
    RpcbindPath,
    RpcbindUnavailable,
    client_address,
    connect_registered,
    entries_for,
    lookup,
    netid_of,
    register,
    unregister,
)
from rpctransport.rpc.server import CallInfo, RpcServer
from rpctransport.sansio.errors import CallTimeout, MalformedMessage
from rpctransport.sansio.rpcb import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    MAX_RPCB_STRING,
    PortMapping,
    Rpcb,
    decode_bool,
    decode_pmap,
    decode_port,
    decode_rpcb,
    decode_uaddr,
    encode_bool,
    encode_pmap,
    encode_port,
    encode_rpcb,
    encode_uaddr,
    parse_universal_address,
    universal_address,
)
from rpctransport.test.helpers import SocketTestMixin
from rpctransport.testing.memory import controller_pair

PROGRAM = 0x20000099
"""A program number from the transient range (RFC 5531 section 8.3)."""

P = b"\x20\x00\x00\x99"
"""L{PROGRAM} in XDR."""

V1 = b"\x00\x00\x00\x01"

UNIX = "UNIX socket /test/rpcbind.sock"
TCP = "TCP 127.0.0.1:111"

SET_TCP_40000 = (
    P
    + V1
    + b"\x00\x00\x00\x03tcp\x00"
    + b"\x00\x00\x00\x0e0.0.0.0.156.64\x00\x00"
    + b"\x00\x00\x00\x010\x00\x00\x00"
)
"""rpcbind's SET of PROGRAM 1 on tcp at port 40000, owner "0", by hand."""

_PROCEDURES = {1: "SET", 2: "UNSET", 3: "GETADDR"}


# -- An rpcbind in memory ---------------------------------------------------------


class FakeRpcbind:
    """
    An rpcbind in memory, answering as Linux's does (C{rpcb_svc_com.c}):
    SET is true when the entry is new or has the same address, UNSET
    removes matching entries unless another owner's (the caller on the
    UNIX socket is C{superuser}, over TCP C{unknown}), GETADDR answers for
    the netid of the transport asked, the portmapper registers
    C{0.0.0.0.p1.p2}.

    @ivar table: C{(program, version, netid)}: C{(uaddr, owner)}.
    @ivar calls: each call received: C{(path, version, procedure,
        arguments)}.
    @ivar versions: the versions served, per path (C{str(path)}); 2 to 4
        for the others.
    """

    def __init__(self) -> None:
        self.table: dict[tuple[int, int, str], tuple[str, str]] = {}
        self.calls: list[tuple[str, int, int, bytes]] = []
        self.versions: dict[str, tuple[int, ...]] = {}

    def server(self, path: RpcbindPath) -> RpcServer:
        """
        An L{RpcServer} answering as rpcbind does when reached by C{path}.
        """
        where = str(path)
        if path.transport == "unix":
            netid, owner = "local", "superuser"
        else:
            netid = path.transport + ("6" if ":" in path.where else "")
            owner = "unknown"
        server = RpcServer()
        for version in self.versions.get(where, (2, 3, 4)):
            server.add_program(
                100000,
                version,
                {
                    1: partial(self._set, where, version, owner),
                    2: partial(self._unset, where, version, owner),
                    3: partial(self._getaddr, where, version, netid),
                },
            )
        return server

    def _set(self, where: str, version: int, owner: str, args: bytes, call: CallInfo) -> bytes:
        self.calls.append((where, version, 1, args))
        if version == 2:
            mapping = decode_pmap(args)
            netid = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}.get(mapping.protocol)
            if netid is None:
                return encode_bool(False)
            key = (mapping.program, mapping.version, netid)
            uaddr = universal_address("0.0.0.0", mapping.port)
        else:
            rpcb = decode_rpcb(args)
            key, uaddr = (rpcb.program, rpcb.version, rpcb.netid), rpcb.address
        if key in self.table:
            return encode_bool(self.table[key][0] == uaddr)
        self.table[key] = (uaddr, owner)
        return encode_bool(True)

    def _unset(self, where: str, version: int, owner: str, args: bytes, call: CallInfo) -> bytes:
        self.calls.append((where, version, 2, args))
        if version == 2:
            mapping = decode_pmap(args)
            program, vers, netids = mapping.program, mapping.version, {"tcp", "udp"}
        else:
            rpcb = decode_rpcb(args)
            program, vers = rpcb.program, rpcb.version
            netids = {rpcb.netid} if rpcb.netid else {key[2] for key in self.table}
        for key in [(program, vers, netid) for netid in sorted(netids)]:
            if key in self.table:
                if owner != "superuser" and self.table[key][1] != owner:
                    return encode_bool(False)
                del self.table[key]
        return encode_bool(True)

    def _getaddr(self, where: str, version: int, netid: str, args: bytes, call: CallInfo) -> bytes:
        self.calls.append((where, version, 3, args))
        if version == 2:
            mapping = decode_pmap(args)
            protocol = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}[mapping.protocol]
            found = self.table.get((mapping.program, mapping.version, protocol))
            return encode_port(parse_universal_address(found[0])[1] if found else 0)
        rpcb = decode_rpcb(args)
        found = self.table.get((rpcb.program, rpcb.version, netid))
        return encode_uaddr(found[0] if found else "")


class FakeNetwork:
    """
    Connects RPC clients to a L{FakeRpcbind} over in-memory controllers:
    an L{Rpcbind}'s C{connect}.

    @ivar down: paths (C{str(path)}) that fail to connect, with the error.
    @ivar deaf: paths that connect but never answer.
    @ivar connected: every path asked for, in order.
    @ivar pending: paths whose connection waits (their Deferreds).
    """

    def __init__(self, rpcbind: FakeRpcbind, clock: Clock) -> None:
        self.rpcbind = rpcbind
        self.clock = clock
        self.down: dict[str, Exception] = {}
        self.deaf: set[str] = set()
        self.hold: set[str] = set()
        self.connected: list[str] = []
        self.pending: list[Deferred[RpcClient]] = []
        self.cancelled: list[str] = []

    def connect(self, path: RpcbindPath) -> Deferred[RpcClient]:
        where = str(path)
        self.connected.append(where)
        if where in self.down:
            return fail(self.down[where])
        if where in self.hold:
            d: Deferred[RpcClient] = Deferred(lambda d: self.cancelled.append(where))
            self.pending.append(d)
            return d
        return succeed(self.client(path))

    def client(self, path: RpcbindPath) -> RpcClient:
        """
        A client connected to the fake rpcbind as reached by C{path}.
        """
        client_side, server_side = controller_pair(self.clock)
        if str(path) in self.deaf:
            server = RpcServer()
            for version in (2, 3, 4):
                server.add_program(100000, version, {n: _never for n in (1, 2, 3)})
        else:
            server = self.rpcbind.server(path)
        server.serve(server_side)
        return RpcClient(client_side, reactor=self.clock)


def _never(args: bytes, call: CallInfo) -> Deferred[Any]:
    return Deferred()


class _Fakes(SynchronousTestCase):
    """
    Sets up a L{FakeRpcbind}, a L{FakeNetwork} and an L{Rpcbind} on them
    whose UNIX socket is C{/test/rpcbind.sock}; collects its log events.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.fake = FakeRpcbind()
        self.network = FakeNetwork(self.fake, self.clock)
        self.rpcbind = self.make()
        self.events: list[LogEvent] = []
        self.rpcbind.log = Logger(observer=cast(ILogObserver, self.events.append))

    def make(self, **options: Any) -> Rpcbind:
        options.setdefault("socket_path", "/test/rpcbind.sock")
        return Rpcbind(connect=self.network.connect, reactor=self.clock, **options)

    def logged(self) -> list[str]:
        return [formatEvent(event) for event in self.events]

    def socket_down(self) -> None:
        self.network.down[UNIX] = ConnectError(string="2: No such file or directory")

    def sent(self) -> list[tuple[str, int, str]]:
        """
        What the fake rpcbind received: path, version, procedure name.
        """
        return [(where, v, _PROCEDURES[p]) for where, v, p, _ in self.fake.calls]


# -- Universal addresses and the protocol's values --------------------------------


class UniversalAddressTests(SynchronousTestCase):
    """
    L{universal_address} and L{parse_universal_address} (RFC 5665 section
    5.2.3).
    """

    KNOWN = [
        ("127.0.0.1", 40027, "127.0.0.1.156.91"),
        ("0.0.0.0", 111, "0.0.0.0.0.111"),
        ("::1", 111, "::1.0.111"),
        ("::", 65535, "::.255.255"),
        ("fe80::1:2", 2049, "fe80::1:2.8.1"),
        ("10.1.2.3", 0, "10.1.2.3.0.0"),
    ]

    def test_known(self) -> None:
        """
        An address is its usual text, then the port's high and low bytes in
        decimal; parsing gives back the address and port.
        """
        for host, port, uaddr in self.KNOWN:
            self.assertEqual(universal_address(host, port), uaddr)
            self.assertEqual(parse_universal_address(uaddr), (host, port))

    def test_normalised(self) -> None:
        """
        IPv6 addresses are written, and given back, in their compressed
        form, as C{inet_ntop} writes them.
        """
        self.assertEqual(universal_address("0:0:0:0:0:0:0:1", 1), "::1.0.1")
        self.assertEqual(parse_universal_address("0:0::0:1.0.1"), ("::1", 1))

    @given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.integers(0, 65535))
    def test_round_trip(self, ip: Any, port: int) -> None:
        """
        Any IPv4 or IPv6 address and port survive a round trip.
        """
        self.assertEqual(
            parse_universal_address(universal_address(str(ip), port)), (ip.compressed, port)
        )

    def test_refused(self) -> None:
        """
        Names, ports out of range and malformed universal addresses are
        refused with C{ValueError}.
        """
        self.assertRaises(ValueError, universal_address, "localhost", 111)
        self.assertRaises(ValueError, universal_address, "127.0.0.1", 65536)
        self.assertRaises(ValueError, universal_address, "127.0.0.1", -1)
        for bad in (
            "",
            "127.0.0.1",
            "127.0.0.1.1",
            "127.0.0.1.256.1",
            "127.0.0.1.1.256",
            "127.0.0.1.-1.2",
            "127.0.0.1.1.\u0663",
            "localhost.0.111",
            "1.2.3.0.111",
        ):
            self.assertRaises(ValueError, parse_universal_address, bad)


RPCB_STRINGS = st.text(max_size=30)


class RpcbCodecTests(SynchronousTestCase):
    """
    C{struct rpcb}, C{struct mapping} and the results, as RFC 1833 lays
    them out.
    """

    def test_rpcb_known_bytes(self) -> None:
        """
        C{struct rpcb}: program, version, then netid, address and owner as
        padded strings.
        """
        value = Rpcb(PROGRAM, 1, "tcp", "0.0.0.0.156.64", "0")
        self.assertEqual(encode_rpcb(value), SET_TCP_40000)
        self.assertEqual(decode_rpcb(SET_TCP_40000), value)

    def test_pmap_known_bytes(self) -> None:
        """
        C{struct mapping}: four unsigned ints.
        """
        value = PortMapping(PROGRAM, 1, IPPROTO_UDP, 40001)
        data = P + V1 + b"\x00\x00\x00\x11\x00\x00\x9c\x41"
        self.assertEqual(encode_pmap(value), data)
        self.assertEqual(decode_pmap(data), value)

    def test_results(self) -> None:
        """
        SET and UNSET answer a bool, GETADDR a string, GETPORT an unsigned
        int.
        """
        self.assertEqual(encode_bool(True), b"\0\0\0\1")
        self.assertIs(decode_bool(b"\0\0\0\0"), False)
        self.assertEqual(encode_uaddr("::1.0.111"), b"\0\0\0\x09::1.0.111\0\0\0")
        self.assertEqual(decode_uaddr(b"\0\0\0\0"), "")
        self.assertEqual(encode_port(2049), b"\0\0\x08\x01")
        self.assertEqual(decode_port(b"\0\0\x08\x01"), 2049)

    def test_results_refused(self) -> None:
        """
        A bool that is neither 0 nor 1, a port over 65535, bytes after a
        result, and truncated results are L{MalformedMessage}.
        """
        for decode, data in (
            (decode_bool, b"\0\0\0\2"),
            (decode_bool, b"\0\0\0\1\0\0\0\0"),
            (decode_bool, b"\0\0\0"),
            (decode_port, b"\0\1\0\0"),
            (decode_port, b""),
            (decode_uaddr, b"\0\0\0\5abc"),
            (decode_uaddr, b"\0\0\0\1a\0\0\0\0"),
        ):
            self.assertRaises(MalformedMessage, decode, data)

    @given(
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 0xFFFFFFFF),
        RPCB_STRINGS,
        RPCB_STRINGS,
        RPCB_STRINGS,
    )
    def test_rpcb_round_trip(
        self, program: int, version: int, netid: str, address: str, owner: str
    ) -> None:
        """
        Any C{struct rpcb} decodes to itself; every proper prefix of it is
        refused as truncated.
        """
        value = Rpcb(program, version, netid, address, owner)
        data = encode_rpcb(value)
        self.assertEqual(decode_rpcb(data), value)
        for n in range(0, len(data), 3):
            self.assertRaises(MalformedMessage, decode_rpcb, data[:n])
        self.assertRaises(MalformedMessage, decode_rpcb, data + b"\0\0\0\0")

    def test_rpcb_bounds(self) -> None:
        """
        A string of L{MAX_RPCB_STRING} bytes is read; one byte more is
        refused at the offset of its length word.
        """
        at_limit = Rpcb(PROGRAM, 1, "local", "/" * MAX_RPCB_STRING, "")
        self.assertEqual(decode_rpcb(encode_rpcb(at_limit)), at_limit)
        over = encode_rpcb(Rpcb(PROGRAM, 1, "local", "/" * (MAX_RPCB_STRING + 1), ""))
        with self.assertRaises(MalformedMessage) as caught:
            decode_rpcb(over)
        self.assertEqual(caught.exception.offset, 8 + 4 + 8)
        self.assertIn("r_addr", str(caught.exception))

    def test_numbers_checked(self) -> None:
        """
        Numbers that do not fit in 32 bits are refused when encoding.
        """
        self.assertRaises(ValueError, encode_rpcb, Rpcb(1 << 32, 1, "tcp"))
        self.assertRaises(ValueError, encode_pmap, PortMapping(1, -1, 6))


# -- What is sent, and where ---------------------------------------------------------


class RequestTests(_Fakes):
    """
    The bytes of each request, against bytes written by hand from RFC
    1833.
    """

    def test_set(self) -> None:
        """
        L{Rpcbind.register} sends rpcbind 4 C{RPCBPROC_SET} (1) with the
        C{struct rpcb} over the UNIX socket.
        """
        d = self.rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000), owner="0")
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(self.fake.calls, [(UNIX, 4, 1, SET_TCP_40000)])

    def test_default_owner(self) -> None:
        """
        The owner announced is the effective uid, as libtirpc's C{rpcb_set}
        announces it.
        """
        self.successResultOf(self.rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000)))
        self.successResultOf(self.rpcbind.unregister(PROGRAM, 1))
        owners = [decode_rpcb(args).owner for _, _, _, args in self.fake.calls]
        self.assertEqual(owners, [str(os.geteuid())] * 2)

    def test_unset(self) -> None:
        """
        L{Rpcbind.unregister} sends rpcbind 4 C{RPCBPROC_UNSET} (2): an empty
        netid for every netid, and empty address.
        """
        self.successResultOf(self.rpcbind.unregister(PROGRAM, 1, owner="0"))
        self.successResultOf(self.rpcbind.unregister(PROGRAM, 1, "udp", owner="ab"))
        empty = b"\0\0\0\0"
        self.assertEqual(
            self.fake.calls,
            [
                (UNIX, 4, 2, P + V1 + empty + empty + b"\0\0\0\x010\0\0\0"),
                (UNIX, 4, 2, P + V1 + b"\0\0\0\x03udp\0" + empty + b"\0\0\0\x02ab\0\0"),
            ],
        )

    def test_getaddr(self) -> None:
        """
        L{Rpcbind.lookup} sends rpcbind 4 C{RPCBPROC_GETADDR} (3) with the
        netid, and empty address and owner, over TCP to rpcbind's port.
        """
        self.successResultOf(self.rpcbind.lookup(PROGRAM, 1, "tcp"))
        expected = P + V1 + b"\0\0\0\x03tcp\0" + b"\0\0\0\0" * 2
        self.assertEqual(self.fake.calls, [(TCP, 4, 3, expected)])

    def test_pmap_set(self) -> None:
        """
        Over the TCP fallback, C{tcp} and C{udp} are registered with the
        portmapper's C{PMAPPROC_SET} (1): protocol 6 or 17, and the port.
        """
        self.socket_down()
        self.successResultOf(self.rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000)))
        self.successResultOf(self.rpcbind.register(PROGRAM, 1, "udp", ("127.0.0.1", 40001)))
        self.assertEqual(
            self.fake.calls,
            [
                (TCP, 2, 1, P + V1 + b"\0\0\0\x06\0\0\x9c\x40"),
                (TCP, 2, 1, P + V1 + b"\0\0\0\x11\0\0\x9c\x41"),
            ],
        )

    def test_pmap_unset(self) -> None:
        """
        Over the TCP fallback, C{PMAPPROC_UNSET} (2) sends zero protocol and
        port.
        """
        self.socket_down()
        self.successResultOf(self.rpcbind.unregister(PROGRAM, 1, "tcp"))
        self.assertEqual(self.fake.calls, [(TCP, 2, 2, P + V1 + b"\0\0\0\0" * 2)])

    def test_getport(self) -> None:
        """
        Against a portmapper (version 2 only), L{Rpcbind.lookup} tries
        rpcbind 4 and 3, then sends C{PMAPPROC_GETPORT} (3) with the
        protocol, and makes a universal address of the port with the host
        asked.
        """
        self.fake.versions[TCP] = (2,)
        self.fake.table[(PROGRAM, 1, "tcp")] = ("0.0.0.0.156.64", "unknown")
        uaddr = self.successResultOf(self.rpcbind.lookup(PROGRAM, 1, "tcp"))
        self.assertEqual(uaddr, "127.0.0.1.156.64")
        self.assertEqual(self.fake.calls, [(TCP, 2, 3, P + V1 + b"\0\0\0\x06\0\0\0\0")])
        self.assertEqual(self.network.connected, [TCP])


class PathTests(_Fakes):
    """
    Which paths SET and UNSET take: the UNIX socket, then TCP; a refusal is
    final.
    """

    def test_unix_first(self) -> None:
        """
        When the UNIX socket answers, TCP is not tried; the registration is
        rpcbind's caller's (C{superuser} there).
        """
        d = self.rpcbind.register(PROGRAM, 1, "udp6", ("::", 40000))
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(self.network.connected, [UNIX])
        self.assertEqual(self.fake.table, {(PROGRAM, 1, "udp6"): ("::.156.64", "superuser")})
        self.assertIn(
            "rpcbind: registered program 536871065 version 1 on udp6 at ::.156.64 "
            f"(rpcbind 4 SET over {UNIX})",
            self.logged(),
        )

    def test_no_socket(self) -> None:
        """
        When the UNIX socket cannot be connected, the portmapper over TCP
        registers, and the failure is logged with the path.
        """
        self.socket_down()
        d = self.rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000))
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(self.sent(), [(TCP, 2, "SET")])
        self.assertEqual(self.fake.table, {(PROGRAM, 1, "tcp"): ("0.0.0.0.156.64", "unknown")})
        self.assertIn(f"{UNIX} (rpcbind 4 SET): ConnectError", "\n".join(self.logged()))

    def test_rpc_error(self) -> None:
        """
        A UNIX socket that answers with an RPC error (not rpcbind there) is
        passed over too.
        """
        self.fake.versions[UNIX] = ()
        d = self.rpcbind.register(PROGRAM, 1, "udp", ("0.0.0.0", 40000))
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(self.sent(), [(TCP, 2, "SET")])

    def test_timeout(self) -> None:
        """
        A UNIX socket that never answers is given up after the timeout,
        then TCP is tried.
        """
        self.network.deaf.add(UNIX)
        d = self.rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000))
        self.assertNoResult(d)
        self.clock.advance(self.rpcbind.timeout)
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(self.network.connected, [UNIX, TCP])

    def test_ipv6_and_local_over_tcp(self) -> None:
        """
        The portmapper cannot name IPv6 or UNIX-socket netids: over TCP,
        those go to rpcbind 4.
        """
        self.socket_down()
        self.successResultOf(self.rpcbind.register(PROGRAM, 1, "tcp6", ("::1", 40000)))
        self.successResultOf(self.rpcbind.register(PROGRAM, 1, "local", "/run/x.sock"))
        self.successResultOf(self.rpcbind.unregister(PROGRAM, 1, "tcp6"))
        self.assertEqual(self.sent(), [(TCP, 4, "SET"), (TCP, 4, "SET"), (TCP, 4, "UNSET")])
        self.assertEqual(decode_rpcb(self.fake.calls[1][3]).address, "/run/x.sock")

    def test_refusal_is_final(self) -> None:
        """
        rpcbind's C{False} is the answer: TCP is not tried, and a warning
        says what was refused, with the numbers and the path.
        """
        self.fake.table[(PROGRAM, 1, "tcp")] = ("0.0.0.0.156.65", "superuser")
        d = self.rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000))
        self.assertIs(self.successResultOf(d), False)
        self.assertEqual(self.network.connected, [UNIX])
        self.assertEqual(
            self.logged(),
            [
                "rpcbind refused to register program 536871065 (0x20000099) version 1 on "
                f"tcp at '0.0.0.0.156.64' (rpcbind 4 SET over {UNIX} answered FALSE: "
                "another address is registered for them, or we may not register it)"
            ],
        )

    def test_unset_refused(self) -> None:
        """
        Over TCP, rpcbind refuses to unset another owner's registration:
        L{Rpcbind.unregister} fires with C{False}, logged.
        """
        self.fake.table[(PROGRAM, 1, "tcp")] = ("0.0.0.0.156.65", "superuser")
        self.socket_down()
        self.assertIs(self.successResultOf(self.rpcbind.unregister(PROGRAM, 1)), False)
        self.assertIn("answered FALSE", self.logged()[-1])
        self.assertIn("program 536871065 (0x20000099) version 1", self.logged()[-1])

    def test_unreachable(self) -> None:
        """
        When every path fails, the Deferred fails with
        L{RpcbindUnavailable}, which names each path, the request, and why.
        """
        self.socket_down()
        self.network.down[TCP] = ConnectionRefusedError()
        d = self.rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000))
        error = self.failureResultOf(d, RpcbindUnavailable).value
        self.assertEqual(
            [(str(a.path), a.request) for a in error.attempts],
            [(UNIX, "rpcbind 4 SET"), (TCP, "portmapper 2 SET")],
        )
        self.assertEqual(
            str(error),
            "rpcbind is unreachable to register program 536871065 (0x20000099) version 1 "
            f"on tcp at 0.0.0.0.156.64: {UNIX} (rpcbind 4 SET): ConnectError: An error "
            "occurred while connecting: 2: No such file or directory.; "
            f"{TCP} (portmapper 2 SET): ConnectionRefusedError: Connection was refused by "
            "other side.",
        )

    def test_socket_paths_once(self) -> None:
        """
        The UNIX sockets are tried in order, each file once (a path that
        links to one already tried is skipped); the defaults are
        C{/run/rpcbind.sock} and C{/var/run/rpcbind.sock}.
        """
        self.assertEqual(SOCKET_PATHS, ("/run/rpcbind.sock", "/var/run/rpcbind.sock"))
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        first, link, other = (os.path.join(directory, n) for n in ("a", "b", "c"))
        open(first, "w").close()
        os.symlink(first, link)
        rpcbind = self.make(socket_path=[first, link, other])
        for path in (first, link, other):
            self.network.down[f"UNIX socket {path}"] = ConnectError()
        self.successResultOf(rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 1)))
        self.assertEqual(
            self.network.connected, [f"UNIX socket {first}", f"UNIX socket {other}", TCP]
        )

    def test_cancel(self) -> None:
        """
        Cancelling a registration while it connects cancels the connection
        and tries no other path.
        """
        self.network.hold.add(UNIX)
        d = self.rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.network.cancelled, [UNIX])
        self.assertEqual(self.network.connected, [UNIX])

    def test_misuse_raises(self) -> None:
        """
        An unknown netid, an address that does not suit the netid, and
        numbers over 32 bits raise C{ValueError} at once.
        """
        register = partial(self.rpcbind.register, PROGRAM, 1)
        self.assertRaises(ValueError, register, "sctp", ("0.0.0.0", 1))
        self.assertRaises(ValueError, register, "tcp", ("::", 1))
        self.assertRaises(ValueError, register, "udp6", ("0.0.0.0", 1))
        self.assertRaises(ValueError, register, "tcp", ("localhost", 1))
        self.assertRaises(ValueError, register, "tcp", "/run/x.sock")
        self.assertRaises(ValueError, register, "local", ("0.0.0.0", 1))
        self.assertRaises(ValueError, self.rpcbind.register, 1 << 32, 1, "tcp", ("0.0.0.0", 1))
        self.assertRaises(ValueError, self.rpcbind.unregister, PROGRAM, -1)
        self.assertRaises(ValueError, self.rpcbind.unregister, PROGRAM, 1, "tcp4")
        self.assertEqual(self.network.connected, [])

    def test_addresses(self) -> None:
        """
        An address may be an C{(ip, port)} pair, a Twisted address, or a
        string: a universal address for IP netids, a path for UNIX ones.
        """
        for netid, address in (
            ("tcp", IPv4Address("TCP", "127.0.0.1", 40000)),
            ("udp6", IPv6Address("UDP", "::1", 40000)),
            ("tcp", "127.0.0.1.156.64"),
            ("local", UNIXAddress(b"/run/x.sock")),
            ("unix", "/run/y.sock"),
        ):
            self.successResultOf(self.rpcbind.register(PROGRAM, 1, netid, address))
        self.assertEqual(
            {key[2]: value[0] for key, value in self.fake.table.items()},
            {
                "tcp": "127.0.0.1.156.64",
                "udp6": "::1.156.64",
                "local": "/run/x.sock",
                "unix": "/run/y.sock",
            },
        )


class LookupTests(_Fakes):
    """
    L{Rpcbind.lookup}: over the transport of the netid, rpcbind 4, 3, then
    the portmapper.
    """

    def test_transport_of_netid(self) -> None:
        """
        rpcbind answers GETADDR for the transport it is asked on: each
        netid is asked over its own (UDP for C{udp}, IPv6 for C{tcp6}, the
        UNIX socket for C{local}).
        """
        for netid in ("tcp", "udp", "tcp6", "udp6", "local"):
            self.fake.table[(PROGRAM, 1, netid)] = (netid, "superuser")
        found = {
            netid: self.successResultOf(self.rpcbind.lookup(PROGRAM, 1, netid))
            for netid in ("tcp", "udp", "tcp6", "udp6", "local")
        }
        self.assertEqual(found, {netid: netid for netid in found})
        self.assertEqual(
            self.network.connected,
            [TCP, "UDP 127.0.0.1:111", "TCP [::1]:111", "UDP [::1]:111", UNIX],
        )
        self.successResultOf(self.rpcbind.lookup(PROGRAM, 1, "udp", host="192.0.2.1"))
        self.assertEqual(self.network.connected[-1], "UDP 192.0.2.1:111")

    def test_not_registered(self) -> None:
        """
        An empty address is L{None}, and ends the lookup (no older version
        is asked).
        """
        self.assertIsNone(self.successResultOf(self.rpcbind.lookup(PROGRAM, 1)))
        self.assertEqual(self.sent(), [(TCP, 4, "GETADDR")])

    def test_version_3(self) -> None:
        """
        rpcbind 3 is asked when version 4 is answered C{PROG_MISMATCH}.
        """
        self.fake.versions[TCP] = (3,)
        self.fake.table[(PROGRAM, 1, "tcp")] = ("127.0.0.1.0.1", "superuser")
        self.assertEqual(self.successResultOf(self.rpcbind.lookup(PROGRAM, 1)), "127.0.0.1.0.1")
        self.assertEqual(self.sent(), [(TCP, 3, "GETADDR")])

    def test_no_portmapper_for_ipv6(self) -> None:
        """
        The portmapper is not asked for a netid it cannot name: with neither
        rpcbind 4 nor 3, the lookup fails with both mismatches.
        """
        self.fake.versions["TCP [::1]:111"] = (2,)
        error = self.failureResultOf(
            self.rpcbind.lookup(PROGRAM, 1, "tcp6"), RpcbindUnavailable
        ).value
        self.assertEqual(
            [a.request for a in error.attempts], ["rpcbind 4 GETADDR", "rpcbind 3 GETADDR"]
        )
        self.assertEqual(self.fake.calls, [])

    def test_unreachable(self) -> None:
        """
        When rpcbind cannot be reached, the lookup fails with
        L{RpcbindUnavailable} naming the path; a timeout is reported so.
        """
        self.network.down[TCP] = ConnectionRefusedError()
        error = self.failureResultOf(self.rpcbind.lookup(PROGRAM, 1), RpcbindUnavailable).value
        self.assertIn(f"look up program 536871065 (0x20000099) version 1 on tcp: {TCP}", str(error))
        self.network.deaf.add("UDP 127.0.0.1:111")
        d = self.rpcbind.lookup(PROGRAM, 1, "udp")
        self.clock.advance(self.rpcbind.timeout)
        error = self.failureResultOf(d, RpcbindUnavailable).value
        self.assertIsInstance(error.attempts[0].error, CallTimeout)

    def test_misuse_raises(self) -> None:
        """
        An unknown netid or a host that is not an IP address raises
        C{ValueError} at once.
        """
        self.assertRaises(ValueError, self.rpcbind.lookup, PROGRAM, 1, "sctp")
        self.assertRaises(ValueError, self.rpcbind.lookup, PROGRAM, 1, "tcp", host="localhost")

    def test_client_address(self) -> None:
        """
        L{client_address} gives the C{(ip, port)} or path to connect to,
        with a wildcard address replaced by the host asked.
        """
        self.assertEqual(client_address("tcp", "10.0.0.1.8.1", "127.0.0.1"), ("10.0.0.1", 2049))
        self.assertEqual(client_address("udp", "0.0.0.0.8.1", "192.0.2.1"), ("192.0.2.1", 2049))
        self.assertEqual(client_address("tcp6", "::.8.1", "::1"), ("::1", 2049))
        self.assertEqual(client_address("local", "/run/x.sock"), "/run/x.sock")
        self.assertRaises(ValueError, client_address, "tcp", "/run/x.sock")
        self.assertRaises(ValueError, client_address, "sctp", "0.0.0.0.8.1")


# -- Registration --------------------------------------------------------------------


class EntriesTests(SynchronousTestCase):
    """
    L{netid_of} and L{entries_for}: a server's registrations from its
    listening addresses.
    """

    def test_netid_of(self) -> None:
        """
        TCP and UDP over IPv4 and IPv6, and UNIX sockets, have their netids.
        """
        self.assertEqual(netid_of(IPv4Address("TCP", "0.0.0.0", 1)), "tcp")
        self.assertEqual(netid_of(IPv4Address("UDP", "0.0.0.0", 1)), "udp")
        self.assertEqual(netid_of(IPv6Address("TCP", "::", 1)), "tcp6")
        self.assertEqual(netid_of(IPv6Address("UDP", "::", 1)), "udp6")
        self.assertEqual(netid_of(UNIXAddress("/run/x.sock")), "local")
        self.assertRaises(ValueError, netid_of, object())

    def test_entries_for(self) -> None:
        """
        Each program version at each address.
        """
        tcp = IPv4Address("TCP", "0.0.0.0", 1)
        udp = IPv4Address("UDP", "0.0.0.0", 2)
        self.assertEqual(
            entries_for([(PROGRAM, 1), (PROGRAM, 2)], [tcp, udp]),
            [
                Entry(PROGRAM, 1, "tcp", tcp),
                Entry(PROGRAM, 2, "tcp", tcp),
                Entry(PROGRAM, 1, "udp", udp),
                Entry(PROGRAM, 2, "udp", udp),
            ],
        )


class RegistrationTests(_Fakes):
    """
    L{Registration}: registered on start, taken back on stop.
    """

    ENTRIES = [
        (PROGRAM, 1, "tcp", ("0.0.0.0", 40000)),
        (PROGRAM, 1, "udp", ("0.0.0.0", 40001)),
    ]

    def registration(self, **options: Any) -> Registration:
        registration = Registration(self.ENTRIES, rpcbind=self.rpcbind, **options)
        registration.log = Logger(observer=cast(ILogObserver, self.events.append))
        return registration

    def test_start_stop(self) -> None:
        """
        L{Registration.start} takes back what rpcbind had for each program,
        version and netid, then registers each entry; L{Registration.stop}
        takes them back and fires with C{True}.
        """
        registration = self.registration()
        self.assertIsNone(self.successResultOf(registration.start()))
        self.assertEqual(
            self.sent(),
            [(UNIX, 4, "UNSET"), (UNIX, 4, "UNSET"), (UNIX, 4, "SET"), (UNIX, 4, "SET")],
        )
        self.assertEqual(sorted(self.fake.table), [(PROGRAM, 1, "tcp"), (PROGRAM, 1, "udp")])
        self.assertEqual(registration.registered, tuple(Entry(*e) for e in self.ENTRIES))
        self.assertIs(self.successResultOf(registration.stop()), True)
        self.assertEqual(self.fake.table, {})
        self.assertEqual(registration.registered, ())
        self.assertIs(self.successResultOf(registration.stop()), True)

    def test_replace(self) -> None:
        """
        A registration left behind (by a server that died) is replaced; with
        C{replace=False}, rpcbind refuses the new one and the start fails
        with L{RegistrationRefused}, taking back what it had registered.
        """
        self.fake.table[(PROGRAM, 1, "udp")] = ("0.0.0.0.1.1", "superuser")
        self.successResultOf(self.registration().start())
        self.assertEqual(self.fake.table[(PROGRAM, 1, "udp")][0], "0.0.0.0.156.65")
        self.fake.table[(PROGRAM, 1, "udp")] = ("0.0.0.0.1.1", "superuser")
        del self.fake.table[(PROGRAM, 1, "tcp")]
        registration = self.registration(replace=False)
        error = self.failureResultOf(registration.start(), RegistrationRefused).value
        self.assertEqual(error.entry, Entry(*self.ENTRIES[1]))
        self.assertEqual(
            str(error),
            "rpcbind refused to register program 536871065 (0x20000099) version 1 on udp at "
            f"'0.0.0.0.156.65' (rpcbind 4 SET over {UNIX} answered FALSE: another address is "
            "registered for them, or we may not register it)",
        )
        self.assertEqual(self.fake.table, {(PROGRAM, 1, "udp"): ("0.0.0.0.1.1", "superuser")})
        self.assertEqual(registration.registered, ())
        self.assertIs(self.successResultOf(registration.stop()), True)

    def test_unreachable(self) -> None:
        """
        When rpcbind cannot be reached, the start fails with
        L{RpcbindUnavailable}.
        """
        self.socket_down()
        self.network.down[TCP] = ConnectionRefusedError()
        self.failureResultOf(self.registration().start(), RpcbindUnavailable)

    def test_stop_fails(self) -> None:
        """
        When rpcbind is gone at stop, L{Registration.stop} fires with
        C{False}, and the failure is logged with the numbers.
        """
        registration = self.registration()
        self.successResultOf(registration.start())
        self.socket_down()
        self.network.down[TCP] = ConnectionRefusedError()
        self.assertIs(self.successResultOf(registration.stop()), False)
        self.assertEqual(len(registration.registered), 2)
        self.assertIn(
            "rpcbind: could not unregister program 536871065 version 1 on tcp: rpcbind is "
            "unreachable",
            "\n".join(self.logged()),
        )

    def test_stop_while_starting(self) -> None:
        """
        A stop while the start is under way waits for the registration in
        progress, registers nothing more, and takes back what was
        registered.
        """
        registration = self.registration(replace=False)
        self.network.deaf.add(UNIX)
        started = registration.start()
        stopped = registration.stop()
        self.assertNoResult(stopped)
        self.clock.advance(self.rpcbind.timeout)
        self.assertEqual(self.sent(), [(TCP, 2, "SET")])
        self.assertNoResult(stopped)
        self.clock.advance(self.rpcbind.timeout)
        self.assertIsNone(self.successResultOf(started))
        self.assertIs(self.successResultOf(stopped), True)
        self.assertEqual(self.sent(), [(TCP, 2, "SET"), (TCP, 2, "UNSET")])
        self.assertEqual(self.fake.table, {})

    def test_misuse(self) -> None:
        """
        A second start raises C{RuntimeError}, as does a start after a stop;
        a stop before the start fires with C{True} at once; invalid entries
        raise C{ValueError} at once.
        """
        registration = self.registration()
        self.successResultOf(registration.start())
        self.assertRaises(RuntimeError, registration.start)
        never = self.registration()
        self.assertIs(self.successResultOf(never.stop()), True)
        self.assertRaises(RuntimeError, never.start)
        self.assertRaises(ValueError, Registration, [(PROGRAM, 1, "tcp", "/run/x.sock")])


# -- Against a real rpcbind ------------------------------------------------------------

class RealRpcbindTests(SocketTestMixin, TestCase):
    """
    Against a real rpcbind started by the test; C{rpcinfo} checks what it
    holds.
    """

    def setUp(self) -> None:
        self._setUpRegistry()
        self.rpcbind = RunningRpcbind(self)

    @inlineCallbacks
    def test_register_lookup_unregister(self) -> Generator[Any, Any, None]:
        """
        Over the UNIX socket: what is registered is listed by C{rpcinfo -p}
        (owned by C{superuser}, as rpcbind trusts the socket's
        credentials), found by L{lookup} over TCP and UDP, refused for
        another address, and gone after L{unregister}.
        """
        self.assertIs((yield register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000))), True)
        self.assertIs((yield register(PROGRAM, 1, "udp", ("0.0.0.0", 40001))), True)
        self.assertIs((yield register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000))), True)
        self.assertIs((yield register(PROGRAM, 1, "tcp", ("0.0.0.0", 40002))), False)
        self.assertEqual(
            (yield self.rpcbind.ports()), {(PROGRAM, 1, "tcp", 40000), (PROGRAM, 1, "udp", 40001)}
        )
        self.assertEqual(
            (yield self.rpcbind.owners()), {(1, "tcp"): "superuser", (1, "udp"): "superuser"}
        )
        self.assertEqual((yield lookup(PROGRAM, 1, "tcp")), "127.0.0.1.156.64")
        self.assertEqual((yield lookup(PROGRAM, 1, "udp")), "127.0.0.1.156.65")
        self.assertIsNone((yield lookup(PROGRAM + 1, 1, "tcp")))
        self.assertIs((yield unregister(PROGRAM, 1)), True)
        self.assertEqual((yield self.rpcbind.ports()), set())
        self.assertIsNone((yield lookup(PROGRAM, 1, "tcp")))

    @inlineCallbacks
    def test_portmapper_fallback(self) -> Generator[Any, Any, None]:
        """
        Without the UNIX socket, registration goes through the portmapper
        over TCP (rpcbind records the owner as C{unknown}), and is taken
        back the same way.
        """
        missing = os.path.join(tempfile.mkdtemp(), "rpcbind.sock")
        self.addCleanup(shutil.rmtree, os.path.dirname(missing))
        rpcbind = Rpcbind(socket_path=missing)
        self.assertIs((yield rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000))), True)
        self.assertIs((yield rpcbind.register(PROGRAM, 1, "udp", ("0.0.0.0", 40001))), True)
        self.assertEqual(
            (yield self.rpcbind.ports()), {(PROGRAM, 1, "tcp", 40000), (PROGRAM, 1, "udp", 40001)}
        )
        self.assertEqual(
            (yield self.rpcbind.owners()), {(1, "tcp"): "unknown", (1, "udp"): "unknown"}
        )
        self.assertEqual((yield rpcbind.lookup(PROGRAM, 1, "udp")), "127.0.0.1.156.65")
        self.assertIs((yield rpcbind.unregister(PROGRAM, 1, "tcp")), True)
        self.assertEqual((yield self.rpcbind.ports()), set())

    @inlineCallbacks
    def test_served_program(self) -> Generator[Any, Any, None]:
        """
        A server's programs registered by L{Registration} on TCP, UDP and a
        UNIX socket: libtirpc's C{rpcinfo -T} finds them through rpcbind
        and calls them, L{connect_registered} connects to each; after
        L{Registration.stop} rpcbind lists nothing and C{rpcinfo -T} fails.
        """
        server = RpcServer()
        server.add_program(PROGRAM, 1, {1: lambda args, call: args})
        server.add_program(PROGRAM, 2, {1: lambda args, call: args})

        def on_connection(controller: StreamController) -> None:
            self.track(controller)
            server.serve(controller)

        tcp = yield listen_stream("tcp:0:interface=127.0.0.1", on_connection)
        self.addCleanup(tcp.stopListening)
        directory = tempfile.mkdtemp(prefix="rpctransport-")
        self.addCleanup(shutil.rmtree, directory, True)
        unix = yield listen_stream(f"unix:{os.path.join(directory, 's')}", on_connection)
        self.addCleanup(unix.stopListening)
        udp = listen_datagram(0, "127.0.0.1")
        self.addCleanup(udp.when_closed)
        self.addCleanup(udp.inactivate)
        server.serve(udp)
        addresses = [tcp.getHost(), udp.getsockname(), unix.getHost()]
        registration = Registration(entries_for(server.programs, addresses))
        yield registration.start()
        self.addCleanup(registration.stop)
        self.assertEqual(
            {(v, p) for _, v, p, _ in (yield self.rpcbind.ports())},
            {(1, "tcp"), (2, "tcp"), (1, "udp"), (2, "udp")},
        )
        for netid in ("tcp", "udp"):
            code, rows = yield self.rpcbind.run("-T", netid, "127.0.0.1", str(PROGRAM))
            self.assertEqual(code, 0, rows)
            self.assertEqual(
                [" ".join(row) for row in rows],
                [f"program {PROGRAM} version {v} ready and waiting" for v in (1, 2)],
            )
        for netid in ("tcp", "udp", "local"):
            client = yield connect_registered(PROGRAM, 2, netid)
            self.track_client(client)
            self.assertEqual((yield client.call(PROGRAM, 2, 1, b"abcd")), b"abcd")
            yield client.close()
        self.assertIs((yield registration.stop()), True)
        self.assertEqual((yield self.rpcbind.ports()), set())
        self.assertEqual((yield self.rpcbind.owners()), {})
        code, rows = yield self.rpcbind.run("-T", "tcp", "127.0.0.1", str(PROGRAM), "1")
        self.assertNotEqual(code, 0)
        with self.assertRaises(ProgramNotRegistered):
            yield connect_registered(PROGRAM, 1, "tcp")

    def track_client(self, client: RpcClient) -> None:
        """
        Close C{client} when the test ends, and wait for its socket.
        """
        controller: Any = client.controller
        if hasattr(controller, "when_closed"):
            self.addCleanup(controller.when_closed)
        else:
            self.track(controller)
        self.addCleanup(client.close)


class UnreachableTests(TestCase):
    """
    On real sockets, with no rpcbind anywhere it is looked for.
    """

    @inlineCallbacks
    def test_both_paths_fail(self) -> Generator[Any, Any, None]:
        """
        With no UNIX socket and nothing on the TCP port, registration fails
        with L{RpcbindUnavailable} naming both paths.
        """
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        rpcbind = Rpcbind(socket_path=os.path.join(directory, "none.sock"), port=port)
        with self.assertRaises(RpcbindUnavailable) as caught:
            yield rpcbind.register(PROGRAM, 1, "tcp", ("0.0.0.0", 40000))
        attempts = caught.exception.attempts
        self.assertEqual(
            [str(a.path) for a in attempts],
            [f"UNIX socket {directory}/none.sock", f"TCP 127.0.0.1:{port}"],
        )
        self.assertIsInstance(attempts[1].error, ConnectionRefusedError)
        with self.assertRaises(RpcbindUnavailable):
            yield rpcbind.lookup(PROGRAM, 1, "tcp", host="127.0.0.1")
