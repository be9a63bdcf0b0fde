# -*- test-case-name: rpctransport.test.test_stream_sockets,rpctransport.test.test_datagram_sockets -*-
"""
Layer 4: the checks made on a socket descriptor before it is adopted as a
controller (L{rpctransport.entry.stream.stream_rpc_multiplex_controller},
L{rpctransport.entry.datagram.datagram_rpc_multiplex_controller}).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

__all__ = ["Adoptable", "probe_descriptor"]

_KIND_NAMES = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "datagram"}
_FAMILY_NAMES = {socket.AF_INET: "INET", socket.AF_INET6: "INET6", socket.AF_UNIX: "UNIX"}


class Adoptable(NamedTuple):
    """
    A descriptor that passed L{probe_descriptor}.

    @ivar fd: the descriptor.
    @ivar family: its address family.
    @ivar peer: its peer's C{(host, port)} when it is an INET or INET6
        socket with a peer (a connected one), else L{None}.
    """

    fd: int
    family: socket.AddressFamily
    peer: tuple[str, int] | None

    def ownership(
        self, close_inactive_descr: bool, preclose: Callable[[], object] | None
    ) -> dict[str, Any]:
        """
        The options that tell a controller it was adopted from this
        descriptor, and what its C{inactivate()} does with it.
        """
        return {
            "adopted_fd": self.fd,
            "close_inactive_descr": close_inactive_descr,
            "preclose": preclose,
        }


def probe_descriptor(
    fd: int, kind: socket.SocketKind, families: Collection[socket.AddressFamily]
) -> Adoptable:
    """
    Check that C{fd} is a socket of type C{kind} and of one of C{families},
    without taking it over (the descriptor stays open and its owner's).

    @raise ValueError: it is not.
    @raise OSError: C{fd} is not an open socket descriptor.
    """
    probe = socket.socket(fileno=fd)
    try:
        family, found = probe.family, probe.type
        peer: tuple[str, int] | None = None
        if family in (socket.AF_INET, socket.AF_INET6):
            try:
                peer = tuple(probe.getpeername()[:2])
            except OSError:
                pass
    finally:
        probe.detach()
    if found != kind:
        name = _KIND_NAMES.get(kind, repr(kind))
        raise ValueError(f"descriptor {fd} is not a {name} socket (type {found!r})")
    if family not in families:
        names = [_FAMILY_NAMES.get(f, repr(f)) for f in families]
        wanted = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise ValueError(f"descriptor {fd} has address family {family!r}, not {wanted}")
    return Adoptable(fd, family, peer)
