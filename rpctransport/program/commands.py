# -*- test-case-name: rpctransport.test.test_cli,rpctransport.test.test_workers -*-
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
from typing import Any, Final, NamedTuple, TextIO, cast

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.endpoints import (
    AdoptedStreamServerEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    UNIXClientEndpoint,
    SSL4ServerEndpoint,
    UNIXServerEndpoint,
    clientFromString,
    serverFromString,
)
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IAddress, IListeningPort, IStreamServerEndpoint
from zope.interface import implementer

from ..adapters.stream import adopt_unix_listener
from ..entry.stream import connect_stream, listen_stream
from ..rpc.client import RpcClient
from ..sansio.counters import Counters
from ..sansio.types import Implied
from ..sansio.record import DEFAULT_MAX_RECORD_SIZE
from .addresses import CallAddress, describe_address, is_ipv6, parse_call_address
from .echo import ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, PROC_NULL, CallStats, EchoServer, run_calls
from .errors import (
    ProgramError,
    explain_call_failure,
    explain_listen_failure,
    read_tls_files,
)
from .tuning import keep_large_allocations
from .workers import bind_socket, prepare_serving, say_ready, watch_parent

__all__ = [
    "call",
    "demo",
    "prepare_serving",
    "Listener",
    "print_counters",
    "register_listeners",
    "registration_for",
    "run_demo",
    "serve",
    "start_listeners",
    "start_serving",
    "stream_options",
]


class Listener(NamedTuple):
    """
    One listener a server started.

    @ivar kind: C{tcp}, C{udp}, C{unix} or C{tls}, as the C{listening}
        lines say.
    @ivar text: its address as those lines write it.
    @ivar stop: stops it (may return a Deferred).
    @ivar address: its address (for rpcbind).
    """

    kind: str
    text: str
    stop: Callable[[], Any]
    address: IAddress


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
    adopted: list[tuple[str, int]] = [],
    tls_options: Any = None,
    starttls: bool = False,
    stream_options: dict[str, Any] | None = None,
    counters: Counters | None = None,
) -> Any:
    """
    Start serving C{server} on each listener asked for: C{tls} listeners
    with C{tls_options} from the first byte; with C{starttls}, the plaintext
    stream listeners answer RFC 9289 probes and upgrade with C{tls_options}.

    @param adopted: sockets bound by someone else (the parent of C{serve
        --workers}, a service manager), each C{(kind, fd)}: C{tcp} or
        C{unix} a listening stream socket, C{tls} one served with TLS from
        the first byte, C{udp} a bound UDP socket. Each C{fd} becomes this
        process's to close (a stream listener works on a duplicate and closes
        it at once); the socket itself stays its owner's: no C{shutdown()}
        when its listener stops, and a UNIX socket's path is left in place.
    @param stream_options: more options for every stream listener's
        controllers (deadlines, C{max_connections}).
    @param counters: what every listener and connection counts is counted
        here too.
    @return: a Deferred firing with a list of L{Listener}s; or
        failing with L{ProgramError} naming the listener that could not
        start (those started before it are stopped).
    """
    limits, stream_limits = _limits(server, stream_options, counters)
    started: list[Listener] = []
    # (kind, what the user wrote, endpoint, options of its controllers)
    endpoints: list[tuple[str, str, Any, dict[str, Any]]] = []
    # (kind or None: by its type, what the user wrote, descriptor)
    handed: list[tuple[str | None, str, int]] = [
        (kind, f"descriptor {fd}", fd) for kind, fd in adopted
    ]
    plain_options = dict(stream_limits)
    if starttls:
        plain_options["starttls"] = tls_options
    for host, port in tcp:
        cls = TCP6ServerEndpoint if is_ipv6(host) else TCP4ServerEndpoint
        # The kernel's largest backlog: a burst of connections then reaches
        # admission control instead of being dropped by the kernel (Twisted's
        # default is 50).
        endpoint: Any = cls(reactor, port, backlog=socket.SOMAXCONN, interface=host)
        endpoints.append(("tcp", _host_text(host, port), endpoint, plain_options))
    for path in unix:
        # wantPID: a lock file beside the socket, so that a socket left by a
        # killed server is recognised as stale and replaced.
        endpoint = UNIXServerEndpoint(reactor, path, backlog=socket.SOMAXCONN, wantPID=True)
        endpoints.append(("unix", path, endpoint, plain_options))
    for description in listen:
        endpoint = serverFromString(reactor, description)
        if isinstance(endpoint, AdoptedStreamServerEndpoint):
            # systemd:...: Twisted would adopt a UDP socket as a stream port,
            # and remove a UNIX socket's path when it stops; served by its
            # type instead, like --systemd's.
            handed.append((None, description, endpoint.fileno))
            continue
        # An ssl: endpoint is TLS from the first byte: no STARTTLS on it.
        kind = "tls" if isinstance(endpoint, SSL4ServerEndpoint) else "stream"
        options = stream_limits if kind == "tls" else plain_options
        endpoints.append((kind, description, endpoint, options))
    for host, port in tls:
        cls = TCP6ServerEndpoint if is_ipv6(host) else TCP4ServerEndpoint
        endpoint = cls(reactor, port, backlog=socket.SOMAXCONN, interface=host)
        endpoints.append(("tls", _host_text(host, port), endpoint, {**stream_limits, "tls": tls_options}))
    try:
        for kind, text, endpoint, options in endpoints:
            try:
                port = yield listen_stream(endpoint, server.serve, reactor=reactor, **options)
            except Exception as e:
                raise ProgramError(explain_listen_failure(kind, text, e))
            started.append(_stream_listener(kind, port))
        for host, port_number in udp:
            from ..entry.datagram import listen_datagram

            try:
                controller = listen_datagram(
                    port_number, interface=host, reactor=reactor, counters_parent=counters, **limits
                )
            except Exception as e:
                raise ProgramError(explain_listen_failure("udp", _host_text(host, port_number), e))
            server.serve(controller)
            started.append(_datagram_listener(controller))
        for given, text, fd in handed:
            kind = given or _kind_of(fd)
            try:
                if kind == "udp":
                    from ..entry.datagram import datagram_rpc_multiplex_controller

                    controller = datagram_rpc_multiplex_controller(
                        fd, reactor, counters_parent=counters, **limits
                    )
                    server.serve(controller)
                    started.append(_datagram_listener(controller))
                    continue
                options = {**stream_limits, "tls": tls_options} if kind == "tls" else plain_options
                port = yield listen_stream(
                    _adopted_listener(reactor, fd), server.serve, reactor=reactor, **options
                )
            except Exception as e:
                raise ProgramError(explain_listen_failure(kind, text, e))
            started.append(_stream_listener(kind, port))
    except ProgramError:
        for listener in started:
            listener.stop()
        raise
    return started


def _stream_listener(kind: str, port: IListeningPort) -> Listener:
    """
    The L{Listener} of a listening stream port: of C{kind} C{tls}, or
    C{tcp} or C{unix} by its address.
    """
    local = port.getHost()
    address_kind, address = describe_address(local)
    return Listener(kind if kind == "tls" else address_kind, address, port.stopListening, local)


def _datagram_listener(controller: Any) -> Listener:
    """
    The L{Listener} of a datagram controller serving a bound socket.
    """
    bound = _bound(controller)
    kind, text = describe_address(bound)
    return Listener(kind, text, controller.inactivate, bound)


def _bound(controller: Any) -> IAddress:
    """
    The address a listening controller's socket is bound to.
    """
    address = controller.getsockname()
    assert not isinstance(address, Implied), address
    return cast(IAddress, address)


def _host_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if is_ipv6(host) else f"{host}:{port}"


def _kind_of(fd: int) -> str:
    """
    C{udp} for a datagram socket, C{tcp} for a stream socket (a UNIX one is
    told from its address once it listens).
    """
    probe = socket.socket(fileno=fd)
    try:
        return "udp" if probe.type == socket.SOCK_DGRAM else "tcp"
    finally:
        probe.detach()


def _adopted_listener(reactor: Any, fd: int) -> IStreamServerEndpoint:
    """
    An endpoint that listens on C{fd}, a listening stream socket bound by
    someone else, and leaves the socket to its owner when it stops: Twisted's
    C{AdoptedStreamServerEndpoint} for INET and INET6 sockets (its port
    closes its duplicate without C{shutdown()}), L{_AdoptedUNIXListener} for
    UNIX ones. C{fd} is closed once it listens (the port works on a
    duplicate).
    """
    probe = socket.socket(fileno=fd)
    family = probe.family
    probe.detach()
    if family == socket.AF_UNIX:
        return _AdoptedUNIXListener(reactor, fd)
    endpoint: IStreamServerEndpoint = AdoptedStreamServerEndpoint(reactor, fd, family)
    return endpoint


@implementer(IStreamServerEndpoint)
class _AdoptedUNIXListener:
    """
    Listens on C{fd}, a listening UNIX stream socket bound by someone else,
    with a port that leaves the socket and its path to their owner when it
    stops (see L{rpctransport.adapters._twisted.adopt_unix_listener}).
    """

    def __init__(self, reactor: Any, fd: int) -> None:
        self.reactor = reactor
        self.fd = fd

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        """
        Listen on the descriptor with C{factory}, then close the descriptor.
        """
        try:
            os.set_blocking(self.fd, False)
            port = adopt_unix_listener(self.reactor, self.fd, factory)
            os.close(self.fd)
        except BaseException:
            return fail()
        return succeed(port)


@inlineCallbacks
def serve(reactor: Any, args: argparse.Namespace) -> Any:
    """
    C{rpctransport serve}: serve until SIGINT or SIGTERM.

    A worker of L{serve_workers} (C{--ready-fd}) serves the sockets handed
    down (C{--adopt}, C{--bind-reuse-port}), prints no C{listening} lines
    (the parent did), and stops also when the parent goes away.
    """
    keep_large_allocations()
    _log_to_stderr()
    server = EchoServer(args.program, args.program_version, args.max_record_size)
    totals = Counters()
    worker = getattr(args, "ready_fd", None) is not None
    try:
        listeners = yield start_serving(reactor, server, args, totals)
    except ProgramError as e:
        print(f"rpctransport serve: {e}", file=sys.stderr, flush=True)
        raise SystemExit(e.status)
    registration = None
    if getattr(args, "register", False):
        try:
            registration = yield register_listeners(server, listeners)
        except ProgramError as e:
            for listener in listeners:
                listener.stop()
            print(f"rpctransport serve: {e}", file=sys.stderr, flush=True)
            raise SystemExit(e.status)
    if not worker:
        for listener in listeners:
            print(f"listening {listener.kind} {listener.text}", flush=True)
        print(
            f"serving program {args.program} ({args.program:#x}) version {args.program_version}; "
            "stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )

    stopped: Deferred[None] = Deferred()

    stopping: list[bool] = []

    def stop() -> Deferred[None] | None:
        if stopping:
            # A second signal while the registrations are taken back.
            return None if stopped.called else stopped
        stopping.append(True)
        for listener in listeners:
            listener.stop()
        server.stop()
        print_counters(totals.view)
        if registration is None:
            stopped.callback(None)
            return None
        # Take the registrations back before the reactor stops, within a
        # deadline: a hung rpcbind must not hold the stop.
        unregistered = registration.stop()
        unregistered.addTimeout(UNREGISTER_TIMEOUT, reactor)
        unregistered.addErrback(
            lambda failure: print(
                f"rpctransport serve: rpcbind: {failure.value}", file=sys.stderr, flush=True
            )
        )
        unregistered.addBoth(lambda _: stopped.callback(None) if not stopped.called else None)
        return stopped

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
        watch_parent(reactor, parent_fd, lambda: None if stop() is None else None)
    ready_fd = getattr(args, "ready_fd", None)
    if ready_fd is not None:
        # Tell the parent this worker serves (once the reactor runs).
        reactor.callWhenRunning(say_ready, ready_fd)
    yield stopped


def start_serving(
    reactor: Any, server: EchoServer, args: argparse.Namespace, counters: Counters | None = None
) -> Deferred[list[Listener]]:
    """
    Check what C{args} asks for (L{prepare_serving}) and start its
    listeners (L{start_listeners}), those handed down by the parent of
    C{serve --workers} (C{--adopt}; C{--bind-reuse-port}, bound here with
    C{SO_REUSEPORT}) and those a service manager passed (C{--systemd})
    included.

    @return: L{start_listeners}'s Deferred; failing with L{ProgramError}
        (also when the checks fail).
    """
    try:
        tls_options = prepare_serving(args)
        bound: list[tuple[str, int]] = []
        for kind, host, port in getattr(args, "bind_reuse_port", []):
            try:
                sock = bind_socket(kind, host, port, reuse_port=True)
            except OSError as e:
                for _, fd in bound:
                    os.close(fd)
                raise ProgramError(explain_listen_failure(kind, _host_text(host, port), e))
            bound.append((kind, sock.detach()))
    except ProgramError:
        return fail()
    adopted = [*getattr(args, "adopt", []), *bound]
    started: Deferred[list[Listener]] = start_listeners(
        reactor,
        server,
        tcp=args.tcp,
        udp=args.udp,
        unix=args.unix,
        listen=args.listen,
        tls=args.tls,
        adopted=adopted,
        tls_options=tls_options,
        starttls=args.starttls,
        stream_options=stream_options(args),
        counters=counters,
    )
    return started


def registration_for(server: EchoServer, listeners: list[Listener]) -> Any:
    """
    The rpcbind L{Registration <rpctransport.rpc.rpcbind.Registration>} of
    C{server}'s programs at its TCP, UDP and UNIX listeners (TLS listeners
    have no netid of their own: they are left out), not started yet.
    """
    from ..rpc.rpcbind import Registration, entries_for

    addresses = [listener.address for listener in listeners if listener.kind != "tls"]
    return Registration(entries_for(server.programs, addresses))


UNREGISTER_TIMEOUT: Final = 30.0
"""
Seconds C{serve --register} waits for rpcbind to take its registrations back
when it stops: one try per path for each program, version and netid, not an
rpcbind that hangs.
"""


@inlineCallbacks
def register_listeners(server: EchoServer, listeners: list[Listener]) -> Any:
    """
    Register C{server}'s programs at its TCP, UDP and UNIX listeners with
    the local rpcbind (TLS listeners have no netid of their own: they are
    left out).

    @return: a Deferred firing with the L{Registration}, whose C{stop}
        takes them back; failing with L{ProgramError} when rpcbind cannot
        be reached or refuses.
    """
    registration = registration_for(server, listeners)
    try:
        yield registration.start()
    except Exception as e:
        raise ProgramError(f"cannot register with rpcbind: {e}")
    return registration


def stream_options(args: argparse.Namespace) -> dict[str, Any]:
    """
    The deadlines (and admission limit) C{serve} gives every stream
    listener, and whether they are behind a proxy sending the PROXY
    protocol.
    """
    return {
        "record_deadline": args.record_deadline,
        "idle_timeout": args.idle_timeout,
        "first_record_timeout": args.first_record_timeout,
        "write_deadline": args.write_deadline,
        "max_connections": getattr(args, "max_connections", None),
        "proxy_protocol": getattr(args, "proxy_protocol", False),
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
    """
    Client TLS options from C{call}'s C{--tls-*} and C{--server-name}.

    @raise ProgramError: when a file cannot be used, or TLS is not installed.
    """
    from .errors import require_tls

    require_tls()
    from ..entry.tls import client_tls_options

    files = read_tls_files(
        getattr(args, "tls_cert", None),
        getattr(args, "tls_key", None),
        getattr(args, "tls_ca", None),
        server=False,
    )
    name = getattr(args, "server_name", None) or default_name
    return client_tls_options(
        name,
        ca=files.ca if files else None,
        certificate=(files.certificate or None) if files else None,
        key=files.key if files else None,
    )


@inlineCallbacks
def _connect(reactor: Any, args: argparse.Namespace) -> Any:
    """
    The controller C{rpctransport call} uses: connected, and upgraded with
    RFC 9289 when C{--starttls} says so.
    """
    target: CallAddress = getattr(args, "target", None) or parse_call_address(args.address)
    default_name = target.host or "localhost"
    tls = _client_tls(args, default_name) if target.kind == "tls" else None
    controller = yield _client_for(
        reactor, target, args.max_record_size, tls, handshake_timeout=args.timeout
    )
    if args.starttls:
        try:
            yield controller.start_tls(
                _client_tls(args, default_name), args.program, args.program_version
            )
        except Exception:
            controller.inactivate()
            raise
    return controller


def _client_for(
    reactor: Any,
    address: str | CallAddress,
    max_record_size: int,
    tls: Any = None,
    handshake_timeout: float | None = None,
) -> Any:
    """
    A Deferred firing with a controller connected to C{address} (with
    C{tls}, client TLS options, for C{tls:} addresses).
    """
    target = address if isinstance(address, CallAddress) else parse_call_address(address)
    limits: dict[str, Any] = {"max_record_size": max_record_size}
    if handshake_timeout is not None:
        limits["handshake_timeout"] = handshake_timeout
    if target.kind == "udp":
        from twisted.internet.defer import succeed

        from ..entry.datagram import connect_datagram

        assert target.host is not None and target.port is not None
        return succeed(
            connect_datagram(target.host, target.port, reactor, max_record_size=max_record_size)
        )
    endpoint: Any
    if target.kind == "unix":
        assert target.path is not None
        endpoint = UNIXClientEndpoint(reactor, target.path)
    elif target.kind == "endpoint":
        endpoint = clientFromString(reactor, target.text)
    else:
        assert target.host is not None and target.port is not None
        cls = TCP6ClientEndpoint if is_ipv6(target.host) else TCP4ClientEndpoint
        endpoint = cls(reactor, target.host, target.port)
    return connect_stream(endpoint, reactor=reactor, tls=tls, **limits)


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
    One line that sums a run of calls up (rate and latency only when some
    call succeeded).
    """
    ok = stats.calls - stats.failures
    line = f"calls {stats.calls}  ok {ok}  failed {stats.failures}  elapsed {stats.elapsed:.3f} s"
    if ok:
        rate = stats.calls / stats.elapsed if stats.elapsed > 0 else 0.0
        line += (
            f"  calls/s {rate:.0f}  latency p50 {stats.percentile(50) * 1000:.3f} ms"
            f"  p99 {stats.percentile(99) * 1000:.3f} ms"
        )
    else:
        line += "  no call succeeded"
    if stats.retransmissions:
        line += f"  retransmitted {stats.retransmissions}"
    return line


@inlineCallbacks
def call(reactor: Any, args: argparse.Namespace) -> Any:
    """
    C{rpctransport call ADDRESS}: exit 0 only when every call succeeded.

    A connection that fails before any call succeeded (refused, a TLS
    handshake that fails or times out) is said in one line, in the user's
    terms (L{explain_call_failure}), with exit status 1.
    """
    try:
        controller = yield _connect(reactor, args)
    except ProgramError as e:
        print(f"rpctransport call: {e}", file=sys.stderr)
        raise SystemExit(e.status)
    except (ConnectError, OSError) as e:
        print(f"rpctransport call: cannot reach {args.address}: {e}", file=sys.stderr)
        raise SystemExit(1)
    except Exception as e:
        reason = explain_call_failure(e, address=args.address, timeout=args.timeout)
        print(f"rpctransport call: {args.address}: {reason}", file=sys.stderr)
        raise SystemExit(1)
    bar = _ProgressBar(args.count)
    client = RpcClient(
        controller,
        max_in_flight=args.concurrency,
        timeout=args.timeout,
        retransmit=args.retry if args.target.kind == "udp" else None,
        reactor=reactor,
    )
    try:
        stats = yield run_calls(
            client,
            reactor,
            program=args.program,
            version=args.program_version,
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
        client.close()
    if stats.connection_error is not None and stats.failures == stats.calls:
        # Nothing got through: the connection's end is the one thing to say.
        reason = explain_call_failure(
            stats.connection_error,
            address=args.address,
            timeout=args.timeout,
            tls=args.target.kind == "tls" or args.starttls,
        )
        print(f"rpctransport call: {args.address}: {reason}", file=sys.stderr)
        raise SystemExit(1)
    for reason in stats.reasons:
        print(f"failed: {reason}", file=sys.stderr)
    if not (args.quiet and stats.ok):
        if tls_line is not None and stats.failures < stats.calls:
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
            for kind, text, _, _ in listeners:
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
            for listener in listeners:
                yield listener.stop()
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
