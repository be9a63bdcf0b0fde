# -*- test-case-name: rpctransport.test.test_twisted_private -*-
"""
Every use of Twisted beyond its published interfaces, in one module.

The controllers need six things Twisted's interfaces do not offer:
  - to send on the socket in the reactor turn that received a call
    (L{DirectWrites}: C{FileDescriptor}'s write buffer and C{doWrite});
  - under TLS, to hand the small writes Twisted's TLS layer aggregates for
    its next reactor iteration to TLS now (L{flush_tls}:
    C{BufferingTLSTransport._aggregator});
  - to read larger chunks while records are large (C{bufferSize});
  - to close only Twisted's duplicate of an adopted socket
    (C{_shouldShutdown}), and to start TLS the way RFC 9289 says rather than
    the way the connection was made (C{_tlsClientDefault});
  - to have a TLS layer that C{startTLS} made negotiate ALPN C{sunrpc} as
    a server (L{negotiate_under}: its factory's C{wrappedFactory}, public
    but left empty by C{startTLS});
  - a UDP port whose socket is configured between bind and first read, and
    that closes once (L{HookedUDPPort}: C{_bindSocket},
    C{_connectToProtocol}, C{_loseConnection},
    C{_fromListeningDescriptor});
  - to adopt a listening UNIX socket that stays its owner's when the port
    stops (L{adopt_unix_listener}: C{_fromListeningDescriptor},
    C{_shouldShutdown}): Twisted's UNIX port, unlike its TCP one, calls
    C{shutdown()} on a socket it did not create, ending it for every
    process that holds it, and removes its path.

  - to recognise the endpoints of Twisted's C{haproxy:} endpoint strings
    (C{proxyEndpoint}), whose own reader of the PROXY header is replaced by
    ours (L{unwrap_haproxy}: C{_WrapperServerEndpoint._wrappedEndpoint} and
    C{_wrapperFactory}, and C{HAProxyWrappingFactory}, of private modules).

And one public attribute that no interface names: a socket transport's
C{protocol}, the protocol it delivers to, which a listener that reads a
PROXY header first hands over to the connection's real protocol once the
header is in (L{hand_over}).

Each private attribute is checked when this module is imported. What is
missing is listed in L{MISSING} and its feature falls back to the plain
interfaces (a reply waits for the reactor's next turn, reads stay at
Twisted's size, and so on); C{test_twisted_private} fails, naming the
attribute, when a Twisted upgrade removes one. No other module of the
package touches a private attribute of Twisted.
"""

from __future__ import annotations

import socket
from typing import Any, Final, cast

from twisted.internet import abstract, endpoints, tcp, udp
from twisted.internet.interfaces import IListeningPort

try:
    from twisted.internet import unix as _unix
except ImportError:  # pragma: no cover - a platform without UNIX sockets
    _unix = None  # type: ignore[assignment]

try:
    from twisted.protocols import tls as _tls
except ImportError:  # pragma: no cover - without pyOpenSSL there is no TLS at all
    _tls = None  # type: ignore[assignment]

try:
    from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory as _HAProxyFactory
except ImportError:  # pragma: no cover - only with a Twisted that moved it
    _HAProxyFactory = None  # type: ignore[assignment,misc]
_WrapperEndpoint: Any = getattr(endpoints, "_WrapperServerEndpoint", None)

__all__ = [
    "MISSING",
    "DirectWrites",
    "HookedUDPPort",
    "adopt_unix_listener",
    "close_duplicate_only",
    "flush_tls",
    "hand_over",
    "held_bytes",
    "negotiate_under",
    "read_size",
    "set_read_size",
    "start_tls_as",
    "udp_port_from_descriptor",
    "unwrap_haproxy",
]

_REQUIRED: Final[dict[str, tuple[type, tuple[str, ...]]]] = {
    "direct writes": (
        abstract.FileDescriptor,
        (
            "connected",
            "disconnecting",
            "_writeDisconnecting",
            "dataBuffer",
            "offset",
            "_tempDataLen",
            "writeSomeData",
            "doWrite",
        ),
    ),
    "read size": (abstract.FileDescriptor, ("bufferSize",)),
    "closing an adopted duplicate": (tcp.Connection, ("_shouldShutdown",)),
    "STARTTLS direction": (tcp.Server, ("_tlsClientDefault",)),
    "UDP port hooks": (
        udp.Port,
        ("_bindSocket", "_connectToProtocol", "_loseConnection", "_fromListeningDescriptor"),
    ),
}
if _unix is not None:
    _REQUIRED["adopted UNIX listeners"] = (
        _unix.Port,
        ("_fromListeningDescriptor", "_shouldShutdown"),
    )
if _tls is not None:
    _REQUIRED["TLS write aggregation"] = (_tls.BufferingTLSTransport, ("_aggregator",))
if _WrapperEndpoint is not None:
    _REQUIRED["haproxy: endpoints"] = (_WrapperEndpoint, ("_wrappedEndpoint", "_wrapperFactory"))


def _missing() -> tuple[str, ...]:
    out = []
    if _WrapperEndpoint is None:
        out.append("haproxy: endpoints: twisted.internet.endpoints._WrapperServerEndpoint")
    if _HAProxyFactory is None:
        out.append("haproxy: endpoints: twisted.protocols.haproxy._wrapper.HAProxyWrappingFactory")
    for feature, (cls, names) in _REQUIRED.items():
        for name in names:
            # Instance attributes are set in __init__; look at a bare
            # instance's class and at the names __init__ assigns.
            if not hasattr(cls, name) and name not in _instance_names(cls):
                out.append(f"{feature}: {cls.__module__}.{cls.__qualname__}.{name}")
    return tuple(out)


def _instance_names(cls: type) -> frozenset[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        code = getattr(init, "__code__", None)
        if code is not None:
            names.update(code.co_names)
    return frozenset(names)


MISSING: Final = _missing()
"""
The private attributes this module relies on that this Twisted lacks, as
C{"feature: module.Class.attribute"}; empty when all are there.
"""


def _have(feature: str) -> bool:
    return not any(entry.startswith(feature + ":") for entry in MISSING)


_DIRECT_WRITES: Final = _have("direct writes")
_READ_SIZE: Final = _have("read size")
_TLS_FLUSH: Final = _tls is not None and _have("TLS write aggregation")
_CLOSE_DUPLICATE: Final = _have("closing an adopted duplicate")
_UDP_HOOKS: Final = _have("UDP port hooks")
_HAPROXY_ENDPOINTS: Final = _have("haproxy: endpoints")
_KEPT_UNIX: Final = _unix is not None and _have("adopted UNIX listeners")


class DirectWrites:
    """
    Sends at once, or flushes, what one socket transport holds, without
    waiting for the reactor to find the socket writable.

    Made by L{for_transport} only for Twisted's own socket transports
    (C{FileDescriptor}s): TLS, IOCP and memory transports are left to the
    reactor, as is a transport that is closing (its C{doWrite} would end the
    connection through a return value only the reactor acts on). Any send
    error is left to the reactor too, which meets it again on its own write.
    """

    def __init__(self, transport: abstract.FileDescriptor) -> None:
        self._transport: Any = transport

    @classmethod
    def for_transport(cls, transport: object) -> DirectWrites | None:
        """
        A L{DirectWrites} for C{transport}, or L{None} when it is not a
        socket transport this can drive safely.
        """
        if not _DIRECT_WRITES or not isinstance(transport, abstract.FileDescriptor):
            return None
        if not all(hasattr(transport, name) for name in _REQUIRED["direct writes"][1]):
            return None
        return cls(transport)

    def _open(self) -> bool:
        transport = self._transport
        return bool(
            transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnecting
        )

    def holds_nothing(self) -> bool:
        """
        Whether the transport is open and has nothing waiting to be sent, so
        that a record sent now keeps its place in the stream.
        """
        transport = self._transport
        return (
            not transport._tempDataLen
            and transport.offset == len(transport.dataBuffer)
            and self._open()
        )

    def send(self, data: bytes) -> None:
        """
        Send C{data} now, as far as the socket takes it; buffer the rest in
        the transport. Only when L{holds_nothing}.
        """
        transport = self._transport
        sent = transport.writeSomeData(data)
        if not isinstance(sent, int) or sent < 0:
            # The connection broke: the reactor finds out on its own write.
            transport.write(data)
        elif sent < len(data):
            transport.write(data[sent:])

    def flush(self) -> None:
        """
        Send what the transport holds now, as far as the socket takes it; the
        rest is left to the reactor, as is any error.
        """
        if self._open():
            self._transport.doWrite()


def flush_tls(transport: object) -> None:
    """
    Hand what Twisted's TLS layer over C{transport} holds back (it gathers
    small writes for its next reactor iteration) to TLS now, so that it
    reaches the socket transport under it. C{transport} is the TLS layer
    (implicit TLS) or a socket transport that started TLS (its protocol slot
    then holds the layer); anything else is left alone.
    """
    if not _TLS_FLUSH:
        return
    layer = transport if isinstance(transport, _tls.BufferingTLSTransport) else getattr(
        transport, "protocol", None
    )
    if isinstance(layer, _tls.BufferingTLSTransport):
        layer._aggregator.flush()


def held_bytes(transport: object) -> int | None:
    """
    How many bytes a socket transport holds, not yet sent; L{None} when it
    is not one whose buffer can be looked at.
    """
    if not _DIRECT_WRITES or not isinstance(transport, abstract.FileDescriptor):
        return None
    return int(transport._tempDataLen + len(transport.dataBuffer) - transport.offset)


def read_size(transport: object) -> int | None:
    """
    How many bytes a socket transport reads per reactor turn, or L{None}
    when it is not one whose size can be set.
    """
    size = getattr(transport, "bufferSize", None) if _READ_SIZE else None
    return size if isinstance(size, int) else None


def set_read_size(transport: object, size: int) -> None:
    """
    Make a socket transport (one for which L{read_size} is not L{None}) read
    C{size} bytes per reactor turn.
    """
    transport.bufferSize = size  # type: ignore[attr-defined]


def close_duplicate_only(transport: Any, reason: Any) -> bool:
    """
    Close Twisted's duplicate of an adopted socket without C{shutdown()},
    which would end the owner's copy too (C{_shouldShutdown} is the flag
    Twisted itself clears for sockets it did not create).

    @return: L{False} when C{transport} is not such a socket transport (or
        this Twisted cannot), and nothing was done.
    """
    if not _CLOSE_DUPLICATE:
        return False
    if not hasattr(transport, "_shouldShutdown") or not hasattr(transport, "connectionLost"):
        return False
    transport._shouldShutdown = False
    transport.connectionLost(reason)
    return True


def hand_over(transport: object, protocol: Any) -> bool:
    """
    Make C{protocol} the protocol Twisted's socket transport C{transport}
    delivers to from now on (received bytes, the peer's EOF, the end), in
    place of the one it was made with.

    @return: L{False} when C{transport} is not one of Twisted's socket
        transports (a memory transport in tests, IOCP), and nothing was
        done: the caller keeps forwarding what it receives.
    """
    if not isinstance(transport, tcp.Connection) or getattr(transport, "protocol", None) is None:
        return False
    transport.protocol = protocol
    return True


def unwrap_haproxy(endpoint: object) -> Any:
    """
    The endpoint under Twisted's PROXY protocol wrapper, when C{endpoint} is
    one (what C{serverFromString} makes of C{"haproxy:tcp:8080"}, and
    C{twisted.protocols.haproxy.proxyEndpoint}); else L{None}, as when this
    Twisted lacks what it takes to tell (the endpoint is then used as it is,
    Twisted's own reader of the header included).
    """
    if not _HAPROXY_ENDPOINTS or not isinstance(endpoint, _WrapperEndpoint):
        return None
    if endpoint._wrapperFactory is not _HAProxyFactory:
        return None
    return endpoint._wrappedEndpoint


def start_tls_as(transport: Any, options: Any, client: bool) -> None:
    """
    Start TLS on C{transport} as the TLS client or the TLS server.

    Twisted's C{startTLS} goes the way the connection was made unless told
    otherwise, and takes an adopted socket for an accepted one; in RFC 9289
    the side that probed is the TLS client either way. (C{_tlsClientDefault}
    is the flag Twisted's C{startTLS} itself reads; without it, TLS goes the
    way Twisted thinks the connection was made.)
    """
    made_as_client = getattr(transport, "_tlsClientDefault", None)
    if made_as_client is None:
        transport.startTLS(options)
    else:
        transport.startTLS(options, made_as_client == client)


def negotiate_under(tls_protocol: Any, negotiation: object) -> bool:
    """
    Make Twisted's TLS layer C{tls_protocol} negotiate the protocols
    C{negotiation} (an C{IProtocolNegotiationFactory}) names, when the layer
    wraps no factory, as C{startTLS} makes it: Twisted's TLS asks the
    factory it wraps for them, as a client when it makes the connection, as
    a server when it selects a protocol during the handshake. The layer's
    factory is that one connection's, so no other connection sees this.

    @return: whether C{negotiation} was put there (not when the layer wraps
        a factory, whose own word stands).
    """
    factory = getattr(tls_protocol, "factory", None)
    if factory is None or getattr(factory, "wrappedFactory", False) is not None:
        return False
    factory.wrappedFactory = negotiation
    return True


class HookedUDPPort(udp.Port):
    """
    A Twisted UDP port with two hooks for its subclasses: L{socket_bound},
    called between binding (or adopting) the socket and the first read, and
    a close that happens once however often it is asked for
    (L{lose_connection}).
    """

    _closing = False

    def startListening(self) -> None:
        """
        Bind (or take over the adopted socket), let L{socket_bound} configure
        it, and start reading.
        """
        if _UDP_HOOKS:
            self._bindSocket()
            self.socket_bound()
            self._connectToProtocol()
        else:  # pragma: no cover - only with a Twisted that lacks the hooks
            super().startListening()
            self.socket_bound()

    def socket_bound(self) -> None:
        """
        The socket exists and nothing has been read from it yet.
        """

    def lose_connection(self) -> None:
        """
        Stop reading and close the port on the next reactor turn (as
        C{stopListening} does), once.
        """
        if _UDP_HOOKS:
            self._loseConnection()
        else:  # pragma: no cover - only with a Twisted that lacks the hooks
            self.stopListening()

    def _loseConnection(self) -> None:
        # Once only: a second scheduled connectionLost would find the socket
        # gone. The Deferred of the last stopListening fires when it runs.
        if self._closing:
            return
        self._closing = True
        super()._loseConnection()


def udp_port_from_descriptor(
    port_class: type[HookedUDPPort],
    reactor: Any,
    fd: int,
    family: int,
    protocol: Any,
    max_packet_size: int,
) -> HookedUDPPort:
    """
    A port of C{port_class} on the already bound UDP socket C{fd} (which
    Twisted duplicates), not yet listening.
    """
    port: HookedUDPPort = port_class._fromListeningDescriptor(
        reactor, fd, family, protocol, max_packet_size
    )
    return port


if _unix is not None:

    class _KeptUNIXPort(_unix.Port):
        """
        Twisted's UNIX port, but one that closes its duplicate of an adopted
        socket without C{shutdown()} (as Twisted's TCP port does) and leaves
        the socket's path in place.
        """

        _shouldShutdown = False

        def connectionLost(self, reason: Any) -> None:
            """
            What C{unix.Port.connectionLost} does but the unlink (the
            C{wantPID} lock it also releases an adopted port never has).
            """
            tcp.Port.connectionLost(self, reason)


def adopt_unix_listener(reactor: Any, fd: int, factory: Any) -> IListeningPort:
    """
    Listen on C{fd}, a listening, non-blocking UNIX stream socket bound by
    someone else, with C{factory}, as C{reactor.adoptStreamPort} does (on a
    duplicate: C{fd} stays the caller's), but with a port that leaves the
    socket to its owner when it stops: no C{shutdown()}, which would end it
    for every process holding it (the other workers of C{serve --workers};
    systemd, which keeps it across restarts of the service), and no removal
    of its path (systemd.socket(5): a service must not unlink it). Without
    what this needs, C{adoptStreamPort} itself.
    """
    if not _KEPT_UNIX:  # pragma: no cover - only with a Twisted that lacks it
        return cast(IListeningPort, reactor.adoptStreamPort(fd, socket.AF_UNIX, factory))
    port = _KeptUNIXPort._fromListeningDescriptor(reactor, fd, factory)
    port.startListening()
    return cast(IListeningPort, port)
