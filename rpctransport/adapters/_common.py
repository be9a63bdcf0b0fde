# -*- test-case-name: rpctransport.test.test_stream,rpctransport.test.test_datagram -*-
"""
What the stream and datagram controllers share: their state enums, the
misuse checks, the reactor default, and the pending-read slot.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, NoReturn

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from ..interfaces import BeforeRecord
from ..sansio.errors import ControllerBusy, ControllerInactive, LocalProtocolError
from ..sansio.types import ACCEPT, InRule
from ._timer import InactivityTimer


class Life(enum.Enum):
    """
    A controller's life cycle.

    C{STARTING} -> C{OPEN} -> C{LOST} (the connection or socket is gone);
    any state -> C{INACTIVE} (L{inactivate}, for good).
    """

    STARTING = "starting"
    OPEN = "open"
    LOST = "lost"
    INACTIVE = "inactive"


class Side(enum.Enum):
    """
    The state of one direction (reader or writer).

    C{IDLE} <-> C{BUSY}; the writer goes C{IDLE} -> C{SHUT} on shutdown;
    either goes to C{ABORTED} on C{abort_rw()}, for good.
    """

    IDLE = "idle"
    BUSY = "busy"
    SHUT = "shut"
    ABORTED = "aborted"


def accept_all(size: int, peer: object) -> InRule:
    """
    The C{before_record} of a read that passed none: accept everything.
    """
    return ACCEPT


def resolve_reactor(reactor: Any) -> Any:
    """
    C{reactor}, or the global reactor when it is L{None} (imported only then,
    so that nothing installs a reactor at import time).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        return global_reactor
    return reactor


def check_usable(life: Life, side: Side, what: str, name: str) -> None:
    """
    Raise L{ControllerInactive} when C{what} (an operation of the C{name}
    side) is called on an inactive controller or an aborted side.
    """
    if life is Life.INACTIVE:
        raise ControllerInactive(f"{what}: the controller is inactive")
    if side is Side.ABORTED:
        raise ControllerInactive(f"{what}: the {name} was aborted with abort_rw()")


def descriptor_of(life: Life, transport: Any, adopted_fd: int | None) -> int | None:
    """
    A controller's C{file_descr}: the adopted descriptor if there is one,
    else the transport's, else L{None} (and L{None} once inactive).
    """
    if life is Life.INACTIVE or transport is None:
        return None
    if adopted_fd is not None:
        return adopted_fd
    fileno = getattr(transport, "fileno", None)
    if fileno is None:
        return None
    try:
        return int(fileno())
    except (OSError, ValueError, AttributeError):
        return None


class ReadSlot:
    """
    The one pending read of a controller, shared by the stream and datagram
    controllers: starting it (with the misuse checks), cancelling it, and
    clearing it before its Deferred is fired.

    A subclass provides C{_life}, C{_read_side}, C{_timer}, C{_busy()} and
    C{_pump()} (hand records to the pending read), and may override
    C{_read_stopped()} (called when a read is cancelled).
    """

    _read_d: Deferred[Any] | None
    _peek: Callable[[], object] | None
    _before_record: BeforeRecord
    _in_before_record: bool
    _life: Life
    _read_side: Side
    _timer: InactivityTimer
    _reactor: Any

    def _init_read_slot(self) -> None:
        self._read_d = None
        self._peek = None
        self._before_record = accept_all
        self._in_before_record = False

    @property
    def reactor(self) -> Any:
        """
        The reactor this controller's timers run on.
        """
        return self._reactor

    @property
    def reading(self) -> bool:
        """
        Whether a read is pending.
        """
        return self._read_d is not None

    def _busy(self) -> bool:
        raise NotImplementedError()

    def _pump(self) -> None:
        raise NotImplementedError()

    def _read_stopped(self) -> None:
        """
        A read was cancelled; a subclass may resume flow here.
        """

    def _begin_read(
        self, peek: Callable[[], object] | None, before_record: BeforeRecord | None
    ) -> Deferred[Any]:
        """
        Check that a read may start, and make it the pending read.

        This runs once per record: the checks are one test in the common
        case, and the timer is left alone unless a timeout is set.
        """
        if self._read_d is not None or self._read_side is not Side.IDLE or (
            self._life is Life.INACTIVE
        ):
            self._refuse_read()
        d: Deferred[Any] = Deferred(self._cancel_read)
        self._read_d = d
        self._peek = peek
        if before_record is not None:
            self._before_record = before_record
        if self._timer.enabled:
            self._timer.busy(True)
        return d

    def _refuse_read(self) -> NoReturn:
        """
        Raise why a read may not start now.
        """
        check_usable(self._life, self._read_side, "start_reading", "reader")
        if self._read_side is Side.SHUT:
            raise ControllerInactive("start_reading: the controller was shut down")
        raise ControllerBusy("start_reading: a read is already pending")

    def cancel_rd_polling(self) -> None:
        """
        Stop the pending read (its Deferred fails with C{CancelledError});
        what was received stays for the next read.
        """
        if self._in_before_record:
            raise LocalProtocolError("cancel_rd_polling must not be called from before_record")
        d = self._read_d
        if d is None:
            return
        self._clear_read()
        self._timer.busy(self._busy())
        self._read_stopped()
        d.errback(Failure(CancelledError("cancel_rd_polling")))

    def _cancel_read(self, d: Deferred[Any]) -> None:
        if self._read_d is d:
            self.cancel_rd_polling()

    def _clear_read(self) -> None:
        """
        Take the read off its slot (before firing its Deferred).
        """
        self._read_d = None
        self._peek = None
        self._before_record = accept_all

    def _decide_for_read(self, size: int, peer: object) -> InRule:
        """
        Ask the pending read's C{before_record}, noting that we are inside it.
        """
        self._in_before_record = True
        try:
            return self._before_record(size, peer)
        finally:
            self._in_before_record = False

    def set_timeout(self, notify: Callable[[], object], seconds: float) -> None:
        """
        See L{IRpcMultiplexController.set_timeout}.
        """
        self._timer.configure(notify, seconds, self._busy())


class LogThrottle:
    """
    At most one info-level line per C{interval} seconds for one kind of
    event (a flood must not flood the log); the events in between are
    counted, for the next line to say how many there were.

    @ivar interval: seconds between info-level lines.
    @ivar quiet: how many events went to debug level since the last line;
        the caller resets it once it has logged it.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None
        self.quiet = 0

    def due(self, now: float) -> bool:
        """
        Whether an event at C{now} gets an info-level line; if not, it is
        one more quiet event.
        """
        if self._last is not None and now - self._last < self.interval:
            self.quiet += 1
            return False
        self._last = now
        return True
