# -*- test-case-name: rpctransport.test.test_demo -*-
"""
The demo, the program's entry points and the documentation's examples run
and do what they say.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from rpctransport.entry.demo import DEMO_SIZES, run_demo

DOCS = Path(__file__).resolve().parents[2] / "docs"


def load_example(name: str) -> ModuleType:
    """
    Import C{docs/examples/<name>.py} as a module.
    """
    path = DOCS / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DemoTests(TestCase):
    """
    C{run_demo} round-trips every size over TCP and a UNIX socket.
    """

    def test_demo_in_process(self) -> Any:
        """
        The demo reports every record intact, one line per transport and
        size.
        """
        lines: list[str] = []
        d = ensureDeferred(run_demo(reactor, lines.append))  # type: ignore[arg-type]

        def check(ok: bool) -> None:
            self.assertTrue(ok)
            rows = [line for line in lines if line.startswith(("tcp ", "unix "))]
            self.assertEqual(len(rows), 2 * len(DEMO_SIZES))
            self.assertTrue(all(" ok " in row for row in rows), rows)
            self.assertEqual(lines[-1], "all records came back intact")

        return d.addCallback(check)

    def test_stream_echo_example(self) -> Any:
        """
        The stream echo example of C{docs/stream.rst} gets its messages back.
        """
        example = load_example("stream_echo")
        d = example.main(reactor)
        d.addCallback(
            self.assertEqual, [b"\x00\x00\x00\x01hello", b"\x00\x00\x00\x02world"]
        )
        return d


class ProgramTests(TestCase):
    """
    C{python -m rpctransport} runs as a separate process.
    """

    def test_python_m_demo(self) -> None:
        """
        C{python -m rpctransport demo} exits 0 and says all came back.
        """
        done = subprocess.run(
            [sys.executable, "-m", "rpctransport", "demo"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("all records came back intact", done.stdout)

    def test_help(self) -> None:
        """
        C{--help} names the demo subcommand.
        """
        done = subprocess.run(
            [sys.executable, "-m", "rpctransport", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("demo", done.stdout)
