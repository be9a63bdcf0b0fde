# -*- test-case-name: rpctransport.test.test_datagram,rpctransport.test.test_datagram_sockets -*-
"""
Layer 3: the UDP port of the datagram controller, which reads the socket's
error queue (Linux C{IP_RECVERR}/C{IPV6_RECVERR}).

A UDP socket with no peer hears nothing of the errors its datagrams meet
(an ICMP port unreachable, a host unreachable) unless it asks: on Linux,
L{ErrorQueuePort} turns the error queue on and hands each error to its
protocol's C{errorReceived(error, address, errno)}, instead of going silent
or making the reactor close the socket. It also reads with its own loop,
bounded in datagrams as well as bytes, and tells its protocol
(C{portFailed}) why it closes when the socket is broken under it.

Twisted's private hooks (bind, then configure, then read; a close that
happens once) come from L{rpctransport.adapters._twisted.HookedUDPPort}.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import sys
from collections.abc import Iterator
from typing import Any, Final, cast

from twisted.internet.error import (
    ConnectError,
    ConnectionLost,
    ConnectionRefusedError,
    NoRouteError,
)
from twisted.internet.interfaces import IHalfCloseableDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._twisted import HookedUDPPort, udp_port_from_descriptor

__all__ = [
    "DATAGRAMS_PER_WAKEUP",
    "ERRORS_PER_WAKEUP",
    "ErrorQueuePort",
    "SockAddr",
    "show_address",
]

DATAGRAMS_PER_WAKEUP: Final = 256
"""
The most datagrams read from the socket in one reactor wake-up (besides
Twisted's bound of 256 KiB). Empty datagrams weigh nothing in bytes; without
a count a flood of them would hold the reactor until the socket ran dry.
"""

ERRORS_PER_WAKEUP: Final = 64
"""
The most entries read from the socket's error queue in one go; the kernel
bounds the queue by the socket's receive buffer, and what is left is read at
the next wake-up.
"""

# Linux's values (<linux/in.h>, <linux/in6.h>, <linux/errqueue.h>); Python's
# socket module does not export them all.
_IP_RECVERR: Final = 11
_IPV6_RECVERR: Final = 25
_SOL_IP: Final = 0
_SOL_IPV6: Final = 41
_MSG_ERRQUEUE: Final = 0x2000
_SO_EE_ORIGIN_LOCAL: Final = 1
_SO_EE_ORIGIN_ICMP: Final = 2
_SO_EE_ORIGIN_ICMP6: Final = 3
_SOCK_EXTENDED_ERR: Final = struct.Struct("=IBBBBII")
_ERROR_LEVELS: Final = frozenset({(_SOL_IP, _IP_RECVERR), (_SOL_IPV6, _IPV6_RECVERR)})
_ORIGINS: Final = frozenset({_SO_EE_ORIGIN_LOCAL, _SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6})
_ANCILLARY_SIZE: Final = 512
"""
Room for the control messages of one error queue entry: a 16-byte
C{sock_extended_err} and the offender's address of up to 28 bytes, with
their headers, fit several times over.
"""

_HAS_ERROR_QUEUE: Final = sys.platform.startswith("linux")

_ASYNC_ERRNOS: Final = frozenset(
    {
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EMSGSIZE,
        errno.EPROTO,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
    }
)
"""
Errors a UDP socket reports about an I{earlier} datagram (ICMP errors, and
path MTU changes): they do not mean the socket is broken.
"""

_ICMP_NAMES: Final = {
    (_SO_EE_ORIGIN_ICMP, 3, 0): "ICMP network unreachable",
    (_SO_EE_ORIGIN_ICMP, 3, 1): "ICMP host unreachable",
    (_SO_EE_ORIGIN_ICMP, 3, 3): "ICMP port unreachable",
    (_SO_EE_ORIGIN_ICMP, 3, 4): "ICMP fragmentation needed",
    (_SO_EE_ORIGIN_ICMP, 3, 13): "ICMP administratively prohibited",
    (_SO_EE_ORIGIN_ICMP6, 1, 0): "ICMPv6 no route to destination",
    (_SO_EE_ORIGIN_ICMP6, 1, 1): "ICMPv6 administratively prohibited",
    (_SO_EE_ORIGIN_ICMP6, 1, 3): "ICMPv6 address unreachable",
    (_SO_EE_ORIGIN_ICMP6, 1, 4): "ICMPv6 port unreachable",
}

SockAddr = tuple[Any, ...]
"""A socket address as Python's C{socket} module gives it: C{(host, port, ...)}."""


def show_address(addr: SockAddr | None) -> str:
    """
    C{host:port}, with IPv6 hosts in brackets.
    """
    if addr is None:
        return "an unknown address"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _async_error(
    number: int, addr: SockAddr | None, origin: int = 0, kind: int = -1, code: int = -1
) -> Exception:
    """
    The exception for an error the socket reported about a datagram sent to
    C{addr}: Twisted's C{ConnectionRefusedError} for a refusal, its
    C{NoRouteError} for an unreachable host or network, its C{ConnectError}
    otherwise.
    """
    what = _ICMP_NAMES.get((origin, kind, code))
    if what is None:
        if origin in (_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6):
            what = f"ICMP type {kind} code {code}"
        else:
            what = os.strerror(number)
    detail = f"the datagram sent to {show_address(addr)} failed: {what}"
    if number == errno.ECONNREFUSED:
        return ConnectionRefusedError(string=detail)
    if number in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return NoRouteError(string=detail)
    return ConnectError(string=detail)


def _queued_errors(
    ancdata: list[tuple[int, int, bytes]], addr: Any
) -> Iterator[tuple[Exception, SockAddr | None, int]]:
    """
    The errors one error queue entry reports, each as C{(exception,
    destination, errno)}; control messages of other kinds, and errors of
    origins this port does not report, are passed over.
    """
    for level, kind, blob in ancdata:
        if (level, kind) not in _ERROR_LEVELS or len(blob) < _SOCK_EXTENDED_ERR.size:
            continue
        number, origin, icmp_type, icmp_code = _SOCK_EXTENDED_ERR.unpack_from(blob)[:4]
        if number == 0 or origin not in _ORIGINS:
            continue
        dest = tuple(addr[:2]) if addr else None
        yield _async_error(number, dest, origin, icmp_type, icmp_code), dest, number


@implementer(IHalfCloseableDescriptor)
class ErrorQueuePort(HookedUDPPort):
    """
    A UDP port that reads the socket's error queue, so that errors about
    datagrams sent earlier reach the protocol instead of being lost (or
    making the reactor close the port: an epoll reactor treats C{EPOLLERR}
    without C{EPOLLIN} as the end of the descriptor, and hands it to
    L{readConnectionLost} because this class is half-closeable).

    It reads with its own loop, bounded in datagrams as well as bytes, and
    does not swallow C{ECONNREFUSED} from C{sendto} as Twisted's port does on
    an unconnected socket.

    Its protocol has, besides C{datagramReceived}, C{errorReceived(error,
    address, errno)} for an error about an earlier datagram, and may have
    C{portFailed(reason)}, told why the port closes under it.
    """

    log = Logger()
    _recverr = False
    _reading = False
    _saved_options: list[tuple[int, int, int]]
    _saved_blocking: bool | None = None

    @classmethod
    def from_descriptor(
        cls, reactor: Any, fd: int, family: int, protocol: Any, max_packet_size: int
    ) -> ErrorQueuePort:
        """
        A port on the already bound UDP socket C{fd} (which Twisted
        duplicates), not yet listening: call C{startListening}.
        """
        port = udp_port_from_descriptor(cls, reactor, fd, family, protocol, max_packet_size)
        return cast(ErrorQueuePort, port)

    def socket_bound(self) -> None:
        """
        Make the socket non-blocking and turn its error queue on, before the
        first read.
        """
        sock: socket.socket = self.socket
        self._saved_options = []
        if os.get_blocking(sock.fileno()):
            # An adopted descriptor may be blocking (the flag is the open
            # file's, shared with the owner's descriptor); a blocking
            # recvfrom in doRead would stall the reactor.
            self._saved_blocking = True
            sock.setblocking(False)
        if not _HAS_ERROR_QUEUE:
            return
        options = [(_SOL_IP, _IP_RECVERR)]
        if self.addressFamily == socket.AF_INET6:
            # IPv4-mapped destinations report through the IPv4 option.
            options.insert(0, (_SOL_IPV6, _IPV6_RECVERR))
        for level, name in options:
            try:
                old = sock.getsockopt(level, name)
                sock.setsockopt(level, name, 1)
            except OSError:
                continue
            self._saved_options.append((level, name, old))
            self._recverr = True

    def restore_socket(self) -> None:
        """
        Put back the socket options this port changed, for a descriptor that
        goes back to its owner.
        """
        sock = getattr(self, "socket", None)
        if sock is None:
            return
        for level, name, old in getattr(self, "_saved_options", ()):
            try:
                sock.setsockopt(level, name, old)
            except OSError:
                pass
        self._saved_options = []
        self._recverr = False
        if self._saved_blocking:
            try:
                os.set_blocking(sock.fileno(), True)
            except OSError:
                pass
            self._saved_blocking = None

    def startReading(self) -> None:
        """
        Watch the socket for datagrams.
        """
        self._reading = True
        super().startReading()

    def stopReading(self) -> None:
        """
        Stop watching the socket.
        """
        self._reading = False
        super().stopReading()

    def doRead(self) -> None:
        """
        Read the datagrams that are there, at most L{DATAGRAMS_PER_WAKEUP} and
        Twisted's C{maxThroughput} bytes, and hand each to the protocol.
        """
        sock: socket.socket = self.socket
        size = self.maxPacketSize
        budget = self.maxThroughput
        inet6 = self.addressFamily == socket.AF_INET6
        protocol: Any = self.protocol
        count = 0
        while self._reading and count < DATAGRAMS_PER_WAKEUP and budget > 0:
            try:
                data, addr = sock.recvfrom(size)
            except BlockingIOError:
                if count == 0:
                    self._woken_without_data()
                return
            except OSError as e:
                count += 1
                if e.errno in _ASYNC_ERRNOS:
                    # An error about an earlier datagram, surfacing instead of
                    # a datagram: its details are on the error queue.
                    if not self._collect_errors():
                        protocol.errorReceived(_async_error(e.errno, None), None, e.errno)
                    continue
                self._fail(ConnectionLost(f"reading from the UDP socket failed: {e}"))
                return
            count += 1
            budget -= len(data)
            if inet6:
                addr = addr[:2]
            try:
                protocol.datagramReceived(data, addr)
            except Exception:
                self.log.failure("datagramReceived raised")

    def write(self, datagram: bytes, addr: Any = None) -> None:
        """
        Send one datagram to C{addr}.

        Linux reports a pending error about an earlier datagram (to any
        destination) from the next C{sendto}, instead of sending. Such an
        error is handed to the protocol, with its details from the error
        queue when they are there, and the datagram is sent again; only
        when the second C{sendto} fails too is the error this datagram's.

        @raise OSError: the socket refused this datagram (C{EINVAL} for
            port 0, C{ENETUNREACH}, C{EACCES}, C{EAGAIN}, C{ENOBUFS}, ...).
        """
        sock: socket.socket = self.socket
        try:
            sock.sendto(datagram, addr)
        except OSError as e:
            if e.errno not in _ASYNC_ERRNOS:
                raise
            collected = self._collect_errors()
            sock.sendto(datagram, addr)
            if not collected:
                # The send went through: the first error was about an
                # earlier datagram, whose address the socket did not keep.
                protocol: Any = self.protocol
                protocol.errorReceived(_async_error(e.errno, None), None, e.errno)

    def readConnectionLost(self, reason: Failure) -> None:
        """
        The reactor saw an error or hang-up condition with nothing to read
        and stopped watching the socket: read the errors and watch again, or,
        when the socket was shut down under us, close the port.
        """
        wanted = self._reading
        self._reading = False
        if self._collect_errors() or not self._hung_up():
            if wanted and not self.disconnected and getattr(self, "socket", None) is not None:
                self.startReading()
            return
        self._fail(ConnectionLost("the UDP socket was shut down under its controller"))

    def _woken_without_data(self) -> None:
        """
        Readable but nothing to read: an error is pending (select and poll
        report those as readable), or the socket was shut down.
        """
        if self._collect_errors():
            return
        if self._hung_up():
            self._fail(ConnectionLost("the UDP socket was shut down under its controller"))

    def _collect_errors(self) -> int:
        """
        Read the error queue (and the socket's pending error) and hand each
        error to the protocol.

        @return: how many errors were handed on.
        """
        sock: socket.socket | None = getattr(self, "socket", None)
        if sock is None:
            return 0
        protocol: Any = self.protocol
        count = self._read_error_queue(sock, protocol) if self._recverr else 0
        try:
            pending = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            pending = 0
        if pending and not count:
            count += 1
            protocol.errorReceived(_async_error(pending, None), None, pending)
        return count

    def _read_error_queue(self, sock: socket.socket, protocol: Any) -> int:
        """
        Hand the errors on the error queue to the protocol, at most
        L{ERRORS_PER_WAKEUP} entries.

        @return: how many errors were handed on.
        """
        count = 0
        for _ in range(ERRORS_PER_WAKEUP):
            try:
                _, ancdata, _, addr = sock.recvmsg(0, _ANCILLARY_SIZE, _MSG_ERRQUEUE)
            except OSError:
                break
            for error, dest, number in _queued_errors(ancdata, addr):
                count += 1
                protocol.errorReceived(error, dest, number)
        return count

    def _hung_up(self) -> bool:
        sock: socket.socket | None = getattr(self, "socket", None)
        if sock is None or not hasattr(select, "poll"):
            return False
        poller = select.poll()
        try:
            poller.register(sock.fileno(), select.POLLIN)
            events = poller.poll(0)
        except (OSError, ValueError):
            return True
        return any(flags & (select.POLLHUP | select.POLLNVAL) for _, flags in events)

    def _fail(self, reason: Exception) -> None:
        """
        The socket is broken: tell the protocol why, then close the port
        (on the next reactor turn, as C{stopListening} does).
        """
        failed = getattr(self.protocol, "portFailed", None)
        if failed is not None:
            failed(Failure(reason))
        if self.connected:
            self.lose_connection()
