"""
Intersphinx inventories for Twisted and the Python standard library, made
without the network.

The API reference (pydoctor) and the chapters (Sphinx) link to Twisted's and
Python's documentation through their C{objects.inv}. The machines that build
these docs cannot download them, so:

  - Twisted's is written by pydoctor from the installed Twisted (the
    subpackages in L{TWISTED_PARTS}), once per Twisted version, into the
    cache directory. Twisted's own API reference is made by pydoctor too, so
    the pages it names are those under L{TWISTED_API}.
  - Python's is compiled from C{python-inventory.txt} beside this file: the
    standard-library names that rpctransport's docstrings and annotations
    use, with their pages under L{PYTHON_DOCS}.

Either can be replaced by a real inventory, a file or a URL, through the
environment: C{RPCTRANSPORT_DOCS_TWISTED_INV}, C{RPCTRANSPORT_DOCS_PYTHON_INV}
(for instance C{https://docs.python.org/3/objects.inv} where the network
allows). C{RPCTRANSPORT_DOCS_CACHE} moves the cache (default
C{docs/_build/inventories}).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

TWISTED_API = "https://docs.twisted.org/en/stable/api"
PYTHON_DOCS = "https://docs.python.org/3"

# The Twisted subpackages rpctransport refers to. Documenting all of Twisted
# takes three times as long (about 22 s against 7 s); add a name here when a
# docstring starts to link into another part.
TWISTED_PARTS = (
    "application",
    "internet",
    "logger",
    "plugin.py",
    "protocols",
    "python",
    "trial",
)


@dataclass(frozen=True)
class Inventory:
    """
    Where one project's documentation lives and where its inventory is.

    @ivar name: The intersphinx name (C{"python"}, C{"twisted"}).
    @ivar base_url: The address the inventory's pages are relative to.
    @ivar location: A local C{objects.inv} file, or its URL.
    """

    name: str
    base_url: str
    location: str

    def pydoctor_args(self) -> list[str]:
        """
        The pydoctor options that link to this inventory.
        """
        if "://" in self.location:
            # pydoctor takes the pages' base from the inventory's own URL.
            return [f"--intersphinx={self.location}"]
        return [f"--intersphinx-file={self.location}::{self.base_url}"]

    def sphinx_mapping(self) -> tuple[str, str]:
        """
        The value of this inventory's entry in Sphinx's C{intersphinx_mapping}.
        """
        return (self.base_url, self.location)


def cache_dir() -> Path:
    """
    The directory where generated inventories are kept, made if needed.
    """
    path = Path(os.environ.get("RPCTRANSPORT_DOCS_CACHE", HERE / "_build" / "inventories"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    """
    Write C{data} to C{path} so that a concurrent build never reads half a file.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def compile_inventory(text: str, project: str, version: str) -> bytes:
    """
    Encode the lines of a plain-text inventory as a Sphinx version 2
    C{objects.inv}; blank lines and lines starting with C{#} are left out.
    """
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for line in lines:
        if len(line.split(None, 4)) != 5:
            raise ValueError(f"not an inventory line: {line!r}")
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(line + "\n" for line in lines)
    return header.encode() + zlib.compress(body.encode())


def python_inventory() -> Inventory:
    """
    Python's inventory: C{RPCTRANSPORT_DOCS_PYTHON_INV}, or the one compiled
    from C{python-inventory.txt}.
    """
    given = os.environ.get("RPCTRANSPORT_DOCS_PYTHON_INV")
    if given:
        return Inventory("python", PYTHON_DOCS, given)
    text = (HERE / "python-inventory.txt").read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = cache_dir() / f"python-{digest}.inv"
    if not path.exists():
        _write_atomically(path, compile_inventory(text, "Python", "3"))
    return Inventory("python", PYTHON_DOCS, str(path))


def twisted_inventory() -> Inventory:
    """
    Twisted's inventory: C{RPCTRANSPORT_DOCS_TWISTED_INV}, or one that
    pydoctor writes for the installed Twisted (kept in the cache).

    @raise RuntimeError: If pydoctor fails to write it.
    """
    given = os.environ.get("RPCTRANSPORT_DOCS_TWISTED_INV")
    if given:
        return Inventory("twisted", TWISTED_API, given)
    version = importlib.metadata.version("Twisted")
    parts = hashlib.sha256(" ".join(TWISTED_PARTS).encode()).hexdigest()[:8]
    path = cache_dir() / f"twisted-{version}-{parts}.inv"
    if not path.exists():
        _write_atomically(path, _document_twisted(version))
    return Inventory("twisted", TWISTED_API, str(path))


def _document_twisted(version: str) -> bytes:
    """
    Run pydoctor over L{TWISTED_PARTS} of the installed Twisted and return
    the C{objects.inv} it writes.
    """
    spec = importlib.util.find_spec("twisted")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("Twisted is not installed")
    source = Path(list(spec.submodule_search_locations)[0])
    with tempfile.TemporaryDirectory(prefix="rpctransport-docs-") as tmp:
        # A "twisted" package holding only the parts we link to.
        package = Path(tmp, "twisted")
        package.mkdir()
        (package / "__init__.py").write_bytes((source / "__init__.py").read_bytes())
        for part in TWISTED_PARTS:
            (package / part).symlink_to(source / part)
        out = Path(tmp, "out")
        result = subprocess.run(
            [
                sys.executable, "-m", "pydoctor",
                "--make-intersphinx",
                "--project-name=Twisted",
                f"--project-version={version}",
                f"--html-output={out}",
                "-q", "-q",
                str(package),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        inventory = out / "objects.inv"
        if not inventory.exists():
            raise RuntimeError(
                f"pydoctor wrote no Twisted inventory (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return inventory.read_bytes()


def inventories() -> list[Inventory]:
    """
    The inventories the docs link to: Python's and Twisted's.
    """
    return [python_inventory(), twisted_inventory()]
