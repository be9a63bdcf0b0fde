# -*- test-case-name: rpctransport.test.test_cli -*-
"""
The C{rpctransport} program: C{serve}, C{call}, C{demo} and C{bench}.

  - C{rpctransport serve} serves the echo test program (see
    L{rpctransport.program.echo}) on loopback TCP and UDP, or where told;
  - C{rpctransport call ADDRESS} calls it (or any server of the program),
    like C{rpcinfo -t}/C{-u} with a load generator's summary;
  - C{rpctransport demo} runs both in one process over TCP, UDP and a UNIX
    socket and prints what happened;
  - C{rpctransport bench} runs the benchmark (L{rpctransport.bench}), which
    has its own options.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..entry.admission import DESCRIPTOR_RESERVE, default_max_connections
from ..sansio.deadlines import (
    SERVE_FIRST_RECORD_TIMEOUT,
    SERVE_IDLE_TIMEOUT,
    SERVE_RECORD_DEADLINE,
    SERVE_WRITE_DEADLINE,
)
from ..sansio.record import DEFAULT_MAX_RECORD_SIZE
from .addresses import host_port
from .echo import ECHO_PROGRAM, ECHO_VERSION

__all__ = ["main", "parse_args"]


def _number(text: str) -> int:
    """
    An unsigned 32-bit number in decimal or 0x hex.
    """
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (decimal or 0x hex)")
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{text} is not an unsigned 32-bit number")
    return value


def _count(text: str) -> int:
    value = _number(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _adopted(text: str) -> tuple[str, int]:
    """
    C{tcp:FD} or C{udp:FD}: a listening socket a C{serve --workers} parent
    hands to its worker.
    """
    kind, sep, fd = text.partition(":")
    if not sep or kind not in ("tcp", "udp") or not fd.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not tcp:FD or udp:FD")
    return kind, int(fd)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _seconds_or_off(text: str) -> float | None:
    """
    A number of seconds, or 0 for "off" (L{None}).
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0: off)")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 0 (off) or more seconds")
    return value or None


def _connections(text: str) -> int | None:
    """
    A number of connections, or 0 for "no cap" (L{None}).
    """
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of connections (0: no cap)")
    return int(text) or None


def _program_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--program",
        type=_number,
        default=ECHO_PROGRAM,
        metavar="N",
        help=f"RPC program number, decimal or 0x hex (default {ECHO_PROGRAM:#x})",
    )
    parser.add_argument(
        "--version",
        type=_number,
        default=ECHO_VERSION,
        metavar="N",
        help=f"RPC program version (default {ECHO_VERSION})",
    )


def _tls_file_options(parser: argparse.ArgumentParser, server: bool) -> None:
    parser.add_argument(
        "--tls-cert", metavar="PEM",
        help="our certificate (PEM; may hold the key too)" if server
        else "a client certificate to present (PEM; may hold the key too)",
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert (PEM)")
    parser.add_argument(
        "--tls-ca", metavar="PEM",
        help="require client certificates signed by this CA" if server
        else "verify the server against this CA (default: the system's trust store)",
    )


_DEADLINE_OPTIONS = (
    (
        "--record-deadline",
        SERVE_RECORD_DEADLINE,
        "close a connection whose record, once begun, is not whole within this",
    ),
    ("--idle-timeout", SERVE_IDLE_TIMEOUT, "close a connection idle this long"),
    (
        "--first-record-timeout",
        SERVE_FIRST_RECORD_TIMEOUT,
        "the idle timeout of a connection that has not yet sent a whole record",
    ),
    (
        "--write-deadline",
        SERVE_WRITE_DEADLINE,
        "close a connection that leaves a reply unread this long",
    ),
)
"""C{serve}'s deadlines: option, default, help (0 turns one off)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpctransport",
        description="ONC RPC (RFC 5531) transports for Twisted: an echo test "
        "server, a client for it, and a demo.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser(
        "demo",
        help="serve and call the echo program in-process over TCP, UDP and a UNIX socket",
        description="Start the echo server on loopback TCP, UDP and a UNIX socket, "
        "call NULL and ECHO through each, and print what happened.",
    )

    serve = commands.add_parser(
        "serve",
        help="serve the echo test program",
        description="Serve the echo test program: procedure 0 (NULL) and 1 (ECHO, "
        "returns its opaque argument as it came). Calls to other programs, versions "
        "and procedures get the RFC 5531 rejection. Without listener options it "
        "listens on loopback TCP and UDP, on ports the system picks. One line per "
        "listener is printed: 'listening <tcp|udp|unix|tls> <address>'. Stops on "
        "SIGINT or SIGTERM.",
    )
    serve.add_argument(
        "--tcp", action="append", type=host_port, default=[], metavar="HOST:PORT",
        help="listen on TCP (port 0: any free port); may be repeated",
    )
    serve.add_argument(
        "--udp", action="append", type=host_port, default=[], metavar="HOST:PORT",
        help="listen on UDP; may be repeated",
    )
    serve.add_argument(
        "--unix", action="append", default=[], metavar="PATH",
        help="listen on a UNIX stream socket; may be repeated",
    )
    serve.add_argument(
        "--listen", action="append", default=[], metavar="ENDPOINT",
        help="listen on a Twisted server endpoint string, e.g. "
        "'tcp6:0:interface=\\:\\:1'; may be repeated",
    )
    serve.add_argument(
        "--tls", action="append", type=host_port, default=[], metavar="HOST:PORT",
        help="listen on TCP with TLS from the first byte (needs --tls-cert); may be repeated",
    )
    serve.add_argument(
        "--starttls", action="store_true",
        help="answer RFC 9289 AUTH_TLS probes on the plaintext TCP and UNIX listeners "
        "with STARTTLS and upgrade (needs --tls-cert)",
    )
    _tls_file_options(serve, server=True)
    _program_options(serve)
    serve.add_argument(
        "--max-record-size", type=_count, default=DEFAULT_MAX_RECORD_SIZE, metavar="BYTES",
        help="refuse larger calls on their header, answering GARBAGE_ARGS "
        f"(default {DEFAULT_MAX_RECORD_SIZE})",
    )
    limits = serve.add_argument_group(
        "limits and timeouts",
        "Deadlines for the states a peer can hold a connection in (0 turns one off); "
        "docs/program.rst, 'Limits and timeouts', says why each default.",
    )
    for flag, default, help in _DEADLINE_OPTIONS:
        limits.add_argument(
            flag, type=_seconds_or_off, default=default, metavar="SECONDS",
            help=f"{help} (default {default:g})",
        )
    limits.add_argument(
        "--max-connections", type=_connections, default=None, metavar="N",
        help="at N stream connections (per listener), evict one to admit a new one: "
        "never-proven first, then idle, then oldest; 0: no cap (default: the soft "
        f"descriptor limit minus {DESCRIPTOR_RESERVE})",
    )
    serve.add_argument(
        "--workers", type=_count, default=1, metavar="N",
        help="serve from N worker processes sharing the TCP and UDP sockets (default "
        "1: this process alone); SIGINT or SIGTERM to this process stops them all",
    )
    # What a --workers parent hands its workers; not for people.
    serve.add_argument("--adopt", action="append", type=_adopted, default=[], help=argparse.SUPPRESS)
    serve.add_argument("--parent-fd", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)

    call = commands.add_parser(
        "call",
        help="call the echo program and check every reply",
        description="Call NULL or ECHO COUNT times, CONCURRENCY calls in flight, check "
        "every reply (xid, accept_stat, echoed bytes) and print a summary. Exits 0 "
        "only when every call succeeded.",
    )
    call.add_argument(
        "address", metavar="ADDRESS",
        help="tcp:HOST:PORT, tls:HOST:PORT (TLS from the first byte), udp:HOST:PORT or "
        "unix:PATH ([::1] for IPv6 hosts)",
    )
    call.add_argument("--proc", choices=("null", "echo"), default="null", help="procedure (default null)")
    call.add_argument("--size", type=_number, default=0, metavar="BYTES", help="ECHO argument size (default 0)")
    call.add_argument("--count", type=_count, default=1, metavar="N", help="calls to make (default 1)")
    call.add_argument(
        "--concurrency", type=_count, default=1, metavar="N", help="calls in flight (default 1)"
    )
    _program_options(call)
    call.add_argument(
        "--timeout", type=_seconds, default=25.0, metavar="SECONDS",
        help="a call without a reply after this long fails (default 25)",
    )
    call.add_argument(
        "--retry", type=_seconds, default=1.0, metavar="SECONDS",
        help="UDP: send a call again after this long without a reply (default 1)",
    )
    call.add_argument(
        "--max-record-size", type=_count, default=DEFAULT_MAX_RECORD_SIZE, metavar="BYTES",
        help=f"largest reply accepted (default {DEFAULT_MAX_RECORD_SIZE})",
    )
    call.add_argument(
        "--starttls", action="store_true",
        help="tcp: and unix: addresses: upgrade to TLS with an RFC 9289 AUTH_TLS probe first",
    )
    _tls_file_options(call, server=False)
    call.add_argument(
        "--server-name", metavar="NAME",
        help="the name the server's certificate must carry (default: HOST of ADDRESS, "
        "or localhost for unix:)",
    )
    call.add_argument("--quiet", "-q", action="store_true", help="print only failures")

    bench = commands.add_parser(
        "bench",
        add_help=False,
        help="run the benchmark (see 'rpctransport bench --help')",
        description="Run the benchmark; its options are those of python -m rpctransport.bench.",
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="OPTIONS")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """
    Parse the command line (without the program name).
    """
    parser = _parser()
    argv = list(argv)
    if argv[:1] == ["bench"]:
        # Everything after "bench" is the benchmark's, options included
        # (argparse's REMAINDER would not take a leading option).
        return argparse.Namespace(command="bench", bench_args=argv[1:])
    args = parser.parse_args(argv)
    if args.command == "serve":
        _check_serve(parser, args, argv)
    if args.command == "call":
        _check_call(parser, args)
    return args


def _check_serve(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> None:
    """
    The checks of C{serve}'s options that argparse cannot make; the default
    C{--max-connections}, which depends on the descriptor limit.
    """
    _check_listeners(parser, args)
    if args.max_connections is None and not any(a.startswith("--max-connections") for a in argv):
        args.max_connections = default_max_connections()
    _check_tls(parser, args)


def _check_listeners(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """
    C{--workers} shares TCP and UDP sockets only; C{--adopt} (what the
    workers get) goes alone.
    """
    if args.workers > 1 and (args.unix or args.listen):
        parser.error("--workers shares TCP and UDP sockets only: --unix and --listen need --workers 1")
    listeners = args.tcp or args.udp or args.unix or args.listen
    if args.adopt and (listeners or args.workers > 1):
        parser.error("--adopt is for the workers of --workers, alone")


def _check_tls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """
    TLS needs a certificate, and a single process.
    """
    if (args.tls or args.starttls) and not args.tls_cert:
        parser.error("--tls and --starttls need --tls-cert (and --tls-key)")
    if args.workers > 1 and (args.tls or args.starttls):
        parser.error("--workers serves plain TCP and UDP only: TLS needs --workers 1")


def _check_call(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """
    The checks of C{call}'s options that argparse cannot make.
    """
    kind, sep, rest = args.address.partition(":")
    if not sep or kind not in ("tcp", "tls", "udp", "unix") or not rest:
        parser.error(
            f"ADDRESS {args.address!r} is not tcp:HOST:PORT, tls:HOST:PORT, "
            "udp:HOST:PORT or unix:PATH"
        )
    if args.starttls and kind not in ("tcp", "unix"):
        parser.error("--starttls goes with tcp: and unix: addresses")
    if kind != "unix":
        try:
            host_port(rest)
        except argparse.ArgumentTypeError as e:
            parser.error(f"ADDRESS: {e}")
    if args.proc == "null" and args.size:
        parser.error("--size goes with --proc echo")


def main(argv: Sequence[str] | None = None) -> None:
    """
    Run the program with C{argv} (C{sys.argv[1:]} by default).
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "bench":
        # The benchmark runs its peers in processes of their own: no reactor
        # here.
        from ..bench.cli import main as bench_main

        raise SystemExit(bench_main(args.bench_args))
    if args.command == "serve" and args.workers > 1:
        # The parent only binds, starts the workers and waits: no reactor.
        from .workers import serve_workers

        raise SystemExit(serve_workers(args))
    from twisted.internet.task import react

    from . import commands

    command = args.command or "demo"
    runner: Any = getattr(commands, command)
    react(runner, (args,))
