# -*- test-case-name: rpctransport.test.test_typed_example -*-
"""
The package's types, as a user's code sees them: C{mypy --strict} passes on
the typed example (C{docs/examples/typed_client.py}) and rejects ill-typed
uses of the API, which it could not if the API said C{Any}; and the example
runs.

mypy reads the package as it reads an installed one: found on its search
path, its own errors silenced (C{follow_imports = silent}), with the
C{mypy_zope} plugin that Twisted's interfaces need. CI installs both (the
C{dev} extra); elsewhere these tests skip.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

import rpctransport

PACKAGE = Path(rpctransport.__file__).resolve().parent
EXAMPLE = PACKAGE.parent / "docs" / "examples" / "typed_client.py"

CONFIG = """\
[mypy]
plugins = mypy_zope:plugin
strict = True

[mypy-rpctransport.*]
follow_imports = silent
"""
"""
A user's strict configuration; rpctransport's own modules are not the
user's to fix (mypy silences installed packages the same way).
"""

ILL_TYPED = """\
from rpctransport import (
    DatagramController,
    IRpcMultiplexController,
    StreamController,
    connect_stream,
    listen_datagram,
    listen_stream,
    stream_rpc_multiplex_controller,
)


async def unnarrowed_result(controller: StreamController) -> None:
    record, peer = await controller.start_reading()  # rejected: END_OF_FILE


async def unnarrowed_datagram(controller: DatagramController) -> None:
    record, peer = await controller.start_reading()  # rejected: END_OF_FILE


async def unnarrowed_contract(controller: IRpcMultiplexController) -> None:
    record, peer = await controller.start_reading()  # rejected: END_OF_FILE


async def unnarrowed_record(controller: StreamController) -> bytes:
    result = await controller.start_reading()
    if isinstance(result, tuple):
        return result[0].message  # rejected: a refused record has none
    return b""


async def peer_is_an_address(controller: StreamController) -> int:
    result = await controller.start_reading()
    if isinstance(result, tuple):
        return result[1]  # rejected: the peer is an IAddress
    return 0


async def not_a_reactor() -> None:
    await connect_stream("tcp:host=127.0.0.1:port=111", reactor=object())  # rejected


def not_a_datagram_reactor() -> None:
    listen_datagram(0, reactor=object())  # rejected


def not_an_adopting_reactor() -> None:
    stream_rpc_multiplex_controller(3, object())  # rejected


async def not_server_tls_options() -> None:
    await listen_stream("tcp:0", print, tls=b"server.pem")  # rejected


async def not_client_tls_options() -> None:
    await connect_stream("tcp:host=127.0.0.1:port=111", tls=b"ca.pem")  # rejected
"""
"""
Each line marked C{# rejected} misuses the API; mypy must report an error
on each of them and nowhere else.
"""


def _marked_lines(source: str) -> set[int]:
    """
    The numbers of the lines of C{source} marked C{# rejected}.
    """
    return {
        number
        for number, line in enumerate(source.splitlines(), start=1)
        if "# rejected" in line
    }


class TypedExampleTests(SynchronousTestCase):
    """
    The typed API seen from a user's code, under C{mypy --strict}.
    """

    def setUp(self) -> None:
        for module in ("mypy", "mypy_zope"):
            if importlib.util.find_spec(module) is None:
                raise SkipTest(f"{module} is not installed (pip install -e '.[dev]')")
        if not EXAMPLE.is_file():
            raise SkipTest(f"the docs are not beside this package ({EXAMPLE} is missing)")
        self.directory = Path(tempfile.mkdtemp(prefix="rpctransport-typed-"))
        self.addCleanup(shutil.rmtree, self.directory, True)
        # The package alone on mypy's path (not its checkout, whose other
        # top-level directories, such as twisted/plugins, would shadow
        # installed packages).
        search = self.directory / "path"
        search.mkdir()
        (search / "rpctransport").symlink_to(PACKAGE, target_is_directory=True)
        self.search = search
        (self.directory / "mypy.ini").write_text(CONFIG)

    def mypy(self, path: Path) -> tuple[int, str]:
        """
        Run C{mypy} on C{path} as a user would, in a fresh cache.
        """
        env = dict(os.environ, MYPYPATH=str(self.search))
        done = subprocess.run(
            [
                sys.executable, "-m", "mypy",
                "--config-file", str(self.directory / "mypy.ini"),
                "--cache-dir", str(self.directory / "cache"),
                "--no-error-summary",
                "--show-error-codes",
                str(path),
            ],
            cwd=self.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done.returncode, done.stdout + done.stderr

    def test_example_passes_mypy_strict(self) -> None:
        """
        C{mypy --strict} finds nothing wrong in the typed example: a read's
        result narrows to C{(record, peer)} after C{is END_OF_FILE}, the
        record to L{rpctransport.Accepted} with C{isinstance}, and the entry
        points take the reactor and TLS options the example passes.
        """
        code, output = self.mypy(EXAMPLE)
        self.assertEqual((code, output), (0, ""))

    def test_ill_typed_uses_are_rejected(self) -> None:
        """
        C{mypy --strict} reports an error on each ill-typed use of the API,
        and only there: a read's result used before ruling out
        C{END_OF_FILE}, a record's C{message} before ruling out refusals,
        the peer taken for something other than an C{IAddress}, and entry
        points given something that is no reactor or no TLS options.
        """
        path = self.directory / "ill_typed.py"
        path.write_text(ILL_TYPED)
        code, output = self.mypy(path)
        self.assertEqual(code, 1, output)
        reported = {
            int(match.group(1))
            for match in re.finditer(r"^[^\n]*ill_typed\.py:(\d+): error:", output, re.M)
        }
        self.assertEqual(reported, _marked_lines(ILL_TYPED), output)

    def test_example_runs(self) -> None:
        """
        The typed example serves, calls and gets its two messages back.
        """
        env = dict(os.environ, PYTHONPATH=str(self.search))
        done = subprocess.run(
            [sys.executable, str(EXAMPLE)],
            cwd=self.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(
            (done.returncode, done.stdout),
            (0, "b'\\x00\\x00\\x00\\x01hello'\nb'\\x00\\x00\\x00\\x02world'\n"),
            done.stderr,
        )
