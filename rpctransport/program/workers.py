# -*- test-case-name: rpctransport.test.test_cli -*-
"""
C{rpctransport serve --workers N}: several processes serving the same
sockets.

The parent (L{serve_workers}) binds the TCP and UDP sockets, then starts N
worker processes (C{python -m rpctransport serve --adopt tcp:FD ...}) that
inherit the sockets and serve them; the kernel hands each new connection, and
each datagram, to one of the workers. The workers are new interpreters, not
C{fork()}ed copies of the parent: nothing of the parent (threads, a reactor
created by an import, locks held at the fork) leaks into them, and they start
the same way a single C{serve} does. They stop when the parent forwards
SIGTERM or SIGINT, and also when the parent dies without forwarding anything:
each watches a pipe whose only writer is the parent (L{watch_parent}), which
the kernel closes when the parent exits however it exits. Each says it
serves by writing a byte to another pipe (L{say_ready}).

The parent runs no reactor; a worker is a C{serve} with C{--adopt} (see
L{rpctransport.program.commands.serve}).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .addresses import is_ipv6, socket_text

__all__ = [
    "WORKER_START_TIMEOUT",
    "WORKER_STOP_TIMEOUT",
    "WorkerPool",
    "bind_shared",
    "say_ready",
    "serve_workers",
    "watch_parent",
]

WORKER_STOP_TIMEOUT = 30.0
"""
Seconds the workers of C{serve --workers} have to exit after the parent
forwarded a stop; then they are killed.
"""

WORKER_START_TIMEOUT = 60.0
"""
Seconds the workers of C{serve --workers} have to say they serve. Generous:
each imports Twisted first, which takes seconds on a loaded machine.
"""


# -- The workers' side ---------------------------------------------------------


def watch_parent(reactor: Any, fd: int, stop: Callable[[], None]) -> None:
    """
    Call C{stop} in the reactor thread when C{fd}, the read end of a pipe
    whose only writer is our parent, reaches its end: the parent is gone.
    """

    def wait() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        reactor.callFromThread(stop)

    threading.Thread(target=wait, name="watch-parent", daemon=True).start()


def say_ready(fd: int) -> None:
    """
    Tell the parent, through C{fd}, that this worker serves; close C{fd}.
    """
    try:
        os.write(fd, b"r")
    except OSError:
        pass
    os.close(fd)


# -- The parent's side ---------------------------------------------------------


def serve_workers(args: argparse.Namespace) -> int:
    """
    C{rpctransport serve --workers N} (N > 1): bind the TCP and UDP sockets
    here, start N workers that serve them, and wait; forward SIGTERM and
    SIGINT to the workers.

    @return: the exit status: 0 when the workers stopped because they were
        told to, 1 when one exited on its own (the others are then stopped),
        2 when a socket cannot be bound or a worker cannot start (within
        L{WORKER_START_TIMEOUT}).
    """
    try:
        shared = bind_shared(args)
    except OSError as e:
        print(f"rpctransport serve: cannot listen: {e}", file=sys.stderr, flush=True)
        return 2
    return WorkerPool(args, shared).run()


def bind_shared(args: argparse.Namespace) -> list[tuple[str, socket.socket]]:
    """
    Bind the sockets the workers of C{args} (C{serve}'s options) share:
    C{--tcp} and C{--udp}, loopback TCP and UDP when neither is given.

    @raise OSError: when one cannot be bound (those bound are closed).
    """
    tcp, udp = args.tcp, args.udp
    if not (tcp or udp):
        tcp, udp = [("127.0.0.1", 0)], [("127.0.0.1", 0)]
    return _bind_all(tcp, udp)


def _bind_all(
    tcp: list[tuple[str, int]], udp: list[tuple[str, int]]
) -> list[tuple[str, socket.socket]]:
    """
    Bind every socket the workers share, C{("tcp", socket)} or C{("udp",
    socket)}; if one cannot be bound, close those already bound.

    @raise OSError: when a socket cannot be bound.
    """
    shared: list[tuple[str, socket.socket]] = []
    try:
        for kind, addresses in (("tcp", tcp), ("udp", udp)):
            for host, port in addresses:
                shared.append((kind, _bind_shared(kind, host, port)))
    except OSError:
        for _, sock in shared:
            sock.close()
        raise
    return shared


def _bind_shared(kind: str, host: str, port: int) -> socket.socket:
    """
    A socket for the workers to share: TCP bound and listening,
    non-blocking (as C{adoptStreamPort} requires; the flag belongs to the
    open file, so every worker sees it), or UDP bound.
    """
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    if kind == "tcp":
        sock = socket.socket(family, socket.SOCK_STREAM)
        # As Twisted's own TCP ports do: a restarted server rebinds its port
        # while old connections are in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(socket.SOMAXCONN)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
    else:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
    return sock


def _worker_argv(
    args: argparse.Namespace,
    shared: list[tuple[str, socket.socket]],
    parent_fd: int,
    ready_fd: int,
) -> list[str]:
    """
    The command line of a worker: C{serve} with the parent's options, the
    shared sockets to adopt and the two pipes.
    """
    argv = [
        sys.executable, "-m", "rpctransport", "serve",
        "--program", str(args.program),
        "--program-version", str(args.program_version),
        "--max-record-size", str(args.max_record_size),
        "--record-deadline", str(args.record_deadline or 0),
        "--idle-timeout", str(args.idle_timeout or 0),
        "--first-record-timeout", str(args.first_record_timeout or 0),
        "--write-deadline", str(args.write_deadline or 0),
        "--max-connections", str(args.max_connections or 0),
        "--parent-fd", str(parent_fd),
        "--ready-fd", str(ready_fd),
    ]
    for kind, sock in shared:
        argv += ["--adopt", f"{kind}:{sock.fileno()}"]
    return argv


def _worker_env() -> dict[str, str]:
    """
    The workers' environment: ours, with the directory that holds this
    C{rpctransport} first on C{PYTHONPATH}, so that C{-m rpctransport}
    finds the same code the parent runs (a source checkout, say).
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    paths = env.get("PYTHONPATH", "").split(os.pathsep) if env.get("PYTHONPATH") else []
    if paths[:1] != [root]:
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


class WorkerPool:
    """
    The parent of C{serve --workers N}: starts the workers, waits for them to
    serve, forwards stops, and works out the exit status.

    It runs no reactor: L{run} blocks until every worker exited. The
    C{twistd} plugin runs it in a thread (C{handle_signals=False}; twistd
    has the signals and calls L{request_stop}).

    @ivar stop_requested: when (C{time.monotonic}) a stop was first asked
        for, by a signal or because a worker failed; L{None} until then.
    @ivar status: the exit status so far (see L{serve_workers}).
    """

    def __init__(
        self,
        args: argparse.Namespace,
        shared: list[tuple[str, socket.socket]],
        say: Callable[[str], None] | None = None,
        handle_signals: bool = True,
    ) -> None:
        """
        @param say: how the C{listening} lines and the summary line are
            told (default: printed, the listening lines on standard output,
            the summary on standard error).
        @param handle_signals: forward SIGINT and SIGTERM to the workers
            (only from the main thread).
        """
        self.args = args
        self._say = say
        self._handle_signals = handle_signals
        self.count: int = args.workers
        self.shared = shared
        self.workers: list[subprocess.Popen[bytes]] = []
        self.stop_requested: float | None = None
        self.status = 0

    def run(self) -> int:
        """
        Start the workers, announce the listeners once all serve, supervise
        them until they all exited; return the exit status.
        """
        # The workers hold the read end; the parent holds the write end and never
        # writes: when the parent exits, however it exits, the workers see EOF.
        watch_read, watch_write = os.pipe()
        # Each worker writes a byte here once it serves.
        ready_read, ready_write = os.pipe()
        argv = _worker_argv(self.args, self.shared, watch_read, ready_write)
        fds = [sock.fileno() for _, sock in self.shared] + [watch_read, ready_write]
        self._install_handlers()
        try:
            self._start(argv, fds)
        except OSError as e:
            print(f"rpctransport serve: cannot start a worker: {e}", file=sys.stderr, flush=True)
            self.stop()
            for worker in self.workers:
                worker.wait()
            return 2
        finally:
            os.close(watch_read)
            os.close(ready_write)
        texts = [(kind, socket_text(sock)) for kind, sock in self.shared]
        for _, sock in self.shared:
            # The workers have their own copies.
            sock.close()
        # The listening lines mean "serving", as for a single process: wait for
        # every worker to say so (EOF first: they all exited).
        ready = self._wait_ready(ready_read)
        os.close(ready_read)
        self._announce(ready, texts)
        self._supervise()
        os.close(watch_write)
        return self._exit_status()

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """
        Send C{signum} to every worker still running.
        """
        for worker in self.workers:
            if worker.poll() is None:
                try:
                    worker.send_signal(signum)
                except ProcessLookupError:
                    pass

    def request_stop(self) -> None:
        """
        Remember when the first stop was asked for, and stop the workers.
        """
        if self.stop_requested is None:
            self.stop_requested = time.monotonic()
        self.stop()

    def _on_signal(self, signum: int, frame: object) -> None:
        self.request_stop()

    def _install_handlers(self) -> None:
        if not self._handle_signals:
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, self._on_signal)

    def _start(self, argv: list[str], fds: list[int]) -> None:
        env = _worker_env()
        for _ in range(self.count):
            if self.stop_requested is not None:
                # A stop came (from another thread: twistd's) before all
                # started: start no more, stop those that did.
                self.stop()
                return
            self.workers.append(
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, pass_fds=fds, env=env)
            )
        if self.stop_requested is not None:
            self.stop()

    def _wait_ready(self, fd: int) -> int:
        """
        Read the workers' readiness bytes from C{fd} until every worker's
        came, the pipe ends (every worker exited), a stop is asked for, or
        L{WORKER_START_TIMEOUT} passes; return how many came.
        """
        ready = 0
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while ready < self.count and self.stop_requested is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([fd], [], [], min(left, 0.5))
            if readable:
                got = os.read(fd, self.count - ready)
                if not got:
                    break
                ready += len(got)
        return ready

    def _announce(self, ready: int, texts: list[tuple[str, str]]) -> None:
        """
        Print the listening lines once C{ready} is every worker; stop them
        all if some did not start.
        """
        if self.stop_requested is not None:
            return
        if ready < self.count:
            self.status = 2
            print(
                f"rpctransport serve: {ready} of {self.count} workers started; stopping",
                file=sys.stderr,
                flush=True,
            )
            self.request_stop()
            return
        for kind, text in texts:
            self._tell(f"listening {kind} {text}")
        self._tell(
            f"serving program {self.args.program} ({self.args.program:#x}) version "
            f"{self.args.program_version} from {self.count} worker processes "
            f"{', '.join(str(w.pid) for w in self.workers)}; stop with Ctrl-C",
            sys.stderr,
        )

    def _tell(self, line: str, file: Any = None) -> None:
        if self._say is not None:
            self._say(line)
        else:
            print(line, file=file or sys.stdout, flush=True)

    def _supervise(self) -> None:
        """
        Wait for every worker to exit: stop the others when one exits on its
        own, kill them all when a stop takes longer than
        L{WORKER_STOP_TIMEOUT}.
        """
        while any(worker.poll() is None for worker in self.workers):
            if self.stop_requested is None:
                self._stop_if_one_quit()
            elif time.monotonic() - self.stop_requested > WORKER_STOP_TIMEOUT:
                self.stop(signal.SIGKILL)
            time.sleep(0.1)

    def _stop_if_one_quit(self) -> None:
        quitter = next((w for w in self.workers if w.returncode is not None), None)
        if quitter is not None:
            print(
                f"rpctransport serve: worker {quitter.pid} exited with status "
                f"{quitter.returncode}; stopping the others",
                file=sys.stderr,
                flush=True,
            )
            self.status = 1
            self.request_stop()

    def _exit_status(self) -> int:
        # A worker told to stop before it had installed its handlers (while it
        # was still importing) ends by the signal itself: a stop all the same.
        stopped = (0, -signal.SIGTERM, -signal.SIGINT)
        if not self.status and any(w.returncode not in stopped for w in self.workers):
            return 1
        return self.status
