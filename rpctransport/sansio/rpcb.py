# -*- test-case-name: rpctransport.test.test_rpcbind -*-
"""
The rpcbind protocol's values as bytes (RFC 1833): rpcbind versions 3 and 4
(C{struct rpcb}) and portmapper version 2 (C{struct mapping}), and TI-RPC
universal addresses. Bytes in, values out; no I/O.

L{rpctransport.rpc.rpcbind} calls rpcbind with them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from .errors import MalformedMessage
from .xdr import XdrReader, pack_bool, pack_string, pack_uint

__all__ = [
    "INET_NETIDS",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "LOCAL_NETIDS",
    "MAX_RPCB_STRING",
    "NETIDS",
    "PMAPPROC_GETPORT",
    "PMAPPROC_SET",
    "PMAPPROC_UNSET",
    "PMAPVERS",
    "RPCBIND_PORT",
    "RPCBIND_PROGRAM",
    "RPCBPROC_GETADDR",
    "RPCBPROC_SET",
    "RPCBPROC_UNSET",
    "RPCBVERS3",
    "RPCBVERS4",
    "PortMapping",
    "Rpcb",
    "decode_bool",
    "decode_pmap",
    "decode_port",
    "decode_rpcb",
    "decode_uaddr",
    "encode_bool",
    "encode_pmap",
    "encode_port",
    "encode_rpcb",
    "encode_uaddr",
    "parse_universal_address",
    "protocol_of",
    "universal_address",
]

RPCBIND_PROGRAM: Final = 100000
"""rpcbind's (and the portmapper's) program number."""

RPCBIND_PORT: Final = 111
"""rpcbind's TCP and UDP port."""

RPCBVERS4: Final = 4
RPCBVERS3: Final = 3
PMAPVERS: Final = 2

RPCBPROC_SET: Final = 1
RPCBPROC_UNSET: Final = 2
RPCBPROC_GETADDR: Final = 3
PMAPPROC_SET: Final = 1
PMAPPROC_UNSET: Final = 2
PMAPPROC_GETPORT: Final = 3

IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17

MAX_RPCB_STRING: Final = 9000
"""
The longest netid, universal address or owner read from rpcbind, in
bytes: libtirpc's C{RPC_MAXDATASIZE}, the bound its C{xdr_rpcb} puts on
each of these strings. A universal address is at most a UNIX socket's path
(108 bytes) or an IPv6 address and port (about 50).
"""

INET_NETIDS: Final = {"tcp": 4, "udp": 4, "tcp6": 6, "udp6": 6}
"""The IP netids of C{/etc/netconfig}, with their IP version."""

LOCAL_NETIDS: Final = frozenset({"local", "unix"})
"""The UNIX-socket netids of C{/etc/netconfig}: the address is the path."""

NETIDS: Final = frozenset(INET_NETIDS) | LOCAL_NETIDS
"""Every netid this module makes addresses for."""


@dataclass(frozen=True, slots=True)
class Rpcb:
    """
    rpcbind's C{struct rpcb} (versions 3 and 4): a program version's
    address on one transport.

    @ivar program: the program number.
    @ivar version: the program's version.
    @ivar netid: the transport (C{"tcp"}, C{"udp6"}, C{"local"}, ...);
        empty in an UNSET: every transport.
    @ivar address: the universal address (L{universal_address}, or a UNIX
        socket's path); empty in an UNSET and a GETADDR.
    @ivar owner: who registers it (rpcbind records the caller's own
        identity instead).
    """

    program: int
    version: int
    netid: str
    address: str = ""
    owner: str = ""


@dataclass(frozen=True, slots=True)
class PortMapping:
    """
    The portmapper's C{struct mapping} (version 2).

    @ivar program: the program number.
    @ivar version: the program's version.
    @ivar protocol: L{IPPROTO_TCP} or L{IPPROTO_UDP} (ignored by UNSET).
    @ivar port: the port (ignored by UNSET and GETPORT).
    """

    program: int
    version: int
    protocol: int
    port: int = 0


def encode_rpcb(value: Rpcb) -> bytes:
    """
    The XDR of C{value}.

    @raise ValueError: a number does not fit in 32 bits.
    """
    return b"".join(
        (
            pack_uint(value.program),
            pack_uint(value.version),
            pack_string(value.netid),
            pack_string(value.address),
            pack_string(value.owner),
        )
    )


def decode_rpcb(body: bytes) -> Rpcb:
    """
    Decode a C{struct rpcb}, nothing after it.

    @raise MalformedMessage: truncated, a string over L{MAX_RPCB_STRING},
        or bytes left over.
    """
    reader = XdrReader(body, what="struct rpcb")
    value = Rpcb(
        reader.uint("r_prog"),
        reader.uint("r_vers"),
        reader.string(MAX_RPCB_STRING, "r_netid"),
        reader.string(MAX_RPCB_STRING, "r_addr"),
        reader.string(MAX_RPCB_STRING, "r_owner"),
    )
    reader.done()
    return value


def encode_pmap(value: PortMapping) -> bytes:
    """
    The XDR of C{value}.

    @raise ValueError: a number does not fit in 32 bits.
    """
    return b"".join(
        pack_uint(n) for n in (value.program, value.version, value.protocol, value.port)
    )


def decode_pmap(body: bytes) -> PortMapping:
    """
    Decode a C{struct mapping}, nothing after it.

    @raise MalformedMessage: truncated, or bytes left over.
    """
    reader = XdrReader(body, what="struct mapping")
    value = PortMapping(
        reader.uint("prog"), reader.uint("vers"), reader.uint("prot"), reader.uint("port")
    )
    reader.done()
    return value


def encode_bool(value: bool) -> bytes:
    """
    The result of SET and UNSET (both protocols).
    """
    return pack_bool(value)


def decode_bool(body: bytes) -> bool:
    """
    Decode the result of SET or UNSET.

    @raise MalformedMessage: not exactly one XDR C{bool}.
    """
    reader = XdrReader(body, what="the result of SET/UNSET")
    value = reader.boolean("the result")
    reader.done()
    return value


def encode_uaddr(value: str) -> bytes:
    """
    The result of rpcbind's GETADDR: a universal address, empty when the
    program is not registered.
    """
    return pack_string(value)


def decode_uaddr(body: bytes) -> str:
    """
    Decode the result of rpcbind's GETADDR.

    @raise MalformedMessage: truncated, over L{MAX_RPCB_STRING}, or bytes
        left over.
    """
    reader = XdrReader(body, what="the result of GETADDR")
    value = reader.string(MAX_RPCB_STRING, "the universal address")
    reader.done()
    return value


def encode_port(value: int) -> bytes:
    """
    The result of the portmapper's GETPORT: a port, 0 when the program is
    not registered.
    """
    return pack_uint(value)


def decode_port(body: bytes) -> int:
    """
    Decode the result of the portmapper's GETPORT.

    @raise MalformedMessage: not exactly one XDR C{unsigned int}, or over
        65535.
    """
    reader = XdrReader(body, what="the result of GETPORT")
    port = reader.uint("the port")
    reader.done()
    if port > 0xFFFF:
        raise MalformedMessage(f"the result of GETPORT is {port}, not a port", 0)
    return port


def protocol_of(netid: str) -> int | None:
    """
    The portmapper's protocol number for C{netid}: L{IPPROTO_TCP} for
    C{"tcp"}, L{IPPROTO_UDP} for C{"udp"}, L{None} for netids version 2
    cannot name (IPv6, UNIX sockets).
    """
    return {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}.get(netid)


def universal_address(host: str, port: int) -> str:
    """
    The TI-RPC universal address of an IP address and port (RFC 5665
    section 5.2.3): the address's usual text, then the port's high and low
    bytes in decimal: C{"127.0.0.1.156.91"} for port 40027,
    C{"::1.0.111"} for C{::1} port 111.

    @param host: an IPv4 or IPv6 address (not a name).
    @raise ValueError: C{host} is not an IP address, or C{port} is not in
        M{[0, 65535]}.
    """
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"{port} is not a port (0 to 65535)")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (resolve names first)") from None
    return f"{ip.compressed}.{port >> 8}.{port & 0xFF}"


def parse_universal_address(uaddr: str) -> tuple[str, int]:
    """
    The IP address and port of a TI-RPC universal address: the inverse of
    L{universal_address}. The address is given back in its usual text
    (C{"::1"}, not C{"0:0:0:0:0:0:0:1"}).

    @raise ValueError: C{uaddr} is not an IPv4 or IPv6 universal address.
    """
    parts = uaddr.rsplit(".", 2)
    if len(parts) != 3 or not all(p.isdecimal() and p.isascii() for p in parts[1:]):
        raise ValueError(f"{uaddr!r} is not a universal address (h1.h2.h3.h4.p1.p2)")
    host, high, low = parts[0], int(parts[1]), int(parts[2])
    if high > 0xFF or low > 0xFF:
        raise ValueError(f"{uaddr!r} is not a universal address: port bytes over 255")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{uaddr!r} is not a universal address: {host!r} is no IP address"
        ) from None
    return ip.compressed, (high << 8) | low
