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
socket asks for them: on Linux the controller's port
(L{rpctransport.adapters.recverr.ErrorQueuePort}) turns on
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

Besides one-shot reads and writes, the controller streams
(L{rpctransport.interfaces.IRecordStreaming}): C{receive_records} calls one
receiver per datagram, in the turn it arrived, without a Deferred each; the
read mode (L{Reading}: one-shot, streaming, paused) is the reading side's
state, and moves as L{rpctransport.sansio.connection.TRANSITIONS} says.
C{send_record} and C{send_records} send without a Deferred; UDP never pushes
back, so a registered producer is never paused.
"""

from __future__ import annotations

import errno
import socket
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NoReturn, cast

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    InvalidAddressError,
    MessageLengthError,
    NoRouteError,
)
from twisted.internet.interfaces import IAddress, IPushProducer, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import (
    BeforeRecord,
    IRecordReceiver,
    IRecordStreaming,
    IRpcMultiplexController,
    Message,
    ReadResult,
)
from ..sansio.connection import TRANSITIONS, Life, Move, Reading, Side
from ..sansio.counters import REFUSED_LIMIT, REFUSED_RULE, Counters, udp_error_key
from ..sansio.errors import (
    AddressMismatch,
    AddressRequired,
    ControllerBusy,
    ControllerInactive,
    DatagramTooLarge,
    LocalProtocolError,
    NotConnected,
    SendFailed,
)
from ..sansio.types import (
    ACCEPT,
    IMPLIED,
    Accepted,
    Denied,
    Dropped,
    Implied,
    InRecord,
    Rejected,
    RejectedWith,
    RpcProtocol,
    record_for_rule,
)
from ._timer import InactivityTimer
from .common import (
    LogThrottle,
    OwnedDescriptor,
    PendingRead,
    RecordStream,
    cancelled_read,
    check_usable,
    descriptor_of,
    resolve_reactor,
)
from .recverr import DATAGRAMS_PER_WAKEUP, SockAddr, show_address

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

_STAT_OF_RECORD: Final[dict[type, str]] = {
    Accepted: "accepted",
    Rejected: "rejected",
    RejectedWith: "rejected",
    Denied: "denied",
    Dropped: "dropped",
}
"""
The key of L{DatagramController.stats} that counts records of each type.
"""

_SOCKET_ERRNOS: Final = frozenset({errno.EBADF, errno.ENOTSOCK})
"""
Errors of C{sendto} that say the socket itself is unusable, whatever the
destination: they fail the write with the C{OSError}. Every other refusal
concerns that one datagram (its destination, or a full buffer that UDP may
drop as it may drop anything) and fails it with L{SendFailed}.
"""


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


class _Addresses:
    """
    The addresses of one datagram socket: its family, its fixed peer if it
    has one (the client form), and the conversions between what
    C{start_writing} is given, socket addresses and Twisted's addresses.

    @ivar inet6: whether the socket is IPv6 (known once the port is bound).
    @ivar peer: the fixed peer, as a Twisted address, or L{None}.
    @ivar peer_key: the fixed peer as a socket address C{(host, port)}, in
        the canonical form the kernel reports senders in, or L{None}.
    @ivar peer_sender: what a read reports as the sender of every datagram
        a client socket takes (C{twisted(peer_key)}, made once the family
        is known, in L{bound}), or L{None}.
    """

    def __init__(self, peer: tuple[str, int] | IPv4Address | IPv6Address | None) -> None:
        self.inet6 = False
        self.peer: IPv4Address | IPv6Address | None = None
        self.peer_key: SockAddr | None = None
        self.peer_sender: IPv4Address | IPv6Address | None = None
        if peer is None:
            return
        if isinstance(peer, (IPv4Address, IPv6Address)):
            host, port = peer.host, peer.port
        else:
            host, port = peer[0], peer[1]
        if isIPv6Address(host):
            if "%" not in host:
                # The kernel reports senders in canonical form; compare alike.
                host = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host))
            self.peer = IPv6Address("UDP", host, port)
        elif isIPAddress(host):
            host = socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, host))
            self.peer = IPv4Address("UDP", host, port)
        else:
            raise InvalidAddressError(
                host, "the peer of a datagram controller must be an IP address, not a host name"
            )
        self.peer_key = (host, port)

    def bound(self, inet6: bool) -> None:
        """
        The port is bound, and its family known.
        """
        self.inet6 = inet6
        if self.peer_key is not None:
            self.peer_sender = self.twisted(self.peer_key)

    def twisted(self, addr: SockAddr) -> IPv4Address | IPv6Address:
        """
        The Twisted address of the socket address C{addr}.
        """
        host, port = addr[0], addr[1]
        if self.inet6 or ":" in host:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host, port)

    def destination(self, addr: object, what: str = "start_writing") -> SockAddr:
        """
        The socket address to send to, from what C{start_writing} (or the
        operation C{what}) was given.
        """
        if addr is IMPLIED:
            if self.peer_key is None:
                raise AddressRequired(
                    f"{what}: this datagram socket has no fixed peer, so the "
                    "message needs an explicit address; IMPLIED names no one"
                )
            return self.peer_key
        dest = _socket_address(addr, what)
        if self.peer_key is not None:
            if not _same_host_port(dest, self.peer_key):
                raise AddressMismatch(
                    f"{what}: {show_address(dest)} is not this socket's peer "
                    f"{show_address(self.peer_key)}"
                )
            return self.peer_key
        host = dest[0]
        if self.inet6 and not isIPv6Address(host):
            raise InvalidAddressError(host, "an IPv6 datagram socket sends to IPv6 addresses only")
        if not self.inet6 and not isIPAddress(host):
            raise InvalidAddressError(host, "an IPv4 datagram socket sends to IPv4 addresses only")
        return dest


def _socket_address(addr: object, what: str) -> SockAddr:
    """
    The socket address of a Twisted C{IPv4Address}/C{IPv6Address} or a
    C{(host, port)} (or C{(host, port, flowinfo, scope_id)}) tuple, given to
    the operation C{what}.

    @raise TypeError: C{addr} is none of those.
    """
    if isinstance(addr, IPv6Address):
        if addr.flowInfo or addr.scopeID:
            return (addr.host, addr.port, addr.flowInfo, addr.scopeID)
        return (addr.host, addr.port)
    if isinstance(addr, IPv4Address):
        return (addr.host, addr.port)
    if (
        isinstance(addr, tuple)
        and len(addr) in (2, 4)
        and isinstance(addr[0], str)
        and isinstance(addr[1], int)
    ):
        return addr
    raise TypeError(
        f"{what}: {addr!r} is not an address: give IMPLIED, an "
        f"IPv4Address/IPv6Address or a (host, port) tuple"
    )


def _same_host_port(a: SockAddr, b: SockAddr) -> bool:
    if a[1] != b[1]:
        return False
    if a[0] == b[0]:
        return True
    try:
        family = socket.AF_INET6 if ":" in a[0] else socket.AF_INET
        return bool(socket.inet_pton(family, a[0]) == socket.inet_pton(family, b[0]))
    except (OSError, ValueError):
        return False


class _Tally:
    """
    What a datagram controller counts and logs: its C{stats}, its
    C{counters} per reason, and the log lines about refused datagrams and
    per-destination errors (those of a server socket throttled per kind,
    see L{PEER_ERROR_LOG_INTERVAL}).

    @ivar stats: the counts, with the keys of L{STAT_KEYS}.
    @ivar counters: the counts per reason.
    @ivar addresses: the socket's addresses, which the log lines and
        C{on_peer_error} name.
    """

    def __init__(
        self,
        owner: DatagramController,
        addresses: _Addresses,
        counters_parent: Counters | None,
        on_peer_error: OnPeerError | None,
    ) -> None:
        """
        @param owner: the controller, whose logger and clock this uses and
            whom its log lines name.
        """
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self.counters = Counters(counters_parent)
        self._owner = owner
        self._log = owner.log
        self.addresses = addresses
        self._on_peer_error = on_peer_error
        # Per errno name: at most one info line a minute.
        self._throttles: dict[str, LogThrottle] = {}

    def record(self, record: InRecord) -> None:
        """
        Count a record delivered under a rule.
        """
        kind = type(record)
        self.stats[_STAT_OF_RECORD[kind]] += 1
        if kind is not Accepted:
            self.counters.add(REFUSED_RULE)

    def too_large(self, size: int, addr: SockAddr, limit: int) -> None:
        """
        Count (and log at debug level) a datagram over C{max_record_size}.
        """
        self.stats["too_large"] += 1
        self.counters.add(REFUSED_LIMIT)
        self._log.debug(
            "dropped a datagram of {size} bytes or more from {sender}: "
            "max_record_size is {limit}",
            size=size,
            sender=show_address(addr),
            limit=limit,
        )

    def peer_error(self, error: Exception, addr: SockAddr | None, number: int | None) -> None:
        """
        Count and log an error about an earlier datagram, and offer it to
        C{on_peer_error}.
        """
        server = self.addresses.peer_key is None
        self._log_peer_error(error, number, server)
        callback = self._on_peer_error
        if callback is not None:
            try:
                callback(error, None if addr is None else self.addresses.twisted(addr))
            except Exception:
                self._log.failure("on_peer_error raised on {error}", error=error)

    def _log_peer_error(self, error: Exception, number: int | None, server: bool) -> None:
        """
        Count and log an error about an earlier datagram: on a server socket
        at info level when none of its kind was for
        L{PEER_ERROR_LOG_INTERVAL} seconds, saying how many went to debug
        level meanwhile; else (and always on a client socket, whose read
        carries the error to the caller) at debug level.
        """
        self.stats["errors"] += 1
        kind = _error_kind(error, number)
        key = udp_error_key(kind)
        self.counters.add(key)
        throttle = self._throttles.get(kind) if server else None
        if server and throttle is None:
            throttle = self._throttles[kind] = LogThrottle(PEER_ERROR_LOG_INTERVAL)
        if throttle is None or not throttle.due(self._owner.reactor.seconds()):
            self._log.debug("{controller}: {error}", controller=self._owner, error=error)
            return
        since, throttle.quiet = throttle.quiet, 0
        self._log.info(
            "{controller}: {error} ({kind}: {total} on this socket, {since} since "
            "the last such line; more within {interval:.0f} s at debug level only)",
            controller=self._owner,
            error=error,
            kind=kind,
            total=self.counters.view[key],
            since=since,
            interval=PEER_ERROR_LOG_INTERVAL,
        )


class _Outbound:
    """
    The way out of a datagram controller: checks a datagram's size, hands it
    to the port, counts it, and turns a refusal into the failure of its
    write (or, for a send without a Deferred, into a count and a log line).

    @ivar producer: the producer registered with
        L{DatagramController.register_producer}, or L{None}; never paused.
    """

    def __init__(
        self, owner: DatagramController, tally: _Tally, timer: InactivityTimer, read: PendingRead
    ) -> None:
        """
        @param owner: the controller, whose size limits and logger this
            uses and whom its log lines name.
        @param read: the controller's reads, which say whether the timer
            counts as busy after a send.
        """
        self._owner = owner
        self._tally = tally
        self._addresses = tally.addresses
        self._timer = timer
        self._read = read
        self._log = owner.log
        self.producer: IPushProducer | None = None

    def check_size(self, size: int, which: str = "") -> None:
        """
        @param which: which message it is, when there are several.
        @raise DatagramTooLarge: C{size} is over the controller's
            C{max_datagram_size}.
        """
        limit = self._owner.max_datagram_size
        if size > limit:
            record_limit = self._owner.max_record_size
            why = (
                f"max_record_size is {record_limit}"
                if limit == record_limit
                else f"the largest UDP payload over {'IPv6' if self._addresses.inet6 else 'IPv4'}"
            )
            if which:
                why = f"{why}; {which}"
            raise DatagramTooLarge(size, limit, why)

    def send(self, transport: Any, data: bytes, dest: SockAddr) -> Deferred[None]:
        """
        Hand one datagram to the port: a Deferred that has fired with
        L{None}, or failed as L{DatagramController.start_writing} says.
        """
        error = self.push(transport, data, dest)
        if error is None:
            return succeed(None)
        return fail(error)

    def send_now(self, transport: Any, data: bytes, dest: SockAddr) -> None:
        """
        Hand one datagram to the port, without a Deferred
        (L{DatagramController.send_record}): a refusal for its destination
        (L{SendFailed}) is counted and logged at debug level as for
        C{start_writing}, and that is all; any other failure (the socket
        itself unusable, a plain Twisted port's own error) is counted and
        logged at error level, there being no Deferred to carry it.
        """
        error = self.push(transport, data, dest)
        if error is not None and not isinstance(error.value, SendFailed):
            self._log.failure(
                "{controller}: sending {size} bytes to {dest} failed",
                failure=error,
                controller=self._owner,
                size=len(data),
                dest=show_address(dest),
            )

    def push(self, transport: Any, data: bytes, dest: SockAddr) -> Failure | None:
        """
        Hand one datagram to the port and count it: L{None} when the socket
        took it, else why not (counted), as a write would fail with it.
        """
        try:
            transport.write(data, dest)
        except OSError as e:
            return self._refused(e.errno, e.strerror or str(e), dest, len(data))
        except MessageLengthError as e:
            # What a plain Twisted port makes of EMSGSIZE.
            return self._refused(errno.EMSGSIZE, str(e), dest, len(data))
        except Exception as e:
            # A plain Twisted port's own errors.
            self._tally.stats["errors"] += 1
            return Failure(e)
        stats = self._tally.stats
        stats["datagrams_out"] += 1
        stats["bytes_out"] += len(data)
        timer = self._timer
        if timer.enabled:
            timer.activity(self._read.wanted)
        return None

    def _refused(self, number: int | None, text: str, dest: SockAddr, size: int) -> Failure:
        """
        The socket refused one datagram: count it, and say what its write
        fails with: L{SendFailed} (logged at debug level) unless the socket
        itself is unusable (an C{OSError}).
        """
        self._tally.stats["errors"] += 1
        self._timer.activity(self._read.wanted)
        if number is None:
            number = errno.EIO
        if number in _SOCKET_ERRNOS:
            return Failure(OSError(number, f"{text}: sending {size} bytes to {show_address(dest)}"))
        kind = errno.errorcode.get(number, f"errno{number}")
        self._tally.counters.add(udp_error_key(f"send.{kind}"))
        self._log.debug(
            "{controller}: sending {size} bytes to {dest} failed: {kind} ({text})",
            controller=self._owner,
            size=size,
            dest=show_address(dest),
            kind=kind,
            text=text,
        )
        why = f"sendto refused its {size} bytes: {kind} ({text})"
        return Failure(SendFailed(self._addresses.twisted(dest), number, why))


class _PortHandle:
    """
    The controller's UDP port (from C{startProtocol} on) and its closing:
    whether it happened, and who waits for it.

    @ivar port: the port, or L{None} before it is bound.
    @ivar closed: whether the port is closed.
    """

    def __init__(self, log: Logger) -> None:
        self.port: Any = None
        self.closed = False
        self._log = log
        self._waiters: list[Deferred[None]] = []

    def stop_reading(self) -> None:
        """
        Stop reading the socket (the port stays open).
        """
        if self.closed:
            return
        stop = getattr(self.port, "stopReading", None)
        if stop is not None:
            try:
                stop()
            except Exception:
                self._log.failure("stopReading raised")

    def restore(self) -> None:
        """
        Put back the socket options the port changed, when it can.
        """
        restore = getattr(self.port, "restore_socket", None)
        if restore is not None and not self.closed:
            restore()

    def stop(self) -> None:
        """
        Close the port (on the next reactor turn, for a Twisted port).
        """
        if self.port is None or self.closed:
            return
        try:
            result = self.port.stopListening()
        except Exception:
            self._log.failure("stopListening raised")
            result = None
        if result is None and not self.closed:
            # A transport that closes at once, without telling: nothing to
            # wait for.
            for d in self.now_closed():
                d.callback(None)

    def now_closed(self) -> list[Deferred[None]]:
        """
        The port is closed: take those who wait for it, to be fired.
        """
        self.closed = True
        waiters, self._waiters = self._waiters, []
        return waiters

    def when_closed(self, inactive: bool) -> Deferred[None]:
        """
        A L{Deferred} that fires once the port is closed (at once if it is,
        or if there never was one and C{inactive}).
        """
        if self.closed or (self.port is None and inactive):
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d


class _Inbound:
    """
    The reading side of a datagram controller: the datagrams queued for the
    next read (within its C{max_queued_datagrams} and C{max_queued_bytes}),
    a client socket's error kept for the next operation, and the loop that
    serves the pending read, or the stream of records, from them.

    A stream of records (L{DatagramController.receive_records}) is a
    L{RecordStream} whose C{pauseProducing}, C{resumeProducing} and
    C{stopProducing} come back here (L{pause_stream}, L{resume_stream},
    L{stop_stream}). While it delivers, a datagram that arrives with nothing
    queued goes to its receiver at once (L{to_stream}); while it is paused,
    datagrams are queued as they are while no read is pending.

    @ivar read: the pending read, or the stream of records (C{read.stream}
        while it delivers, C{read.held} while it is paused).
    @ivar mode: how the application takes datagrams (L{Reading}): one-shot
        reads, or a stream, delivering or paused; it moves as
        L{TRANSITIONS} says.
    @ivar lost: why the socket was lost, once it was: reads fail with it,
        and a stream ends with it, when the queue is empty.
    @ivar kept_error: a client socket's error about its server, kept for the
        next read, stream or write because nothing was waiting for records.
    """

    # The delivering stream's hook and receiver methods, and the sender of
    # a client socket's datagrams: looked up when the stream starts or
    # resumes (L{_serve}), not per datagram.
    _hook: BeforeRecord | None
    _on_record: Callable[[bytes, IAddress], object]
    _on_refused: Callable[[InRecord, IAddress], object]
    _sender: IPv4Address | IPv6Address | None

    def __init__(self, owner: DatagramController, tally: _Tally, timer: InactivityTimer) -> None:
        """
        @param owner: the controller, whose queue limits, sides and logger
            this uses.
        """
        self.read = PendingRead(owner.cancel_rd_polling)
        self.mode = Reading.ONE_SHOT
        self.lost: Failure | None = None
        self.kept_error: Exception | None = None
        self._queue: deque[tuple[bytes, SockAddr]] = deque()
        self._queued_bytes = 0
        self._pumping = False
        self._owner = owner
        self._tally = tally
        self._stats = tally.stats
        self._addresses = tally.addresses
        self._timer = timer
        self._log = owner.log

    def offer(self, datagram: bytes, addr: SockAddr) -> None:
        """
        A datagram the controller takes: hand it to the delivering stream or
        the pending read, or queue it (or drop it, the queue being full).
        """
        read = self.read
        if not self._queue and not self._pumping:
            stream = read.stream
            if stream is not None:
                self.to_stream(stream, datagram, addr)
                return
            if read.d is not None:
                self._deliver(datagram, addr)
                return
        size = len(datagram)
        owner = self._owner
        if (
            len(self._queue) >= owner.max_queued_datagrams
            or self._queued_bytes + size > owner.max_queued_bytes
        ):
            self._stats["queue_overflow"] += 1
            return
        self._queue.append((datagram, addr))
        self._queued_bytes += size
        if read.d is not None or read.stream is not None:
            self.pump()

    def client_error(self, error: Exception) -> None:
        """
        A client socket's error about its server: fail the pending read, or
        end the delivering stream, with it (after what is queued); or keep
        it for the next operation.
        """
        read = self.read
        if not self._queue:
            if read.d is not None:
                self.fail(Failure(error))
                return
            if read.stream is not None:
                self.end_stream(Failure(error))
                return
        if self.kept_error is None:
            self.kept_error = error

    def pump(self) -> None:
        """
        Serve pending reads, or the delivering stream, from the queue, then
        with a kept error or the reason the socket was lost. Reads and
        streams started from a callback are served by this same loop, not by
        recursion.
        """
        if self._pumping:
            return
        self._pumping = True
        read = self.read
        queue = self._queue
        try:
            while True:
                stream = read.stream
                if stream is None and read.d is None:
                    break
                if queue:
                    datagram, addr = queue.popleft()
                    self._queued_bytes -= len(datagram)
                    if stream is not None:
                        self.to_stream(stream, datagram, addr)
                    else:
                        self._deliver(datagram, addr)
                    continue
                error = self.kept_error
                if error is not None:
                    self.kept_error = None
                    reason = Failure(error)
                elif self.lost is not None:
                    reason = self.lost
                else:
                    break
                if stream is not None:
                    self.end_stream(reason)
                else:
                    self.fail(reason)
        finally:
            self._pumping = False

    def _deliver(self, datagram: bytes, addr: SockAddr) -> None:
        """
        Decide the record for one datagram and fire the pending read with it.
        """
        read = self.read
        d = read.d
        assert d is not None
        sender = self._addresses.twisted(addr)
        try:
            if read.peek is not None:
                read.peek()
            record = record_for_rule(read.decide(len(datagram), sender), datagram)
            self._tally.record(record)
        except Exception as e:
            self._stats["errors"] += 1
            self._log.failure(
                "before_record or peek failed on a datagram from {sender}", sender=sender
            )
            if read.d is d:
                self.fail(Failure(e))
            return
        if read.d is not d:
            # The hook inactivated or aborted the controller.
            return
        read.take()
        self._timer.activity(False)
        d.callback((record, sender))

    def to_stream(self, stream: RecordStream, datagram: bytes, addr: SockAddr) -> None:
        """
        Deliver one datagram to C{stream}, which delivers now, as its
        C{before_record} decides: the per-datagram path of a stream, with no
        Deferred and no C{(record, sender)} tuple. What the hook or the
        receiver raises is counted, logged and ends the stream with it, as
        it would fail a one-shot read; the socket goes on.
        """
        read = self.read
        sender = self._sender
        if sender is None:
            sender = self._addresses.twisted(addr)
        hook = self._hook
        timer = self._timer
        try:
            if hook is None:
                self._stats["accepted"] += 1
                if timer.enabled:
                    timer.activity(True)
                self._on_record(datagram, sender)
                return
            read.in_hook = True
            try:
                rule = hook(len(datagram), sender)
            finally:
                read.in_hook = False
            if read.stream is not stream:
                self._not_taken(datagram, addr)
                return
            if rule is ACCEPT:
                self._stats["accepted"] += 1
                if timer.enabled:
                    timer.activity(True)
                self._on_record(datagram, sender)
            else:
                record = record_for_rule(rule, datagram)
                self._tally.record(record)
                if timer.enabled:
                    timer.activity(True)
                self._on_refused(record, sender)
        except Exception as e:
            self._stats["errors"] += 1
            self._log.failure(
                "before_record or the receiver of {stream} failed on a datagram from {sender}",
                stream=stream,
                sender=sender,
            )
            if read.has_stream(stream):
                self.end_stream(Failure(e))

    def _not_taken(self, datagram: bytes, addr: SockAddr) -> None:
        """
        The stream's C{before_record} paused or stopped the stream before
        the datagram it was asked about was taken: put the datagram back at
        the head of the queue (even past the queue's bounds: it was taken in
        already), for whatever reads next, which asks its own rule. Unless
        the hook ended reading for good (a shutdown, C{abort_rw},
        C{inactivate}), which dropped the queue.
        """
        owner = self._owner
        if owner._read_side is not Side.IDLE or owner._life is Life.INACTIVE:
            return
        self._queue.appendleft((datagram, addr))
        self._queued_bytes += len(datagram)
        read = self.read
        if read.d is not None or read.stream is not None:
            self.pump()

    def fail(self, reason: Failure) -> None:
        """
        Fail the pending read, if there is one, with C{reason}.
        """
        d = self.read.take()
        if d is not None:
            self._timer.busy(False)
            d.errback(reason)

    def cancel(self) -> None:
        """
        Fail the pending read, if there is one, with C{CancelledError}; the
        queue stays for the next read.
        """
        d = self.read.take_for_cancel()
        if d is not None:
            self._timer.busy(False)
            d.errback(cancelled_read())

    def drop(self) -> None:
        """
        Forget the queue and the kept error.
        """
        self._queue.clear()
        self._queued_bytes = 0
        self.kept_error = None

    # -- The stream of records --------------------------------------------

    def start_stream(
        self, receiver: IRecordReceiver, before_record: BeforeRecord | None
    ) -> RecordStream:
        """
        Start a stream of records (the controller checked that it may) and
        deliver what is queued to it.
        """
        stream = RecordStream(receiver, before_record, self)
        self._move(Move.STREAM)
        self.read.stream = stream
        self._serve(stream)
        if self._timer.enabled:
            self._timer.busy(True)
        self.pump()
        return stream

    def _serve(self, stream: RecordStream) -> None:
        """
        Look up, once, what L{to_stream} uses for every datagram.
        """
        receiver = stream.receiver
        self._hook = stream.before_record
        self._on_record = receiver.record_received
        self._on_refused = receiver.record_refused
        self._sender = self._addresses.peer_sender

    def pause_stream(self, stream: RecordStream) -> None:
        """
        Stop delivering to C{stream}: datagrams are queued meanwhile.
        """
        if self.read.hold(stream):
            self._move(Move.PAUSE_STREAM)
            self._timer.busy(False)

    def resume_stream(self, stream: RecordStream) -> None:
        """
        Deliver to C{stream} again, starting with what is queued.
        """
        if not self.read.unhold(stream):
            return
        self._move(Move.RESUME_STREAM)
        self._serve(stream)
        self._timer.busy(True)
        self.pump()

    def stop_stream(self, stream: RecordStream) -> None:
        """
        End C{stream} without a word to its receiver; what is queued stays
        for the next read.
        """
        if not self.read.has_stream(stream):
            return
        self.drop_stream()
        self._timer.busy(False)

    def end_stream(self, reason: Failure) -> None:
        """
        End the stream, delivering or paused, if there is one: its
        receiver's C{receiving_ended} gets C{reason}.
        """
        stream = self.drop_stream()
        if stream is not None:
            self._timer.busy(False)
            stream.ended(reason)

    def drop_stream(self) -> RecordStream | None:
        """
        Take the stream, delivering or paused, off its slot, without a word
        to its receiver (C{stopProducing}, C{abort_rw}, C{inactivate}).
        """
        stream = self.read.take_stream()
        if stream is not None:
            self._move(Move.STOP_STREAM)
        return stream

    def _move(self, move: Move) -> None:
        """
        Move L{mode} as L{TRANSITIONS} says.

        @raise LocalProtocolError: C{move} is not possible now.
        """
        new = TRANSITIONS.get((self.mode, move))
        if new is None:
            raise LocalProtocolError(
                f"{move.value} is not possible while reading is {self.mode.value}"
            )
        self.mode = cast(Reading, new)


@implementer(IRpcMultiplexController, IRecordStreaming)
class DatagramController(DatagramProtocol):
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

    Streaming (L{IRecordStreaming}): L{receive_records} delivers every
    datagram to one receiver, C{record_received(message, sender)} or
    C{record_refused(record, sender)}, in the reactor turn it arrived, under
    the same rules, limits, refusals and counters as a one-shot read, and
    without a Deferred. Paused, it leaves datagrams to the queue (same
    bounds); stopped, it leaves them to the next read. C{receiving_ended}
    comes once, when no more datagrams will come: the error a one-shot read
    would fail with (see L{receive_records}). L{send_record} and
    L{send_records} send without a Deferred.

    C{stats} counts what happened (see L{STAT_KEYS}); L{counters} counts
    refusals and errors per reason.

    @ivar max_record_size: the largest datagram a read delivers, in bytes.
    @ivar max_queued_datagrams: see L{DEFAULT_MAX_QUEUED_DATAGRAMS}.
    @ivar max_queued_bytes: see L{DEFAULT_MAX_QUEUED_BYTES}.
    """

    log = Logger()
    noisy = False

    protocol: Final = RpcProtocol.UDP
    """Always L{RpcProtocol.UDP}."""
    tls_session_props: Final = None
    """L{None}: there is no TLS over UDP here."""
    peer_user_name: Final = None
    """L{None}: UDP does not authenticate its peers."""
    writing: Final = False
    """Always C{False}: a write completes as soon as it is handed to the socket."""

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
        for name, value in (
            ("max_record_size", max_record_size),
            ("max_queued_datagrams", max_queued_datagrams),
            ("max_queued_bytes", max_queued_bytes),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, not {value}")
        self._reactor = resolve_reactor(reactor)
        self.max_record_size = max_record_size
        self.max_queued_datagrams = max_queued_datagrams
        self.max_queued_bytes = max_queued_bytes
        self._descr = OwnedDescriptor(adopted_fd, close_inactive_descr, preclose)
        self._addresses = _Addresses(peer)
        self._life = Life.STARTING
        self._lost_reason: Failure | None = None
        self._eof_seen = False
        self._port = _PortHandle(self.log)
        self._read_side = self._write_side = Side.IDLE
        self._tally = _Tally(self, self._addresses, counters_parent, on_peer_error)
        self._timer = InactivityTimer(self._reactor)
        self._inbound = _Inbound(self, self._tally, self._timer)
        self._read = self._inbound.read
        self._outbound = _Outbound(self, self._tally, self._timer, self._read)

    # -- Properties of the contract ---------------------------------------

    @property
    def reactor(self) -> IReactorTime:
        """
        The reactor this controller's timers run on.
        """
        return self._reactor

    @property
    def alive(self) -> bool:
        """
        Whether the socket is open and the controller not inactivated.
        """
        return self._life is Life.OPEN

    @property
    def file_descr(self) -> int | None:
        """
        The socket's descriptor (the adopted one, for controllers made by
        L{rpctransport.datagram_rpc_multiplex_controller}), or L{None} once
        inactive or when the transport has none.
        """
        return descriptor_of(self._life, self.transport, self._descr.fd)

    @property
    def reading(self) -> bool:
        """
        Whether a one-shot read is pending (a stream of records is not one).
        """
        return self._read.d is not None

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
        return dict(self._tally.stats)

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
        return self._tally.counters.view

    @property
    def max_datagram_size(self) -> int:
        """
        The largest message a write sends: the largest UDP payload of the
        socket's address family, or L{max_record_size} when smaller.
        """
        payload = MAX_UDP_PAYLOAD_IPV6 if self._addresses.inet6 else MAX_UDP_PAYLOAD_IPV4
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
        if self._addresses.peer is None:
            raise NotConnected("getpeername: this datagram socket has no fixed peer")
        return self._addresses.peer

    # -- Twisted's protocol hooks ------------------------------------------

    def startProtocol(self) -> None:
        """
        The port is bound: the controller is open.
        """
        if self._life is not Life.STARTING:
            return
        assert self.transport is not None
        self._port.port = self.transport
        self._addresses.bound(isinstance(self.transport.getHost(), IPv6Address))
        self._life = Life.OPEN

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """
        One datagram, one record: hand it to the pending read or the stream
        of records, or queue it.
        """
        if self._life is not Life.OPEN or self._read_side is not Side.IDLE:
            return
        stats = self._tally.stats
        size = len(datagram)
        stats["datagrams_in"] += 1
        stats["bytes_in"] += size
        peer_key = self._addresses.peer_key
        if peer_key is not None and (addr[0], addr[1]) != peer_key:
            stats["from_strangers"] += 1
        elif size > self.max_record_size or size >= self.receive_buffer_size:
            self._tally.too_large(size, addr, self.max_record_size)
        else:
            self._inbound.offer(datagram, addr)

    def errorReceived(
        self, error: Exception, addr: SockAddr | None, number: int | None = None
    ) -> None:
        """
        The socket reported an error about a datagram sent earlier (to
        C{addr}, when known): count it, log it, and offer it to
        C{on_peer_error}. On a server socket that is all, since it concerns
        one peer among many. On a client socket, whose one peer is its
        server, it also fails the pending read or ends the stream of records
        (after what is queued), or is kept for the next read, stream or
        C{start_writing}.

        @param number: the C{errno} the socket gave, when known (it names
            the counter).
        """
        if self._life is not Life.OPEN:
            return
        self._tally.peer_error(error, addr, number)
        client = self._addresses.peer_key is not None
        if client and self._life is Life.OPEN and self._read_side is Side.IDLE:
            self._inbound.client_error(error)

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
        pending, or end the stream of records, (after the datagrams already
        queued) with the reason.
        """
        waiters = self._port.now_closed()
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
            self._inbound.lost = self._lost_reason
            self._inbound.pump()
        for d in waiters:
            d.callback(None)

    # -- Reading -------------------------------------------------------------

    def start_reading(
        self,
        peek: Callable[[], object] | None = None,
        before_record: BeforeRecord | None = None,
    ) -> Deferred[ReadResult]:
        """
        Start one read; see L{IRpcMultiplexController.start_reading}.

        @raise ControllerBusy: a read is pending, or records stream
            (L{receive_records}, delivering or paused).
        """
        if (
            self._read.d is not None
            or self._read_side is not Side.IDLE
            or self._life is Life.INACTIVE
            or self._inbound.mode is not Reading.ONE_SHOT
        ):
            self._refuse_read()
        d = self._read.begin(peek, before_record)
        if self._timer.enabled:
            self._timer.busy(True)
        self._inbound.pump()
        return d

    def _refuse_read(self) -> NoReturn:
        """
        Raise why a read may not start now.
        """
        check_usable(self._life, self._read_side, "start_reading", "reader")
        if self._read_side is Side.SHUT:
            raise ControllerInactive("start_reading: the controller was shut down")
        mode = self._inbound.mode
        if mode is not Reading.ONE_SHOT:
            raise ControllerBusy(f"start_reading: records are {mode.value} (receive_records)")
        raise ControllerBusy("start_reading: a read is already pending")

    def cancel_rd_polling(self) -> None:
        """
        Stop the pending read (its Deferred fails with C{CancelledError});
        the queued datagrams stay for the next read. A stream of records is
        stopped with its handle's C{stopProducing} instead.
        """
        self._inbound.cancel()

    def receive_records(
        self, receiver: IRecordReceiver, before_record: BeforeRecord | None = None
    ) -> IPushProducer:
        """
        Deliver every datagram to C{receiver} as it arrives; see
        L{IRecordStreaming.receive_records}.

        Each datagram the controller takes (the same ones a read would take:
        within L{max_record_size}, and from the peer on a client socket) is
        decided by C{before_record(size, sender)} as for a read, and goes to
        C{receiver.record_received(message, sender)} when accepted (every
        one, without a question each, when there is no C{before_record}),
        or to C{receiver.record_refused(record, sender)} with the
        C{Rejected}, C{RejectedWith}, C{Denied} or C{Dropped} a read would
        deliver. C{sender} is the Twisted address a read gives. The
        datagrams queued before are delivered first, before this returns.

        The handle's C{pauseProducing} leaves datagrams to the queue, within
        its bounds (past them they are dropped and counted as
        C{queue_overflow}, as while no read is pending); C{resumeProducing}
        delivers them, then goes on; C{stopProducing} ends the stream
        without C{receiving_ended}, and the queue stays for the next read or
        stream. A C{before_record} that pauses or stops the stream leaves
        the datagram it was asked about at the head of the queue.

        What C{before_record} or the receiver raises fails that one
        datagram, as C{before_record} raising fails a one-shot read: it is
        counted in C{errors}, logged, and ends the stream with
        C{receiving_ended(Failure(exception))}; the socket and the queue are
        untouched, and a new read or stream may start (from
        C{receiving_ended}, even).

        C{receiving_ended} is called once, with what a one-shot read would
        fail with: C{ConnectionDone} on L{start_shutting_down};
        C{ConnectionLost} (or the port's reason) when the port is closed
        under the controller, after what is queued (a paused stream gets it
        once resumed); on a client socket, the error about its server
        (C{ConnectionRefusedError}, ...), after what is queued. A UDP socket
        has no end of file. After L{abort_rw} and L{inactivate} nothing is
        called.

        @raise ControllerBusy: a one-shot read is pending, or records
            already stream (delivering or paused).
        @raise ControllerInactive: the controller was inactivated, or its
            reader aborted or shut down.
        """
        inbound = self._inbound
        if (
            self._read.d is not None
            or self._read_side is not Side.IDLE
            or self._life is Life.INACTIVE
            or inbound.mode is not Reading.ONE_SHOT
        ):
            self._refuse_stream()
        return inbound.start_stream(receiver, before_record)

    def _refuse_stream(self) -> NoReturn:
        """
        Raise why a stream of records may not start now.
        """
        check_usable(self._life, self._read_side, "receive_records", "reader")
        if self._read_side is Side.SHUT:
            raise ControllerInactive("receive_records: the controller was shut down")
        if self._read.d is not None:
            raise ControllerBusy("receive_records: a one-shot read is pending")
        raise ControllerBusy(f"receive_records: records are already {self._inbound.mode.value}")

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
        self._check_write("start_writing")
        dest = self._addresses.destination(addr)
        data = _join(message)
        self._outbound.check_size(len(data))
        if self._life is Life.LOST:
            assert self._lost_reason is not None
            return fail(self._lost_reason)
        transport = self.transport
        if transport is None:
            return fail(Failure(ConnectionLost("the datagram controller has no socket yet")))
        error, self._inbound.kept_error = self._inbound.kept_error, None
        if error is not None:
            return fail(Failure(error))
        return self._outbound.send(transport, data, dest)

    def _check_write(self, what: str) -> None:
        """
        Raise L{ControllerInactive} when the operation C{what} may not
        write now.
        """
        check_usable(self._life, self._write_side, what, "writer")
        if self._write_side is Side.SHUT:
            raise ControllerInactive(f"{what}: the writing side was shut down")

    def send_record(self, message: Message, addr: object = IMPLIED) -> None:
        """
        Send one datagram now, without a Deferred; see
        L{IRecordStreaming.send_record}.

        The address rules, the size limit and the counters are those of
        L{start_writing}, and so is misuse: it raises. What the socket
        refuses for this one datagram (C{EINVAL} for port 0, C{ENETUNREACH},
        C{EACCES}, C{EAGAIN}, C{ENOBUFS}, ...: what fails a write with
        L{SendFailed}) is counted in C{errors} and under
        C{udp.send.<ERRNO>}, logged at debug level, and that is all: there
        is no Deferred to fail, and UDP may lose any datagram anyway. An
        unusable socket (C{EBADF}) is counted and logged at error level.
        Once the port was closed under the controller, datagrams are
        discarded, as Twisted's transports discard what is written after
        the end (the stream of records, if any, ended with the reason). An
        error a client socket kept about its server is left for the next
        read or C{start_writing}, which can report it; this sends anyway.

        @param addr: as for L{start_writing}.
        @raise AddressRequired: C{IMPLIED} on a socket with no fixed peer.
        @raise AddressMismatch: an address other than a client socket's peer.
        @raise DatagramTooLarge: C{message} is larger than
            L{max_datagram_size}; nothing was sent.
        @raise InvalidAddressError: the host is not an IP address of the
            socket's family.
        @raise ControllerInactive: the controller was inactivated, its writer
            aborted or shut down, or it has no socket yet.
        """
        self._send((message,), addr, "send_record")

    def send_records(self, messages: Sequence[Message], addr: object = IMPLIED) -> None:
        """
        Send several datagrams now, one per message, all to C{addr}, as
        L{send_record} sends one; see L{IRecordStreaming.send_records}.
        Every message is checked before any is sent: when one is too large
        (L{DatagramTooLarge}, saying which), nothing was sent.
        """
        self._send(messages, addr, "send_records")

    def _send(self, messages: Sequence[Message], addr: object, what: str) -> None:
        """
        L{send_record} and L{send_records}, as the operation C{what}.
        """
        if self._life is not Life.OPEN or self._write_side is not Side.IDLE:
            self._check_write(what)
        dest = self._addresses.destination(addr, what)
        outbound = self._outbound
        limit = self.max_datagram_size
        count = len(messages)
        datagrams = [_join(message) for message in messages]
        for i, data in enumerate(datagrams):
            if len(data) > limit:
                outbound.check_size(len(data), f"message {i + 1} of {count} given to {what}")
        if self._life is Life.LOST:
            return
        transport = self.transport
        if transport is None:
            raise ControllerInactive(f"{what}: the datagram controller has no socket yet")
        for data in datagrams:
            outbound.send_now(transport, data, dest)

    def register_producer(self, producer: IPushProducer) -> None:
        """
        Keep C{producer}, the one to pause while the socket pushes back on
        what is sent; see L{IRecordStreaming.register_producer}.

        UDP never pushes back (Twisted's UDP port is no consumer, and a full
        socket buffer refuses the datagram with C{EAGAIN}, see
        L{send_record}), so the producer is never paused nor resumed: it is
        only kept, until L{unregister_producer} or L{inactivate}.

        @raise RuntimeError: another producer is registered.
        """
        outbound = self._outbound
        if outbound.producer is not None:
            raise RuntimeError(f"register_producer: {outbound.producer!r} is already registered")
        outbound.producer = producer

    def unregister_producer(self) -> None:
        """
        Forget the producer registered with L{register_producer}, if any.
        """
        self._outbound.producer = None

    # -- Shutting down ------------------------------------------------------

    def start_shutting_down(self) -> Deferred[None]:
        """
        There is no handshake on UDP: stop reading and writing, drop the
        queue, and succeed at once. A pending read fails with
        C{ConnectionDone}, and a stream of records (delivering or paused)
        ends with it; later reads and writes raise L{ControllerInactive}.
        The socket stays open until L{inactivate}.
        """
        if self._life is Life.INACTIVE:
            raise ControllerInactive("start_shutting_down: the controller is inactive")
        self._eof_seen = True
        if self._read_side is Side.IDLE:
            self._read_side = Side.SHUT
        if self._write_side is Side.IDLE:
            self._write_side = Side.SHUT
        self._inbound.drop()
        self._port.stop_reading()
        done = Failure(ConnectionDone("the datagram controller was shut down"))
        self._inbound.fail(done)
        self._inbound.end_stream(done)
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
        return self._read.wanted

    def set_timeout(self, notify: Callable[[], object], seconds: float) -> None:
        """
        See L{IRpcMultiplexController.set_timeout}.
        """
        self._timer.configure(notify, seconds, self._busy())

    def abort_rw(self) -> None:
        """
        End reader and writer for good; the pending read never fires, and
        a stream of records gets no further call (not even
        C{receiving_ended}). The queue is dropped and the socket no longer
        read.
        """
        self._read_side = self._write_side = Side.ABORTED
        self._read.take()
        self._inbound.drop_stream()
        self._inbound.drop()
        self._port.stop_reading()
        self._timer.busy(False)

    def inactivate(self) -> None:
        """
        Release everything now; see L{IRpcMultiplexController.inactivate}.
        A stream of records gets no further call (not even
        C{receiving_ended}), and the registered producer is forgotten.

        The port closes on the next reactor turn; L{when_closed} tells when.
        With C{close_inactive_descr} false an adopted descriptor goes back to
        its owner as it was (its socket options put back; only Twisted's
        duplicate is closed). A socket the controller bound itself has no
        other owner and is closed either way.
        """
        if self._life is Life.INACTIVE:
            return
        self._life = Life.INACTIVE
        self._read_side = self._write_side = Side.ABORTED
        self._read.take()
        self._inbound.drop_stream()
        self._inbound.drop()
        self._outbound.producer = None
        self._timer.cancel()
        descr = self._descr
        if descr.close_on_inactivate:
            descr.preclose()
            self._port.stop()
            descr.close()
            return
        if descr.fd is not None:
            self._port.restore()
        self._port.stop()
        descr.give_back()

    def when_closed(self) -> Deferred[None]:
        """
        A L{Deferred} that fires once the socket is closed: after
        L{inactivate} (the close completes on the next reactor turn), or when
        the port was closed under the controller. Tests wait on it so that
        the reactor is clean.
        """
        return self._port.when_closed(self._life is Life.INACTIVE)

    def __repr__(self) -> str:
        peer_key = self._addresses.peer_key
        peer = f" peer={show_address(peer_key)}" if peer_key is not None else ""
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
