# -*- test-case-name: rpctransport.test.test_cli -*-
"""
The echo server as a Twisted service, for C{twistd -n rpctransport-echo}.

Its options are C{rpctransport serve}'s, built from the same table
(L{rpctransport.program.options.SERVE_OPTIONS}) and checked by the same
function; the service starts the same listeners (or the same worker
processes, with C{--workers N}) as C{serve} does.
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from .commands import (
    Listener,
    prepare_serving,
    registration_for,
    start_listeners,
    stream_options,
)
from .echo import EchoServer
from .errors import ProgramError
from .options import SERVE_OPTIONS, check_serve, usage_options
from .workers import WorkerPool, bind_shared

__all__ = ["EchoService", "Options", "WorkersService", "makeService"]


Options: type[usage.Options] = usage_options(
    SERVE_OPTIONS,
    synopsis="[--tcp HOST:PORT] [--udp HOST:PORT] [--unix PATH] [--listen ENDPOINT] "
    "[--tls HOST:PORT] [--starttls] ...",
    longdesc="Serve the ONC RPC echo test program: procedure 0 (NULL) and 1 (ECHO). "
    "Without listener options, listens on loopback TCP and UDP on ports the system "
    "picks. The options are those of 'rpctransport serve'.",
    check=check_serve,
)
"""The options of C{twistd rpctransport-echo}: C{rpctransport serve}'s."""


class EchoService(Service):
    """
    Starts the listeners when the service starts, stops them when it stops.

    @ivar args: the options, as C{rpctransport serve} parses them.
    """

    log = Logger()

    def __init__(self, args: argparse.Namespace, tls_options: Any = None, reactor: Any = None) -> None:
        """
        @param tls_options: the server TLS options (from
            L{prepare_serving}), for C{--tls} and C{--starttls}.
        """
        self.args = args
        self.tls_options = tls_options
        self.reactor = reactor
        self.server = EchoServer(args.program, args.program_version, args.max_record_size)
        self.listeners: list[Listener] = []
        self.registration: Any = None

    def privilegedStartService(self) -> None:
        """
        Listen where the options say (before twistd drops privileges, so
        that ports under 1024 work with C{--uid}), and log one line per
        listener (C{listening <tcp|udp|unix|tls> <address>}, as
        C{rpctransport serve} prints them).

        @raise SystemExit: with one line naming the listener that cannot
            start; twistd exits with it, non-zero, before the reactor runs.
        """
        super().privilegedStartService()
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        args = self.args
        started = start_listeners(
            reactor,
            self.server,
            tcp=args.tcp,
            udp=args.udp,
            unix=args.unix,
            listen=args.listen,
            tls=args.tls,
            adopted=getattr(args, "adopt", []),
            tls_options=self.tls_options,
            starttls=args.starttls,
            stream_options=stream_options(args),
        )
        outcome: list[Any] = []
        started.addBoth(outcome.append)
        if not outcome:
            # An endpoint that listens later (none of serve's own): its
            # outcome is logged when it comes.
            started.addCallback(self._listening)
            started.addErrback(self._cannot_listen, reactor)
            return
        if isinstance(outcome[0], Failure):
            if outcome[0].check(ProgramError):
                raise SystemExit(f"rpctransport-echo: {outcome[0].value}")
            outcome[0].raiseException()
        self._listening(outcome[0])

    def _listening(self, listeners: list[Any]) -> None:
        self.listeners = listeners
        for listener in listeners:
            self.log.info(
                "listening {kind} {address}", kind=listener.kind, address=listener.text
            )

    def _cannot_listen(self, failure: Failure, reactor: Any) -> None:
        self.log.failure("rpctransport-echo: cannot listen", failure)
        reactor.callWhenRunning(reactor.stop)

    def startService(self) -> None:
        """
        With C{--register}, register the program with the local rpcbind;
        when that fails, say so in one line and stop.
        """
        super().startService()
        if not self.args.register:
            return
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor

        def failed(failure: Failure) -> None:
            self.log.error(
                "rpctransport-echo: cannot register with rpcbind: {message}",
                message=str(failure.value),
            )
            reactor.callWhenRunning(reactor.stop)

        # Kept from the start: a stop while it registers still takes back
        # what it registered.
        self.registration = registration_for(self.server, self.listeners)
        self.registration.start().addErrback(failed)

    def stopService(self) -> Any:
        """
        Take the registrations back (C{--register}), stop every listener
        and let go of every connection.
        """
        super().stopService()
        results = [listener.stop() for listener in self.listeners]
        self.listeners = []
        self.server.stop()
        registration, self.registration = self.registration, None
        if registration is not None:
            results.append(registration.stop())
        return DeferredList([r for r in results if r is not None])


class WorkersService(Service):
    """
    C{--workers N}: this process binds the shared sockets and supervises N
    worker processes, replacing those that die (see
    L{rpctransport.program.workers}); the service's stop stops them. When
    they cannot be kept running, the reactor is stopped.
    """

    log = Logger()

    def __init__(self, args: argparse.Namespace, reactor: Any = None) -> None:
        self.args = args
        self.reactor = reactor
        self._pool: WorkerPool | None = None
        self._ran: Deferred[int] | None = None
        self._shared: list[Any] = []

    def privilegedStartService(self) -> None:
        """
        Bind the shared sockets (before twistd drops privileges).

        @raise SystemExit: with one line when one cannot be bound.
        """
        super().privilegedStartService()
        try:
            self._shared = bind_shared(self.args)
        except ProgramError as e:
            raise SystemExit(f"rpctransport-echo: {e}")

    def startService(self) -> None:
        """
        Start the workers, in a thread that supervises them; when they end
        without being told to, stop the reactor.
        """
        super().startService()
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        shared, self._shared = self._shared, []

        def say(line: str) -> None:
            reactor.callFromThread(self.log.info, "{line}", line=line)

        pool = self._pool = WorkerPool(self.args, shared, say=say, handle_signals=False)
        ran: Deferred[int] = deferToThread(pool.run)
        self._ran = ran

        def ended(status: int) -> int:
            if not pool.asked_to_stop:
                # They could not be kept running (see WorkerPool.run).
                self.log.error("rpctransport-echo: the workers ended (status {status})", status=status)
                if reactor.running:
                    reactor.stop()
            return status

        ran.addCallback(ended)

    def stopService(self) -> Deferred[Any]:
        """
        Stop the workers; the Deferred fires once they all exited.
        """
        super().stopService()
        if self._pool is None or self._ran is None:
            return succeed(None)
        self._pool.request_stop()
        return self._ran


def makeService(options: usage.Options) -> Service:
    """
    The service C{twistd} runs: checks the TLS files and the addresses now,
    before C{twistd} daemonizes, and exits with one line when they cannot
    be used.
    """
    args: argparse.Namespace = options.namespace()  # type: ignore[attr-defined]
    try:
        tls_options = prepare_serving(args)
    except ProgramError as e:
        raise SystemExit(f"rpctransport-echo: {e}")
    if args.workers > 1:
        # The workers read the TLS files themselves; checked here all the same.
        return WorkersService(args)
    return EchoService(args, tls_options)
