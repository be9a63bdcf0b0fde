# -*- test-case-name: rpctransport.test.test_cli -*-
"""
Addresses as the program's users write and read them: C{HOST:PORT} on the
command line and in the twistd options, and the text of the C{listening}
lines.
"""

from __future__ import annotations

import argparse
import socket
from dataclasses import dataclass
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

__all__ = [
    "NO_REACTOR",
    "CallAddress",
    "describe_address",
    "host_port",
    "is_ipv6",
    "parse_call_address",
    "socket_text",
]


class _NoReactor:
    """
    What endpoint strings are parsed with to check them: Twisted's endpoint
    parsers keep their reactor for later and do not use it while parsing.
    """


NO_REACTOR: Any = _NoReactor()


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


_CALL_FORMS = "tcp:HOST:PORT, tls:HOST:PORT, udp:HOST:PORT, unix:PATH or a client endpoint string"


@dataclass(frozen=True)
class CallAddress:
    """
    Where C{rpctransport call} calls: a short form (C{tcp:HOST:PORT},
    C{tls:HOST:PORT}, C{udp:HOST:PORT}, C{unix:PATH}) or a Twisted client
    endpoint string (C{kind} C{"endpoint"}).

    @ivar host: the host of a short form; the TLS server name by default.
    """

    kind: str
    text: str
    host: str | None = None
    port: int | None = None
    path: str | None = None

    @property
    def stream(self) -> bool:
        """
        Whether it is a stream (not UDP).
        """
        return self.kind != "udp"


def parse_call_address(text: str) -> CallAddress:
    """
    Read C{call}'s ADDRESS: one of the short forms, else a Twisted client
    endpoint string (checked by parsing it; nothing connects yet).

    @raise argparse.ArgumentTypeError: naming the forms, when it is none.
    """
    kind, sep, rest = text.partition(":")
    if sep and rest and kind in ("tcp", "tls", "udp"):
        try:
            host, port = host_port(rest)
        except argparse.ArgumentTypeError:
            pass
        else:
            return CallAddress(kind, text, host=host, port=port)
        if kind == "udp":
            raise argparse.ArgumentTypeError(f"ADDRESS {text!r}: UDP addresses are udp:HOST:PORT")
        if kind == "tls":
            # Twisted's own tls: client strings carry their own TLS options,
            # without ours (--tls-ca, --tls-cert, --server-name).
            raise argparse.ArgumentTypeError(
                f"ADDRESS {text!r}: TLS addresses are tls:HOST:PORT (with --tls-ca, --tls-cert)"
            )
    if sep and rest and kind == "unix" and "=" not in rest:
        return CallAddress("unix", text, path=rest)
    from twisted.internet.endpoints import clientFromString

    try:
        clientFromString(NO_REACTOR, text)
    except Exception as e:
        reason = str(e) or type(e).__name__
        raise argparse.ArgumentTypeError(f"ADDRESS {text!r} is not {_CALL_FORMS} ({reason})")
    return CallAddress("endpoint", text)
