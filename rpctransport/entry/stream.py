# -*- test-case-name: rpctransport.test.test_stream_sockets -*-
"""
Layer 4: making stream controllers from endpoints and descriptors.

  - L{listen_stream}: accept connections on any Twisted server endpoint
    (C{"tcp:0:interface=127.0.0.1"}, C{"unix:/run/x.sock"}, ...), one
    controller per connection;
  - L{connect_stream}: connect through any Twisted client endpoint;
  - L{stream_rpc_multiplex_controller}: adopt a connected socket descriptor,
    as the seed's constructor of the same name does.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString, serverFromString, wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import ClientFactory, Factory, ServerFactory

from ..adapters._common import resolve_reactor
from ..adapters.stream import StreamController

__all__ = [
    "StreamControllerFactory",
    "connect_stream",
    "listen_stream",
    "stream_rpc_multiplex_controller",
]


class StreamControllerFactory(ServerFactory, ClientFactory):
    """
    Builds a L{StreamController} per connection, with the same options, and
    hands each to C{on_connection} once it is connected.

    Use it directly with Twisted APIs that take a factory
    (C{reactor.listenTCP}, C{wrapServerTLS}, ...).
    """

    # Not a log line per client connection ("Starting factory ...").
    noisy = False

    def __init__(
        self,
        on_connection: Callable[[StreamController], object] | None = None,
        reactor: Any = None,
        **options: Any,
    ) -> None:
        """
        @param on_connection: called with each connected controller. If it
            raises, the error is logged and that connection closed.
        @param reactor: the reactor for the controllers' timers.
        @param options: limits and options for L{StreamController}.
        """
        self.on_connection = on_connection
        self.reactor = resolve_reactor(reactor)
        self.options = options
        # Fail now, not at the first connection, on a misspelt option.
        StreamController(self.reactor, **options)

    def buildProtocol(self, addr: IAddress | None) -> StreamController:
        """
        A new controller for the connection from (or to) C{addr}.
        """
        controller = StreamController(self.reactor, **self.options)
        controller.factory = self
        controller._on_connection = self.on_connection
        return controller


def listen_stream(
    endpoint: IStreamServerEndpoint | str,
    on_connection: Callable[[StreamController], object],
    *,
    reactor: Any = None,
    tls: Any = None,
    **options: Any,
) -> Deferred[IListeningPort]:
    """
    Listen for stream connections; each gets its own L{StreamController}.

    @param endpoint: a Twisted server endpoint, or a string for
        C{serverFromString} (C{"tcp:0:interface=127.0.0.1"}, C{"unix:PATH"}).
    @param on_connection: called with each connected controller.
    @param reactor: the reactor (for strings and timers; the global one by
        default).
    @param tls: server TLS options (see L{rpctransport.server_tls_options}):
        TLS from the first byte, for what endpoint strings cannot say
        (client certificates, ALPN). C{ssl:} endpoint strings work too.
    @param options: limits and options for L{StreamController}
        (C{max_record_size}, C{max_fragments}, C{max_empty_fragments},
        C{max_fragment_size}, C{read_buffer_limit}, C{linger},
        C{starttls} for RFC 9289 on this plaintext listener, C{require_alpn},
        C{handshake_timeout}). Every controller made here answers RFC 9289
        probes itself, so they never reach the application.
    @return: a Deferred firing with the listening port (its C{getHost()}
        tells the port actually bound).
    """
    reactor = resolve_reactor(reactor)
    server = serverFromString(reactor, endpoint) if isinstance(endpoint, str) else endpoint
    factory: Any = StreamControllerFactory(
        on_connection, reactor, recognise_probes=True, **options
    )
    if tls is not None:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        factory = TLSMemoryBIOFactory(tls, False, factory)
    d: Deferred[IListeningPort] = server.listen(factory)
    return d


def connect_stream(
    endpoint: IStreamClientEndpoint | str,
    *,
    reactor: Any = None,
    tls: Any = None,
    **options: Any,
) -> Deferred[StreamController]:
    """
    Connect a L{StreamController} through a client endpoint.

    @param endpoint: a Twisted client endpoint, or a string for
        C{clientFromString} (C{"tcp:host=127.0.0.1:port=111"},
        C{"unix:path=/run/x.sock"}).
    @param reactor: the reactor (for strings and timers).
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
    d: Deferred[Any] = client.connect(factory)
    return d


def stream_rpc_multiplex_controller(
    fd: int,
    reactor: Any = None,
    *,
    close_inactive_descr: bool = True,
    preclose: Callable[[], object] | None = None,
    tls: Any = None,
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
    @param reactor: a reactor providing C{IReactorSocket} (the global one by
        default).
    @param close_inactive_descr: whether C{inactivate()} closes the socket.
    @param preclose: called just before C{inactivate()} closes it.
    @param tls: TLS options, from the first byte: client options (from
        C{optionsForClientTLS}) make us the TLS client, others the server.
    @param limits: limits and options for L{StreamController}.
    @raise ValueError: C{fd} is not a stream socket of a family Twisted can
        adopt (AF_INET, AF_INET6, AF_UNIX).
    """
    reactor = resolve_reactor(reactor)
    probe = socket.socket(fileno=fd)
    try:
        family, kind = probe.family, probe.type
    finally:
        probe.detach()
    if kind != socket.SOCK_STREAM:
        raise ValueError(f"descriptor {fd} is not a stream socket (type {kind!r})")
    if family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        raise ValueError(f"descriptor {fd} has address family {family!r}, not INET or UNIX")
    controller = StreamController(
        reactor,
        close_inactive_descr=close_inactive_descr,
        preclose=preclose,
        adopted_fd=fd,
        **limits,
    )
    factory: Any = Factory.forProtocol(lambda: controller)
    if tls is not None:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        # CertificateOptions provides both creator interfaces: only options
        # that can make nothing but client connections make us the client.
        is_client = IOpenSSLClientConnectionCreator.providedBy(tls) and not (
            IOpenSSLServerConnectionCreator.providedBy(tls)
        )
        factory = TLSMemoryBIOFactory(tls, is_client, factory)
    reactor.adoptStreamConnection(fd, family, factory)
    return controller
