# -*- test-case-name: rpctransport.test.test_proxy_protocol -*-
"""
The PROXY protocol header (HAProxy's, versions 1 and 2), sans I/O.

A load balancer such as HAProxy that connects to us on behalf of a client
can start the connection with a PROXY header saying who the client was; a
listener that expects one reads it before anything else, and reports that
client as the peer. The specification is HAProxy's C{proxy-protocol.txt}
(Debian: C{/usr/share/doc/haproxy/proxy-protocol.txt.gz}).

L{ProxyHeaderParser} takes the first bytes of a connection, as they come
(one byte at a time works), and returns the L{ProxyHeader} with the bytes
that followed it, or raises L{InvalidProxyHeader} as soon as the bytes
cannot be the start of a valid header: a connection that does not begin
with one (a client that bypassed the proxy, plain RPC, garbage) is refused
on its first byte. It never buffers more than the header: the v1 line is at
most L{MAX_V1_HEADER} bytes, and a v2 header announcing more than its
parser's limit (L{DEFAULT_MAX_V2_HEADER}) is refused on its 16-byte
preamble, before a byte of the rest is kept.

Only what the specification requires is understood: v1 C{TCP4}, C{TCP6},
C{UNKNOWN}; v2 C{LOCAL} and C{PROXY} over IPv4, IPv6 and UNIX streams.
C{LOCAL} (a proxy's own health check), v1 C{UNKNOWN} and v2's C{UNSPEC}
family or transport mean "use the connection's own addresses": the header
then has no L{ProxyHeader.source}. v2 TLVs (SSL details, ALPN, unique id)
are skipped unread.

A listener that does I{not} expect a header and gets one refuses it as
bytes that are not RPC, saying what they look like
(L{rpctransport.sansio.sniff}).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Final, Union

from .errors import DeadlineExceeded, LocalProtocolError, RemoteProtocolError
from .record import NEED_DATA, NeedData
from .sniff import PROXY_V1_PREFIX as V1_PREFIX
from .sniff import PROXY_V2_SIGNATURE as V2_SIGNATURE

__all__ = [
    "DEFAULT_MAX_V2_HEADER",
    "DEFAULT_PROXY_HEADER_TIMEOUT",
    "MAX_V1_HEADER",
    "V1_PREFIX",
    "V2_SIGNATURE",
    "Address",
    "Command",
    "Family",
    "InvalidProxyHeader",
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyHeaderTimeout",
]

MAX_V1_HEADER: Final = 107
"""
The longest v1 line, CRLF included, as the specification counts it
(C{"PROXY UNKNOWN"} with two full IPv6 addresses and ports): a line whose
CRLF is not within this many bytes is refused.
"""

DEFAULT_MAX_V2_HEADER: Final = 4096
"""
The longest v2 header a listener takes by default, in bytes, its 16-byte
preamble included; a header announcing more is refused on the preamble,
before any of the rest is kept. The addresses take at most 216 bytes (two
UNIX paths) and the specification sizes whole headers to one minimal TCP
segment (536 bytes); the rest is room for the TLVs a proxy may add (HAProxy's
SSL details with the client's certificate name, ALPN, authority, unique id),
which are skipped. A peer that proved nothing can make us hold at most this
much, not the 64 KiB the length field could announce.
"""

DEFAULT_PROXY_HEADER_TIMEOUT: Final = 5.0
"""
Seconds a listener that expects a PROXY header waits for the whole of it
before closing the connection. A proxy sends the header as soon as it is
connected to us, before any byte of its client, in one segment; the
specification asks receivers to wait at least 3 s, for one retransmission
of that segment. Five leave a margin for a loaded proxy and still free
quickly the slot of a peer that connected and sent nothing.
"""

_V2_PREAMBLE: Final = 16
_V2_VERSION: Final = 0x20
_V1_LINE_END: Final = b"\r\n"
_V1_PORT_DIGITS: Final = 5
_UNIX_PATH: Final = 108


class Command(enum.Enum):
    """
    What the proxy says about the connection.
    """

    PROXY = "PROXY"
    """Relayed for a client: the header's addresses are the client's."""
    LOCAL = "LOCAL"
    """The proxy's own connection (a health check): its addresses count."""


class Family(enum.Enum):
    """
    The address family of the header's addresses.
    """

    UNSPEC = "UNSPEC"
    INET = "INET"
    INET6 = "INET6"
    UNIX = "UNIX"


Address = Union[tuple[str, int], bytes]
"""
An address in a header: C{(host, port)} for IPv4 and IPv6 (the host in its
canonical text form, IPv6 compressed), or a UNIX socket's path (bytes; an
abstract socket's begins with a NUL byte).
"""


@dataclass(frozen=True)
class ProxyHeader:
    """
    A PROXY header.

    @ivar version: 1 or 2.
    @ivar command: see L{Command} (a v1 header is always a C{PROXY}).
    @ivar family: the family of the addresses (L{Family.UNSPEC} when there
        are none to use).
    @ivar source: the client, as the proxy saw it; L{None} when the
        connection's own peer counts (C{LOCAL}, v1 C{UNKNOWN}, v2
        C{UNSPEC}).
    @ivar destination: the address the client connected to, on the proxy;
        L{None} when L{source} is.
    @ivar size: the bytes the header took on the wire.
    """

    version: int
    command: Command
    family: Family
    source: Address | None
    destination: Address | None
    size: int

    @property
    def proxied(self) -> bool:
        """
        Whether the header names a client (L{source}); otherwise the
        connection's own addresses are the ones to use.
        """
        return self.source is not None


class InvalidProxyHeader(RemoteProtocolError):
    """
    A connection to a listener that expects a PROXY header did not begin
    with a valid one; it is closed.

    @ivar received: how many bytes of the connection had been looked at.
    @ivar reason: what was wrong, in a few words.
    """

    def __init__(self, reason: str, received: int) -> None:
        self.reason = reason
        self.received = received
        super().__init__(
            f"not a valid PROXY protocol header ({reason}; after {received} bytes): "
            "this listener takes connections from a proxy only"
        )


class ProxyHeaderTimeout(DeadlineExceeded):
    """
    A connection to a listener that expects a PROXY header did not send the
    whole of it in time (C{proxy_header_timeout}); it is closed.

    @ivar received: the bytes of the header received by then.
    """

    def __init__(self, seconds: float, received: int) -> None:
        self.seconds = seconds
        self.received = received
        super().__init__(
            f"no whole PROXY header within {seconds:g} s "
            f"(proxy_header_timeout; {received} bytes of it received)"
        )


class _State(enum.Enum):
    """
    Where a L{ProxyHeaderParser} is.
    """

    SIGNATURE = "signature"
    V1 = "v1 line"
    V2 = "v2 header"
    DONE = "done"
    FAILED = "failed"


class ProxyHeaderParser:
    """
    Reads the PROXY header at the start of one connection (see the module
    docstring).

    @ivar max_v2_size: the longest v2 header taken, preamble included.
    """

    def __init__(self, max_v2_size: int = DEFAULT_MAX_V2_HEADER) -> None:
        if max_v2_size < _V2_PREAMBLE + 216:
            # Less would refuse a valid header naming two UNIX sockets.
            raise ValueError(f"max_v2_size must be >= {_V2_PREAMBLE + 216}, not {max_v2_size}")
        self.max_v2_size = max_v2_size
        self._buf = bytearray()
        self._state = _State.SIGNATURE
        # The whole v2 header's size, once its preamble is in.
        self._v2_size: int | None = None

    @property
    def received(self) -> int:
        """
        The bytes of the header received so far.
        """
        return len(self._buf)

    def feed(self, data: bytes) -> tuple[ProxyHeader, bytes] | NeedData:
        """
        Take the next bytes of the connection.

        @return: L{NEED_DATA <rpctransport.sansio.record.NEED_DATA>} until
            the header is whole; then the header and the bytes that followed
            it (the start of the connection's real traffic).
        @raise InvalidProxyHeader: the bytes so far cannot begin a valid
            header; the parser is then done for good.
        @raise LocalProtocolError: fed again after a header or an error.
        """
        state = self._state
        if state is _State.DONE or state is _State.FAILED:
            raise LocalProtocolError(f"ProxyHeaderParser.feed: the header is already {state.value}")
        try:
            if state is _State.SIGNATURE:
                data = self._signature(data)
                if self._state is _State.SIGNATURE:
                    return NEED_DATA
            if self._state is _State.V1:
                return self._v1(data)
            return self._v2(data)
        except InvalidProxyHeader:
            self._state = _State.FAILED
            self._buf = bytearray()
            raise

    def _invalid(self, reason: str, received: int | None = None) -> InvalidProxyHeader:
        return InvalidProxyHeader(reason, len(self._buf) if received is None else received)

    def _signature(self, data: bytes) -> bytes:
        """
        Take bytes of the first 6 (v1) or 12 (v2) until the version is
        known; refuse at the first byte that fits neither. Returns what is
        left of C{data}.
        """
        buf = self._buf
        for prefix, state in ((V1_PREFIX, _State.V1), (V2_SIGNATURE, _State.V2)):
            have = len(buf)
            if prefix[:have] != buf:
                continue
            need = len(prefix) - have
            taken = data[:need]
            if prefix[have : have + len(taken)] != taken:
                continue
            buf += taken
            if len(buf) == len(prefix):
                self._state = state
            return data[need:]
        bad = bytes(buf[:16]) + bytes(data[: 16 - len(buf)])
        raise self._invalid(
            f"the connection began with {bad!r}, not 'PROXY ' nor the v2 signature",
            len(buf) + len(data),
        )

    # -- Version 1 -------------------------------------------------------------

    def _v1(self, data: bytes) -> tuple[ProxyHeader, bytes] | NeedData:
        buf = self._buf
        start = len(buf)
        # Never keep more than the longest line.
        buf += data[: MAX_V1_HEADER - start]
        # A CR that ended the bytes before must be followed by the LF now.
        first = max(start - 1, 0)
        end = buf.find(_V1_LINE_END, first)
        if end < 0:
            self._check_v1_chars(first, len(buf))
            if len(buf) >= MAX_V1_HEADER:
                raise self._invalid(f"no CRLF within the first {MAX_V1_HEADER} bytes (v1)")
            return NEED_DATA
        self._check_v1_chars(first, end)
        size = end + 2
        rest = data[size - start :]
        line = bytes(buf[:end])
        header = self._parse_v1(line, size)
        self._done()
        return header, rest

    def _check_v1_chars(self, start: int, stop: int) -> None:
        """
        Refuse at once what no v1 line holds: control bytes, bytes past
        ASCII, a CR not followed by LF, a lone LF (the line's CR LF itself
        is at C{stop} or beyond).
        """
        buf = self._buf
        for i in range(start, stop):
            byte = buf[i]
            if 0x20 <= byte < 0x7F:
                continue
            if byte == 0x0D and i == len(buf) - 1:
                continue  # the CR of the CRLF; the LF is still to come.
            raise self._invalid(f"byte {byte:#04x} at offset {i} of a v1 line", len(buf))

    def _parse_v1(self, line: bytes, size: int) -> ProxyHeader:
        parts = line.split(b" ")
        protocol = parts[1] if len(parts) > 1 else b""
        if protocol == b"UNKNOWN":
            # The rest of the line, if any, is to be ignored.
            return ProxyHeader(1, Command.PROXY, Family.UNSPEC, None, None, size)
        if protocol not in (b"TCP4", b"TCP6"):
            raise self._invalid(f"unknown v1 protocol {protocol[:16]!r}", size)
        if len(parts) != 6:
            raise self._invalid(
                f"a v1 {protocol.decode()} line has 6 fields separated by single spaces, "
                f"not {len(parts)}",
                size,
            )
        family = Family.INET if protocol == b"TCP4" else Family.INET6
        source_host = self._v1_host(parts[2], family, "source", size)
        destination_host = self._v1_host(parts[3], family, "destination", size)
        source_port = self._v1_port(parts[4], "source", size)
        destination_port = self._v1_port(parts[5], "destination", size)
        return ProxyHeader(
            1,
            Command.PROXY,
            family,
            (source_host, source_port),
            (destination_host, destination_port),
            size,
        )

    def _v1_host(self, text: bytes, family: Family, which: str, size: int) -> str:
        """
        A v1 address in its canonical form; refuse what the specification
        does not allow (octal-looking IPv4 numbers, IPv6 scopes).
        """
        try:
            s = text.decode("ascii")
            if family is Family.INET:
                return str(ipaddress.IPv4Address(s))
            if "%" in s:
                raise ValueError("a scope")
            return ipaddress.IPv6Address(s).compressed
        except ValueError:
            kind = "IPv4" if family is Family.INET else "IPv6"
            raise self._invalid(f"the {which} {text[:45]!r} is not an {kind} address", size) from None

    def _v1_port(self, text: bytes, which: str, size: int) -> int:
        if (
            not text
            or len(text) > _V1_PORT_DIGITS
            or not text.isdigit()
            or (len(text) > 1 and text[:1] == b"0")
            or int(text) > 0xFFFF
        ):
            raise self._invalid(f"the {which} port {text[:8]!r} is not a number 0-65535", size)
        return int(text)

    # -- Version 2 -------------------------------------------------------------

    def _v2(self, data: bytes) -> tuple[ProxyHeader, bytes] | NeedData:
        buf = self._buf
        start = len(buf)
        if self._v2_size is None:
            buf += data[: _V2_PREAMBLE - start]
            self._check_v2_preamble()
            if len(buf) < _V2_PREAMBLE:
                return NEED_DATA
            data = data[_V2_PREAMBLE - start :]
            start = _V2_PREAMBLE
        size = self._v2_size
        assert size is not None
        buf += data[: size - start]
        if len(buf) < size:
            return NEED_DATA
        rest = data[size - start :]
        header = self._parse_v2(size)
        self._done()
        return header, rest

    def _check_v2_preamble(self) -> None:
        """
        Check the version, command, family and length bytes as each arrives
        (the signature is in), and the length against the limits.
        """
        buf = self._buf
        n = len(buf)
        if n > 12:
            version, command = buf[12] & 0xF0, buf[12] & 0x0F
            if version != _V2_VERSION:
                raise self._invalid(f"v2 version {version >> 4}, not 2")
            if command > 1:
                raise self._invalid(f"unknown v2 command {command}")
        if n > 13:
            family, transport = buf[13] >> 4, buf[13] & 0x0F
            if family > 3:
                raise self._invalid(f"unknown v2 address family {family}")
            if transport > 2:
                raise self._invalid(f"unknown v2 transport protocol {transport}")
            if transport == 2 and family and buf[12] & 0x0F == 1:
                raise self._invalid("the v2 header describes a datagram flow, on a stream")
        if n < _V2_PREAMBLE:
            return
        length = int.from_bytes(buf[14:16], "big")
        size = _V2_PREAMBLE + length
        if size > self.max_v2_size:
            raise self._invalid(
                f"the v2 header announces {size} bytes, over the limit of {self.max_v2_size}"
            )
        if buf[12] & 0x0F == 1:
            needed = _V2_ADDRESS_BYTES.get(buf[13] >> 4, 0)
            if buf[13] & 0x0F and length < needed:
                raise self._invalid(
                    f"the v2 header's {length} bytes cannot hold its {needed} bytes of addresses"
                )
        self._v2_size = size

    def _parse_v2(self, size: int) -> ProxyHeader:
        buf = self._buf
        if buf[12] & 0x0F == 0:
            # LOCAL: whatever the rest says, the connection's addresses count.
            return ProxyHeader(2, Command.LOCAL, Family.UNSPEC, None, None, size)
        family_code, transport = buf[13] >> 4, buf[13] & 0x0F
        if family_code == 0 or transport == 0:
            return ProxyHeader(2, Command.PROXY, Family.UNSPEC, None, None, size)
        block = bytes(buf[_V2_PREAMBLE:size])
        if family_code == 3:
            return ProxyHeader(
                2,
                Command.PROXY,
                Family.UNIX,
                _unix_path(block[:_UNIX_PATH]),
                _unix_path(block[_UNIX_PATH : 2 * _UNIX_PATH]),
                size,
            )
        width = 4 if family_code == 1 else 16
        ports = 2 * width
        source_port = int.from_bytes(block[ports : ports + 2], "big")
        destination_port = int.from_bytes(block[ports + 2 : ports + 4], "big")
        if family_code == 1:
            source = str(ipaddress.IPv4Address(block[:width]))
            destination = str(ipaddress.IPv4Address(block[width:ports]))
            family = Family.INET
        else:
            source = ipaddress.IPv6Address(block[:width]).compressed
            destination = ipaddress.IPv6Address(block[width:ports]).compressed
            family = Family.INET6
        return ProxyHeader(
            2,
            Command.PROXY,
            family,
            (source, source_port),
            (destination, destination_port),
            size,
        )

    def _done(self) -> None:
        self._state = _State.DONE
        self._buf = bytearray()


_V2_ADDRESS_BYTES: Final = {1: 12, 2: 36, 3: 2 * _UNIX_PATH}
"""The bytes of the address block of each v2 family (by its code)."""


def _unix_path(raw: bytes) -> bytes:
    """
    The path in a v2 header's 108-byte UNIX address: up to the first NUL;
    for an abstract socket (a leading NUL), the name without its padding.
    """
    if raw[:1] == b"\x00":
        return raw.rstrip(b"\x00")
    return raw.split(b"\x00", 1)[0]

