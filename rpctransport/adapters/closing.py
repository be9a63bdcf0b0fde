# -*- test-case-name: rpctransport.test.test_stream -*-
"""
The closing part of a stream controller: the shutdown (half-close, then the
peer's EOF within the linger time), C{abort_rw}, C{inactivate} and the end
of the connection.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from ..sansio.connection import Life, Output, TLSState
from ..sansio.errors import ControllerBusy, ControllerInactive
from ._timer import Alarm
from ._twisted import close_duplicate_only
from .common import OwnedDescriptor
from .link import StreamLink
from .reads import StreamReads
from .starttls import TLSDriver
from .writes import StreamWrites

__all__ = ["StreamClosing"]


class StreamClosing:
    """
    The ends of one stream controller (see the module docstring).

    @ivar linger: seconds a shutdown waits for the peer's EOF, and that a
        closed connection may take to flush before it is aborted.
    """

    def __init__(
        self,
        link: StreamLink,
        reads: StreamReads,
        writes: StreamWrites,
        tls: TLSDriver,
        descriptor: OwnedDescriptor,
        linger: float,
    ) -> None:
        self._link = link
        self._conn = link.conn
        self._reads = reads
        self._writes = writes
        self._tls = tls
        self.descriptor = descriptor
        self.linger = linger
        self._linger = Alarm(link.reactor, self._linger_expired)
        self._closer = Alarm(link.reactor, link.abort_transport)

    # -- Shutting down ------------------------------------------------------------

    def start_shutting_down(self) -> Deferred[None]:
        """
        Half-close, then wait for the peer's EOF at most L{linger} seconds.
        """
        link = self._link
        conn = self._conn
        if conn.life is Life.INACTIVE:
            raise ControllerInactive("start_shutting_down: the controller is inactive")
        if link.shutdown_d is not None:
            raise ControllerBusy("start_shutting_down: a shutdown is already in progress")
        if conn.life is Life.LOST:
            reason = link.lost_reason
            if reason is None or reason.check(ConnectionDone):
                return succeed(None)
            return fail(reason)
        d: Deferred[None] = Deferred(lambda _: self.cancel_shutting_down())
        link.shutdown_d = d
        conn.start_shutdown()
        if not self._linger.armed:
            self._linger.after(self.linger)
        if conn.output is not Output.CLOSED:
            self._close_output()
        link.timer.busy(True)
        self.maybe_finish()
        return d

    def _close_output(self) -> None:
        transport: Any = self._link.transport
        self._writes.release()
        lose_write = getattr(transport, "loseWriteConnection", None)
        if lose_write is not None and self._conn.tls is TLSState.PLAIN:
            lose_write()
        else:
            # TLS: close_notify, then the peer's close_notify (or EOF) ends
            # the connection. A TCP half-close under TLS would be a
            # truncation attack's signature.
            self._conn.output_closed()
            transport.loseConnection()

    def cancel_shutting_down(self) -> None:
        """
        Cancel a shutdown in progress; its Deferred fails with
        C{CancelledError}.
        """
        link = self._link
        d, link.shutdown_d = link.shutdown_d, None
        self._linger.cancel()
        if d is not None:
            self._conn.end_shutdown(False)
            link.timer.busy(link.busy())
            d.errback(Failure(CancelledError("cancel_shutting_down")))

    def maybe_finish(self) -> None:
        """
        Complete the shutdown if both directions are closed.
        """
        if self._conn.shutdown_complete:
            self._finish()

    def _finish(self) -> None:
        link = self._link
        d, link.shutdown_d = link.shutdown_d, None
        self._linger.cancel()
        self._conn.end_shutdown(True)
        if d is not None:
            link.timer.activity(link.busy())
            d.callback(None)

    def _linger_expired(self) -> None:
        self._link.log.debug(
            "shutdown: no EOF from {peer} within {linger} s",
            peer=self._link.peer,
            linger=self.linger,
        )
        self._finish()

    # -- Aborting and inactivating ---------------------------------------------------

    def abort_rw(self) -> None:
        """
        End reader and writer for good; their Deferreds never fire.
        """
        link = self._link
        self._conn.abort_rw()
        link.read.take()
        link.drop_stream()
        # Its Deferred never fires; what the transport holds still has the
        # write deadline to leave (a peer that never reads is still cut off).
        link.write_d = None
        self._conn.reader.close(ControllerInactive("the reader was aborted with abort_rw()"))
        link.timer.busy(link.busy())
        if self._conn.resume_for_abort():
            # Keep reading (and discarding) so that a shutdown sees the EOF.
            link.transport.resumeProducing()

    def inactivate(self) -> None:
        """
        Release everything now; see L{IRpcMultiplexController.inactivate
        <rpctransport.interfaces.IRpcMultiplexController.inactivate>}.
        """
        link = self._link
        conn = self._conn
        if conn.life is Life.INACTIVE:
            return
        was_open = conn.life is Life.OPEN
        conn.inactivate()
        link.read.take()
        link.drop_stream()
        link.write_d = link.shutdown_d = None
        self._linger.cancel()
        link.deadline.cancel()
        self._tls.connection_lost(None)
        link.timer.cancel()
        transport = link.transport if was_open else None
        descriptor = self.descriptor
        if not descriptor.close_on_inactivate:
            if transport is not None:
                self._detach(transport)
            return
        descriptor.preclose()
        if transport is not None:
            pushed_back = conn.output is Output.PUSHED_BACK
            self._writes.release()
            transport.loseConnection()
            if (pushed_back or conn.tls is TLSState.ESTABLISHED) and hasattr(
                transport, "abortConnection"
            ):
                # The transport holds more than its buffer size for a peer that
                # is slow to read, or TLS waits for the peer's close_notify
                # before it closes the socket: flush it, but not forever.
                self._closer.after(self.linger)
        descriptor.close()

    def _detach(self, transport: Any) -> None:
        """
        Let go of the connection without touching the owner's socket: close
        only Twisted's duplicate of it (C{test_stream_sockets} checks that
        the owner's socket stays usable).
        """
        if close_duplicate_only(transport, Failure(ConnectionDone("inactivated"))):
            self.descriptor.give_back()
            return
        # Not a socket Twisted duplicated: leave it open, but stop consuming
        # what the owner may still want to read.
        if self._conn.release():
            transport.unregisterProducer()
        pause = getattr(transport, "pauseProducing", None)
        if pause is not None:
            pause()

    # -- The end -------------------------------------------------------------------

    def stop_timers(self) -> None:
        """
        The connection is gone: no timer of it may run.
        """
        self._closer.cancel()
        self._link.deadline.cancel()
        self._tls.stop()

    def connection_lost(self, reason: Failure) -> bool:
        """
        The connection is gone: deliver what was complete, then fail every
        pending operation with C{reason} (or with why we closed it).

        @return: L{False} when the controller was inactive, and nothing was
            left to fail.
        """
        link = self._link
        conn = self._conn
        self.stop_timers()
        if conn.life is Life.INACTIVE:
            return False
        if link.close_reason is not None:
            reason = link.close_reason
        conn.lost()
        link.lost_reason = reason
        link.timer.cancel()
        self._tls.connection_lost(reason)
        self._reads.input_ended()
        write_d = link.take_write()
        if write_d is not None:
            write_d.errback(reason)
        d, link.shutdown_d = link.shutdown_d, None
        self._linger.cancel()
        conn.end_shutdown(False)
        if d is not None:
            if reason.check(ConnectionDone):
                d.callback(None)
            else:
                d.errback(reason)
        return True
