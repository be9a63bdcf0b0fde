# -*- test-case-name: rpctransport.test.test_demo -*-
"""
The demo, the program's entry points and the documentation's examples run
and do what they say.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import SkipTest, TestCase

from rpctransport.program.commands import DEMO_CALLS, run_demo

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
    C{run_demo} serves and calls the echo program in one process.
    """

    def test_demo_in_process(self) -> Any:
        """
        The demo calls NULL and ECHO over TCP, a UNIX socket and UDP, and
        reports every call good, one row per transport and procedure; then
        over implicit TLS and STARTTLS, each side naming the other.
        """
        lines: list[str] = []
        d = ensureDeferred(run_demo(reactor, lines.append))  # type: ignore[arg-type]

        def check(ok: bool) -> None:
            self.assertTrue(ok, lines)
            rows = [line.split() for line in lines if line.startswith(("tcp ", "unix ", "udp "))]
            self.assertEqual(
                sorted((row[0], row[2]) for row in rows),
                sorted((kind, call[0]) for kind in ("tcp", "udp", "unix") for call in DEMO_CALLS),
            )
            for row in rows:
                self.assertEqual(row[5], "0", row)
            tls_rows = [line for line in lines if line.startswith(("tls ", "starttls "))]
            self.assertEqual(len(tls_rows), 2, lines)
            for row in tls_rows:
                self.assertIn(": ok ", row)
                self.assertIn("ALPN sunrpc", row)
                self.assertIn("client saw 'demo server', server saw alice@example.org", row)
            self.assertEqual(lines[-1], "every call succeeded")

        return d.addCallback(check)



class ExampleTests(TestCase):
    """
    The examples of the documentation (C{docs/examples/}, included in the
    pages) run and do what they say.
    """

    def setUp(self) -> None:
        if not (DOCS / "examples").is_dir():
            raise SkipTest(f"the docs are not beside this checkout ({DOCS} is missing)")

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

    def test_streaming_echo_example(self) -> Any:
        """
        The streaming echo example of C{docs/streaming.rst} gets its
        messages back.
        """
        example = load_example("streaming_echo")
        d = example.main(reactor)
        d.addCallback(
            self.assertEqual, [b"\x00\x00\x00\x01hello", b"\x00\x00\x00\x02world"]
        )
        return d

    def test_udp_echo_example(self) -> Any:
        """
        The UDP echo example of C{docs/udp.rst} gets its messages back.
        """
        example = load_example("udp_echo")
        d = example.main(reactor)
        d.addCallback(
            self.assertEqual, [b"\x00\x00\x00\x01hello", b"\x00\x00\x00\x02world"]
        )
        return d

    def test_keyvalue_example(self) -> None:
        """
        The key-value program of C{docs/rpc.rst} (an RPC server and client,
        XDR by C{xdrlib3}, in under 60 lines) stores and finds a value, and
        says when a key is not there.
        """
        import subprocess
        import sys

        path = DOCS / "examples" / "keyvalue.py"
        self.assertLess(len(path.read_text().splitlines()), 60)
        done = subprocess.run(
            [sys.executable, str(path)], capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines(), ["colour -> blue", "size -> (not found)"])
        self.assertEqual(done.stderr, "")
