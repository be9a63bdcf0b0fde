# -*- test-case-name: rpctransport.test.test_interop -*-
"""
Build the libtirpc peers, C{tirpc_client} and C{tirpc_server}.

The C sources beside this module (and C{tirpc_echo.h}, which both include:
the echo program's procedures and argument) are compiled on first use, once
per process, into a temporary directory that is removed when the process
exits::

    gcc -O2 -Wall -I/usr/include/tirpc X.c -ltirpc -o DIR/X

When the machine cannot build them (no C{gcc}, no libtirpc headers),
L{build} raises L{BuildUnavailable} with the reason: the interop tests skip
on it, the benchmark skips the cases that need a libtirpc peer. A compiler
that runs and fails raises L{BuildFailed}, an error: the source or the
library is broken, and a skip would hide it.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

__all__ = [
    "BuildFailed",
    "BuildUnavailable",
    "COMPILER",
    "HEADER",
    "SOURCES",
    "TIRPC_INCLUDE",
    "build",
    "toolchain_problem",
]

SOURCES = Path(__file__).resolve().parent
"""Where the C sources are (package data)."""

HEADER = SOURCES / "tirpc_echo.h"
"""What both C programs include from L{SOURCES}."""

COMPILER = "gcc"

TIRPC_INCLUDE = Path("/usr/include/tirpc")
"""Where Debian's libtirpc-dev puts its headers (C{rpc/rpc.h} and so on)."""

BUILD_TIMEOUT = 120.0
"""Seconds the compiler has for one program."""


class BuildUnavailable(Exception):
    """
    This machine cannot build the C programs: the compiler or the libtirpc
    headers are missing. The message says which, and what to install.
    """


class BuildFailed(Exception):
    """
    The compiler ran and failed. The message has the command and the
    compiler's output.
    """


def toolchain_problem() -> str | None:
    """
    Tell why the C programs cannot be built here, if they cannot.

    @return: L{None} when C{gcc} is on C{PATH} and the libtirpc headers are
        present; otherwise a sentence saying what is missing.
    """
    if shutil.which(COMPILER) is None:
        return (
            f"{COMPILER} is not on PATH; install gcc to build the libtirpc "
            "interop programs"
        )
    header = TIRPC_INCLUDE / "rpc" / "rpc.h"
    if not header.is_file():
        return (
            f"the libtirpc headers are missing ({header} not found); install "
            "libtirpc-dev to build the libtirpc interop programs"
        )
    return None


_build_directory: Path | None = None
_built: dict[str, Path] = {}
_build_lock = threading.Lock()


def _directory() -> Path:
    """
    The temporary directory of this process's builds, made on first use and
    removed when the process exits.
    """
    global _build_directory
    if _build_directory is None:
        _build_directory = Path(tempfile.mkdtemp(prefix="rpctransport-tirpc-"))
        atexit.register(shutil.rmtree, _build_directory, True)
    return _build_directory


def build(name: str) -> Path:
    """
    Compile C{NAME.c} from L{SOURCES}, once per process.

    @param name: C{"tirpc_client"} or C{"tirpc_server"}.
    @return: the path of the executable.
    @raise BuildUnavailable: if C{gcc} or the libtirpc headers are missing.
    @raise BuildFailed: if the compiler fails.
    """
    with _build_lock:
        if name in _built:
            return _built[name]
        problem = toolchain_problem()
        if problem is not None:
            raise BuildUnavailable(problem)
        source = SOURCES / f"{name}.c"
        for needed in (source, HEADER):
            if not needed.is_file():
                raise BuildFailed(
                    f"{needed} not found: the package was installed without its C "
                    "sources (they must be package data), or the name is wrong"
                )
        output = _directory() / name
        argv = [
            COMPILER,
            "-O2",
            "-Wall",
            f"-I{TIRPC_INCLUDE}",
            str(source),
            "-ltirpc",
            "-o",
            str(output),
        ]
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=BUILD_TIMEOUT,
        )
        if result.returncode != 0:
            raise BuildFailed(
                f"$ {' '.join(argv)}\nexit status {result.returncode}\n"
                f"{result.stdout}{result.stderr}"
            )
        _built[name] = output
        return output
