# -*- test-case-name: rpctransport.test.test_admission -*-
"""
Layer 4: admission control for stream listeners.

A public port meets peers that connect and never send, and peers that send
once and stay. A listener with C{max_connections} keeps at most that many
connections: when a new one arrives at the cap, it evicts one, in this order,
and serves the newcomer (never the victim itself):

  1. a connection that has never sent a whole record, the oldest first;
  2. an idle one (the application waits for a record, none is half received,
     no write is pushed back), the longest idle first;
  3. the oldest.

L{default_max_connections} derives a cap from the process's descriptor
limit. A listener that runs out of descriptors all the same (C{EMFILE},
C{ENFILE}: a cap set too high, or descriptors taken by something else) backs
off instead of accepting and resetting: see L{AcceptGuard}.

L{ConnectionTable} keeps the order; L{Admission} applies the policy, counts,
logs and backs off. L{rpctransport.entry.stream.StreamControllerFactory}
owns one L{Admission}.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import os
import socket
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ..adapters.common import LogThrottle
from ..adapters.stream import StreamController
from ..sansio.counters import ACCEPT_BACKOFF, Counters
from ..sansio.errors import Evicted

__all__ = [
    "ACCEPT_BACKOFF_MAX",
    "ACCEPT_BACKOFF_MIN",
    "ADMISSION_LOG_INTERVAL",
    "BUSY_RECHECKS",
    "DESCRIPTOR_RESERVE",
    "MAX_CLOSING",
    "NO_DESCRIPTOR_LIMIT_CAP",
    "AcceptGuard",
    "Admission",
    "ConnectionTable",
    "default_max_connections",
]

MAX_CLOSING: Final = 16
"""
Connections out of a listener's count whose descriptor is not yet closed
(evicted, or let go of by the application), past which the listener stops
accepting until some are. An eviction aborts the connection, and Twisted
closes its descriptor on the next reactor turn; meanwhile one accept loop
(Twisted's C{Port.doRead} takes up to a hundred connections and more per
turn) would hold a descriptor for each newcomer I{and} each victim, and a
flood would run the process out of descriptors at the cap. Sixteen keep the
excess small (it is part of L{DESCRIPTOR_RESERVE}) and still admit sixteen
connections per reactor turn under a flood.
"""

DESCRIPTOR_RESERVE: Final = 64
"""
Descriptors that L{default_max_connections} leaves for everything but
connections. Counted on C{rpctransport serve}: standard input, output and
error (3); the reactor's epoll descriptor and waker pipe (3); Twisted's
reserved C{EMFILE} descriptor (1, from the first listener on); the
listening and UDP sockets (up to 8 with TCP, UDP, UNIX and TLS listeners on
two addresses); the pipes of a C{--workers} child (2); the newcomer being
admitted and the connections closing (1 + L{MAX_CLOSING}); log
files, certificate and key files read at start, modules imported late,
name lookups and the application's own files (about 20). That makes 54; 64
leaves a margin.
"""

NO_DESCRIPTOR_LIMIT_CAP: Final = 65536
"""
L{default_max_connections} when the process has no descriptor limit
(C{RLIM_INFINITY}, or a platform without C{getrlimit}): a number the reactor
and the memory of an ordinary host still handle (about 64 KiB per
connection at rest).
"""

ACCEPT_BACKOFF_MIN: Final = 0.01
"""
Seconds a listener stops accepting after the first C{EMFILE}/C{ENFILE} of a
run. An eviction gives its descriptor back on the next reactor turn, so
10 ms is enough to accept again; and at most a hundred attempts a second
cost nothing, where retrying at once would spin (the listening socket stays
readable while connections wait in its backlog).
"""

ACCEPT_BACKOFF_MAX: Final = 1.0
"""
The longest back-off, in seconds: each further failure in a row doubles the
back-off up to this. A connection waiting in the backlog then waits at most
a second more than needed; a client's own SYN retransmission waits as long.
"""

ADMISSION_LOG_INTERVAL: Final = 60.0
"""
Seconds between two info-level lines about evictions, and between two
warnings about running out of descriptors, on one listener. A flood evicts
thousands of connections a minute: the first eviction is logged with its
peer and numbers, later ones within the interval at debug level only, and
the next info line says how many there were meanwhile. Every eviction and
back-off is counted either way (the listener's C{counters}).
"""

BUSY_RECHECKS: Final = 8
"""
Connections that were busy (not idle) when an admission passed over them,
looked at again at each admission to see whether they are idle now. A few
per admission keep the cost of an admission bounded when most connections
are busy; a connection that turned idle meanwhile ranks among the idle ones
again within (busy connections) / 8 admissions.
"""

# Errors of accept(2) that say the process or the host is out of a resource:
# retrying at once fails again while the socket stays readable (a spin).
_EXHAUSTED: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# Of those, the ones an eviction relieves (it gives a descriptor back).
_OUT_OF_DESCRIPTORS: Final = frozenset({errno.EMFILE, errno.ENFILE})

UNPROVEN: Final = "unproven"
IDLE: Final = "idle"
OLDEST: Final = "oldest"


def default_max_connections(reserve: int = DESCRIPTOR_RESERVE) -> int:
    """
    The default C{max_connections} of C{rpctransport serve}: the process's
    soft C{RLIMIT_NOFILE} minus C{reserve}, and never less than half the
    limit (with a limit below twice the reserve, half the descriptors go to
    connections and half to the rest).

    Read when called: raise the limit first (C{ulimit -n}, or
    C{resource.setrlimit}) if the server is to hold more connections.

    @param reserve: descriptors left for everything but connections; see
        L{DESCRIPTOR_RESERVE} for what they are.
    @return: at least 1; L{NO_DESCRIPTOR_LIMIT_CAP} without a limit.
    """
    if reserve < 0:
        raise ValueError(f"reserve must be >= 0 descriptors, not {reserve}")
    try:
        import resource
    except ImportError:
        return NO_DESCRIPTOR_LIMIT_CAP
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return NO_DESCRIPTOR_LIMIT_CAP
    return max(soft - reserve, soft // 2, 1)


class ConnectionTable:
    """
    A listener's live connections, in the order they are to be evicted.

    Each structure answers one rank in O(1) or O(log n) amortized, with n the
    number of connections; nothing scans them all:

      - C{_live}: every connection, in arrival order (the oldest first);
      - C{_unproven}: those not yet known to have sent a whole record, in
        arrival order; one found proven at the front leaves it for good;
      - C{_idle}: a min-heap of C{(key, seq, connection)} where C{key} is a
        lower bound of the connection's C{idle_since}. A connection's last
        activity never goes back, so an entry whose key equals its current
        C{idle_since} at the top is the longest idle; a stale one is pushed
        again with its current value (a cost paid once per burst of
        activity), a busy one is parked in C{_busy} and comes back
        L{BUSY_RECHECKS} at a time. Entries of gone connections are dropped
        when met, and the heap is rebuilt when they are half of it.

    A connection leaves the table when it is chosen as a victim, or is
    found inactive (the application let go of it): it is then I{closing}
    until its descriptor is closed, counted by L{closing} for the listener
    to pace its accepting on; or when it is gone.
    """

    def __init__(self) -> None:
        self._live: OrderedDict[StreamController, None] = OrderedDict()
        self._unproven: OrderedDict[StreamController, None] = OrderedDict()
        self._idle: list[tuple[float, int, StreamController]] = []
        self._busy: OrderedDict[StreamController, None] = OrderedDict()
        self._seq = itertools.count()
        self._closing: set[StreamController] = set()

    def __len__(self) -> int:
        """
        How many connections count against the cap.
        """
        return len(self._live)

    @property
    def closing(self) -> int:
        """
        Connections out of the table whose descriptor is not yet closed:
        evicted, or let go of by the application and met by a search.
        """
        return len(self._closing)

    def add(self, connection: StreamController) -> None:
        """
        Count a new connection (not yet connected, or just connected).
        """
        self._live[connection] = None
        self._unproven[connection] = None
        # connected_at is still 0.0 before connectionMade: a lower bound of
        # any idle_since, as the heap needs.
        heapq.heappush(self._idle, (connection.connected_at, next(self._seq), connection))

    def discard(self, connection: StreamController) -> bool:
        """
        Forget a connection that is gone (its descriptor closed).

        @return: whether it was L{closing}.
        """
        self._forget(connection)
        if connection in self._closing:
            self._closing.discard(connection)
            return True
        return False

    def forget_closing(self) -> None:
        """
        Stop waiting for the closing connections to close (they stay out of
        the table).
        """
        self._closing.clear()

    def _leave(self, connection: StreamController) -> None:
        """
        C{connection} was let go of and is closing: out of the table, its
        descriptor counted among the L{closing} ones.
        """
        self._forget(connection)
        self._closing.add(connection)

    def _forget(self, connection: StreamController) -> None:
        self._live.pop(connection, None)
        self._unproven.pop(connection, None)
        self._busy.pop(connection, None)
        heap = self._idle
        if len(heap) > 2 * len(self._live) + 64:
            # In place: a search in progress holds the list.
            live = self._live
            heap[:] = [entry for entry in heap if entry[2] in live]
            heapq.heapify(heap)

    def choose_victim(self, cap: int | None = None) -> tuple[StreamController, str] | None:
        """
        Take the connection to evict out of the table, with the rank it was
        chosen at (C{"unproven"}, C{"idle"} or C{"oldest"}); it is
        L{closing} from now on.

        Connections met on the way that the application let go of (no
        longer C{alive}, closing) leave the table without being evicted; if
        that brings the table under C{cap}, no victim is needed.

        @param cap: the size the table must get under (L{None}: evict one
            whatever).
        @return: the victim and its rank, or L{None} when there is none or
            none is needed any more.
        """
        live = self._live

        def room() -> bool:
            return cap is not None and len(live) < cap

        unproven = self._unproven
        while unproven:
            connection = next(iter(unproven))
            if not connection.alive:
                self._leave(connection)
                if room():
                    return None
            elif connection.proven:
                del unproven[connection]
            else:
                return self._take(connection), UNPROVEN
        idle = self._longest_idle(room)
        if idle is not None:
            return self._take(idle), IDLE
        if room():
            return None
        while live:
            connection = next(iter(live))
            if connection.alive:
                return self._take(connection), OLDEST
            self._leave(connection)
            if room():
                return None
        return None

    def _longest_idle(self, room: Callable[[], bool]) -> StreamController | None:
        """
        The connection idle the longest, if any is idle and C{room()} does
        not become true first (as closing connections leave).
        """
        heap, live, busy = self._idle, self._live, self._busy
        for _ in range(min(BUSY_RECHECKS, len(busy))):
            connection = next(iter(busy))
            del busy[connection]
            since = connection.idle_since
            if since is None:
                busy[connection] = None
            else:
                heapq.heappush(heap, (since, next(self._seq), connection))
        while heap:
            key, _, connection = heap[0]
            if connection not in live or connection in busy:
                heapq.heappop(heap)
                continue
            if not connection.alive:
                heapq.heappop(heap)
                self._leave(connection)
                if room():
                    return None
                continue
            since = connection.idle_since
            if since is None:
                heapq.heappop(heap)
                busy[connection] = None
            elif since > key:
                heapq.heapreplace(heap, (since, next(self._seq), connection))
            else:
                heapq.heappop(heap)
                return connection
        return None

    def _take(self, connection: StreamController) -> StreamController:
        self._leave(connection)
        return connection


class Admission:
    """
    A listener's admission control: the cap, evictions, the back-off when
    the process is out of descriptors, and their counts and log lines.

    @ivar max_connections: the cap (L{None}: none; the listener still
        evicts, one at a time, when it runs out of descriptors).
    @ivar table: the live connections.
    @ivar reactor: for the time and the back-off timers.
    """

    log = Logger()

    def __init__(
        self, reactor: IReactorTime, counters: Counters, max_connections: int | None = None
    ) -> None:
        """
        @param reactor: for the time and the back-off timers.
        @param counters: the listener's counters (back-offs are counted
            there; evictions are counted by each victim, into them).
        @param max_connections: the cap.
        """
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be >= 1 or None, not {max_connections}")
        self.max_connections = max_connections
        self.table = ConnectionTable()
        self.reactor = reactor
        self._counters = counters
        self._eviction_log = LogThrottle(ADMISSION_LOG_INTERVAL)
        self._guards: set[AcceptGuard] = set()

    # -- Admission ----------------------------------------------------------

    def admit(self, newcomer: object) -> None:
        """
        Make room for a new connection from C{newcomer} (its address) if the
        listener is at its cap: evict one connection. Call before the new
        connection is added to the table, so that it is never the victim.
        """
        cap = self.max_connections
        if cap is not None and len(self.table) >= cap:
            self._evict_one(cap, newcomer, cap=cap)

    def _evict_one(
        self, limit: int, newcomer: object, cause: str | None = None, cap: int | None = None
    ) -> bool:
        """
        Evict the connection that ranks first, and log it (throttled).

        @param limit: the cap reached, for the error.
        @param newcomer: who is being admitted, for the log.
        @param cause: why the listener is full when it is not at its cap.
        @param cap: no eviction is needed once the table is under this (see
            L{ConnectionTable.choose_victim}).
        @return: whether there was a connection to evict.
        """
        now = self.reactor.seconds()
        connections = len(self.table)
        chosen = self.table.choose_victim(cap)
        if chosen is None:
            return False
        victim, rank = chosen
        if rank == IDLE:
            since = victim.idle_since
            detail = f"idle {now - since:.1f} s" if since is not None else "idle"
        else:
            detail = f"connected {now - victim.connected_at:.1f} s ago"
        if cause is not None:
            detail = f"{detail}; {cause} at {connections} connections"
        fields: dict[str, Any] = dict(
            rank=rank,
            peer=victim.getpeername(),
            detail=detail,
            newcomer=newcomer,
            limit=limit,
            connections=connections,
        )
        throttle = self._eviction_log
        if throttle.due(now):
            self.log.info(
                "evicted the {rank} connection from {peer} ({detail}) to admit "
                "{newcomer}, at max_connections {limit} with {connections} "
                "connections; {quiet} evicted since the last such line (more "
                "within {interval:.0f} s at debug level only; all counted)",
                quiet=throttle.quiet,
                interval=ADMISSION_LOG_INTERVAL,
                **fields,
            )
            throttle.quiet = 0
        else:
            self.log.debug(
                "evicted the {rank} connection from {peer} ({detail}) to admit {newcomer}",
                **fields,
            )
        victim.evict(Evicted(rank, limit, detail))
        return True

    def add(self, connection: StreamController) -> None:
        """
        Count a new connection.
        """
        self.table.add(connection)

    def lost(self, connection: StreamController) -> None:
        """
        A connection is gone (its descriptor closed); listeners that waited
        for closing connections to close accept again.
        """
        if self.table.discard(connection) and self.table.closing < MAX_CLOSING:
            for guard in list(self._guards):
                guard.brake_released()

    # -- Accepting ----------------------------------------------------------

    def guard(self, port: Any) -> bool:
        """
        Make a listening port back off when it runs out of descriptors, and
        wait while too many connections are closing: wrap its listening
        socket in an L{AcceptGuard}.

        @param port: the C{IListeningPort}: a Twisted C{tcp.Port} or
            C{unix.Port} (what C{serverFromString}'s C{tcp:}, C{unix:} and
            C{ssl:} endpoints, C{listenTCP}, C{listenUNIX} and
            C{adoptStreamPort} give).
        @return: whether the port could be guarded (L{False} for a port of
            another kind, which keeps its own behaviour).
        """
        listener = getattr(port, "socket", None)
        if isinstance(listener, AcceptGuard):
            return True
        if not isinstance(listener, socket.socket) or not (
            hasattr(port, "startReading") and hasattr(port, "stopReading")
        ):
            self.log.debug("cannot guard {port}: not a Twisted socket port", port=port)
            return False
        guard = AcceptGuard(listener, port, self)
        port.socket = guard
        self._guards.add(guard)
        return True

    def braking(self) -> bool:
        """
        Whether too many connections are closing to accept more now.
        """
        return self.table.closing >= MAX_CLOSING

    def exhausted(self, guard: AcceptGuard, code: int, first: bool) -> None:
        """
        C{accept} on C{guard}'s port failed with C{code} (C{EMFILE}, ...):
        count a back-off, warn once per run of them (throttled), and evict a
        connection when that gives a descriptor back (one per back-off: the
        back-off paces the evictions).

        @param first: whether this starts a run of failures.
        """
        self._counters.add(ACCEPT_BACKOFF)
        name = errno.errorcode.get(code, str(code))
        if first:
            now = self.reactor.seconds()
            throttle = guard.warnings
            if throttle.due(now):
                self.log.warn(
                    "{port}: accepting failed with {errno} ({strerror}) at "
                    "{connections} connections (max_connections {cap}): not "
                    "accepting for {delay:g} s and up to {longest:g} s while it "
                    "lasts{evicting}; newcomers wait in the backlog. {quiet} "
                    "such runs since the last such line; each back-off is "
                    "counted ({key}).",
                    port=guard.describe(),
                    errno=name,
                    strerror=os.strerror(code),
                    evicting=(
                        ", evicting one connection each time"
                        if code in _OUT_OF_DESCRIPTORS
                        else ""
                    ),
                    connections=len(self.table),
                    cap=self.max_connections,
                    delay=ACCEPT_BACKOFF_MIN,
                    longest=ACCEPT_BACKOFF_MAX,
                    quiet=throttle.quiet,
                    key=ACCEPT_BACKOFF,
                )
                throttle.quiet = 0
        if code in _OUT_OF_DESCRIPTORS:
            self._evict_one(
                self.max_connections or len(self.table),
                "a connection waiting in the backlog",
                f"out of descriptors ({name})",
            )

    def unguard(self, guard: AcceptGuard) -> None:
        """
        C{guard}'s port is closed.
        """
        self._guards.discard(guard)
        if not self._guards and self.table.closing:
            self.table.forget_closing()


def _would_block(why: str) -> BlockingIOError:
    """
    What C{AcceptGuard.accept} raises to end Twisted's accept loop quietly:
    C{EAGAIN}, as when no connection waits.
    """
    return BlockingIOError(errno.EAGAIN, why)


class AcceptGuard:
    """
    Stands for a port's listening socket, so that a failure to accept backs
    off instead of resetting a connection, and accepting waits while too
    many connections are closing.

    Twisted (26.10, where this was checked) accepts in C{tcp.Port.doRead}, which
    C{unix.Port} inherits, through C{twisted.internet.tcp._accept}: it calls
    C{port.socket.accept()} until C{EAGAIN}, and on C{EMFILE} it closes its
    reserved descriptor, accepts the waiting connections and closes them at
    once (the client sees a reset), then reserves again. On C{ENFILE} (or
    C{EMFILE} with no reserve) it stops and the still readable socket makes
    the reactor call it again at once: a spin. Standing in for
    C{port.socket} is what lets a listener do otherwise without copying
    C{doRead}. Our C{accept}:

      - while L{MAX_CLOSING} evicted (or let go of) connections wait for
        their descriptor to close, pauses the port (C{stopReading}) until
        one does;
      - on C{EMFILE}, C{ENFILE}, C{ENOBUFS} or C{ENOMEM}, pauses the port for
        L{ACCEPT_BACKOFF_MIN} seconds (doubling while it lasts, up to
        L{ACCEPT_BACKOFF_MAX}), evicts one connection (descriptor errors),
        counts, warns once per run;

    and in both cases raises C{EAGAIN}, which ends Twisted's loop without
    touching its reserve. The connection stays in the kernel's backlog and
    is accepted when the port reads again. Everything else is the socket's
    (attributes are looked up on it).

    The private detail relied on: C{Port.doRead} accepting through
    C{self.socket.accept()}. C{test_admission} checks it on a real
    C{tcp.Port} and C{unix.Port}, so that a Twisted that stops doing so
    fails there.

    @ivar warnings: the throttle of this port's warnings.
    """

    def __init__(self, listener: socket.socket, port: Any, admission: Admission) -> None:
        """
        @param listener: the port's listening socket.
        @param port: the port.
        @param admission: whose table and counters to use.
        """
        self._listener = listener
        self._port = port
        self._admission = admission
        self._delay = ACCEPT_BACKOFF_MIN
        self._resume: IDelayedCall | None = None
        self._braked = False
        self._failing = False
        self.warnings = LogThrottle(ADMISSION_LOG_INTERVAL)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._listener, name)

    def describe(self) -> str:
        """
        The listening address, for log lines.
        """
        try:
            return str(self._listener.getsockname())
        except OSError:
            return repr(self._port)

    def accept(self) -> tuple[socket.socket, Any]:
        """
        Accept a connection, or raise C{EAGAIN} after pausing the port (see
        the class's docstring).
        """
        admission = self._admission
        if admission.braking():
            self._braked = True
            self._pause(ACCEPT_BACKOFF_MAX)
            raise _would_block(f"waiting for {admission.table.closing} closing connections to close")
        try:
            pair = self._listener.accept()
        except OSError as e:
            if e.errno in _EXHAUSTED:
                first, self._failing = not self._failing, True
                delay = self._delay
                self._delay = min(delay * 2, ACCEPT_BACKOFF_MAX)
                self._pause(delay)
                admission.exhausted(self, e.errno, first)
                raise _would_block(f"backing off for {delay:g} s: {e}") from None
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                # Caught up with the backlog: a run of failures is over.
                self._failing = False
                self._delay = ACCEPT_BACKOFF_MIN
            raise
        self._delay = ACCEPT_BACKOFF_MIN
        return pair

    def _pause(self, delay: float) -> None:
        """
        Stop accepting; accept again after C{delay} seconds at the latest.
        """
        self._port.stopReading()
        if self._resume is None:
            self._resume = self._admission.reactor.callLater(delay, self._resume_now)

    def _resume_now(self) -> None:
        self._resume = None
        if self._braked:
            # The evictions did not close within the longest back-off (a
            # transport without abortConnection): accept again regardless.
            self._braked = False
            self._admission.table.forget_closing()
        port = self._port
        if port.connected and not port.disconnecting:
            port.startReading()

    def brake_released(self) -> None:
        """
        Enough evictions completed: accept again now.
        """
        if self._braked:
            self._braked = False
            call, self._resume = self._resume, None
            if call is not None and call.active():
                call.cancel()
            self._resume_now()

    def close(self) -> None:
        """
        Close the listening socket (the port is closing): cancel the timer.
        """
        call, self._resume = self._resume, None
        if call is not None and call.active():
            call.cancel()
        self._admission.unguard(self)
        self._listener.close()
