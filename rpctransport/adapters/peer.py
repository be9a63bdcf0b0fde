# -*- test-case-name: rpctransport.test.test_stream_sockets,rpctransport.test.test_proxy_protocol -*-
"""
Who is at the other end of a stream connection: as the kernel says (the
socket under a possibly TLS-wrapped Twisted transport, the peer process's
credentials on a UNIX socket), or as a proxy in front says (the PROXY
protocol).

A listener behind a proxy (HAProxy's C{send-proxy} or C{send-proxy-v2})
wraps its factory in a L{ProxyHeaderFactory}. Each connection then starts
with a L{ProxyHeaderProtocol}, which reads the PROXY header (with
L{ProxyHeaderParser <rpctransport.sansio.proxyheader.ProxyHeaderParser>})
below everything else, TLS included, since the proxy sends it in clear
before its client's first byte. A valid header gives the connection's
controller the client's addresses, and the connection itself: the socket
transport delivers to the protocols above from then on, as if the header had
never been there (L{hand_over <rpctransport.adapters._twisted.hand_over>}).
A connection without one is closed at its first wrong byte, one that keeps
it waiting after L{proxy_header_timeout
<rpctransport.sansio.proxyheader.DEFAULT_PROXY_HEADER_TIMEOUT>}; both are
logged and counted.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Protocol as TypingProtocol, runtime_checkable

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocol, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..sansio.counters import DEADLINE_PROXY_HEADER, REFUSED_PROXY_HEADER, Counters
from ..sansio.proxyheader import (
    DEFAULT_MAX_V2_HEADER,
    DEFAULT_PROXY_HEADER_TIMEOUT,
    Family,
    InvalidProxyHeader,
    ProxyHeader,
    ProxyHeaderParser,
    ProxyHeaderTimeout,
)
from ..sansio.record import NEED_DATA
from ._twisted import hand_over, unwrap_haproxy

__all__ = [
    "HeaderWaiter",
    "ProxyHeaderFactory",
    "ProxyHeaderProtocol",
    "endpoint_under_haproxy",
    "proxied_addresses",
    "socket_under",
    "unix_peer_credentials",
    "user_name_of",
]


def socket_under(transport: Any) -> socket.socket | None:
    """
    The socket under C{transport}, or L{None}.

    Under TLS, C{getHandle()} gives the TLS connection, not the socket: look
    under Twisted's TLS wrapper (implicit TLS), and at the transport's own
    socket (after C{startTLS}).
    """
    while getattr(transport, "wrappedProtocol", None) is not None:
        transport = transport.transport
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if get_handle is not None else None
    if not isinstance(handle, socket.socket):
        handle = getattr(transport, "socket", None)
    return handle if isinstance(handle, socket.socket) else None


def unix_peer_credentials(sock: socket.socket | None) -> tuple[int, int, int] | None:
    """
    C{(pid, uid, gid)} of the peer process of a UNIX socket (Linux's
    C{SO_PEERCRED}), else L{None}.
    """
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, so_peercred, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def user_name_of(uid: int) -> str:
    """
    The user name of C{uid} here, or the uid in decimal when it has none.
    """
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# -- The PROXY protocol ------------------------------------------------------------


@runtime_checkable
class HeaderWaiter(TypingProtocol):
    """
    What L{ProxyHeaderProtocol} needs of the protocol it finds under the
    protocols it hands the connection to: a L{StreamController
    <rpctransport.adapters.stream.StreamController>}, under TLS or not.
    """

    @property
    def alive(self) -> bool:
        """Whether the connection is still wanted (not evicted, not inactive)."""

    def awaiting_proxy_header(self, transport: Any) -> Counters:
        """
        The connection is accepted and its header awaited: until it is in,
        an eviction or C{inactivate()} closes C{transport}. Returns the
        counters a refusal of the header counts in.
        """

    def proxy_header_received(
        self, header: ProxyHeader, source: IAddress | None, destination: IAddress | None
    ) -> None:
        """
        The header is in: C{source} is the peer to report and
        C{destination} the local address (L{None}: the connection's own).
        """

    def connectionLost(self, reason: Failure = ...) -> None:
        """The connection ended before the header was in."""


def proxied_addresses(header: ProxyHeader) -> tuple[IAddress | None, IAddress | None]:
    """
    The client and the address it connected to, as Twisted addresses, from
    C{header}; C{(None, None)} when the connection's own addresses count
    (C{LOCAL}, C{UNKNOWN}, C{UNSPEC}).
    """
    source, destination = header.source, header.destination
    if source is None or destination is None:
        return None, None
    if isinstance(source, bytes) and isinstance(destination, bytes):
        return UNIXAddress(source), UNIXAddress(destination)
    assert isinstance(source, tuple) and isinstance(destination, tuple)
    if header.family is Family.INET:
        return IPv4Address("TCP", *source), IPv4Address("TCP", *destination)
    return IPv6Address("TCP", *source), IPv6Address("TCP", *destination)


def endpoint_under_haproxy(endpoint: object) -> Any:
    """
    The endpoint under Twisted's own PROXY protocol wrapper, when
    C{endpoint} is one (what C{serverFromString} makes of
    C{"haproxy:tcp:8080"}, and what C{proxyEndpoint} makes); else L{None}.
    A listener serves the endpoint under it with L{ProxyHeaderFactory}
    instead: Twisted's wrapper has no deadline for the header, and drops a
    connection whose first read is shorter than 8 bytes.
    """
    return unwrap_haproxy(endpoint)


def _waiter_under(protocol: object) -> HeaderWaiter | None:
    """
    The controller that is C{protocol}, or under it and the protocol
    wrappers above it (Twisted's TLS), if any.
    """
    while protocol is not None:
        if isinstance(protocol, HeaderWaiter):
            return protocol
        protocol = getattr(protocol, "wrappedProtocol", None)
    return None


class ProxyHeaderProtocol(Protocol):
    """
    The first protocol of a connection to a listener behind a proxy: reads
    the PROXY header, then hands the connection to the protocol the
    listener's factory made for it (see the module docstring).

    Where the transport cannot be handed over (it is not one of Twisted's
    socket transports: a memory transport in tests), this protocol stays in
    between and forwards what it receives, and the end; the peer's
    half-close then ends the connection.

    @ivar inner: the protocol the connection is handed to.
    """

    log = Logger()

    def __init__(self, factory: ProxyHeaderFactory, inner: IProtocol) -> None:
        self.factory = factory
        self.inner = inner
        self._waiter = _waiter_under(inner)
        self._parser = ProxyHeaderParser(factory.max_v2_size)
        self._counters: Counters | None = None
        self._timer: IDelayedCall | None = None
        # The header is in and the inner protocol connected.
        self._handed = False
        # The header is not wanted any more (refused, or the connection
        # evicted or inactivated meanwhile).
        self._closed = False
        # Why this protocol closed the connection, if it did.
        self._refused: Exception | None = None

    def connectionMade(self) -> None:
        """
        Start the header's clock; tell the controller its connection waits
        for a header.
        """
        waiter = self._waiter
        if waiter is not None:
            self._counters = waiter.awaiting_proxy_header(self.transport)
        factory = self.factory
        self._timer = factory.reactor.callLater(factory.timeout, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the header's parser; once the header is whole, hand the
        connection over with the bytes that followed it.
        """
        if self._handed:
            self.inner.dataReceived(data)
            return
        if self._closed:
            return
        try:
            result = self._parser.feed(data)
        except InvalidProxyHeader as e:
            self._refuse(e, REFUSED_PROXY_HEADER)
            return
        if result is NEED_DATA:
            return
        header, rest = result
        self._hand_over(header, rest)

    def _hand_over(self, header: ProxyHeader, rest: bytes) -> None:
        self._stop_timer()
        waiter = self._waiter
        transport: Any = self.transport
        if waiter is not None:
            if not waiter.alive:
                # Evicted or inactivated meanwhile: the connection is closing.
                self._closed = True
                return
            source, destination = proxied_addresses(header)
            waiter.proxy_header_received(header, source, destination)
        self._handed = True
        inner = self.inner
        # From here on the socket transport delivers to the inner protocol
        # itself; only other transports go on through dataReceived above.
        hand_over(transport, inner)
        inner.makeConnection(transport)
        if rest:
            inner.dataReceived(rest)

    def _timed_out(self) -> None:
        self._timer = None
        error = ProxyHeaderTimeout(self.factory.timeout, self._parser.received)
        self._refuse(error, DEADLINE_PROXY_HEADER)

    def _refuse(self, error: Exception, key: str) -> None:
        """
        Close the connection because of C{error}: logged once, counted
        under C{key}.
        """
        self._stop_timer()
        self._closed = True
        self._refused = error
        self._count_and_log(error, key)
        transport: Any = self.transport
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()

    def _count_and_log(self, error: Exception, key: str) -> None:
        if self._counters is not None:
            self._counters.add(key)
        transport: Any = self.transport
        self.log.info(
            "closing the connection from {peer}: {error}",
            peer=transport.getPeer() if transport is not None else None,
            error=error,
        )

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The connection ended: the inner protocol's business once it was
        handed over; before, the controller's (whoever counts connections
        learns it), with why this protocol closed it if it did. A
        connection that ends inside its header counts as refused; one that
        ends before sending a byte (a proxy's plain TCP health check) does
        not.
        """
        self._stop_timer()
        if self._handed:
            self.inner.connectionLost(reason)
            return
        refused = self._refused
        if not self._closed and self._parser.received:
            self._closed = True
            refused = self._refused = InvalidProxyHeader(
                "the connection ended inside the header", self._parser.received
            )
            self._count_and_log(refused, REFUSED_PROXY_HEADER)
        waiter = self._waiter
        if waiter is not None:
            waiter.connectionLost(Failure(refused) if refused is not None else reason)


class ProxyHeaderFactory(ServerFactory):
    """
    Wraps a listener's factory so that each connection begins with a PROXY
    header, read by a L{ProxyHeaderProtocol} (see the module docstring).
    L{rpctransport.listen_stream} uses it with C{proxy_protocol=True}; wrap
    a L{StreamControllerFactory
    <rpctransport.entry.stream.StreamControllerFactory>} (or Twisted's TLS
    factory around one) in it to listen through Twisted's own APIs.

    @ivar wrappedFactory: the factory wrapped.
    @ivar reactor: the clock of the header's deadline.
    @ivar timeout: seconds the whole header may take.
    @ivar max_v2_size: the longest v2 header taken, in bytes.
    """

    noisy = False

    def __init__(
        self,
        wrappedFactory: Any,
        reactor: IReactorTime,
        timeout: float = DEFAULT_PROXY_HEADER_TIMEOUT,
        max_v2_size: int = DEFAULT_MAX_V2_HEADER,
    ) -> None:
        """
        @param wrappedFactory: the listener's factory.
        @param reactor: the clock of the header's deadline.
        @param timeout: see L{DEFAULT_PROXY_HEADER_TIMEOUT}.
        @param max_v2_size: see L{DEFAULT_MAX_V2_HEADER}.
        """
        if not timeout > 0:
            raise ValueError(f"proxy_header_timeout must be > 0 seconds, not {timeout!r}")
        # Fail now, not at the first connection.
        ProxyHeaderParser(max_v2_size)
        self.wrappedFactory = wrappedFactory
        self.reactor = reactor
        self.timeout = timeout
        self.max_v2_size = max_v2_size

    def logPrefix(self) -> str:
        """The wrapped factory's, marked as behind a proxy."""
        inner = self.wrappedFactory
        prefix = inner.logPrefix() if hasattr(inner, "logPrefix") else type(inner).__name__
        return f"{prefix} (PROXY)"

    def doStart(self) -> None:
        """Start the wrapped factory too."""
        self.wrappedFactory.doStart()
        super().doStart()

    def doStop(self) -> None:
        """Stop the wrapped factory too."""
        self.wrappedFactory.doStop()
        super().doStop()

    def buildProtocol(self, addr: IAddress) -> ProxyHeaderProtocol | None:  # type: ignore[override]
        """
        A L{ProxyHeaderProtocol} in front of what the wrapped factory builds
        for C{addr} (the proxy's address: the client's is not known yet);
        L{None} when it builds nothing.
        """
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return ProxyHeaderProtocol(self, inner)
