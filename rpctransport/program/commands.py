# -*- test-case-name: rpctransport.test.test_cli -*-
"""
The subcommands of the C{rpctransport} program, as C{task.react} mains.

Each takes the reactor and the parsed arguments (see
L{rpctransport.program.cli}). C{serve} is also what each worker of
C{serve --workers N} runs, with C{--adopt}; the parent of those workers is
L{rpctransport.program.workers}.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    serverFromString,
)
from twisted.internet.error import ConnectError

from ..entry.stream import StreamControllerFactory, connect_stream, listen_stream
from ..sansio.counters import Counters
from ..sansio.record import DEFAULT_MAX_RECORD_SIZE
from .addresses import describe_address, host_port, is_ipv6
from .echo import ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, PROC_NULL, CallStats, EchoServer, run_calls
from .tuning import keep_large_allocations
from .workers import say_ready, watch_parent

__all__ = [
    "adopt_listeners",
    "call",
    "demo",
    "print_counters",
    "run_demo",
    "serve",
    "start_listeners",
]


def _limits(
    server: EchoServer, stream_options: dict[str, Any] | None, counters: Counters | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    The options of every datagram listener, and of every stream listener's
    controllers, serving C{server}.
    """
    limits: dict[str, Any] = {"max_record_size": server.max_record_size}
    stream_limits = {**limits, **(stream_options or {})}
    if counters is not None:
        stream_limits["counters_parent"] = counters
    return limits, stream_limits


@inlineCallbacks
def start_listeners(
    reactor: Any,
    server: EchoServer,
    *,
    tcp: list[tuple[str, int]] = [],
    udp: list[tuple[str, int]] = [],
    unix: list[str] = [],
    listen: list[str] = [],
    tls: list[tuple[str, int]] = [],
    tls_options: Any = None,
    starttls: bool = False,
    stream_options: dict[str, Any] | None = None,
    counters: Counters | None = None,
) -> Any:
    """
    Start serving C{server} on each listener asked for: C{tls} listeners
    with C{tls_options} from the first byte; with C{starttls}, the plaintext
    stream listeners answer RFC 9289 probes and upgrade with C{tls_options}.

    @param stream_options: more options for every stream listener's
        controllers (deadlines, C{max_connections}).
    @param counters: what every listener and connection counts is counted
        here too.
    @return: a Deferred firing with a list of C{(kind, text, stop)}, where
        C{stop()} stops that listener (and may return a Deferred).
    """
    limits, stream_limits = _limits(server, stream_options, counters)
    started: list[tuple[str, str, Callable[[], Any]]] = []
    endpoints: list[Any] = []
    for host, port in tcp:
        cls = TCP6ServerEndpoint if is_ipv6(host) else TCP4ServerEndpoint
        # The kernel's largest backlog: a burst of connections then reaches
        # admission control instead of being dropped by the kernel (Twisted's
        # default is 50).
        endpoints.append(cls(reactor, port, backlog=socket.SOMAXCONN, interface=host))
    for path in unix:
        # wantPID: a lock file beside the socket, so that a socket left by a
        # killed server is recognised as stale and replaced.
        endpoints.append(
            UNIXServerEndpoint(reactor, path, backlog=socket.SOMAXCONN, wantPID=True)
        )
    for description in listen:
        endpoints.append(serverFromString(reactor, description))
    plain_options = dict(stream_limits)
    if starttls:
        plain_options["starttls"] = tls_options
    for endpoint in endpoints:
        port = yield listen_stream(endpoint, server.serve, reactor=reactor, **plain_options)
        kind, text = describe_address(port.getHost())
        started.append((kind, text, port.stopListening))
    for host, port_number in tls:
        cls = TCP6ServerEndpoint if is_ipv6(host) else TCP4ServerEndpoint
        port = yield listen_stream(
            cls(reactor, port_number, backlog=socket.SOMAXCONN, interface=host),
            server.serve,
            reactor=reactor,
            tls=tls_options,
            **stream_limits,
        )
        _, text = describe_address(port.getHost())
        started.append(("tls", text, port.stopListening))
    for host, port_number in udp:
        from ..entry.datagram import listen_datagram

        controller = listen_datagram(
            port_number, interface=host, reactor=reactor, counters_parent=counters, **limits
        )
        server.serve(controller)
        kind, text = describe_address(controller.getsockname())
        started.append((kind, text, controller.inactivate))
    return started


def adopt_listeners(
    reactor: Any,
    server: EchoServer,
    adopted: list[tuple[str, int]],
    stream_options: dict[str, Any] | None = None,
    counters: Counters | None = None,
) -> list[tuple[str, str, Callable[[], Any]]]:
    """
    Serve C{server} on sockets bound by someone else (the parent of
    C{serve --workers}): C{("tcp", fd)} a listening TCP socket, already
    non-blocking; C{("udp", fd)} a bound UDP socket.

    @return: a list of C{(kind, text, stop)}, as L{start_listeners} gives.
    """
    from ..entry.datagram import datagram_rpc_multiplex_controller

    limits, stream_limits = _limits(server, stream_options, counters)
    started: list[tuple[str, str, Callable[[], Any]]] = []
    for kind, fd in adopted:
        if kind == "tcp":
            probe = socket.socket(fileno=fd)
            family = probe.family
            probe.detach()
            factory = StreamControllerFactory(server.serve, reactor, **stream_limits)
            port = reactor.adoptStreamPort(fd, family, factory)
            factory.guard_accept(port)
            # Twisted listens on a duplicate; the original is ours to close.
            os.close(fd)
            started.append(("tcp", describe_address(port.getHost())[1], port.stopListening))
        else:
            controller = datagram_rpc_multiplex_controller(
                fd, reactor, counters_parent=counters, **limits
            )
            server.serve(controller)
            started.append(("udp", describe_address(controller.getsockname())[1], controller.inactivate))
    return started


@inlineCallbacks
def serve(reactor: Any, args: argparse.Namespace) -> Any:
    """
    C{rpctransport serve}: serve until SIGINT or SIGTERM.

    With C{--adopt} (a worker of L{serve_workers}), serve the sockets handed
    down, print no C{listening} lines (the parent did), and stop also when
    the parent goes away.
    """
    keep_large_allocations()
    _log_to_stderr()
    server = EchoServer(args.program, args.version, args.max_record_size)
    totals = Counters()
    stream_options = _stream_options(args)
    adopted = getattr(args, "adopt", [])
    tcp, udp = args.tcp, args.udp
    if not (tcp or udp or args.unix or args.listen or args.tls or adopted):
        tcp, udp = [("127.0.0.1", 0)], [("127.0.0.1", 0)]
    try:
        if adopted:
            listeners = adopt_listeners(reactor, server, adopted, stream_options, totals)
        else:
            tls_options = None
            if args.tls_cert:
                from ..entry.tls import server_tls_options

                tls_options = server_tls_options(
                    args.tls_cert, args.tls_key, client_ca=args.tls_ca
                )
            listeners = yield start_listeners(
                reactor,
                server,
                tcp=tcp,
                udp=udp,
                unix=args.unix,
                listen=args.listen,
                tls=args.tls,
                tls_options=tls_options,
                starttls=args.starttls,
                stream_options=stream_options,
                counters=totals,
            )
    except Exception as e:
        print(f"rpctransport serve: cannot listen: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    if not adopted:
        for kind, text, _ in listeners:
            print(f"listening {kind} {text}", flush=True)
        print(
            f"serving program {args.program} ({args.program:#x}) version {args.version}; "
            "stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )

    stopped: Deferred[None] = Deferred()

    def stop() -> None:
        if stopped.called:
            return
        for _, _, stop_one in listeners:
            stop_one()
        server.stop()
        print_counters(totals.view)
        stopped.callback(None)

    def on_signal(signum: int, frame: object) -> None:
        reactor.callFromThread(stop)

    def on_usr1(signum: int, frame: object) -> None:
        reactor.callFromThread(print_counters, totals.view)

    def install_handlers() -> None:
        # A stop on SIGINT or SIGTERM is the normal end of a server: exit 0
        # after closing every listener (Twisted's own handlers, installed as
        # the reactor starts, would exit with 128 + the signal).
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, on_signal)
        signal.signal(signal.SIGUSR1, on_usr1)

    reactor.callWhenRunning(install_handlers)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    parent_fd = getattr(args, "parent_fd", None)
    if parent_fd is not None:
        watch_parent(reactor, parent_fd, stop)
    ready_fd = getattr(args, "ready_fd", None)
    if ready_fd is not None:
        # Tell the parent this worker serves (once the reactor runs).
        reactor.callWhenRunning(say_ready, ready_fd)
    yield stopped


def _stream_options(args: argparse.Namespace) -> dict[str, Any]:
    """
    The deadlines (and admission limit) C{serve} gives every stream listener.
    """
    return {
        "record_deadline": args.record_deadline,
        "idle_timeout": args.idle_timeout,
        "first_record_timeout": args.first_record_timeout,
        "write_deadline": args.write_deadline,
        "max_connections": getattr(args, "max_connections", None),
    }


def print_counters(counts: Mapping[str, int], file: TextIO | None = None) -> None:
    """
    Print what the server counted (refusals, deadlines, evictions, UDP
    errors, accept back-offs), one line: C{counters: key=N key=N} (C{none}
    when nothing was counted).
    """
    text = " ".join(f"{key}={value}" for key, value in sorted(counts.items())) or "none"
    print(f"counters: {text}", file=file or sys.stderr, flush=True)


_SERVE_LOG_NAMESPACE: Final = "rpctransport"


def _log_to_stderr() -> None:
    """
    Log to standard error what the operator of C{serve} wants to see: our
    events from C{info} up (refusals, deadlines, evictions, each with the
    peer and the numbers), anyone's from C{warn} up.
    """
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        PredicateResult,
        globalLogBeginner,
        textFileLogObserver,
    )

    def ours_or_loud(event: Any) -> Any:
        level = event.get("log_level", LogLevel.info)
        namespace = str(event.get("log_namespace", ""))
        if level >= LogLevel.warn or (
            level >= LogLevel.info and namespace.startswith(_SERVE_LOG_NAMESPACE)
        ):
            return PredicateResult.yes
        return PredicateResult.no

    predicate: Any = ours_or_loud
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _client_tls(args: argparse.Namespace | None, default_name: str) -> Any:
    from ..entry.tls import client_tls_options

    name = getattr(args, "server_name", None) or default_name
    return client_tls_options(
        name,
        ca=getattr(args, "tls_ca", None),
        certificate=getattr(args, "tls_cert", None),
        key=getattr(args, "tls_key", None),
    )


@inlineCallbacks
def _connect(reactor: Any, args: argparse.Namespace) -> Any:
    """
    The controller C{rpctransport call} uses: connected, and upgraded with
    RFC 9289 when C{--starttls} says so.
    """
    kind, _, rest = args.address.partition(":")
    default_name = "localhost" if kind == "unix" else host_port(rest)[0]
    tls = _client_tls(args, default_name) if kind == "tls" else None
    controller = yield _client_for(reactor, args.address, args.max_record_size, tls)
    if args.starttls:
        try:
            yield controller.start_tls(
                _client_tls(args, default_name), args.program, args.version
            )
        except Exception:
            controller.inactivate()
            raise
    return controller


def _client_for(
    reactor: Any, address: str, max_record_size: int, tls: Any = None
) -> Any:
    """
    A Deferred firing with a controller connected to C{address} (with
    C{tls}, client TLS options, for C{tls:} addresses).
    """
    kind, _, rest = address.partition(":")
    limits = {"max_record_size": max_record_size}
    if kind == "unix":
        return connect_stream(UNIXClientEndpoint(reactor, rest), reactor=reactor, **limits)
    host, port = host_port(rest)
    if kind == "udp":
        from twisted.internet.defer import succeed

        from ..entry.datagram import connect_datagram

        return succeed(connect_datagram(host, port, reactor, max_record_size=max_record_size))
    cls = TCP6ClientEndpoint if is_ipv6(host) else TCP4ClientEndpoint
    return connect_stream(cls(reactor, host, port), reactor=reactor, tls=tls, **limits)


class _ProgressBar:
    """
    A progress bar on standard error, drawn only on a terminal.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.shown = sys.stderr.isatty() and total >= 1000

    def __call__(self, done: int) -> None:
        if not self.shown:
            return
        width = 30
        filled = width * done // self.total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def summary(stats: CallStats) -> str:
    """
    One line that sums a run of calls up.
    """
    rate = stats.calls / stats.elapsed if stats.elapsed > 0 else 0.0
    line = (
        f"calls {stats.calls}  ok {stats.calls - stats.failures}  failed {stats.failures}  "
        f"elapsed {stats.elapsed:.3f} s  calls/s {rate:.0f}  "
        f"latency p50 {stats.percentile(50) * 1000:.3f} ms  p99 {stats.percentile(99) * 1000:.3f} ms"
    )
    if stats.retransmissions:
        line += f"  retransmitted {stats.retransmissions}"
    return line


@inlineCallbacks
def call(reactor: Any, args: argparse.Namespace) -> Any:
    """
    C{rpctransport call ADDRESS}: exit 0 only when every call succeeded.
    """
    try:
        controller = yield _connect(reactor, args)
    except (ConnectError, OSError) as e:
        print(f"rpctransport call: cannot reach {args.address}: {e}", file=sys.stderr)
        raise SystemExit(1)
    except Exception as e:
        print(f"rpctransport call: {args.address}: {e}", file=sys.stderr)
        raise SystemExit(1)
    bar = _ProgressBar(args.count)
    try:
        stats = yield run_calls(
            controller,
            reactor,
            program=args.program,
            version=args.version,
            proc=PROC_ECHO if args.proc == "echo" else PROC_NULL,
            size=args.size,
            count=args.count,
            concurrency=args.concurrency,
            timeout=args.timeout,
            retry=args.retry if args.address.startswith("udp:") else None,
            progress=bar,
        )
        props = getattr(controller, "tls_session_props", None)
        tls_line = None
        if props is not None:
            tls_line = (
                f"tls {props.version} {props.cipher} ALPN "
                f"{props.alpn.decode() if props.alpn else '-'}; server "
                f"{controller.peer_user_name!r}"
            )
    finally:
        bar.close()
        controller.inactivate()
    for reason in stats.reasons:
        print(f"failed: {reason}", file=sys.stderr)
    if not (args.quiet and stats.ok):
        if tls_line is not None:
            print(tls_line, flush=True)
        print(summary(stats), flush=True)
    if not stats.ok:
        raise SystemExit(1)


DEMO_CALLS = (("null", PROC_NULL, 0, 200, 10), ("echo", PROC_ECHO, 65536, 20, 4))
"""The demo's runs: procedure, size, count, concurrency (UDP echoes 8 KiB)."""

_DEMO_UDP_ECHO = 8192


@inlineCallbacks
def run_demo(reactor: Any, write: Callable[[str], object] = print) -> Any:
    """
    Serve in-process on loopback TCP, UDP and a UNIX socket, call each, and
    write a table; then the same over TLS, implicit and STARTTLS, with
    certificates made on the fly, saying whom each side saw; return whether
    every call succeeded.
    """
    server = EchoServer(ECHO_PROGRAM, ECHO_VERSION, DEFAULT_MAX_RECORD_SIZE)
    ok = True
    with tempfile.TemporaryDirectory(prefix="rpctransport-demo-") as directory:
        path = os.path.join(directory, "echo.sock")
        listeners = yield start_listeners(
            reactor, server, tcp=[("127.0.0.1", 0)], udp=[("127.0.0.1", 0)], unix=[path]
        )
        write(
            f"{'transport':<9} {'address':<44} {'proc':<5} {'size':>6} {'calls':>6} "
            f"{'failed':>6} {'calls/s':>8} {'p50 ms':>7}"
        )
        try:
            for kind, text, _ in listeners:
                address = f"{kind}:{text}"
                for name, proc, size, count, concurrency in DEMO_CALLS:
                    if kind == "udp" and proc == PROC_ECHO:
                        size = _DEMO_UDP_ECHO
                    controller = yield _client_for(reactor, address, DEFAULT_MAX_RECORD_SIZE)
                    try:
                        stats = yield run_calls(
                            controller,
                            reactor,
                            proc=proc,
                            size=size,
                            count=count,
                            concurrency=concurrency,
                            timeout=10.0,
                            retry=0.5 if kind == "udp" else None,
                        )
                    finally:
                        controller.inactivate()
                    ok = ok and stats.ok
                    rate = stats.calls / stats.elapsed if stats.elapsed else 0.0
                    write(
                        f"{kind:<9} {text:<44} {name:<5} {size:>6} {stats.calls:>6} "
                        f"{stats.failures:>6} {rate:>8.0f} {stats.percentile(50) * 1000:>7.3f}"
                    )
                    for reason in stats.reasons:
                        write(f"  failed: {reason}")
        finally:
            for _, _, stop_one in listeners:
                yield stop_one()
            server.stop()
    try:
        import cryptography  # noqa: F401
        import OpenSSL  # noqa: F401

        from .tlsdemo import run_tls_demo
    except ImportError as e:  # pragma: no cover - without the tls extra
        write(f"\ntls: skipped, {e} (pip install 'rpctransport[tls]')")
    else:
        write("")
        tls_ok = yield run_tls_demo(reactor, write)
        ok = ok and tls_ok
    write("every call succeeded" if ok else "SOME CALLS FAILED")
    return ok


@inlineCallbacks
def demo(reactor: Any, args: argparse.Namespace | None = None) -> Any:
    """
    C{rpctransport demo}: exit 1 when a call failed.
    """
    ok = yield run_demo(reactor)
    if not ok:
        raise SystemExit(1)
