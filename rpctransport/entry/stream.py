# -*- test-case-name: rpctransport.test.test_stream_sockets -*-
"""
Layer 4: making stream controllers from endpoints and descriptors.

  - L{listen_stream}: accept connections on any Twisted server endpoint
    (C{"tcp:0:interface=127.0.0.1"}, C{"unix:/run/x.sock"}, ...), one
    controller per connection, at most C{max_connections} of them (see
    L{rpctransport.entry.admission}), optionally behind a proxy that sends
    the PROXY protocol (L{rpctransport.adapters.peer}); L{listener_counters}
    tells what the listener counted;
  - L{connect_stream}: connect through any Twisted client endpoint;
  - L{stream_rpc_multiplex_controller}: adopt a connected socket descriptor,
    as the seed's constructor of the same name does.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any, Final, Union, cast

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString, serverFromString, wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IOpenSSLClientConnectionCreator,
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorSocket,
    IReactorTime,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import ClientFactory, Factory, ServerFactory

from ..adapters.common import resolve_reactor
from ..adapters.peer import ProxyHeaderFactory, endpoint_under_haproxy
from ..adapters.stream import StreamController
from ..adapters.tls import SunRPCNegotiation
from ..sansio.counters import Counters
from ..sansio.proxyheader import DEFAULT_MAX_V2_HEADER, DEFAULT_PROXY_HEADER_TIMEOUT
from .admission import Admission
from .adoption import probe_descriptor

__all__ = [
    "HAPROXY_PREFIX",
    "StreamControllerFactory",
    "connect_stream",
    "listen_stream",
    "listener_counters",
    "stream_rpc_multiplex_controller",
]

_FAMILIES: Final = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)
"""The address families of the stream sockets Twisted adopts."""

HAPROXY_PREFIX: Final = "haproxy:"
"""
The prefix of Twisted's own endpoint strings for a listener behind a proxy
(C{"haproxy:tcp:8080"}); L{listen_stream} takes it as C{proxy_protocol=True}
on the endpoint after it.
"""

_ServerTLS = Union[IOpenSSLServerConnectionCreator, IOpenSSLContextFactory]
"""
Server TLS options: what L{rpctransport.server_tls_options} or Twisted's
C{CertificateOptions} make (a connection creator, or an older-style context
factory, which Twisted's TLS still takes).
"""


class StreamControllerFactory(SunRPCNegotiation, ServerFactory, ClientFactory):
    """
    Builds a L{StreamController} per connection, with the same options, and
    hands each to C{on_connection} once it is connected.

    Use it directly with Twisted APIs that take a factory
    (C{reactor.listenTCP}, C{wrapServerTLS}, ...); then call L{guard_accept}
    with the port for the back-off on C{EMFILE} (L{listen_stream} does both).
    Behind a proxy that sends the PROXY protocol, wrap it (or Twisted's TLS
    factory around it) in a L{ProxyHeaderFactory
    <rpctransport.adapters.peer.ProxyHeaderFactory>}, as L{listen_stream}
    does with C{proxy_protocol}.

    As a listener's factory, it keeps the listener's connections: at most
    L{max_connections}, evicting one for each newcomer beyond (never-proven,
    then idle, then oldest; see L{rpctransport.entry.admission}), and it
    counts for the listener (L{counters}).
    """

    # Not a log line per client connection ("Starting factory ...").
    noisy = False

    def __init__(
        self,
        on_connection: Callable[[StreamController], object] | None = None,
        reactor: IReactorTime | None = None,
        *,
        max_connections: int | None = None,
        **options: Any,
    ) -> None:
        """
        @param on_connection: called with each connected controller. If it
            raises, the error is logged and that connection closed.
        @param reactor: the reactor for the controllers' timers.
        @param max_connections: the most connections kept at once (L{None}:
            no cap; see L{rpctransport.default_max_connections}).
        @param options: limits and options for L{StreamController}.
            C{counters_parent} becomes the parent of the listener's
            L{counters} (each controller counts into those); C{on_lost} is
            called after the factory's own bookkeeping.
        """
        self.on_connection = on_connection
        self.reactor = resolve_reactor(reactor)
        self._counters = Counters(options.pop("counters_parent", None))
        self._also_on_lost: Callable[[StreamController], object] | None = options.pop(
            "on_lost", None
        )
        self.options = options
        self._admission = Admission(self.reactor, self._counters, max_connections)
        # Fail now, not at the first connection, on a misspelt option.
        StreamController(self.reactor, **options)

    @property
    def max_connections(self) -> int | None:
        """
        The most connections kept at once (L{None}: no cap). Settable; a
        lower cap is reached one eviction per newcomer.
        """
        return self._admission.max_connections

    @max_connections.setter
    def max_connections(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"max_connections must be >= 1 or None, not {value}")
        self._admission.max_connections = value

    @property
    def connections(self) -> int:
        """
        How many connections count against L{max_connections} now (not
        those evicted and still closing).
        """
        return len(self._admission.table)

    @property
    def counters(self) -> Mapping[str, int]:
        """
        What the listener counted, per reason, as one read-only mapping
        that follows the counts: evictions (C{evicted.unproven},
        C{evicted.idle}, C{evicted.oldest}), accept back-offs
        (C{accept.backoff}), and everything its connections counted
        (refusals, deadlines); keys in L{rpctransport.sansio.counters}.
        """
        return self._counters.view

    def guard_accept(self, port: IListeningPort) -> bool:
        """
        Make C{port}, listening with this factory, back off instead of
        resetting connections when the process runs out of descriptors, and
        pace its accepting to the evictions; see
        L{rpctransport.entry.admission.AcceptGuard}. L{listen_stream} calls
        it; call it for ports from C{reactor.listenTCP},
        C{reactor.adoptStreamPort} and the like.

        @return: whether C{port} could be guarded (a Twisted C{tcp.Port} or
            C{unix.Port}, or a subclass).
        """
        return self._admission.guard(port)

    def buildProtocol(self, addr: IAddress | None) -> StreamController:
        """
        A new controller for the connection from (or to) C{addr}; at
        L{max_connections}, another connection is evicted first.
        """
        admission = self._admission
        admission.admit(addr)
        controller = StreamController(
            self.reactor,
            counters_parent=self._counters,
            on_lost=self._lost,
            on_connection=self.on_connection,
            **self.options,
        )
        controller.factory = self
        admission.add(controller)
        return controller

    def _lost(self, controller: StreamController) -> None:
        self._admission.lost(controller)
        also = self._also_on_lost
        if also is not None:
            also(controller)


class _AdoptedFactory(SunRPCNegotiation, Factory):
    """
    The factory of an adopted socket's one controller: under TLS, ALPN
    C{sunrpc} like L{StreamControllerFactory}'s.
    """


def listen_stream(
    endpoint: IStreamServerEndpoint | str,
    on_connection: Callable[[StreamController], object],
    *,
    reactor: IReactorTime | None = None,
    tls: _ServerTLS | None = None,
    max_connections: int | None = None,
    proxy_protocol: bool = False,
    proxy_header_timeout: float = DEFAULT_PROXY_HEADER_TIMEOUT,
    max_proxy_header_size: int = DEFAULT_MAX_V2_HEADER,
    **options: Any,
) -> Deferred[IListeningPort]:
    """
    Listen for stream connections; each gets its own L{StreamController}.

    @param endpoint: a Twisted server endpoint, or a string for
        C{serverFromString} (C{"tcp:0:interface=127.0.0.1"}, C{"unix:PATH"});
        a string that begins with Twisted's C{"haproxy:"} (C{"haproxy:tcp:8080"}),
        or the endpoint Twisted's C{serverFromString} makes of one, turns
        C{proxy_protocol} on for the endpoint under it.
    @param on_connection: called with each connected controller.
    @param reactor: the reactor for the controllers' timers (the global one
        by default); for a string, the endpoint also needs what its type
        does (C{IReactorTCP} for C{tcp:}, C{IReactorUNIX} for C{unix:},
        C{IReactorSSL} for C{ssl:}).
    @param tls: server TLS options (see L{rpctransport.server_tls_options}):
        TLS from the first byte, for what endpoint strings cannot say
        (client certificates, ALPN). C{ssl:} endpoint strings work too.
    @param max_connections: the most connections kept at once; a newcomer
        beyond evicts one that never sent a whole record (the oldest), else
        the longest idle, else the oldest. L{None} (the default): no cap.
        C{rpctransport serve} uses L{rpctransport.default_max_connections}.
        Whatever the cap, a listener that runs out of descriptors (C{EMFILE},
        C{ENFILE}) backs off, evicts one connection and tries again, instead
        of accepting and resetting newcomers.
    @param proxy_protocol: the listener is behind a proxy (HAProxy's
        C{send-proxy} or C{send-proxy-v2}): every connection must begin with
        a PROXY protocol header, v1 or v2, and the client it names is what
        C{getpeername()}, C{before_record}, the logs and admission control
        see (C{getsockname()}: the address the client connected to). A
        connection that does not begin with a valid header is closed at its
        first wrong byte and counted (C{refused.proxy_header}); a v2
        C{LOCAL} header (a proxy's own health check) keeps the connection's
        own addresses. The header is read below TLS, as proxies send it: with
        C{tls}, a proxy that passes TLS through works, and the peer's
        identity still comes from its certificate. (An C{ssl:} endpoint
        string would put TLS below the header: use C{tls}.)
    @param proxy_header_timeout: seconds the whole header may take (see
        L{rpctransport.sansio.proxyheader.DEFAULT_PROXY_HEADER_TIMEOUT});
        counted as C{deadline.proxy_header}.
    @param max_proxy_header_size: the longest v2 header taken (see
        L{rpctransport.sansio.proxyheader.DEFAULT_MAX_V2_HEADER}).
    @param options: limits and options for L{StreamController}
        (C{max_record_size}, C{max_fragments}, C{max_empty_fragments},
        C{max_fragment_size}, C{read_buffer_limit}, C{linger},
        C{starttls} for RFC 9289 on this plaintext listener, C{require_alpn},
        C{handshake_timeout}, the deadlines C{record_deadline},
        C{idle_timeout}, C{first_record_timeout}, C{write_deadline}), and
        C{counters_parent}: counters that also count what the listener
        counts. Every controller made here answers RFC 9289 probes itself,
        so they never reach the application.
    @return: a Deferred firing with the listening port (its C{getHost()}
        tells the port actually bound; L{listener_counters} what the
        listener counted).
    """
    reactor = resolve_reactor(reactor)
    if isinstance(endpoint, str):
        if endpoint.startswith(HAPROXY_PREFIX):
            # Twisted's haproxy: parser would wrap the endpoint in its own
            # reader of the header, which has no deadline and takes no
            # header split across reads; the header is read here instead.
            endpoint = endpoint[len(HAPROXY_PREFIX) :]
            proxy_protocol = True
        server = serverFromString(reactor, endpoint)
    else:
        server = endpoint
        under = endpoint_under_haproxy(server)
        if under is not None:
            # The same for the endpoint Twisted's parser makes of such a
            # string (serverFromString, proxyEndpoint).
            server = under
            proxy_protocol = True
    controllers = StreamControllerFactory(
        on_connection, reactor, max_connections=max_connections, recognise_probes=True, **options
    )
    factory: IProtocolFactory = controllers
    if tls is not None:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        factory = TLSMemoryBIOFactory(tls, False, factory)
    if proxy_protocol:
        # Below TLS: a proxy sends its header in clear, before its client's
        # first byte (TLS passed through included).
        factory = ProxyHeaderFactory(
            factory, reactor, proxy_header_timeout, max_proxy_header_size
        )

    def guard(port: IListeningPort) -> IListeningPort:
        controllers.guard_accept(port)
        return port

    d: Deferred[IListeningPort] = server.listen(factory)
    d.addCallback(guard)
    return d


def listener_counters(port: IListeningPort) -> Mapping[str, int]:
    """
    What a listener from L{listen_stream} counted, per reason: evictions,
    accept back-offs, and what its connections counted (see
    L{StreamControllerFactory.counters}). A read-only mapping that follows
    the counts.

    @param port: the port L{listen_stream} gave, or any port listening with
        a L{StreamControllerFactory} (under TLS too).
    @raise TypeError: C{port} does not listen with one.
    """
    factory = getattr(port, "factory", None)
    while factory is not None and not isinstance(factory, StreamControllerFactory):
        # Twisted's TLS (and other protocol wrappers) keep the factory they
        # wrap here.
        factory = getattr(factory, "wrappedFactory", None)
    if factory is None:
        raise TypeError(f"{port!r} does not listen with a StreamControllerFactory")
    return factory.counters


def connect_stream(
    endpoint: IStreamClientEndpoint | str,
    *,
    reactor: IReactorTime | None = None,
    tls: IOpenSSLClientConnectionCreator | None = None,
    **options: Any,
) -> Deferred[StreamController]:
    """
    Connect a L{StreamController} through a client endpoint.

    @param endpoint: a Twisted client endpoint, or a string for
        C{clientFromString} (C{"tcp:host=127.0.0.1:port=111"},
        C{"unix:path=/run/x.sock"}).
    @param reactor: the reactor for the controller's timers (the global one
        by default); for a string, the endpoint also needs what its type
        does (C{IReactorTCP} for C{tcp:}, C{IReactorUNIX} for C{unix:}).
    @param tls: client TLS options (see L{rpctransport.client_tls_options}):
        TLS from the first byte. Reads and writes wait for the handshake.
    @param options: limits and options for L{StreamController}.
    @return: a Deferred firing with the connected controller.
    """
    reactor = resolve_reactor(reactor)
    client = clientFromString(reactor, endpoint) if isinstance(endpoint, str) else endpoint
    if tls is not None:
        client = wrapClientTLS(tls, client)
    factory = StreamControllerFactory(None, reactor, **options)
    # The endpoint connects with our factory, so its protocol is ours.
    d = cast("Deferred[StreamController]", client.connect(factory))
    return d


def stream_rpc_multiplex_controller(
    fd: int,
    reactor: IReactorTime | None = None,
    *,
    close_inactive_descr: bool = True,
    preclose: Callable[[], object] | None = None,
    tls: _ServerTLS | IOpenSSLClientConnectionCreator | None = None,
    **limits: Any,
) -> StreamController:
    """
    Adopt a connected stream socket (TCP or UNIX) as a controller.

    Twisted works on a duplicate of C{fd}. With C{close_inactive_descr}
    (the default) the controller owns the connection: C{inactivate()} calls
    C{preclose()}, closes the connection (the peer sees it closed) and closes
    C{fd}. Without it, C{inactivate()} lets go of the duplicate only, and
    C{fd} stays fully usable by its owner.

    @param fd: a connected C{SOCK_STREAM} socket descriptor.
    @param reactor: the reactor for the controller's timers, which must
        also provide C{IReactorSocket} (the global one by default).
    @param close_inactive_descr: whether C{inactivate()} closes the socket.
    @param preclose: called just before C{inactivate()} closes it.
    @param tls: TLS options, from the first byte: client options (from
        C{optionsForClientTLS}) make us the TLS client, others the server.
    @param limits: limits and options for L{StreamController}.
    @raise ValueError: C{fd} is not a stream socket of a family Twisted can
        adopt (AF_INET, AF_INET6, AF_UNIX).
    """
    reactor = resolve_reactor(reactor)
    found = probe_descriptor(fd, socket.SOCK_STREAM, _FAMILIES)
    owned = found.ownership(close_inactive_descr, preclose)
    controller = StreamController(reactor, **owned, **limits)
    # Any: Twisted types adoptStreamConnection's factory as a ServerFactory,
    # which neither Factory.forProtocol nor TLSMemoryBIOFactory is.
    factory: Any = _AdoptedFactory.forProtocol(lambda: controller)
    if tls is not None:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        # CertificateOptions provides both creator interfaces: only options
        # that can make nothing but client connections make us the client.
        is_client = IOpenSSLClientConnectionCreator.providedBy(tls) and not (
            IOpenSSLServerConnectionCreator.providedBy(tls)
        )
        factory = TLSMemoryBIOFactory(tls, is_client, factory)
    cast(IReactorSocket, reactor).adoptStreamConnection(fd, found.family, factory)
    return controller
