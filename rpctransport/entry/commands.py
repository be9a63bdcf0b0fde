# -*- test-case-name: rpctransport.test.test_cli -*-
"""
The subcommands of the C{rpctransport} program, as C{task.react} mains.

Each takes the reactor and the parsed arguments (see L{rpctransport.entry.cli}).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
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

from ..sansio.record import DEFAULT_MAX_RECORD_SIZE
from .echo import ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, PROC_NULL, CallStats, EchoServer, run_calls
from .cli import host_port
from .stream import connect_stream, listen_stream

__all__ = ["call", "demo", "describe_address", "serve", "start_listeners"]


def describe_address(address: Any) -> tuple[str, str]:
    """
    C{(kind, text)} for a listener's address: C{("tcp", "127.0.0.1:111")},
    C{("udp", "[::1]:111")}, C{("unix", "/run/x.sock")}.
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        kind = "udp" if address.type == "UDP" else "tcp"
        host = f"[{address.host}]" if isinstance(address, IPv6Address) else address.host
        return kind, f"{host}:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        return "unix", name.decode() if isinstance(name, bytes) else str(name)
    return "stream", str(address)


def _is_ipv6(host: str) -> bool:
    return ":" in host


@inlineCallbacks
def start_listeners(
    reactor: Any,
    server: EchoServer,
    *,
    tcp: list[tuple[str, int]] = [],
    udp: list[tuple[str, int]] = [],
    unix: list[str] = [],
    listen: list[str] = [],
) -> Any:
    """
    Start serving C{server} on each listener asked for.

    @return: a Deferred firing with a list of C{(kind, text, stop)}, where
        C{stop()} stops that listener (and may return a Deferred).
    """
    limits = {"max_record_size": server.max_record_size}
    started: list[tuple[str, str, Callable[[], Any]]] = []
    endpoints: list[Any] = []
    for host, port in tcp:
        cls = TCP6ServerEndpoint if _is_ipv6(host) else TCP4ServerEndpoint
        endpoints.append(cls(reactor, port, interface=host))
    for path in unix:
        # wantPID: a lock file beside the socket, so that a socket left by a
        # killed server is recognised as stale and replaced.
        endpoints.append(UNIXServerEndpoint(reactor, path, wantPID=True))
    for description in listen:
        endpoints.append(serverFromString(reactor, description))
    for endpoint in endpoints:
        port = yield listen_stream(endpoint, server.serve, reactor=reactor, **limits)
        kind, text = describe_address(port.getHost())
        started.append((kind, text, port.stopListening))
    for host, port_number in udp:
        from .datagram import listen_datagram

        controller = listen_datagram(port_number, interface=host, reactor=reactor, **limits)
        server.serve(controller)
        kind, text = describe_address(controller.getsockname())
        started.append((kind, text, controller.inactivate))
    return started


@inlineCallbacks
def serve(reactor: Any, args: argparse.Namespace) -> Any:
    """
    C{rpctransport serve}: serve until SIGINT or SIGTERM.
    """
    server = EchoServer(args.program, args.version, args.max_record_size)
    tcp, udp = args.tcp, args.udp
    if not (tcp or udp or args.unix or args.listen):
        tcp, udp = [("127.0.0.1", 0)], [("127.0.0.1", 0)]
    try:
        listeners = yield start_listeners(
            reactor, server, tcp=tcp, udp=udp, unix=args.unix, listen=args.listen
        )
    except Exception as e:
        print(f"rpctransport serve: cannot listen: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2)
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
        stopped.callback(None)

    def on_signal(signum: int, frame: object) -> None:
        reactor.callFromThread(stop)

    def install_handlers() -> None:
        # A stop on SIGINT or SIGTERM is the normal end of a server: exit 0
        # after closing every listener (Twisted's own handlers, installed as
        # the reactor starts, would exit with 128 + the signal).
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, on_signal)

    reactor.callWhenRunning(install_handlers)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    yield stopped


def _client_for(reactor: Any, address: str, max_record_size: int) -> Any:
    """
    A Deferred firing with a controller connected to C{address}.
    """
    kind, _, rest = address.partition(":")
    limits = {"max_record_size": max_record_size}
    if kind == "unix":
        return connect_stream(UNIXClientEndpoint(reactor, rest), reactor=reactor, **limits)
    host, port = host_port(rest)
    if kind == "udp":
        from twisted.internet.defer import succeed

        from .datagram import connect_datagram

        return succeed(connect_datagram(host, port, reactor, max_record_size=max_record_size))
    cls = TCP6ClientEndpoint if _is_ipv6(host) else TCP4ClientEndpoint
    return connect_stream(cls(reactor, host, port), reactor=reactor, **limits)


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
        controller = yield _client_for(reactor, args.address, args.max_record_size)
    except (ConnectError, OSError) as e:
        print(f"rpctransport call: cannot reach {args.address}: {e}", file=sys.stderr)
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
    finally:
        bar.close()
        controller.inactivate()
    for reason in stats.reasons:
        print(f"failed: {reason}", file=sys.stderr)
    if not (args.quiet and stats.ok):
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
    write a table; return whether every call succeeded.
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
