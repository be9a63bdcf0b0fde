# -*- test-case-name: rpctransport.test.test_deadlines -*-
"""
Deadlines of a stream connection, sans I/O: the states a peer can hold us in,
and for how long.

A peer can hold a connection (and what it pins: a descriptor, buffers, a slot
under C{max_connections}) in three states that cost it nothing:

  - a record begun and never finished (slowloris): the I{record deadline};
  - connected and silent: the I{idle timeout}, shorter while the connection
    has never sent a whole record (the I{first-record timeout});
  - a reply written and never read: the I{write deadline}.

L{ConnectionDeadlines} keeps the times at which each state began, as the
adapter reports them, and says which deadline has passed
(L{ConnectionDeadlines.expired}) and when to look again
(L{ConnectionDeadlines.next_check}). It never reads a clock: every method
takes C{now}, so the stream controller drives it from its reactor and tests
from C{task.Clock}.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "SERVE_FIRST_RECORD_TIMEOUT",
    "SERVE_IDLE_TIMEOUT",
    "SERVE_RECORD_DEADLINE",
    "SERVE_WRITE_DEADLINE",
    "ConnectionDeadlines",
    "Deadlines",
    "Expiry",
]

SERVE_RECORD_DEADLINE: Final = 30.0
"""
C{rpctransport serve}'s record deadline, in seconds. A 16 MiB record (the
default limit) arrives in under 2 s at 100 Mbit/s; 30 s leaves room for a
slow link and still frees a trickling peer's slot in half a minute.
"""

SERVE_IDLE_TIMEOUT: Final = 300.0
"""
C{rpctransport serve}'s idle timeout, in seconds. Linux NFS clients close
idle connections after 5 minutes themselves; a server that waits as long
never cuts one that is about to be reused.
"""

SERVE_FIRST_RECORD_TIMEOUT: Final = 10.0
"""
C{rpctransport serve}'s idle timeout for a connection that has never sent a
whole record, in seconds. A client connects to make a call: 10 s covers a
slow client start and frees connections opened only to hold a slot.
"""

SERVE_WRITE_DEADLINE: Final = 60.0
"""
C{rpctransport serve}'s write deadline, in seconds: how long the peer may
leave a reply unread while the transport pushes back. A reader that stops
for a minute is gone; what its replies pin (up to a whole record) is freed.
"""


IDLE_RECHECK_FRACTION: Final = 4
"""
While the application (not the peer) is busy, the idle timeout is looked at
again after this fraction of it: a wake-up every few minutes costs nothing,
and an idle timeout is never late by more than a quarter.
"""


class Expiry(enum.Enum):
    """
    Which deadline passed.
    """

    RECORD = "record"
    IDLE = "idle"
    FIRST_RECORD = "first_record"
    WRITE = "write"


@dataclass(frozen=True)
class Deadlines:
    """
    A connection's deadlines, in seconds; L{None} turns one off.

    @ivar record_deadline: a record whose first mark has arrived must be
        complete within this.
    @ivar idle_timeout: a connection with nothing in progress and nothing
        received or sent for this long is closed.
    @ivar first_record_timeout: the idle timeout of a connection that has
        not yet sent a whole record (L{None}: the same as C{idle_timeout}).
    @ivar write_deadline: a write the transport pushes back on must be
        drained within this.
    """

    record_deadline: float | None = None
    idle_timeout: float | None = None
    first_record_timeout: float | None = None
    write_deadline: float | None = None

    def __post_init__(self) -> None:
        for name in ("record_deadline", "idle_timeout", "first_record_timeout", "write_deadline"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds or None, not {value!r}")

    @property
    def enabled(self) -> bool:
        """
        Whether any deadline is set.
        """
        return (
            self.record_deadline is not None
            or self.idle_timeout is not None
            or self.first_record_timeout is not None
            or self.write_deadline is not None
        )

    @classmethod
    def for_serve(cls) -> Deadlines:
        """
        The deadlines of C{rpctransport serve}: every one on.
        """
        return cls(
            record_deadline=SERVE_RECORD_DEADLINE,
            idle_timeout=SERVE_IDLE_TIMEOUT,
            first_record_timeout=SERVE_FIRST_RECORD_TIMEOUT,
            write_deadline=SERVE_WRITE_DEADLINE,
        )


class ConnectionDeadlines:
    """
    Where one connection stands against its L{Deadlines}.

    The adapter reports: activity (bytes in, a record written), a record in
    progress and its end, a write pushed back and drained, and the first
    whole record. Attributes are plain and public so that the per-chunk path
    sets them without a call.

    @ivar deadlines: the settings.
    @ivar connected_at: when the connection was made.
    @ivar last_activity: when bytes last arrived or a record was last written.
    @ivar proven: whether the peer has sent a whole record.
    @ivar record_since: since when a record has been in progress, or L{None}.
    @ivar record_bytes: how much of it had arrived when last reported.
    @ivar write_since: since when a write has been pushed back, or L{None}.
    @ivar write_bytes: the size of that write (or of what the transport
        held, for records sent without a Deferred; L{None}: unknown).
    """

    __slots__ = (
        "connected_at",
        "deadlines",
        "last_activity",
        "proven",
        "record_bytes",
        "record_since",
        "write_bytes",
        "write_since",
    )

    def __init__(self, deadlines: Deadlines, now: float) -> None:
        self.deadlines = deadlines
        self.connected_at = now
        self.last_activity = now
        self.proven = False
        self.record_since: float | None = None
        self.record_bytes = 0
        self.write_since: float | None = None
        self.write_bytes: int | None = 0

    def idle_limit(self) -> float | None:
        """
        The idle timeout in force: the first-record one until the peer has
        sent a whole record.
        """
        d = self.deadlines
        if not self.proven and d.first_record_timeout is not None:
            return d.first_record_timeout
        return d.idle_timeout

    def idle_since(self, waiting: bool) -> float | None:
        """
        Since when the connection has been idle, or L{None} when it is not:
        idle means the application waits for a record (C{waiting}), no record
        is half received and no write is pushed back.
        """
        if not waiting or self.record_since is not None or self.write_since is not None:
            return None
        return self.last_activity

    def expired(self, now: float, waiting: bool) -> Expiry | None:
        """
        The deadline that has passed at C{now}, if one has.

        @param waiting: whether the application waits for a record (a read is
            pending); a connection whose application is busy is not idle.
        """
        d = self.deadlines
        if (
            self.record_since is not None
            and d.record_deadline is not None
            and now >= self.record_since + d.record_deadline
        ):
            return Expiry.RECORD
        if (
            self.write_since is not None
            and d.write_deadline is not None
            and now >= self.write_since + d.write_deadline
        ):
            return Expiry.WRITE
        limit = self.idle_limit()
        since = self.idle_since(waiting)
        if limit is not None and since is not None and now >= since + limit:
            return Expiry.IDLE if self.proven else Expiry.FIRST_RECORD
        return None

    def next_check(self, now: float, waiting: bool) -> float | None:
        """
        The earliest time at which a deadline may pass (L{None}: never, as
        things stand). Never earlier than C{now}.

        @param waiting: as for L{expired}.
        """
        d = self.deadlines
        times = []
        if self.record_since is not None and d.record_deadline is not None:
            times.append(self.record_since + d.record_deadline)
        if self.write_since is not None and d.write_deadline is not None:
            times.append(self.write_since + d.write_deadline)
        limit = self.idle_limit()
        if limit is not None:
            since = self.idle_since(waiting)
            if since is not None:
                times.append(since + limit)
            elif self.record_since is None and self.write_since is None:
                # The application is busy, not the peer: look again in a
                # quarter of the period, so that once the application waits
                # again the timeout is late by at most that much.
                times.append(now + limit / IDLE_RECHECK_FRACTION)
        if not times:
            return None
        return max(now, min(times))
