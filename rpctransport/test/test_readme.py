# -*- test-case-name: rpctransport.test.test_readme -*-
"""
The README's "Use" program runs, as written, and does what it says.
"""

from __future__ import annotations

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
README = PACKAGE.parent / "README.md"


def use_program(readme: str) -> str:
    """
    The first Python code block of the README's "## Use" section.

    @raise ValueError: there is no such section or block.
    """
    _, found, rest = readme.partition("\n## Use\n")
    if not found:
        raise ValueError("the README has no '## Use' section")
    section = rest.split("\n## ", 1)[0]
    block = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    if block is None:
        raise ValueError("the README's '## Use' section has no python block")
    return block.group(1)


class ReadmeUseTests(SynchronousTestCase):
    """
    The "Use" section of C{README.md}.
    """

    def test_use_program_runs(self) -> None:
        """
        The program serves on loopback TCP, calls itself once and prints
        the record the server sent back, then exits 0 with nothing on
        stderr (no unhandled error, no reactor left running: the process
        ends).
        """
        if not README.is_file():
            raise SkipTest(f"the README is not beside this package ({README} is missing)")
        program = use_program(README.read_text(encoding="utf-8"))
        directory = Path(tempfile.mkdtemp(prefix="rpctransport-readme-"))
        self.addCleanup(shutil.rmtree, directory, True)
        # This package alone on the path, not its checkout's other
        # top-level directories.
        (directory / "path").mkdir()
        (directory / "path" / "rpctransport").symlink_to(PACKAGE, target_is_directory=True)
        (directory / "use.py").write_text(program, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "use.py"],
            cwd=directory,
            env=dict(os.environ, PYTHONPATH=str(directory / "path")),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(
            (done.returncode, done.stdout, done.stderr),
            (0, "b'\\x00\\x00\\x00\\x01hello'\n", ""),
        )

    def test_use_program_found(self) -> None:
        """
        L{use_program} takes the Python block of the "## Use" section, not
        another section's, and says so when there is none.
        """
        readme = (
            "# x\n\n## Quick start\n\n```python\nquick()\n```\n\n"
            "## Use\n\nText.\n\n```python\nuse()\n```\n\n## Layout\n\n```python\nno()\n```\n"
        )
        self.assertEqual(use_program(readme), "use()\n")
        with self.assertRaises(ValueError):
            use_program("# x\n\n## Use\n\nNo code.\n\n## Layout\n\n```python\nno()\n```\n")
        with self.assertRaises(ValueError):
            use_program("# x\n\n## Other\n")
