# -*- test-case-name: rpctransport.test.test_docs_build -*-
"""
The documentation builds without a single warning: C{docs/build}, which makes
the chapters with Sphinx and the API reference with pydoctor, links to
Twisted and Python included, without the network.

Skipped, saying why, where Sphinx or pydoctor is not installed (the C{docs}
extra) or where this copy of the package has no C{docs/} beside it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

import rpctransport

DOCS = Path(rpctransport.__file__).resolve().parent.parent / "docs"
BUILD = DOCS / "build"

BUILD_TIMEOUT = 300
"""
Seconds before the build is taken as hung. It takes about 25 s on a fresh
clone (pydoctor documents part of Twisted for the links, then the package),
about 16 s once that inventory is cached under C{docs/_build}.
"""


def skip_reason() -> str | None:
    """
    Why the docs cannot be built here, or L{None} if they can.
    """
    missing = [name for name in ("sphinx", "pydoctor") if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"{' and '.join(missing)} not installed: the docs build needs the "
            "docs extra (pip install -e '.[docs]')"
        )
    if not BUILD.is_file():
        return f"{BUILD} not found: this copy of rpctransport has no docs beside it"
    if shutil.which("bash") is None:
        return "bash not found: docs/build is a bash script"
    return None


class DocsBuildTests(SynchronousTestCase):
    """
    C{docs/build OUTPUT}.
    """

    def setUp(self) -> None:
        reason = skip_reason()
        if reason is not None:
            raise SkipTest(reason)

    def test_builds_without_warnings(self) -> None:
        """
        The build exits 0, prints no warning, and writes the chapters' index
        with a link into the API reference, which pydoctor wrote beside it.
        """
        out = Path(tempfile.mkdtemp(prefix="rpctransport-docs-"))
        self.addCleanup(shutil.rmtree, out, True)
        env = dict(os.environ, PYTHON=sys.executable)
        result = subprocess.run(
            ["bash", str(BUILD), str(out / "html")],
            capture_output=True,
            text=True,
            env=env,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        report = f"exit {result.returncode}\n{result.stdout}{result.stderr}"
        self.assertEqual(result.returncode, 0, report)
        self.assertNotIn("WARNING", report)
        index = (out / "html" / "index.html").read_text(encoding="utf-8")
        self.assertIn('href="api/rpctransport.interfaces.IRpcMultiplexController.html"', index)
        self.assertTrue(
            (out / "html" / "api" / "rpctransport.interfaces.IRpcMultiplexController.html")
            .is_file()
        )
