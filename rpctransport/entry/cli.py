# -*- test-case-name: rpctransport.test.test_demo -*-
"""
The C{rpctransport} program.

For now it has one subcommand, C{demo} (the default): a loopback echo of a
few records over TCP and a UNIX socket.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpctransport",
        description="ONC RPC (RFC 5531) transports for Twisted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="round-trip records through a loopback echo server (TCP and UNIX)",
        description=(
            "Start a record echo server on loopback TCP and a UNIX socket, send "
            "records of 0 B to 1 MiB through each, and print what came back."
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """
    Run the program with C{argv} (C{sys.argv[1:]} by default).
    """
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from twisted.internet.task import react

    from .demo import main as demo_main

    if args.command in (None, "demo"):
        react(demo_main)
