# -*- test-case-name: rpctransport.test.test_datagram -*-
"""
Layer 3: the datagram multiplex controller, a Twisted C{DatagramProtocol}.

One L{DatagramController} owns one UDP socket (IPv4 or IPv6). One datagram is
one record: there is no record marking, so the controller needs no codec;
the rule a C{before_record} hook answers decides, per datagram, what a read
delivers.

Two forms share the class. A I{server} socket has no fixed peer: every read
reports who sent the datagram, and every write names where it goes. A
I{client} socket talks to one server address: writes with C{IMPLIED} go to
it, and datagrams from any other address are ignored and counted. The client
form does not use kernel-connected UDP (C{transport.connect()}): Twisted's
epoll reactor closes such a port on an ICMP error without telling its
protocol (twisted/twisted#5377). It filters senders in Python instead.

Errors the network reports on a socket with no peer are invisible unless the
socket asks for them: on Linux the controller's port turns on
C{IP_RECVERR}/C{IPV6_RECVERR} and reads the socket's error queue, instead of
going silent or making the reactor close the socket. Such an error concerns
one destination, so where it goes depends on the form (see
L{DatagramController.errorReceived}): on a server socket it is counted,
logged and offered to C{on_peer_error}, and never fails the read that the
other peers are waited on with; on a client socket, whose one destination is
its server, it also fails the pending read with
C{twisted.internet.error.ConnectionRefusedError} naming the address. A
C{sendto} refused for one destination (port 0, an unreachable network)
fails that write alone, with L{SendFailed}.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from twisted.internet import udp
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import (
    ConnectError,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    InvalidAddressError,
    MessageLengthError,
    NoRouteError,
)
from twisted.internet.interfaces import IAddress, IHalfCloseableDescriptor, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import BeforeRecord, IRpcMultiplexController, Message
from ..sansio.counters import REFUSED_LIMIT, REFUSED_RULE, Counters, udp_error_key
from ..sansio.errors import (
    AddressMismatch,
    AddressRequired,
    ControllerInactive,
    DatagramTooLarge,
    NotConnected,
    SendFailed,
)
from ..sansio.types import (
    ACCEPT,
    DENY,
    DROP,
    IMPLIED,
    REJECT,
    Accepted,
    Denied,
    Dropped,
    Implied,
    InRecord,
    InRule,
    Rejected,
    RejectedWith,
    RejectWith,
    RpcProtocol,
)
from ._common import (
    Life,
    LogThrottle,
    ReadSlot,
    Side,
    check_usable,
    descriptor_of,
    resolve_reactor,
)
from ._timer import InactivityTimer

__all__ = [
    "DATAGRAMS_PER_WAKEUP",
    "DEFAULT_DATAGRAM_MAX_RECORD_SIZE",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_QUEUED_DATAGRAMS",
    "MAX_UDP_PAYLOAD_IPV4",
    "MAX_UDP_PAYLOAD_IPV6",
    "PEER_ERROR_LOG_INTERVAL",
    "STAT_KEYS",
    "DatagramController",
    "OnPeerError",
]

MAX_UDP_PAYLOAD_IPV4: Final = 65507
"""
The largest UDP payload IPv4 can carry: an IP packet is at most 65535 bytes,
less 20 bytes of IP header and 8 of UDP header.
"""

MAX_UDP_PAYLOAD_IPV6: Final = 65527
"""
The largest UDP payload IPv6 carries without jumbograms: the 65535 bytes of
the IPv6 payload length, less 8 bytes of UDP header (the 40-byte IPv6 header
is not counted in it).
"""

DEFAULT_DATAGRAM_MAX_RECORD_SIZE: Final = 65535
"""
The default C{max_record_size} of a datagram controller: the most a UDP
length field can describe, so that every datagram IP can carry is accepted.
The controller reads with a buffer one byte larger than its
C{max_record_size}: a datagram that fills the buffer was truncated by the
kernel, and one larger than C{max_record_size} is never delivered as a
shorter message.
"""

DEFAULT_MAX_QUEUED_DATAGRAMS: Final = 1024
"""
Datagrams kept for the next read while no read is pending; past this (or
L{DEFAULT_MAX_QUEUED_BYTES}) further datagrams are dropped and counted as
C{queue_overflow}. Four reactor wake-ups' worth of L{DATAGRAMS_PER_WAKEUP}:
a reader that comes back within a few reactor turns loses nothing, and a
flood of small datagrams costs at most this many queue entries.
"""

DEFAULT_MAX_QUEUED_BYTES: Final = 1024 * 1024
"""
Bytes of datagrams kept for the next read while no read is pending: four
of Twisted's 256 KiB reads per wake-up, or sixteen datagrams of the largest
size. UDP has no flow control to push back with; past this the controller
drops, as the kernel would with a full socket buffer, but counts what it
dropped.
"""

DATAGRAMS_PER_WAKEUP: Final = 256
"""
The most datagrams read from the socket in one reactor wake-up (besides
Twisted's bound of 256 KiB). Empty datagrams weigh nothing in bytes; without
a count a flood of them would hold the reactor until the socket ran dry.
"""

PEER_ERROR_LOG_INTERVAL: Final = 60.0
"""
Seconds between two info-level log lines about one kind of per-destination
error (C{ECONNREFUSED}, C{EHOSTUNREACH}, ...) on one socket. A server that
answers many clients which left before their reply, or a forger's stream of
calls from addresses that cannot answer, meets one such error per reply: it
logs the first at info level, the others at debug level, and the next info
line, a minute or more later, says how many there were meanwhile. Every
error is counted (L{DatagramController.counters}) either way.
"""

OnPeerError = Callable[[Exception, "IPv4Address | IPv6Address | None"], object]
"""
The type of C{on_peer_error}: called with the error about an earlier
datagram and the address it was sent to (a Twisted C{IPv4Address} or
C{IPv6Address} of type C{"UDP"}), or L{None} when the socket did not say.
"""

_ERRORS_PER_WAKEUP: Final = 64
"""
The most entries read from the socket's error queue in one go; the kernel
bounds the queue by the socket's receive buffer, and what is left is read at
the next wake-up.
"""

STAT_KEYS: Final = (
    "datagrams_in",
    "datagrams_out",
    "bytes_in",
    "bytes_out",
    "accepted",
    "rejected",
    "denied",
    "dropped",
    "too_large",
    "queue_overflow",
    "from_strangers",
    "errors",
)
"""
The keys of L{DatagramController.stats}.
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

_SOCKET_ERRNOS: Final = frozenset({errno.EBADF, errno.ENOTSOCK})
"""
Errors of C{sendto} that say the socket itself is unusable, whatever the
destination: they fail the write with the C{OSError}. Every other refusal
concerns that one datagram (its destination, or a full buffer that UDP may
drop as it may drop anything) and fails it with L{SendFailed}.
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

_SockAddr = tuple[Any, ...]


def _show(addr: _SockAddr | None) -> str:
    """
    C{host:port}, with IPv6 hosts in brackets.
    """
    if addr is None:
        return "an unknown address"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _error_kind(error: Exception, number: int | None) -> str:
    """
    The C{errno} name an error about one destination is counted under.

    @param number: the C{errno} the socket gave, when it gave one.
    """
    if number is None:
        number = getattr(error, "errno", None)
    if number is None:
        if isinstance(error, ConnectionRefusedError):
            number = errno.ECONNREFUSED
        elif isinstance(error, NoRouteError):
            number = errno.EHOSTUNREACH
        else:
            return "unknown"
    return errno.errorcode.get(number, f"errno{number}")


def _async_error(
    number: int, addr: _SockAddr | None, origin: int = 0, kind: int = -1, code: int = -1
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
    detail = f"the datagram sent to {_show(addr)} failed: {what}"
    if number == errno.ECONNREFUSED:
        return ConnectionRefusedError(string=detail)
    if number in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return NoRouteError(string=detail)
    return ConnectError(string=detail)


@implementer(IHalfCloseableDescriptor)
class _DatagramPort(udp.Port):
    """
    A UDP port that reads the socket's error queue, so that errors about
    datagrams sent earlier reach the controller instead of being lost (or
    making the reactor close the port: an epoll reactor treats C{EPOLLERR}
    without C{EPOLLIN} as the end of the descriptor, and hands it to
    L{readConnectionLost} because this class is half-closeable).

    It reads with its own loop, bounded in datagrams as well as bytes, and
    does not swallow C{ECONNREFUSED} from C{sendto} as Twisted's port does on
    an unconnected socket.
    """

    log = Logger()
    _recverr = False
    _reading = False
    _saved_options: list[tuple[int, int, int]]
    _saved_blocking: bool | None = None
    _closing = False

    def startListening(self) -> None:
        """
        Bind (or take over the adopted socket), turn the error queue on, and
        start reading.
        """
        self._bindSocket()
        self._configure()
        self._connectToProtocol()

    def _configure(self) -> None:
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
        Read the error queue and hand each error to the protocol.

        @return: how many errors were handed on.
        """
        sock: socket.socket | None = getattr(self, "socket", None)
        if sock is None:
            return 0
        protocol: Any = self.protocol
        count = 0
        if self._recverr:
            for _ in range(_ERRORS_PER_WAKEUP):
                try:
                    _, ancdata, _, addr = sock.recvmsg(0, 512, _MSG_ERRQUEUE)
                except OSError:
                    break
                for level, kind, blob in ancdata:
                    if (level, kind) not in ((_SOL_IP, _IP_RECVERR), (_SOL_IPV6, _IPV6_RECVERR)):
                        continue
                    if len(blob) < _SOCK_EXTENDED_ERR.size:
                        continue
                    fields = _SOCK_EXTENDED_ERR.unpack_from(blob)
                    number, origin, icmp_type, icmp_code = fields[:4]
                    if number == 0 or origin not in (
                        _SO_EE_ORIGIN_LOCAL,
                        _SO_EE_ORIGIN_ICMP,
                        _SO_EE_ORIGIN_ICMP6,
                    ):
                        continue
                    dest = tuple(addr[:2]) if addr else None
                    count += 1
                    protocol.errorReceived(
                        _async_error(number, dest, origin, icmp_type, icmp_code), dest, number
                    )
        try:
            pending = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            pending = 0
        if pending and not count:
            count += 1
            protocol.errorReceived(_async_error(pending, None), None, pending)
        return count

    def _loseConnection(self) -> None:
        # Once only: a second scheduled connectionLost would find the socket
        # gone. The Deferred of the last stopListening fires when it runs.
        if self._closing:
            return
        self._closing = True
        super()._loseConnection()

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
            self._loseConnection()


@implementer(IRpcMultiplexController)
class DatagramController(ReadSlot, DatagramProtocol):
    """
    The multiplex controller for UDP sockets, IPv4 and IPv6.

    Build it through L{rpctransport.listen_datagram} (a server socket),
    L{rpctransport.connect_datagram} (a client socket with one server) or
    L{rpctransport.datagram_rpc_multiplex_controller} (an adopted socket); or
    use it as the protocol of any Twisted UDP port (bind it with
    C{maxPacketSize=controller.receive_buffer_size}).

    Reading: one datagram is one record. C{before_record(size, sender)} is
    called once per datagram, with the sender as a Twisted
    C{IPv4Address("UDP", ...)} or C{IPv6Address("UDP", ...)}. Datagrams of
    any size or content, even empty ones, are offered to the rule like any
    other record. A datagram larger than L{max_record_size} is never
    delivered, not even shortened: it is dropped before the rule is asked,
    counted as C{too_large} and logged at debug level; a UDP socket serves
    many peers, and one peer's oversized datagram must not fail the read the
    others are waited on with. A read never delivers C{END_OF_FILE}.

    Datagrams that arrive while no read is pending are queued, up to
    L{max_queued_datagrams} and L{max_queued_bytes}; past that they are
    dropped and counted as C{queue_overflow}. C{cancel_rd_polling} keeps
    the queue.

    Writing: a write completes at once (UDP has no backpressure). C{IMPLIED}
    needs a fixed peer (the client form); otherwise the write raises
    L{AddressRequired}. A message larger than L{max_datagram_size} raises
    L{DatagramTooLarge} and nothing is sent. A datagram the socket refuses
    (C{EINVAL} for port 0, C{ENETUNREACH}, C{EACCES}, C{EAGAIN},
    C{ENOBUFS}, ...) fails that write's Deferred with L{SendFailed}, which
    carries the address and the C{errno}; the socket, the pending read and
    the other peers are untouched.

    Errors about earlier datagrams (an ICMP port unreachable, seen through
    the error queue on Linux) come as Twisted's C{ConnectionRefusedError}
    (or C{NoRouteError}, C{ConnectError}) naming the address. Each is
    counted in L{counters} under C{udp_error_key(errno name)} and offered
    to C{on_peer_error}. On a server socket it is logged too (see
    L{PEER_ERROR_LOG_INTERVAL}), and that is all: one peer's error never
    fails the read the others are waited on with. On a client socket it
    fails the pending read (and is logged at debug level only); with no read
    pending, the first is kept and fails the next read or write (which then
    sends nothing). When the port is closed under the
    controller, pending and later operations fail with C{ConnectionLost}.

    C{stats} counts what happened (see L{STAT_KEYS}); L{counters} counts
    refusals and errors per reason.

    @ivar max_record_size: the largest datagram a read delivers, in bytes.
    @ivar max_queued_datagrams: see L{DEFAULT_MAX_QUEUED_DATAGRAMS}.
    @ivar max_queued_bytes: see L{DEFAULT_MAX_QUEUED_BYTES}.
    """

    log = Logger()
    noisy = False

    def __init__(
        self,
        reactor: IReactorTime | None = None,
        *,
        max_record_size: int = DEFAULT_DATAGRAM_MAX_RECORD_SIZE,
        max_queued_datagrams: int = DEFAULT_MAX_QUEUED_DATAGRAMS,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        peer: tuple[str, int] | IPv4Address | IPv6Address | None = None,
        close_inactive_descr: bool = True,
        preclose: Callable[[], object] | None = None,
        adopted_fd: int | None = None,
        on_peer_error: OnPeerError | None = None,
        counters_parent: Counters | None = None,
    ) -> None:
        """
        @param reactor: the reactor for timers (L{None}: the global one).
        @param max_record_size: the largest datagram a read delivers; also
            bounds what a write sends.
        @param max_queued_datagrams: datagrams kept while no read is pending.
        @param max_queued_bytes: bytes kept while no read is pending.
        @param peer: the one address this socket talks to (the client form):
            writes with C{IMPLIED} go there, and datagrams from elsewhere are
            ignored. L{None} (a server socket): no fixed peer.
        @param close_inactive_descr: whether L{inactivate} closes the socket.
        @param preclose: called just before L{inactivate} closes it.
        @param adopted_fd: the descriptor this controller was made from, when
            it was adopted; closed by L{inactivate} with
            C{close_inactive_descr}.
        @param on_peer_error: called as C{on_peer_error(error, address)} for
            every error the socket reports about an earlier datagram (see
            L{OnPeerError}); what it raises is logged, never propagated.
        @param counters_parent: counters that also count what this
            controller counts (a server's totals, across sockets).
        """
        if max_record_size < 0:
            raise ValueError(f"max_record_size must be >= 0, not {max_record_size}")
        if max_queued_datagrams < 0:
            raise ValueError(f"max_queued_datagrams must be >= 0, not {max_queued_datagrams}")
        if max_queued_bytes < 0:
            raise ValueError(f"max_queued_bytes must be >= 0, not {max_queued_bytes}")
        self._reactor = resolve_reactor(reactor)
        self.max_record_size = max_record_size
        self.max_queued_datagrams = max_queued_datagrams
        self.max_queued_bytes = max_queued_bytes
        self._close_inactive_descr = close_inactive_descr
        self._preclose = preclose
        self._adopted_fd = adopted_fd
        self._peer_key: _SockAddr | None = None
        self._peer: IPv4Address | IPv6Address | None = None
        if peer is not None:
            self._set_peer(peer)

        self._life = Life.STARTING
        self._lost_reason: Failure | None = None
        self._eof_seen = False
        self._inet6 = False
        self._port: Any = None
        self._closed = False
        self._close_waiters: list[Deferred[None]] = []

        # Reader.
        self._read_side = Side.IDLE
        self._init_read_slot()
        self._pumping = False
        self._queue: deque[tuple[bytes, _SockAddr]] = deque()
        self._queued_bytes = 0
        self._socket_error: Exception | None = None

        # Writer.
        self._write_side = Side.IDLE

        self._stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._counters = Counters(counters_parent)
        self._on_peer_error = on_peer_error
        # Per errno name: at most one info line a minute.
        self._error_log: dict[str, LogThrottle] = {}
        self._timer = InactivityTimer(self._reactor)

    def _set_peer(self, peer: tuple[str, int] | IPv4Address | IPv6Address) -> None:
        if isinstance(peer, (IPv4Address, IPv6Address)):
            host, port = peer.host, peer.port
        else:
            host, port = peer[0], peer[1]
        if isIPv6Address(host):
            if "%" not in host:
                # The kernel reports senders in canonical form; compare alike.
                host = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host))
            self._peer = IPv6Address("UDP", host, port)
        elif isIPAddress(host):
            host = socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, host))
            self._peer = IPv4Address("UDP", host, port)
        else:
            raise InvalidAddressError(
                host, "the peer of a datagram controller must be an IP address, not a host name"
            )
        self._peer_key = (host, port)

    # -- Properties of the contract ---------------------------------------

    @property
    def alive(self) -> bool:
        """
        Whether the socket is open and the controller not inactivated.
        """
        return self._life is Life.OPEN

    @property
    def protocol(self) -> RpcProtocol:
        """
        Always L{RpcProtocol.UDP}.
        """
        return RpcProtocol.UDP

    @property
    def tls_session_props(self) -> None:
        """
        L{None}: there is no TLS over UDP here.
        """
        return None

    @property
    def peer_user_name(self) -> None:
        """
        L{None}: UDP does not authenticate its peers.
        """
        return None

    @property
    def file_descr(self) -> int | None:
        """
        The socket's descriptor (the adopted one, for controllers made by
        L{rpctransport.datagram_rpc_multiplex_controller}), or L{None} once
        inactive or when the transport has none.
        """
        return descriptor_of(self._life, self.transport, self._adopted_fd)

    @property
    def writing(self) -> bool:
        """
        Always C{False}: a write completes as soon as it is handed to the
        socket.
        """
        return False

    @property
    def read_eof(self) -> bool:
        """
        Whether a shutdown completed (or the socket was lost).
        """
        return self._eof_seen

    @property
    def stats(self) -> dict[str, int]:
        """
        A snapshot of the counters, a plain C{dict} with the keys of
        L{STAT_KEYS}: C{datagrams_in}/C{bytes_in} (everything read from the
        socket), C{datagrams_out}/C{bytes_out} (sent), C{accepted},
        C{rejected}, C{denied}, C{dropped} (records delivered under each
        rule), C{too_large} (over L{max_record_size}, never delivered),
        C{queue_overflow} (dropped with the queue full), C{from_strangers}
        (ignored by the client form), C{errors} (socket errors, failed
        writes, failing hooks).
        """
        return dict(self._stats)

    @property
    def counters(self) -> Mapping[str, int]:
        """
        Refusals and errors counted per reason, a read-only mapping that
        follows them (the keys of L{rpctransport.sansio.counters}):
        C{refused.rule} (records a rule rejected, denied or dropped),
        C{refused.limit} (datagrams over L{max_record_size}),
        C{udp.<ERRNO>} (errors about earlier datagrams, per C{errno} name:
        C{udp.ECONNREFUSED} for an ICMP port unreachable) and
        C{udp.send.<ERRNO>} (writes failed with L{SendFailed}).
        """
        return self._counters.view

    @property
    def max_datagram_size(self) -> int:
        """
        The largest message a write sends: the largest UDP payload of the
        socket's address family, or L{max_record_size} when smaller.
        """
        payload = MAX_UDP_PAYLOAD_IPV6 if self._inet6 else MAX_UDP_PAYLOAD_IPV4
        return min(payload, self.max_record_size)

    @property
    def receive_buffer_size(self) -> int:
        """
        The buffer each datagram is read into: one byte more than the
        largest datagram delivered, so that a datagram the kernel truncated
        is seen as too large, never delivered shortened.
        """
        return min(self.max_record_size, DEFAULT_DATAGRAM_MAX_RECORD_SIZE) + 1

    def getsockname(self) -> IAddress | Implied:
        """
        The local address (a Twisted C{IPv4Address} or C{IPv6Address}).
        """
        if self.transport is None or self._life is Life.INACTIVE:
            return IMPLIED
        host: IAddress = self.transport.getHost()
        return host

    def getpeername(self) -> IAddress | Implied:
        """
        The one peer of a client socket.

        @raise NotConnected: a server socket has no fixed peer.
        """
        if self._peer is None:
            raise NotConnected("getpeername: this datagram socket has no fixed peer")
        return self._peer

    # -- Twisted's protocol hooks ------------------------------------------

    def startProtocol(self) -> None:
        """
        The port is bound: the controller is open.
        """
        if self._life is not Life.STARTING:
            return
        self._port = self.transport
        assert self.transport is not None
        self._inet6 = isinstance(self.transport.getHost(), IPv6Address)
        self._life = Life.OPEN

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """
        One datagram, one record: hand it to the pending read, or queue it.
        """
        if self._life is not Life.OPEN or self._read_side is not Side.IDLE:
            return
        stats = self._stats
        size = len(datagram)
        stats["datagrams_in"] += 1
        stats["bytes_in"] += size
        peer_key = self._peer_key
        if peer_key is not None and (addr[0], addr[1]) != peer_key:
            stats["from_strangers"] += 1
            return
        if size > self.max_record_size or size >= self.receive_buffer_size:
            stats["too_large"] += 1
            self._counters.add(REFUSED_LIMIT)
            self.log.debug(
                "dropped a datagram of {size} bytes or more from {sender}: "
                "max_record_size is {limit}",
                size=size,
                sender=_show(addr),
                limit=self.max_record_size,
            )
            return
        if self._read_d is not None and not self._queue and not self._pumping:
            self._deliver(datagram, addr)
            return
        if (
            len(self._queue) >= self.max_queued_datagrams
            or self._queued_bytes + size > self.max_queued_bytes
        ):
            stats["queue_overflow"] += 1
            return
        self._queue.append((datagram, addr))
        self._queued_bytes += size
        if self._read_d is not None:
            self._pump()

    def errorReceived(
        self, error: Exception, addr: _SockAddr | None, number: int | None = None
    ) -> None:
        """
        The socket reported an error about a datagram sent earlier (to
        C{addr}, when known): count it, log it, and offer it to
        C{on_peer_error}. On a server socket that is all, since it concerns
        one peer among many. On a client socket, whose one peer is its
        server, it also fails the pending read, or is kept for the next read
        or write.

        @param number: the C{errno} the socket gave, when known (it names
            the counter).
        """
        if self._life is not Life.OPEN:
            return
        self._stats["errors"] += 1
        kind = _error_kind(error, number)
        self._counters.add(udp_error_key(kind))
        if self._peer_key is None:
            self._log_peer_error(kind, error)
        else:
            # The pending read (or the next operation) carries it to the
            # caller.
            self.log.debug("{controller}: {error}", controller=self, error=error)
        callback = self._on_peer_error
        if callback is not None:
            try:
                callback(error, None if addr is None else self._address(addr))
            except Exception:
                self.log.failure("on_peer_error raised on {error}", error=error)
            if self._life is not Life.OPEN:
                return
        if self._peer_key is None or self._read_side is not Side.IDLE:
            return
        if self._read_d is not None and not self._queue:
            self._fail_read(Failure(error))
        elif self._socket_error is None:
            self._socket_error = error

    def _log_peer_error(self, kind: str, error: Exception) -> None:
        """
        Log one error about an earlier datagram on a server socket: at info
        level when no error of its kind was for L{PEER_ERROR_LOG_INTERVAL}
        seconds, saying how many were logged at debug level since the last
        info line; at debug level otherwise.
        """
        throttle = self._error_log.get(kind)
        if throttle is None:
            throttle = self._error_log[kind] = LogThrottle(PEER_ERROR_LOG_INTERVAL)
        if not throttle.due(self._reactor.seconds()):
            self.log.debug("{controller}: {error}", controller=self, error=error)
            return
        since, throttle.quiet = throttle.quiet, 0
        self.log.info(
            "{controller}: {error} ({kind}: {total} on this socket, {since} since "
            "the last such line; more within {interval:.0f} s at debug level only)",
            controller=self,
            error=error,
            kind=kind,
            total=self._counters.view[udp_error_key(kind)],
            since=since,
            interval=PEER_ERROR_LOG_INTERVAL,
        )

    def portFailed(self, reason: Failure) -> None:
        """
        The port is going away under the controller, for C{reason};
        L{stopProtocol} follows.
        """
        if self._lost_reason is None:
            self._lost_reason = reason

    def stopProtocol(self) -> None:
        """
        The port is closed: if the controller did not close it, fail what is
        pending (after the datagrams already queued) with the reason.
        """
        self._closed = True
        waiters, self._close_waiters = self._close_waiters, []
        if self._life is not Life.INACTIVE:
            if self._lost_reason is None:
                self._lost_reason = Failure(ConnectionLost("the UDP port was closed"))
            if self._life is Life.OPEN:
                self.log.info(
                    "the UDP socket of {controller} went away: {reason}",
                    controller=self,
                    reason=self._lost_reason.getErrorMessage(),
                )
            self._life = Life.LOST
            self._eof_seen = True
            self._timer.cancel()
            self._pump()
        for d in waiters:
            d.callback(None)

    # -- Reading -------------------------------------------------------------

    def start_reading(
        self,
        peek: Callable[[], object] | None = None,
        before_record: BeforeRecord | None = None,
    ) -> Deferred[Any]:
        """
        Start one read; see L{IRpcMultiplexController.start_reading}.
        """
        d = self._begin_read(peek, before_record)
        self._pump()
        return d

    def _pump(self) -> None:
        """
        Serve pending reads from the queue, then with a kept error or the
        reason the socket was lost. Reads started from a callback are served
        by this same loop, not by recursion.
        """
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._read_d is not None:
                if self._queue:
                    datagram, addr = self._queue.popleft()
                    self._queued_bytes -= len(datagram)
                    self._deliver(datagram, addr)
                elif self._socket_error is not None:
                    error, self._socket_error = self._socket_error, None
                    self._fail_read(Failure(error))
                elif self._life is Life.LOST:
                    assert self._lost_reason is not None
                    self._fail_read(self._lost_reason)
                else:
                    break
        finally:
            self._pumping = False

    def _deliver(self, datagram: bytes, addr: _SockAddr) -> None:
        """
        Decide the record for one datagram and fire the pending read with it.
        """
        d = self._read_d
        assert d is not None
        sender = self._address(addr)
        try:
            if self._peek is not None:
                self._peek()
            rule = self._decide_for_read(len(datagram), sender)
            record = self._record(rule, datagram)
        except Exception as e:
            self._stats["errors"] += 1
            self.log.failure(
                "before_record or peek failed on a datagram from {sender}", sender=sender
            )
            if self._read_d is d:
                self._fail_read(Failure(e))
            return
        if self._read_d is not d:
            # The hook inactivated or aborted the controller.
            return
        self._clear_read()
        self._timer.activity(self._busy())
        d.callback((record, sender))

    def _record(self, rule: InRule, datagram: bytes) -> InRecord:
        stats = self._stats
        if rule is ACCEPT:
            stats["accepted"] += 1
            return Accepted(datagram)
        record: InRecord
        if rule is REJECT:
            stats["rejected"] += 1
            record = Rejected(datagram[:4])
        elif type(rule) is RejectWith:
            stats["rejected"] += 1
            record = RejectedWith(datagram[:4], rule.error)
        elif rule is DENY:
            stats["denied"] += 1
            record = Denied()
        elif rule is DROP:
            stats["dropped"] += 1
            record = Dropped()
        else:
            raise TypeError(f"before_record must return a rule, not {rule!r}")
        self._counters.add(REFUSED_RULE)
        return record

    def _address(self, addr: _SockAddr) -> IPv4Address | IPv6Address:
        host, port = addr[0], addr[1]
        if self._inet6 or ":" in host:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host, port)

    def _fail_read(self, reason: Failure) -> None:
        d = self._read_d
        if d is not None:
            self._clear_read()
            self._timer.busy(self._busy())
            d.errback(reason)

    # -- Writing -------------------------------------------------------------

    def start_writing(self, message: Message, addr: object = IMPLIED) -> Deferred[None]:
        """
        Send one datagram; see L{IRpcMultiplexController.start_writing}.

        @param addr: C{IMPLIED} for the peer of a client socket, or where to
            send it: a Twisted C{IPv4Address}/C{IPv6Address}, or a
            C{(host, port)} tuple with an IP address for C{host}.

        @return: a L{Deferred} that has already fired with L{None} when the
            socket took the datagram; or failed with L{SendFailed} (its
            C{address} and C{errno}) when the socket refused this datagram
            (C{EINVAL} for port 0, C{ENETUNREACH}, C{EACCES}, C{EAGAIN},
            C{ENOBUFS}, ...), which concerns this write alone; on a client
            socket, with an error the socket reported about an earlier
            datagram (then this one was not sent); with C{OSError} when the
            socket itself is unusable (C{EBADF}).

        @raise AddressRequired: C{IMPLIED} on a socket with no fixed peer.
        @raise AddressMismatch: an address other than a client socket's peer.
        @raise DatagramTooLarge: C{message} is larger than
            L{max_datagram_size}; nothing was sent.
        @raise InvalidAddressError: the host is not an IP address of the
            socket's family.
        """
        check_usable(self._life, self._write_side, "start_writing", "writer")
        if self._write_side is Side.SHUT:
            raise ControllerInactive("start_writing: the writing side was shut down")
        dest = self._destination(addr)
        data = _join(message)
        limit = self.max_datagram_size
        if len(data) > limit:
            why = (
                f"max_record_size is {self.max_record_size}"
                if limit == self.max_record_size
                else f"the largest UDP payload over {'IPv6' if self._inet6 else 'IPv4'}"
            )
            raise DatagramTooLarge(len(data), limit, why)
        if self._life is Life.LOST:
            assert self._lost_reason is not None
            return fail(self._lost_reason)
        transport = self.transport
        if transport is None:
            return fail(Failure(ConnectionLost("the datagram controller has no socket yet")))
        error = self._socket_error
        if error is not None:
            self._socket_error = None
            return fail(Failure(error))
        try:
            transport.write(data, dest)
        except OSError as e:
            return self._send_failed(e.errno, e.strerror or str(e), dest, len(data))
        except MessageLengthError as e:
            # What a plain Twisted port makes of EMSGSIZE.
            return self._send_failed(errno.EMSGSIZE, str(e), dest, len(data))
        except Exception as e:
            # A plain Twisted port's own errors (MessageLengthError, ...).
            self._stats["errors"] += 1
            return fail(Failure(e))
        self._stats["datagrams_out"] += 1
        self._stats["bytes_out"] += len(data)
        self._timer.activity(self._busy())
        return succeed(None)

    def _send_failed(
        self, number: int | None, text: str, dest: _SockAddr, size: int
    ) -> Deferred[None]:
        """
        The socket refused one datagram: count it and fail its write, with
        L{SendFailed} unless the socket itself is unusable.
        """
        self._stats["errors"] += 1
        self._timer.activity(self._busy())
        if number is None:
            number = errno.EIO
        if number in _SOCKET_ERRNOS:
            return fail(Failure(OSError(number, f"{text}: sending {size} bytes to {_show(dest)}")))
        kind = errno.errorcode.get(number, f"errno{number}")
        self._counters.add(udp_error_key(f"send.{kind}"))
        self.log.debug(
            "{controller}: sending {size} bytes to {dest} failed: {kind} ({text})",
            controller=self,
            size=size,
            dest=_show(dest),
            kind=kind,
            text=text,
        )
        why = f"sendto refused its {size} bytes: {kind} ({text})"
        error = SendFailed(self._address(dest), number, why)
        return fail(Failure(error))

    def _destination(self, addr: object) -> _SockAddr:
        """
        The socket address to send to, from what C{start_writing} was given.
        """
        if addr is IMPLIED:
            if self._peer_key is None:
                raise AddressRequired(
                    "start_writing: this datagram socket has no fixed peer, so the "
                    "message needs an explicit address; IMPLIED names no one"
                )
            return self._peer_key
        if isinstance(addr, IPv6Address):
            dest: _SockAddr = (addr.host, addr.port)
            if addr.flowInfo or addr.scopeID:
                dest = (addr.host, addr.port, addr.flowInfo, addr.scopeID)
        elif isinstance(addr, IPv4Address):
            dest = (addr.host, addr.port)
        elif (
            isinstance(addr, tuple)
            and len(addr) in (2, 4)
            and isinstance(addr[0], str)
            and isinstance(addr[1], int)
        ):
            dest = addr
        else:
            raise TypeError(
                f"start_writing: {addr!r} is not an address: give IMPLIED, an "
                f"IPv4Address/IPv6Address or a (host, port) tuple"
            )
        host = dest[0]
        if self._peer_key is not None:
            if not _same_host_port(dest, self._peer_key):
                raise AddressMismatch(
                    f"start_writing: {_show(dest)} is not this socket's peer "
                    f"{_show(self._peer_key)}"
                )
            return self._peer_key
        if self._inet6:
            if not isIPv6Address(host):
                raise InvalidAddressError(
                    host, "an IPv6 datagram socket sends to IPv6 addresses only"
                )
        elif not isIPAddress(host):
            raise InvalidAddressError(host, "an IPv4 datagram socket sends to IPv4 addresses only")
        return dest

    # -- Shutting down ------------------------------------------------------

    def start_shutting_down(self) -> Deferred[None]:
        """
        There is no handshake on UDP: stop reading and writing, drop the
        queue, and succeed at once. A pending read fails with
        C{ConnectionDone}; later reads and writes raise L{ControllerInactive}.
        The socket stays open until L{inactivate}.
        """
        if self._life is Life.INACTIVE:
            raise ControllerInactive("start_shutting_down: the controller is inactive")
        self._eof_seen = True
        if self._read_side is Side.IDLE:
            self._read_side = Side.SHUT
        if self._write_side is Side.IDLE:
            self._write_side = Side.SHUT
        self._drop_queue()
        self._stop_port_reading()
        self._fail_read(Failure(ConnectionDone("the datagram controller was shut down")))
        self._timer.busy(self._busy())
        if self._life is Life.LOST:
            reason = self._lost_reason
            if reason is not None and not reason.check(ConnectionDone):
                return fail(reason)
        return succeed(None)

    def cancel_shutting_down(self) -> None:
        """
        Nothing to cancel: a shutdown completes at once.
        """

    # -- Timeouts, aborting, inactivation -------------------------------------

    def _busy(self) -> bool:
        return self._read_d is not None

    def abort_rw(self) -> None:
        """
        End reader and writer for good; the pending read never fires. The
        queue is dropped and the socket no longer read.
        """
        self._read_side = Side.ABORTED
        self._write_side = Side.ABORTED
        self._clear_read()
        self._drop_queue()
        self._stop_port_reading()
        self._timer.busy(False)

    def inactivate(self) -> None:
        """
        Release everything now; see L{IRpcMultiplexController.inactivate}.

        The port closes on the next reactor turn; L{when_closed} tells when.
        With C{close_inactive_descr} false an adopted descriptor goes back to
        its owner as it was (its socket options put back; only Twisted's
        duplicate is closed). A socket the controller bound itself has no
        other owner and is closed either way.
        """
        if self._life is Life.INACTIVE:
            return
        self._life = Life.INACTIVE
        self._read_side = Side.ABORTED
        self._write_side = Side.ABORTED
        self._clear_read()
        self._drop_queue()
        self._timer.cancel()
        port = self._port if not self._closed else None
        if not self._close_inactive_descr:
            if port is not None:
                restore = getattr(port, "restore_socket", None)
                if restore is not None and self._adopted_fd is not None:
                    restore()
                self._stop_port(port)
            self._adopted_fd = None
            return
        if self._preclose is not None:
            try:
                self._preclose()
            except Exception:
                self.log.failure("preclose raised")
        if port is not None:
            self._stop_port(port)
        if self._adopted_fd is not None:
            try:
                os.close(self._adopted_fd)
            except OSError:
                pass
            self._adopted_fd = None

    def when_closed(self) -> Deferred[None]:
        """
        A L{Deferred} that fires once the socket is closed: after
        L{inactivate} (the close completes on the next reactor turn), or when
        the port was closed under the controller. Tests wait on it so that
        the reactor is clean.
        """
        if self._closed or (self._port is None and self._life is Life.INACTIVE):
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._close_waiters.append(d)
        return d

    def _stop_port(self, port: Any) -> None:
        try:
            result = port.stopListening()
        except Exception:
            self.log.failure("stopListening raised")
            result = None
        if result is None and not self._closed:
            # A transport that closes at once, without telling: nothing to
            # wait for.
            self._closed = True
            waiters, self._close_waiters = self._close_waiters, []
            for d in waiters:
                d.callback(None)

    def _stop_port_reading(self) -> None:
        if self._closed:
            return
        stop = getattr(self._port, "stopReading", None)
        if stop is not None:
            try:
                stop()
            except Exception:
                self.log.failure("stopReading raised")

    def _drop_queue(self) -> None:
        self._queue.clear()
        self._queued_bytes = 0
        self._socket_error = None

    def __repr__(self) -> str:
        peer = f" peer={_show(self._peer_key)}" if self._peer_key is not None else ""
        return f"<DatagramController {self._life.value}{peer}>"


def _join(message: Message) -> bytes:
    """
    The datagram's bytes: a datagram goes out in one piece, so pieces are
    joined here (once).
    """
    if isinstance(message, bytes):
        return message
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    return b"".join(message)


def _same_host_port(a: _SockAddr, b: _SockAddr) -> bool:
    if a[1] != b[1]:
        return False
    if a[0] == b[0]:
        return True
    try:
        family = socket.AF_INET6 if ":" in a[0] else socket.AF_INET
        return bool(socket.inet_pton(family, a[0]) == socket.inet_pton(family, b[0]))
    except (OSError, ValueError):
        return False

