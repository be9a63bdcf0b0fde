# -*- test-case-name: rpctransport.test.test_cli -*-
"""
Addresses as the program's users write and read them: C{HOST:PORT} on the
command line and in the twistd options, and the text of the C{listening}
lines.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

__all__ = ["describe_address", "host_port", "is_ipv6", "socket_text"]


def host_port(text: str) -> tuple[str, int]:
    """
    Split C{HOST:PORT} (C{[::1]:PORT} for IPv6).

    @raise argparse.ArgumentTypeError: when it is not of that form.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_ipv6(host: str) -> bool:
    """
    Whether C{host} (as L{host_port} gives it) is an IPv6 address.
    """
    return ":" in host


def describe_address(address: Any) -> tuple[str, str]:
    """
    C{(kind, text)} for a listener's address: C{("tcp", "127.0.0.1:111")},
    C{("udp", "[::1]:111")}, C{("unix", "/run/x.sock")}.
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        kind = "udp" if address.type == "UDP" else "tcp"
        host = f"[{address.host}]" if isinstance(address, IPv6Address) else address.host
        return kind, f"{host}:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        return "unix", name.decode() if isinstance(name, bytes) else str(name)
    return "stream", str(address)


def socket_text(sock: socket.socket) -> str:
    """
    The C{HOST:PORT} text of a bound socket (C{[::1]:PORT} for IPv6).
    """
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"
