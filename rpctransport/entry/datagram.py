# -*- test-case-name: rpctransport.test.test_datagram_sockets -*-
"""
Layer 4: making datagram controllers from addresses and descriptors.

  - L{listen_datagram}: bind a new UDP socket (a server socket: no fixed
    peer, every read says who sent the datagram);
  - L{connect_datagram}: a client socket that talks to one server address;
  - L{datagram_rpc_multiplex_controller}: adopt a bound UDP socket
    descriptor, as the seed's constructor of the same name does.

On a reactor that watches descriptors (epoll, poll, select, asyncio: every
POSIX reactor), the socket is bound with rpctransport's own port, which reads
the socket's error queue (see L{rpctransport.adapters.recverr}); on other
reactors with Twisted's C{listenUDP}/C{adoptDatagramPort}, without it. Either
way the receive buffer is one byte larger than the largest datagram
delivered, never Twisted's default of 8192 bytes, which truncates silently.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, Final, cast

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.error import InvalidAddressError
from twisted.internet.interfaces import (
    IReactorFDSet,
    IReactorSocket,
    IReactorTime,
    IReactorUDP,
)

from ..adapters.common import resolve_reactor
from ..adapters.datagram import DatagramController, OnPeerError
from ..adapters.recverr import ErrorQueuePort
from ..sansio.counters import Counters
from .adoption import probe_descriptor

__all__ = [
    "connect_datagram",
    "datagram_rpc_multiplex_controller",
    "listen_datagram",
]

_FAMILIES: Final = (socket.AF_INET, socket.AF_INET6)
"""The address families of the datagram sockets a controller adopts."""


def _bind(
    reactor: IReactorTime, controller: DatagramController, port: int, interface: str
) -> None:
    size = controller.receive_buffer_size
    if IReactorFDSet.providedBy(reactor):
        udp_port = ErrorQueuePort(port, controller, interface, size, reactor)
        udp_port.startListening()
    else:
        cast(IReactorUDP, reactor).listenUDP(
            port, controller, interface=interface, maxPacketSize=size
        )


def listen_datagram(
    port: int = 0,
    interface: str = "127.0.0.1",
    reactor: IReactorTime | None = None,
    *,
    on_peer_error: OnPeerError | None = None,
    counters_parent: Counters | None = None,
    **limits: Any,
) -> DatagramController:
    """
    Bind a new UDP socket and return its controller (a server socket: it has
    no fixed peer).

    An error about one destination never fails the socket's read nor ends
    it: an ICMP error about an earlier reply is counted in the controller's
    C{counters} (C{udp.ECONNREFUSED}, ...), logged and offered to
    C{on_peer_error}; a reply the socket refuses to send (port 0, an
    unreachable network) fails its own write with
    L{rpctransport.sansio.errors.SendFailed}.

    @param port: the UDP port to bind (0: any free port; the controller's
        C{getsockname()} tells which).
    @param interface: the local IP address to bind: an IPv4 address
        (C{"0.0.0.0"} for all) or an IPv6 one (C{"::"} for all, which on most
        systems takes IPv4 too, as C{::ffff:a.b.c.d}).
    @param reactor: the reactor for the controller's timers, which must
        also provide C{IReactorFDSet} or C{IReactorUDP} (the global one by
        default).
    @param on_peer_error: called as C{on_peer_error(error, address)} for
        each error the socket reports about an earlier datagram, with the
        address it was sent to (L{None} when unknown).
    @param counters_parent: counters that also count what the controller
        counts (a server's totals).
    @param limits: limits and options for L{DatagramController}
        (C{max_record_size}, C{max_queued_datagrams}, C{max_queued_bytes}).
    @raise CannotListenError: the address cannot be bound.
    """
    reactor = resolve_reactor(reactor)
    controller = DatagramController(
        reactor, on_peer_error=on_peer_error, counters_parent=counters_parent, **limits
    )
    _bind(reactor, controller, port, interface)
    return controller


def connect_datagram(
    host: str,
    port: int,
    reactor: IReactorTime | None = None,
    *,
    interface: str | None = None,
    **limits: Any,
) -> DatagramController:
    """
    A UDP client socket that talks to one server: writes with C{IMPLIED} go
    to C{(host, port)}, and datagrams from any other address are ignored
    (and counted as C{from_strangers}).

    The socket is not kernel-connected (see
    L{rpctransport.adapters.datagram}): it is bound to an ephemeral port and
    filters senders itself.

    @param host: the server's IP address, IPv4 or IPv6 (resolve names
        first, with C{reactor.resolve} or C{getaddrinfo}).
    @param port: the server's UDP port.
    @param reactor: as for L{listen_datagram}.
    @param interface: the local address to bind (by default all addresses
        of C{host}'s family).
    @param limits: limits and options for L{DatagramController}
        (C{on_peer_error} and C{counters_parent} too: an ICMP error from the
        server fails the pending read and is also counted and offered to
        C{on_peer_error}).
    @raise InvalidAddressError: C{host} is not an IP address.
    @raise CannotListenError: the local address cannot be bound.
    """
    if isIPv6Address(host):
        default_interface = "::"
    elif isIPAddress(host):
        default_interface = "0.0.0.0"
    else:
        raise InvalidAddressError(
            host, "connect_datagram needs an IP address, not a host name: resolve it first"
        )
    reactor = resolve_reactor(reactor)
    controller = DatagramController(reactor, peer=(host, port), **limits)
    _bind(reactor, controller, 0, interface if interface is not None else default_interface)
    return controller


def datagram_rpc_multiplex_controller(
    fd: int,
    reactor: IReactorTime | None = None,
    *,
    close_inactive_descr: bool = True,
    preclose: Callable[[], object] | None = None,
    **limits: Any,
) -> DatagramController:
    """
    Adopt a bound UDP socket (IPv4 or IPv6) as a controller.

    Twisted works on a duplicate of C{fd}. The socket is made non-blocking
    and, on Linux, its error queue turned on (both are shared with C{fd}).
    When C{fd} is connected, its peer becomes the controller's fixed peer
    (the client form). With C{close_inactive_descr} (the default) the
    controller owns the socket: C{inactivate()} calls C{preclose()} and
    closes it and C{fd}. Without it, C{inactivate()} puts the socket's
    options back as they were and lets go of the duplicate only: C{fd} stays
    fully usable by its owner.

    @param fd: a bound C{SOCK_DGRAM} socket descriptor.
    @param reactor: the reactor for the controller's timers, which must
        also provide C{IReactorSocket} (the global one by default).
    @param close_inactive_descr: whether C{inactivate()} closes the socket.
    @param preclose: called just before C{inactivate()} closes it.
    @param limits: limits and options for L{DatagramController}
        (C{on_peer_error} and C{counters_parent} too).
    @raise ValueError: C{fd} is not a datagram socket of the INET or INET6
        family.
    """
    reactor = resolve_reactor(reactor)
    found = probe_descriptor(fd, socket.SOCK_DGRAM, _FAMILIES)
    owned = found.ownership(close_inactive_descr, preclose)
    controller = DatagramController(reactor, peer=found.peer, **owned, **limits)
    size = controller.receive_buffer_size
    family = found.family
    if IReactorFDSet.providedBy(reactor):
        udp_port = ErrorQueuePort.from_descriptor(reactor, fd, family, controller, size)
        udp_port.startListening()
    else:
        cast(IReactorSocket, reactor).adoptDatagramPort(fd, family, controller, size)
    return controller

