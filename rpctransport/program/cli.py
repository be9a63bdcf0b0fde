# -*- test-case-name: rpctransport.test.test_cli,rpctransport.test.test_workers -*-
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
from .options import (
    CALL_OPTIONS,
    LIMITS_DESCRIPTION,
    SERVE_OPTIONS,
    OptionError,
    add_arguments,
    check_call,
    check_serve,
    read_host_port,
)

__all__ = ["main", "parse_args"]


_HANDED_KINDS = ("tcp", "udp", "unix", "tls")


def _adopted(text: str) -> tuple[str, int]:
    """
    C{KIND:FD} (C{tcp}, C{udp}, C{unix} or C{tls}): a listening socket a
    C{serve --workers} parent hands to its worker.
    """
    kind, sep, fd = text.partition(":")
    if not sep or kind not in _HANDED_KINDS or not fd.isdigit():
        raise OptionError(f"{text!r} is not KIND:FD (tcp, udp, unix or tls)")
    return kind, int(fd)


def _reuse_port_address(text: str) -> tuple[str, str, int]:
    """
    C{KIND:HOST:PORT} (C{tcp}, C{udp} or C{tls}): where a worker of
    C{serve --workers --reuse-port} binds its own socket.
    """
    kind, sep, address = text.partition(":")
    if not sep or kind not in ("tcp", "udp", "tls"):
        raise OptionError(f"{text!r} is not KIND:HOST:PORT (tcp, udp or tls)")
    return (kind, *read_host_port(address))


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """
    The program's parser, and each subcommand's (whose C{error} prints that
    subcommand's usage).
    """
    parser = argparse.ArgumentParser(
        prog="rpctransport",
        usage="%(prog)s [-h] [--version] [COMMAND] ...",
        description="ONC RPC (RFC 5531) transports for Twisted: an echo test "
        "server, a client for it, a demo and a benchmark. Without a COMMAND, "
        "runs the demo.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands (default: demo)", prog="rpctransport"
    )

    demo = commands.add_parser(
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
        "SIGINT or SIGTERM. 'twistd rpctransport-echo' takes the same options.",
    )
    add_arguments(serve, SERVE_OPTIONS, {"limits and timeouts": LIMITS_DESCRIPTION})
    # What a --workers parent hands its workers; not for people.
    serve.add_argument("--adopt", action="append", type=_adopted, default=[], help=argparse.SUPPRESS)
    serve.add_argument(
        "--bind-reuse-port", action="append", type=_reuse_port_address, default=[],
        help=argparse.SUPPRESS,
    )
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
        help="tcp:HOST:PORT, tls:HOST:PORT (TLS from the first byte), udp:HOST:PORT, "
        "unix:PATH ([::1] for IPv6 hosts), or a Twisted client endpoint string "
        "(tcp:host=H:port=P, unix:path=P, ...)",
    )
    add_arguments(call, CALL_OPTIONS)
    call.add_argument("--quiet", "-q", action="store_true", help="print only failures")

    bench = commands.add_parser(
        "bench",
        add_help=False,
        help="run the benchmark (see 'rpctransport bench --help')",
        description="Run the benchmark; its options are those of python -m rpctransport.bench.",
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="OPTIONS")
    return parser, {"demo": demo, "serve": serve, "call": call}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """
    Parse the command line (without the program name).

    A usage error exits with status 2 after printing the usage of the
    subcommand it is about and one line saying what is wrong.
    """
    parser, subcommands = _parser()
    argv = list(argv)
    if argv[:1] == ["bench"]:
        # Everything after "bench" is the benchmark's, options included
        # (argparse's REMAINDER would not take a leading option).
        return argparse.Namespace(command="bench", bench_args=argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            check_serve(args)
            listeners = args.tcp or args.udp or args.unix or args.listen or args.tls or args.systemd
            if (args.adopt or args.bind_reuse_port) and (listeners or args.workers > 1):
                raise OptionError("--adopt and --bind-reuse-port are for the workers of --workers, alone")
        if args.command == "call":
            check_call(args)
    except OptionError as e:
        subcommands[args.command].error(str(e))
    return args


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
        # The parent only binds, starts the workers and supervises them: no
        # reactor.
        from .workers import serve_workers

        raise SystemExit(serve_workers(args))
    from twisted.internet.task import react

    from . import commands

    command = args.command or "demo"
    runner: Any = getattr(commands, command)
    react(runner, (args,))
