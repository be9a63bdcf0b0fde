# -*- test-case-name: rpctransport.test.test_layers -*-
"""
The package's layers import only downwards, and the sans-IO core imports no
Twisted.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import rpctransport

PACKAGE = Path(rpctransport.__file__).parent

# Lower number = lower layer. A module may import from its own layer or below.
LAYERS = {
    "sansio": 1,
    "rpcmsg": 1,
    "interfaces": 2,
    "adapters": 3,
    "testing": 3,
    "entry": 4,
    "bench": 4,
    # The libtirpc peers and the process helpers the benchmark and the
    # interop tests share.
    "_tirpc": 4,
}


def layer_of(module: str) -> int | None:
    """
    The layer of an rpctransport module name (C{"rpctransport.x.y"}), or
    L{None} for the package itself and modules outside the layers.
    """
    parts = module.split(".")
    if parts[0] != "rpctransport" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def imports_of(path: Path, module: str) -> set[str]:
    """
    The absolute names of the modules C{path} imports.
    """
    tree = ast.parse(path.read_text(), str(path))
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    found.update(f"{name}.{alias.name}" for alias in node.names)
                else:
                    found.add(name)
            elif node.module:
                found.add(node.module)
    return found


def library_modules() -> list[tuple[Path, str]]:
    """
    Every module of the library (tests excluded), with its dotted name.
    """
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        if "test" in relative.parts:
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((path, ".".join(parts)))
    return out


class LayerTests(SynchronousTestCase):
    """
    Imports go one way: sansio <- interfaces <- adapters <- entry, bench.
    """

    def test_modules_found(self) -> None:
        """
        The walk finds the modules of every layer (so the checks below are
        not vacuous).
        """
        layers = {layer_of(name) for _, name in library_modules()}
        self.assertTrue({1, 2, 3, 4} <= layers, layers)

    def test_imports_go_down(self) -> None:
        """
        No module imports from a layer above its own.
        """
        wrong = []
        for path, name in library_modules():
            mine = layer_of(name)
            if mine is None:
                continue
            for imported in imports_of(path, name):
                theirs = layer_of(imported)
                if theirs is not None and theirs > mine:
                    wrong.append(f"{name} imports {imported}")
        self.assertEqual(wrong, [])

    def test_sansio_imports_no_twisted(self) -> None:
        """
        The sans-IO core imports neither Twisted nor zope.
        """
        wrong = []
        for path, name in library_modules():
            if layer_of(name) != 1:
                continue
            for imported in imports_of(path, name):
                if imported.split(".")[0] in ("twisted", "zope"):
                    wrong.append(f"{name} imports {imported}")
        self.assertEqual(wrong, [])
