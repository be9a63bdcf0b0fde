# -*- test-case-name: rpctransport.test.test_interop -*-
"""
The interop tests' helpers: build the libtirpc test programs, and run them
(and C{python -m rpctransport}) as subprocesses.

Building and running live in L{rpctransport._tirpc}, which the benchmark
shares; this module adds what only tests need. When the machine cannot build
the C programs (no C{gcc}, no libtirpc headers), L{build_or_skip} turns
L{BuildUnavailable} into C{SkipTest}: that is the only case in which an
interop test skips. A compiler that runs and fails raises L{BuildFailed}, an
error: the source or the library is broken, and a skip would hide it.

Servers (ours or the C one) print one C{listening KIND ADDRESS} line per
listener on standard output; L{start_server} starts one, waits for those
lines and registers its L{ServerProcess.stop} as a cleanup of the test, so
that no process outlives its test. L{run_program} runs a client to the end,
with a timeout.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from unittest import SkipTest

from rpctransport.sansio.rpcb import universal_address
from rpctransport._tirpc.build import (
    BuildFailed,
    BuildUnavailable,
    build,
    toolchain_problem,
)
from rpctransport._tirpc.process import (
    START_TIMEOUT,
    Finished,
    ServerProcess,
    ServerStartFailed,
    rpctransport_command,
    rpctransport_env,
    run_program,
)

__all__ = [
    "BuildFailed",
    "BuildUnavailable",
    "Finished",
    "ServerProcess",
    "ServerStartFailed",
    "build",
    "build_or_skip",
    "find_rpcinfo",
    "rpctransport_command",
    "rpctransport_env",
    "run_program",
    "start_server",
    "toolchain_problem",
    "universal_address",
]

class _TestCase(Protocol):
    """
    What L{start_server} needs of a test case.
    """

    def addCleanup(
        self, function: Callable[..., object], /, *args: Any, **kwargs: Any
    ) -> None: ...


def build_or_skip(name: str) -> Path:
    """
    L{build}, for a test: skip it, with the reason, if this machine cannot
    build C programs against libtirpc.

    @raise SkipTest: instead of L{BuildUnavailable}.
    @raise BuildFailed: if the compiler fails (not a reason to skip).
    """
    try:
        return build(name)
    except BuildUnavailable as e:
        raise SkipTest(str(e)) from None


def find_rpcinfo() -> str | None:
    """
    Find the C{rpcinfo} program (Debian's C{rpcbind} package), on C{PATH}
    or in C{/usr/sbin} and C{/sbin}, where Debian puts it and where a
    non-root C{PATH} often does not look.

    @return: its path, or L{None}.
    """
    return shutil.which("rpcinfo") or shutil.which("rpcinfo", path="/usr/sbin:/sbin")


def start_server(
    testcase: _TestCase,
    argv: Sequence[str],
    kinds: Sequence[str] = ("tcp", "udp"),
    timeout: float = START_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """
    Start a server and wait until it listens; stop it when the test ends.

    @param testcase: the test, whose cleanups will stop the server.
    @param argv: the server's command line.
    @param kinds: the listeners to wait for.
    @param timeout: seconds the server has to print its C{listening} lines.
    @param env: its environment (by default, ours).
    @raise ServerStartFailed: if it does not come up.
    """
    server = ServerProcess(argv, env)
    testcase.addCleanup(server.stop)
    server.wait_listening(kinds, timeout)
    return server
