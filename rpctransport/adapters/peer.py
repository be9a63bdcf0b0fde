# -*- test-case-name: rpctransport.test.test_stream_sockets -*-
"""
Who is at the other end of a stream socket, as the kernel says: the socket
under a (possibly TLS-wrapped) Twisted transport, and the peer process's
credentials on a UNIX socket.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

__all__ = ["socket_under", "unix_peer_credentials", "user_name_of"]


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
