# -*- test-case-name: rpctransport.test.test_workers -*-
"""
C{rpctransport serve --workers N}: several processes serving the same
listeners; and the sockets a service manager passes (C{serve --systemd}).

The parent (L{serve_workers}) binds every listener (TCP, UDP, UNIX, TLS),
or takes those a service manager passed it, then starts N worker processes
(C{python -m rpctransport serve --adopt tcp:FD ...}) that inherit the
sockets and serve them; the kernel hands each new connection, and each
datagram, to one of the workers. A TLS listener is a plain TCP socket here:
each worker builds its TLS options from the same C{--tls-*} files. With
C{--reuse-port}, TCP and UDP listeners are not shared: each worker binds its
own socket with C{SO_REUSEPORT} (C{--bind-reuse-port tcp:HOST:PORT}) and the
kernel balances between them.

The workers are new interpreters, not C{fork()}ed copies of the parent:
nothing of the parent (threads, a reactor created by an import, locks held
at the fork) leaks into them, and they start the same way a single C{serve}
does. They stop when the parent forwards SIGTERM or SIGINT, and also when
the parent dies without forwarding anything: each watches a pipe whose only
writer is the parent (L{watch_parent}), which the kernel closes when the
parent exits however it exits. Each says it serves by writing a byte to
another pipe (L{say_ready}). A worker that dies while the others serve is
replaced, with a back-off, at most L{MAX_RESTARTS} times in
L{RESTART_WINDOW} seconds; the parent keeps the shared sockets open for
that.

The parent runs no reactor; a worker is a C{serve} with C{--adopt} (see
L{rpctransport.program.commands.serve}).
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .addresses import NO_REACTOR, is_ipv6
from .errors import ProgramError, explain_listen_failure, read_tls_files
from .options import OptionError, resolve_datagram_host, serve_namespace

__all__ = [
    "MAX_RESTARTS",
    "RESTART_DELAY",
    "RESTART_DELAY_MAX",
    "RESTART_WINDOW",
    "WORKER_START_TIMEOUT",
    "WORKER_STOP_TIMEOUT",
    "SharedSocket",
    "WorkerPool",
    "bind_shared",
    "bind_socket",
    "passed_sockets",
    "say_ready",
    "serve_workers",
    "socket_address_text",
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

RESTART_DELAY = 0.1
"""
Seconds before the first replacement of a worker that died. Short: the
other workers serve meanwhile, but they carry its share of the load, and a
worker killed by an operator or by the OOM killer should come back at once.
Each further restart within L{RESTART_WINDOW} waits twice as long.
"""

RESTART_DELAY_MAX = 5.0
"""
The longest wait before a replacement: a worker that keeps dying is retried
at this pace, not hammered, until L{MAX_RESTARTS} says stop.
"""

RESTART_WINDOW = 60.0
"""Seconds over which restarts are counted against L{MAX_RESTARTS}."""

MAX_RESTARTS = 10
"""
Restarts allowed within L{RESTART_WINDOW}; one more and the parent stops the
other workers and exits 1. A worker that dies this often dies of something
a restart does not fix (a bug hit by every start, a file gone); a service
manager watching the parent sees the failure and applies its own policy
(systemd's C{Restart=}, C{StartLimitBurst=}) instead of a loop hidden
here. With the doubling delays the tenth restart comes about 25 s after the
first, so a crash loop is given up on within the minute.
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


# -- Sockets ---------------------------------------------------------------------


def _bound_socket(kind: str, host: str, port: int, reuse_port: bool) -> socket.socket:
    """
    A TCP (C{tcp}, C{tls}) or UDP (C{udp}) socket bound to C{host:port},
    with the options a listener needs, not listening yet.

    @raise OSError: when it cannot be bound (the socket is closed).
    """
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    stream = kind != "udp"
    sock = socket.socket(family, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
    try:
        if stream:
            # As Twisted's own TCP ports do: a restarted server rebinds its
            # port while old connections are in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def bind_socket(kind: str, host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """
    A socket for C{kind} (C{tcp} and C{tls}: a stream socket, bound and
    listening with the kernel's largest backlog and non-blocking, as
    C{adoptStreamPort} requires, the flag belonging to the open file that
    every worker shares; C{udp}: a bound datagram socket).

    @param reuse_port: set C{SO_REUSEPORT} first, so that every worker binds
        the same address and the kernel balances between their sockets.
    @raise OSError: when it cannot be bound.
    """
    stream = kind != "udp"
    sock = _bound_socket(kind, host, port, reuse_port)
    try:
        if stream:
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def socket_address_text(sock: socket.socket) -> str:
    """
    The address of a bound socket as the C{listening} lines write it:
    C{HOST:PORT}, C{[::1]:PORT} for IPv6, the path of a UNIX socket.
    """
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return address.decode(errors="replace") if isinstance(address, bytes) else str(address)
    host, port = address[:2]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


_STREAM_FAMILIES = {socket.AF_INET: "tcp", socket.AF_INET6: "tcp", socket.AF_UNIX: "unix"}


def passed_sockets() -> list[tuple[str, int]]:
    """
    The listening sockets a service manager passed this process, by
    systemd's C{LISTEN_FDS} convention, each as C{(kind, fd)}: C{tcp} (a
    stream socket of the INET or INET6 family), C{unix} (a UNIX stream
    socket), C{udp} (an INET or INET6 datagram socket), or C{tls} (a stream
    socket named C{tls}, C{FileDescriptorName=tls}: TLS from the first byte).

    They are found through Twisted's C{systemd:} endpoints, which read the
    environment when Twisted is imported (and take C{LISTEN_FDS} and
    C{LISTEN_PID} out of it); like them, this needs C{LISTEN_FDNAMES},
    which systemd always sets. Each descriptor is made close-on-exec, as
    C{sd_listen_fds} does.

    @raise ProgramError: when none was passed, or one is of a kind not
        served.
    """
    from twisted.internet.endpoints import serverFromString

    fds: list[int] = []
    while True:
        try:
            endpoint = serverFromString(NO_REACTOR, f"systemd:domain=INET:index={len(fds)}")
        except IndexError:
            break
        fds.append(endpoint.fileno)
    if not fds:
        raise ProgramError(
            "--systemd: no sockets were passed: it needs LISTEN_FDS, LISTEN_PID (this "
            "process) and LISTEN_FDNAMES, as systemd sets them for a service started by "
            "its .socket unit (systemd-socket-activate needs --fdname)"
        )
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    found: list[tuple[str, int]] = []
    for fd, name in zip(fds, names):
        try:
            probe = socket.socket(fileno=fd)
            try:
                family, kind = probe.family, probe.type
                listening = kind != socket.SOCK_STREAM or probe.getsockopt(
                    socket.SOL_SOCKET, socket.SO_ACCEPTCONN
                )
            finally:
                probe.detach()
        except OSError as e:
            raise ProgramError(f"--systemd: descriptor {fd} ({name}): {e.strerror or e}")
        if kind == socket.SOCK_STREAM and family in _STREAM_FAMILIES:
            if not listening:
                raise ProgramError(
                    f"--systemd: descriptor {fd} ({name}) is a stream socket that does not "
                    "listen: serve takes listening sockets (Accept=no in the .socket unit)"
                )
            found.append(("tls" if name == "tls" else _STREAM_FAMILIES[family], fd))
        elif kind == socket.SOCK_DGRAM and family in (socket.AF_INET, socket.AF_INET6):
            found.append(("udp", fd))
        else:
            raise ProgramError(
                f"--systemd: descriptor {fd} ({name}) is a {getattr(kind, 'name', kind)} "
                f"socket of family {getattr(family, 'name', family)}: serve takes TCP, "
                "UNIX stream and UDP sockets"
            )
        os.set_inheritable(fd, False)
    return found


@dataclass
class SharedSocket:
    """
    One listener of C{serve --workers}, as the parent holds it.

    @ivar kind: C{tcp}, C{udp}, C{unix} or C{tls}, as the C{listening}
        lines say.
    @ivar text: its address as those lines write it.
    @ivar sock: the socket the workers inherit; with C{reuse_port}, the
        parent's own socket that keeps the TCP port reserved (bound, never
        listening: it takes no connections), or L{None} for UDP (a bound UDP
        socket would take its share of the datagrams).
    @ivar reuse_port: C{(host, port)} where each worker binds its own socket
        with C{SO_REUSEPORT}; L{None} when the workers share C{sock}.
    @ivar lock: for a UNIX socket the parent bound: the lock file beside it,
        as Twisted's C{wantPID} makes (a socket left by a killed server is
        then known to be stale). The path is removed when the parent is done.
    """

    kind: str
    text: str
    sock: socket.socket | None
    reuse_port: tuple[str, int] | None = None
    lock: Any = None

    def worker_options(self) -> list[str]:
        """
        The options that hand this listener to a worker.
        """
        if self.reuse_port is not None:
            host, port = self.reuse_port
            address = f"[{host}]:{port}" if is_ipv6(host) else f"{host}:{port}"
            return ["--bind-reuse-port", f"{self.kind}:{address}"]
        assert self.sock is not None
        return ["--adopt", f"{self.kind}:{self.sock.fileno()}"]

    def inherited(self) -> list[int]:
        """
        The descriptors a worker inherits for this listener.
        """
        if self.reuse_port is not None or self.sock is None:
            return []
        return [self.sock.fileno()]

    def close(self) -> None:
        """
        Close the parent's socket; remove the path of a UNIX socket it bound
        (never one a service manager passed: that one is the manager's).
        """
        if self.sock is not None:
            self.sock.close()
        if self.lock is not None:
            try:
                os.unlink(self.text)
            except OSError:
                pass
            self.lock.unlock()
            self.lock = None


def bind_shared(args: argparse.Namespace) -> list[SharedSocket]:
    """
    Bind the listeners the workers of C{args} (C{serve}'s options) share:
    C{--tcp}, C{--tls}, C{--udp}, C{--unix}, loopback TCP and UDP when no
    listener is given; and take those in C{args.adopt} (passed by a service
    manager, see L{passed_sockets}). With C{args.reuse_port}, TCP, TLS and
    UDP listeners are bound by each worker instead (see L{SharedSocket}).

    @raise ProgramError: C{cannot listen: tcp 127.0.0.1:111: ...} when one
        cannot be bound (those bound are closed).
    """
    tcp, udp = args.tcp, args.udp
    adopted: list[tuple[str, int]] = getattr(args, "adopt", [])
    if not (tcp or udp or args.unix or args.tls or adopted):
        tcp, udp = [("127.0.0.1", 0)], [("127.0.0.1", 0)]
    reuse_port = bool(getattr(args, "reuse_port", False))
    shared: list[SharedSocket] = []
    kind, text = "", ""
    try:
        for kind, addresses in (("tcp", tcp), ("tls", args.tls), ("udp", udp)):
            for host, port in addresses:
                text = f"[{host}]:{port}" if is_ipv6(host) else f"{host}:{port}"
                shared.append(_bind_inet(kind, host, port, reuse_port))
        kind = "unix"
        for text in args.unix:
            shared.append(_bind_unix(text))
        for kind, fd in adopted:
            sock = socket.socket(fileno=fd)
            shared.append(SharedSocket(kind, socket_address_text(sock), sock))
    except OSError as e:
        for done in shared:
            done.close()
        reason = explain_listen_failure(kind, text, e).replace("cannot listen on ", "", 1)
        raise ProgramError(f"cannot listen: {reason}")
    return shared


def _bind_inet(kind: str, host: str, port: int, reuse_port: bool) -> SharedSocket:
    """
    A TCP, TLS or UDP listener for the workers: a socket they share, or
    with C{reuse_port} the address each binds (the port chosen here when
    C{port} is 0).
    """
    if not reuse_port:
        sock = bind_socket(kind, host, port)
        return SharedSocket(kind, socket_address_text(sock), sock)
    stream = kind != "udp"
    # Bound here, so that a busy address fails once, in the parent.
    sock = _bound_socket(kind, host, port, reuse_port=True)
    text = socket_address_text(sock)
    chosen = sock.getsockname()[1]
    if stream:
        return SharedSocket(kind, text, sock, reuse_port=(host, chosen))
    # Between this close and the workers' binds another program could take
    # a port the system chose; a UDP socket kept here would take datagrams.
    sock.close()
    return SharedSocket(kind, text, None, reuse_port=(host, chosen))


def _bind_unix(path: str) -> SharedSocket:
    """
    A UNIX stream listener for the workers, with a lock file beside it as
    Twisted's C{UNIXServerEndpoint(wantPID=True)} makes: a socket file left
    by a server that was killed is recognised as stale and replaced.

    @raise OSError: when it cannot be bound, or another process holds the
        lock (C{EADDRINUSE}).
    """
    from twisted.python.lockfile import FilesystemLock

    lock = FilesystemLock(path + ".lock")
    if not lock.lock():
        raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not lock.clean:
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.remove(path)
            except OSError:
                pass
        sock.bind(path)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        lock.unlock()
        raise
    return SharedSocket("unix", path, sock, lock=lock)


# -- The parent's side ---------------------------------------------------------


def prepare_serving(args: argparse.Namespace) -> Any:
    """
    What C{serve} (and the C{twistd} plugin, and the parent of C{serve
    --workers}) checks before it listens: the TLS files, read into TLS
    options; the UDP hosts, resolved (Twisted's UDP ports take addresses
    only); with C{--systemd}, the sockets passed (see
    L{passed_sockets}), added to
    C{args.adopt}. Loopback TCP and UDP when no listener was asked for.

    @return: the server TLS options (L{None} without TLS listeners).
    @raise ProgramError: naming what is wrong.
    """
    serve_namespace(args)
    if getattr(args, "systemd", False):
        args.adopt = [*getattr(args, "adopt", []), *passed_sockets()]
    try:
        args.udp = [(resolve_datagram_host(host), port) for host, port in args.udp]
    except OptionError as e:
        raise ProgramError(f"--udp: {e}")
    handed = [kind for kind, *_ in getattr(args, "adopt", []) + getattr(args, "bind_reuse_port", [])]
    if not (args.tls or args.starttls or "tls" in handed):
        if args.tls_cert:
            # Only --systemd lets this through check_serve.
            raise ProgramError(
                "--tls-cert given, but no TLS listener: no --systemd socket is named tls "
                "(FileDescriptorName=tls), and no --tls HOST:PORT or --starttls"
            )
        return None
    if not args.tls_cert:
        raise ProgramError(
            "a --systemd socket is named tls (TLS from the first byte): give --tls-cert "
            "(and --tls-key)"
        )
    files = read_tls_files(args.tls_cert, args.tls_key, args.tls_ca, server=True)
    assert files is not None
    from ..entry.tls import server_tls_options

    try:
        return server_tls_options(files.certificate, files.key, client_ca=files.ca)
    except Exception as e:
        raise ProgramError(f"--tls-cert {args.tls_cert}: {e}")


def serve_workers(args: argparse.Namespace) -> int:
    """
    C{rpctransport serve --workers N} (N > 1): check the TLS files and take
    the sockets passed by a service manager (C{--systemd}), bind the
    listeners here, start N workers that serve them, and supervise them
    (replacing those that die) until SIGTERM or SIGINT, which are forwarded.

    @return: the exit status (see L{WorkerPool.run}).
    """
    try:
        prepare_serving(args)
        shared = bind_shared(args)
    except ProgramError as e:
        print(f"rpctransport serve: {e}", file=sys.stderr, flush=True)
        return e.status
    return WorkerPool(args, shared).run()


def _worker_argv(
    args: argparse.Namespace, shared: list[SharedSocket], parent_fd: int, ready_fd: int
) -> list[str]:
    """
    The command line of a worker: C{serve} with the parent's options, the
    listeners to adopt (or bind) and the two pipes.
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
    # Each worker builds its TLS options from the same files.
    for option in ("tls-cert", "tls-key", "tls-ca"):
        value = getattr(args, option.replace("-", "_"), None)
        if value:
            argv += [f"--{option}", value]
    if args.starttls:
        argv.append("--starttls")
    if getattr(args, "proxy_protocol", False):
        argv.append("--proxy-protocol")
    for listener in shared:
        argv += listener.worker_options()
    return argv


def _worker_env() -> dict[str, str]:
    """
    The workers' environment: ours, with the directory that holds this
    C{rpctransport} first on C{PYTHONPATH}, so that C{-m rpctransport}
    finds the same code the parent runs (a source checkout, say); without
    what a service manager said to the parent (the workers get its sockets
    as C{--adopt}).
    """
    env = dict(os.environ)
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(name, None)
    root = str(Path(__file__).resolve().parents[2])
    paths = env.get("PYTHONPATH", "").split(os.pathsep) if env.get("PYTHONPATH") else []
    if paths[:1] != [root]:
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


def _how_it_ended(returncode: int) -> str:
    """
    C{exited with status 3}, C{was killed by SIGKILL}.
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


class WorkerPool:
    """
    The parent of C{serve --workers N}: starts the workers, waits for them to
    serve, replaces those that die, forwards stops, and works out the exit
    status.

    It runs no reactor: L{run} blocks until every worker exited. The
    C{twistd} plugin runs it in a thread (C{handle_signals=False}; twistd
    has the signals and calls L{request_stop}).

    @ivar workers: the workers serving now (one that died is replaced in
        its slot).
    @ivar stop_requested: when (C{time.monotonic}) the stop began, asked for
        (L{request_stop}) or because the workers could not be kept running;
        L{None} until then.
    @ivar asked_to_stop: whether the stop was asked for, rather than forced
        by the workers' failing.
    @ivar restarts: when (C{time.monotonic}) each worker was replaced.
    @ivar status: the exit status so far (see L{run}).
    """

    def __init__(
        self,
        args: argparse.Namespace,
        shared: list[SharedSocket],
        say: Callable[[str], None] | None = None,
        handle_signals: bool = True,
    ) -> None:
        """
        @param shared: the listeners (from L{bind_shared}); closed when
            L{run} returns.
        @param say: how the C{listening} lines, the summary line and the
            restarts are told (default: printed, the listening lines on
            standard output, the others on standard error).
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
        self.asked_to_stop = False
        self.restarts: list[float] = []
        self.status = 0
        # Slots whose worker died, and when its replacement is due.
        self._due: dict[int, float] = {}
        self._argv: list[str] = []
        self._fds: list[int] = []
        self._env: dict[str, str] = {}

    def run(self) -> int:
        """
        Start the workers, announce the listeners once all serve, supervise
        them until they all exited; close the listeners.

        @return: the exit status: 0 when the workers stopped because they
            were told to; 1 when they died more than L{MAX_RESTARTS} times
            in L{RESTART_WINDOW}, or one did not stop cleanly; 2 when a
            worker cannot start, or not all say they serve within
            L{WORKER_START_TIMEOUT}.
        """
        # The workers hold the read end; the parent holds the write end and
        # never writes: when the parent exits, however it exits, the workers
        # see EOF. The parent keeps the read end too, for replacements.
        watch_read, watch_write = os.pipe()
        # Each worker writes a byte here once it serves.
        ready_read, ready_write = os.pipe()
        self._argv = _worker_argv(self.args, self.shared, watch_read, ready_write)
        self._fds = [fd for listener in self.shared for fd in listener.inherited()]
        self._fds += [watch_read, ready_write]
        self._env = _worker_env()
        self._install_handlers()
        try:
            try:
                self._start()
            except OSError as e:
                self._tell(f"rpctransport serve: cannot start a worker: {e}", sys.stderr)
                self.status = 2
                self._begin_stop()
            else:
                # The listening lines mean "serving", as for a single process:
                # wait for every worker to say so.
                self._announce(self._wait_ready(ready_read))
            self._supervise(ready_read)
        finally:
            for fd in (watch_read, watch_write, ready_read, ready_write):
                os.close(fd)
            for listener in self.shared:
                listener.close()
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
        Stop the workers, as asked (by a signal, or by twistd); remember
        when the stop began.
        """
        self.asked_to_stop = True
        self._begin_stop()

    def _begin_stop(self) -> None:
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

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._argv, stdin=subprocess.DEVNULL, pass_fds=self._fds, env=self._env
        )

    def _start(self) -> None:
        for _ in range(self.count):
            if self.stop_requested is not None:
                # A stop came (from another thread: twistd's) before all
                # started: start no more, stop those that did.
                break
            self.workers.append(self._spawn())
        if self.stop_requested is not None:
            self.stop()

    def _wait_ready(self, fd: int) -> int:
        """
        Read the workers' readiness bytes from C{fd} until every worker's
        came, a worker exited, a stop is asked for, or
        L{WORKER_START_TIMEOUT} passes; return how many came.
        """
        ready = 0
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while ready < self.count and self.stop_requested is None:
            left = deadline - time.monotonic()
            if left <= 0 or any(worker.poll() is not None for worker in self.workers):
                break
            readable, _, _ = select.select([fd], [], [], min(left, 0.1))
            if readable:
                ready += len(os.read(fd, self.count))
        return ready

    def _announce(self, ready: int) -> None:
        """
        Print the listening lines once C{ready} is every worker; stop them
        all if some did not start.
        """
        if self.stop_requested is not None:
            return
        if ready < self.count:
            self.status = 2
            self._tell(
                f"rpctransport serve: {ready} of {self.count} workers started; stopping",
                sys.stderr,
            )
            self._begin_stop()
            return
        for listener in self.shared:
            self._tell(f"listening {listener.kind} {listener.text}")
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

    def _supervise(self, ready_fd: int) -> None:
        """
        Until every worker exited: replace those that die while serving,
        drain the readiness bytes of their replacements, and kill them all
        when a stop takes longer than L{WORKER_STOP_TIMEOUT}.
        """
        while self.stop_requested is None or any(w.poll() is None for w in self.workers):
            if self.stop_requested is None:
                for worker in self.workers:
                    worker.poll()
                self._replace_the_dead()
            elif time.monotonic() - self.stop_requested > WORKER_STOP_TIMEOUT:
                self.stop(signal.SIGKILL)
            readable, _, _ = select.select([ready_fd], [], [], 0.1)
            if readable:
                os.read(ready_fd, 64)

    def _replace_the_dead(self) -> None:
        """
        Note each worker that died and when its replacement is due (after
        L{RESTART_DELAY}, doubled for each restart in the last
        L{RESTART_WINDOW}, at most L{RESTART_DELAY_MAX}); start those due;
        past L{MAX_RESTARTS}, stop them all.
        """
        now = time.monotonic()
        for slot, worker in enumerate(self.workers):
            if worker.returncode is None:
                continue
            if slot not in self._due:
                self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW]
                if len(self.restarts) >= MAX_RESTARTS:
                    self._tell(
                        f"rpctransport serve: worker {worker.pid} "
                        f"{_how_it_ended(worker.returncode)}, after {len(self.restarts)} "
                        f"restarts in {RESTART_WINDOW:g} s; stopping the others",
                        sys.stderr,
                    )
                    self.status = 1
                    self._begin_stop()
                    return
                self.restarts.append(now)
                delay = RESTART_DELAY * 2 ** (len(self.restarts) - 1)
                self._due[slot] = now + min(delay, RESTART_DELAY_MAX)
            elif now >= self._due[slot]:
                self._replace(slot, worker)

    def _replace(self, slot: int, dead: subprocess.Popen[bytes]) -> None:
        try:
            worker = self._spawn()
        except OSError as e:
            self._tell(f"rpctransport serve: cannot start a worker: {e}", sys.stderr)
            # Counted as one more restart when it is noted again.
            del self._due[slot]
            return
        self.workers[slot] = worker
        del self._due[slot]
        self._tell(
            f"rpctransport serve: worker {dead.pid} {_how_it_ended(dead.returncode or 0)}; "
            f"started worker {worker.pid} in its place",
            sys.stderr,
        )
        if self.stop_requested is not None:
            # A stop from another thread while it started.
            self.stop()

    def _exit_status(self) -> int:
        # A worker told to stop before it had installed its handlers (while it
        # was still importing) ends by the signal itself: a stop all the same.
        # One that died and was waiting for its replacement is not counted.
        stopped = (0, -signal.SIGTERM, -signal.SIGINT)
        if not self.status and any(
            worker.returncode not in stopped
            for slot, worker in enumerate(self.workers)
            if slot not in self._due
        ):
            return 1
        return self.status
