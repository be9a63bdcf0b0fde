# -*- test-case-name: rpctransport.test.test_stream,rpctransport.test.test_datagram -*-
"""
What the stream and datagram controllers share: their life-cycle enums, the
misuse checks, the reactor default, the pending read (L{PendingRead}) or
stream of records (L{RecordStream}), the descriptor they may own (L{OwnedDescriptor}) and the log throttle.

Each is an object a controller I{holds}; no controller inherits from here.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from typing import Any, Protocol, TypeVar, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IAddress, IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import BeforeRecord, IRecordReceiver, ReadResult
from ..sansio.connection import Life, Side
from ..sansio.errors import ControllerInactive, LocalProtocolError
from ..sansio.types import ACCEPT, InRule


def accept_all(size: int, peer: object) -> InRule:
    """
    The C{before_record} of a read that passed none: accept everything.
    """
    return ACCEPT


_Reactor = TypeVar("_Reactor")


def resolve_reactor(reactor: _Reactor | None) -> _Reactor:
    """
    C{reactor}, or the global reactor when it is L{None} (imported only then,
    so that nothing installs a reactor at import time). The global reactor
    is taken to provide the interface the caller's type names.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        return cast(_Reactor, global_reactor)
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


@implementer(IPushProducer)
class RecordStream:
    """
    The handle of a stream of records (C{receive_records}): who receives
    them, under which C{before_record}, and the producer the application
    pauses, resumes and stops it with. The controller that made it does the
    work (C{control}).

    @ivar receiver: the application's L{IRecordReceiver}.
    @ivar before_record: the stream's C{before_record}, or L{None} (every
        record accepted, without a question each).
    """

    __slots__ = ("receiver", "before_record", "_control")

    log = Logger()

    def __init__(
        self,
        receiver: IRecordReceiver,
        before_record: BeforeRecord | None,
        control: StreamControl,
    ) -> None:
        self.receiver = receiver
        self.before_record = before_record
        self._control = control

    def pauseProducing(self) -> None:
        """Stop deliveries until L{resumeProducing}; nothing is lost."""
        self._control.pause_stream(self)

    def resumeProducing(self) -> None:
        """Deliver what waits, and go on."""
        self._control.resume_stream(self)

    def stopProducing(self) -> None:
        """
        End the stream, without C{receiving_ended}: what is buffered stays
        for the next read. Does nothing once it has ended.
        """
        self._control.stop_stream(self)

    def ended(self, reason: Failure) -> None:
        """
        Tell the receiver that the records ended (once: the controller took
        the stream off its slot first), logging what it raises.
        """
        try:
            self.receiver.receiving_ended(reason)
        except Exception:
            self.log.failure("receiving_ended raised")

    def __repr__(self) -> str:
        return f"<RecordStream to {self.receiver!r}>"


class StreamControl(Protocol):
    """
    What a L{RecordStream} asks of the controller's reads.
    """

    def pause_stream(self, stream: RecordStream) -> None: ...

    def resume_stream(self, stream: RecordStream) -> None: ...

    def stop_stream(self, stream: RecordStream) -> None: ...


class PendingRead:
    """
    The one pending read of a controller: its Deferred, its C{peek} and its
    C{before_record}. The controller checks that a read may start; this
    holds it, runs its hook, and takes it off its slot before it is fired
    (so that a callback may start the next read).

    @ivar d: the pending read's Deferred, or L{None}.
    @ivar peek: the pending read's C{peek}, or L{None}.
    @ivar before_record: its C{before_record} (L{accept_all} when it gave
        none).
    @ivar in_hook: whether its C{before_record} is running now.
    @ivar stream: the stream of records being delivered, or L{None}.
    @ivar held: the stream of records paused by the application, or
        L{None}.
    """

    __slots__ = (
        "d", "peek", "before_record", "in_hook", "stream", "held", "canceller", "_cancel"
    )

    def __init__(self, cancel: Callable[[], object]) -> None:
        """
        @param cancel: what cancelling the read's Deferred calls (the
            controller's C{cancel_rd_polling}).
        """
        self.d: Deferred[ReadResult] | None = None
        self.peek: Callable[[], object] | None = None
        self.before_record: BeforeRecord = accept_all
        self.in_hook = False
        self.stream: RecordStream | None = None
        self.held: RecordStream | None = None
        self._cancel = cancel
        # The read Deferred's canceller, bound once.
        self.canceller = self._cancelled

    @property
    def wanted(self) -> bool:
        """
        Whether the application waits for records: a read is pending, or a
        stream delivers.
        """
        return self.d is not None or self.stream is not None

    def hold(self, stream: RecordStream) -> bool:
        """
        Pause C{stream}: from the delivering slot to the held one. Returns
        L{False} (and does nothing) when it is not the one delivering.
        """
        if self.stream is not stream:
            return False
        self.stream = None
        self.held = stream
        return True

    def unhold(self, stream: RecordStream) -> bool:
        """
        Resume C{stream}: from the held slot back to the delivering one.
        Returns L{False} (and does nothing) when it is not the one held.
        """
        if self.held is not stream:
            return False
        self.held = None
        self.stream = stream
        return True

    def has_stream(self, stream: RecordStream) -> bool:
        """
        Whether C{stream} is this read's stream, delivering or held.
        """
        return self.stream is stream or self.held is stream

    def take_stream(self) -> RecordStream | None:
        """
        Take the stream, delivering or paused, off its slots, to end it.
        """
        stream = self.stream or self.held
        self.stream = self.held = None
        return stream

    def begin(
        self, peek: Callable[[], object] | None, before_record: BeforeRecord | None
    ) -> Deferred[ReadResult]:
        """
        Make a read pending; the controller has checked that it may start.
        """
        d: Deferred[ReadResult] = Deferred(self.canceller)
        self.d = d
        self.peek = peek
        if before_record is not None:
            self.before_record = before_record
        return d

    def _cancelled(self, d: Deferred[ReadResult]) -> None:
        if self.d is d:
            self._cancel()

    def take(self) -> Deferred[ReadResult] | None:
        """
        Take the read off its slot, to fire it.
        """
        d = self.d
        self.d = None
        self.peek = None
        self.before_record = accept_all
        return d

    def decide(self, size: int, peer: IAddress) -> InRule:
        """
        Ask the read's C{before_record}, noting that it runs.
        """
        self.in_hook = True
        try:
            return self.before_record(size, peer)
        finally:
            self.in_hook = False

    def take_for_cancel(self) -> Deferred[ReadResult] | None:
        """
        Take the read off its slot to cancel it (C{cancel_rd_polling}).

        @raise LocalProtocolError: from inside its C{before_record}.
        """
        if self.in_hook:
            raise LocalProtocolError("cancel_rd_polling must not be called from before_record")
        return self.take()


def cancelled_read() -> Failure:
    """
    What a read cancelled with C{cancel_rd_polling} fails with.
    """
    return Failure(CancelledError("cancel_rd_polling"))


class OwnedDescriptor:
    """
    The descriptor a controller was adopted from, if any, and what its
    owner asked to happen to it on C{inactivate()}: C{preclose()} and a
    close (C{close_inactive_descr}), or nothing but its blocking mode given
    back.

    @ivar fd: the adopted descriptor, or L{None}.
    @ivar close_on_inactivate: C{close_inactive_descr}.
    """

    log = Logger()

    def __init__(
        self,
        fd: int | None,
        close_on_inactivate: bool,
        preclose: Callable[[], object] | None,
    ) -> None:
        self.fd = fd
        self.close_on_inactivate = close_on_inactivate
        self._preclose = preclose
        # Twisted's adoption makes the shared file description non-blocking;
        # the owner gets its own mode back when we let go without closing.
        self._blocking: bool | None = None
        if fd is not None:
            try:
                self._blocking = os.get_blocking(fd)
            except OSError:
                pass

    def preclose(self) -> None:
        """
        Call the owner's C{preclose}, logging what it raises.
        """
        if self._preclose is not None:
            try:
                self._preclose()
            except Exception:
                self.log.failure("preclose raised")

    def close(self) -> None:
        """
        Close the adopted descriptor (once).
        """
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None

    def give_back(self) -> None:
        """
        Let go of the adopted descriptor without closing it, in the blocking
        mode its owner had.
        """
        if self.fd is not None and self._blocking is not None:
            try:
                os.set_blocking(self.fd, self._blocking)
            except OSError:
                pass


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
