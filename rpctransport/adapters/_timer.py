# -*- test-case-name: rpctransport.test.test_stream -*-
"""
The timers of the controllers: the inactivity timer behind C{set_timeout},
shared by every controller, and the one-call L{Alarm}.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger


class InactivityTimer:
    """
    Call C{notify()} once when nothing happened for C{seconds} while an
    operation was pending; activity re-arms it.

    The controller tells it two things: L{busy} (whether a read, write or
    shutdown is pending) after every change, and L{activity} whenever bytes
    move or an operation completes. Both do nothing unless L{enabled}, which
    a controller may test first so that a connection without a timeout pays
    nothing per record.

    @ivar enabled: whether a timeout is set.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._notify: Callable[[], object] | None = None
        self._seconds = -1.0
        self._call: IDelayedCall | None = None
        self._fired = False
        self.enabled = False

    def configure(self, notify: Callable[[], object], seconds: float, busy: bool) -> None:
        """
        Set (or, with a negative C{seconds}, clear) the timeout.
        """
        self.cancel()
        self._fired = False
        if seconds < 0:
            self._notify = None
            self._seconds = -1.0
            self.enabled = False
            return
        self._notify = notify
        self._seconds = seconds
        self.enabled = True
        self.busy(busy)

    def busy(self, busy: bool) -> None:
        """
        Say whether an operation is pending: arm the timer if so (unless it
        already fired and no activity happened since), disarm it if not.
        """
        if self._notify is None:
            return
        if busy:
            if self._call is None and not self._fired:
                self._call = self._clock.callLater(self._seconds, self._expired)
        elif self._call is not None:
            self._call.cancel()
            self._call = None

    def activity(self, busy: bool) -> None:
        """
        Something happened: start counting again.
        """
        if self._notify is None:
            return
        self._fired = False
        if self._call is not None and busy:
            self._call.reset(self._seconds)
        else:
            self.busy(busy)

    def cancel(self) -> None:
        """
        Disarm the timer for good (until L{configure} or L{busy}).
        """
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _expired(self) -> None:
        self._call = None
        self._fired = True
        notify = self._notify
        if notify is not None:
            try:
                notify()
            except Exception:
                self.log.failure("set_timeout notify callback raised")


class Alarm:
    """
    One C{DelayedCall} at a time for one purpose (a deadline, a linger, an
    abort): armed, moved earlier, or cancelled, without the caller keeping
    the call.
    """

    def __init__(self, clock: IReactorTime, fire: Callable[[], object]) -> None:
        self._clock = clock
        self._fire = fire
        self._call: IDelayedCall | None = None

    @property
    def armed(self) -> bool:
        """
        Whether the alarm will go off.
        """
        return self._call is not None

    def after(self, seconds: float) -> None:
        """
        Go off in C{seconds} (instead of when it was armed for).
        """
        self.cancel()
        self._call = self._clock.callLater(seconds, self._expired)

    def at_latest(self, when: float) -> None:
        """
        Go off no later than C{when}, in the clock's seconds.
        """
        call = self._call
        if call is not None:
            if call.getTime() <= when:
                return
            call.cancel()
        delay = max(0.0, when - self._clock.seconds())
        self._call = self._clock.callLater(delay, self._expired)

    def cancel(self) -> None:
        """
        Do not go off.
        """
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _expired(self) -> None:
        self._call = None
        self._fire()
