# -*- test-case-name: rpctransport.test.test_layers -*-
"""
The package's layout: layers import only downwards, never the package root,
never another package's private names, and no import cycle anywhere; the
sans-IO core imports no Twisted; test modules share helpers only through
L{rpctransport.test.helpers}.

Imports are read with L{ast}, every one of them: at module level, inside
functions, under C{if TYPE_CHECKING}. Each rule is also run against a small
made-up package that breaks it, so that a rule that stopped seeing anything
would fail too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import rpctransport

PACKAGE = Path(rpctransport.__file__).parent
ROOT = PACKAGE.name

LAYERS = {
    # The version, and the libtirpc peers with their process helpers (shared
    # by the benchmark and the interop tests): nothing of ours below them.
    "_version": 0,
    "_tirpc": 0,
    # Value types, errors and codecs over bytes.
    "sansio": 1,
    "interfaces": 2,
    "adapters": 3,
    "entry": 4,
    # The test helpers (memory transports, a throwaway PKI), which the
    # benchmark uses too (its TLS case makes its certificates so).
    "testing": 5,
    # The RPC client and server, on the controllers and the entry points.
    "rpc": 5,
    "bench": 6,
    # The program may run the benchmark; the benchmark never imports the
    # program (it runs "python -m rpctransport serve" as a process).
    "program": 7,
}
"""
The layer of each top-level module or package; lower numbers are lower
layers. A module imports from its own top-level package or module, or from
a lower layer; never from a sibling of its own layer, never from a higher
one.
"""

ROOT_LAYER = max(LAYERS.values()) + 1
"""
The package root, above every layer: C{__init__}, C{__main__}, and the
modules that only re-export a layer's module under a public name.
"""

ROOT_MODULES = ("__main__", "rpcmsg")
"""
The top-level modules of the root's layer: C{python -m rpctransport}, and
C{rpctransport.rpcmsg}, the public home of L{rpctransport.sansio.rpcmsg}.
"""


@dataclass(frozen=True)
class Import:
    """
    One imported thing, resolved to absolute names.

    @ivar module: the module imported, or the one a name is imported from.
    @ivar name: the name imported from C{module} when it is not itself a
        module (L{None} for a module).
    @ivar line: where the import statement is.
    @ivar base: the module a C{from ... import} reads from (C{rpctransport}
        for C{from rpctransport import adapters}, whose C{module} is
        C{rpctransport.adapters}); L{None} for a plain C{import}.
    """

    module: str
    name: str | None
    line: int
    base: str | None = None

    def __str__(self) -> str:
        what = self.module if self.name is None else f"{self.module}.{self.name}"
        return f"{what} (line {self.line})"


@dataclass(frozen=True)
class Module:
    """
    A module of a package, as the checks see it.

    @ivar name: its dotted name.
    @ivar is_package: whether it is a package's C{__init__}.
    @ivar source: its text.
    """

    name: str
    is_package: bool
    source: str

    @property
    def package(self) -> str:
        """
        The package relative imports start from.
        """
        return self.name if self.is_package else self.name.rpartition(".")[0]


def modules_under(directory: Path, *, tests: bool = False) -> dict[str, Module]:
    """
    Every module of the package in C{directory} by dotted name: the library
    (tests excluded), or with C{tests} only the tests.
    """
    found = {}
    for path in sorted(directory.rglob("*.py")):
        relative = path.relative_to(directory.parent)
        if ("test" in relative.parts) != tests:
            continue
        parts = list(relative.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        found[name] = Module(name, is_package, path.read_text())
    return found


def imports_of(module: Module, known: Mapping[str, Module]) -> list[Import]:
    """
    What C{module} imports, resolved: C{from X import n} names the module
    C{X.n} when there is one in C{known}, else the name C{n} of C{X}.
    """
    found = []
    for node in ast.walk(ast.parse(module.source, module.name)):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(node, module)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:
                    found.append(Import(submodule, None, node.lineno, base))
                else:
                    found.append(Import(base, alias.name, node.lineno, base))
    return found


def _base_of(node: ast.ImportFrom, module: Module) -> str:
    """
    The absolute name of the module a C{from ... import} reads from.
    """
    if not node.level:
        return node.module or ""
    parts = module.package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def is_ours(name: str) -> bool:
    """
    Whether C{name} is the package or one of its modules.
    """
    return name == ROOT or name.startswith(ROOT + ".")


def top_of(name: str) -> str | None:
    """
    The top-level module or package C{name} belongs to (C{"adapters"} for
    C{rpctransport.adapters.stream}); L{None} for the root and its
    L{ROOT_MODULES}.
    """
    parts = name.split(".")
    if len(parts) < 2 or parts[1] in ROOT_MODULES:
        return None
    return parts[1]


def layer_of(name: str) -> int | None:
    """
    The layer of an rpctransport module name; L{ROOT_LAYER} for the root,
    L{None} for a top-level name that has no layer (an error of its own).
    """
    top = top_of(name)
    return ROOT_LAYER if top is None else LAYERS.get(top)


def unlayered(known: Mapping[str, Module]) -> list[str]:
    """
    The modules that belong to no layer.
    """
    return sorted(name for name in known if layer_of(name) is None)


def upward_imports(known: Mapping[str, Module]) -> list[str]:
    """
    Imports of a higher layer, or of a sibling package of the same layer.
    (Imports of the root are L{root_imports}'s.)
    """
    wrong = []
    for name, module in known.items():
        mine = layer_of(name)
        if mine is None or mine == ROOT_LAYER:
            continue
        for imported in imports_of(module, known):
            if not is_ours(imported.module) or imported.module == ROOT:
                continue
            theirs = layer_of(imported.module)
            if theirs is None or theirs > mine or (
                theirs == mine and top_of(imported.module) != top_of(name)
            ):
                wrong.append(f"{name} imports {imported}")
    return wrong


def root_imports(known: Mapping[str, Module]) -> list[str]:
    """
    Imports of the package root from inside a layer: C{import rpctransport},
    C{from rpctransport import x}, C{from .. import x} that reaches the root.
    The root re-exports the layers; a layer that imports it depends on every
    layer.
    """
    wrong = []
    for name, module in known.items():
        if layer_of(name) == ROOT_LAYER:
            continue
        for imported in imports_of(module, known):
            if ROOT in (imported.module, imported.base):
                wrong.append(f"{name} imports the package root: {imported}")
    return wrong


def _private_owner(imported: Import, known: Mapping[str, Module]) -> str | None:
    """
    The package that owns what C{imported} names, if it is private: the
    package that holds a module whose name starts with C{_} (the first one
    on the path), or the package of the module that defines a C{_name}.
    Dunder names (C{__version__}) are public.
    """
    parts = imported.module.split(".")
    for i, part in enumerate(parts[1:], 1):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    if imported.name and imported.name.startswith("_") and not imported.name.startswith("__"):
        source = known.get(imported.module)
        return imported.module if source is not None and source.is_package else ".".join(parts[:-1])
    return None


def private_imports(known: Mapping[str, Module]) -> list[str]:
    """
    Private modules and names imported from outside the package that owns
    them.
    """
    wrong = []
    for name, module in known.items():
        for imported in imports_of(module, known):
            if not is_ours(imported.module):
                continue
            owner = _private_owner(imported, known)
            if owner is not None and not (name == owner or name.startswith(owner + ".")):
                wrong.append(f"{name} imports {imported}, private to {owner}")
    return wrong


def import_graph(known: Mapping[str, Module]) -> dict[str, set[str]]:
    """
    Which of C{known} each module imports, at any level of the module
    (functions included).
    """
    return {
        name: {i.module for i in imports_of(module, known) if i.module in known}
        for name, module in known.items()
    }


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """
    The import cycles of C{graph}: each strongly connected component of more
    than one module, or a module that imports itself (Tarjan's algorithm).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so that a deep graph cannot overflow Python's stack.
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(found)


def twisted_in_core(known: Mapping[str, Module]) -> list[str]:
    """
    Imports of Twisted or zope in the layers under the interfaces.
    """
    wrong = []
    for name, module in known.items():
        layer = layer_of(name)
        if layer is None or layer > LAYERS["sansio"] or top_of(name) == "_tirpc":
            continue
        for imported in imports_of(module, known):
            if imported.module.split(".")[0] in ("twisted", "zope"):
                wrong.append(f"{name} imports {imported}")
    return wrong


SHARED_TEST_MODULES = ("helpers", "interop")
"""What a test module may import of the other test modules."""


def cross_test_imports(tests: Mapping[str, Module]) -> list[str]:
    """
    Test modules that import from another test module than the shared
    helpers.
    """
    package = f"{ROOT}.test"
    wrong = []
    for name, module in tests.items():
        for imported in imports_of(module, tests):
            if not imported.module.startswith(package + ".") or imported.module == name:
                continue
            first = imported.module[len(package) + 1 :].split(".")[0]
            if first not in SHARED_TEST_MODULES:
                wrong.append(f"{name} imports {imported}")
    return wrong



def made_up(sources: Mapping[str, str]) -> dict[str, Module]:
    """
    A made-up package for the checks' own tests: C{sources} by path below
    the root (C{"adapters/_common.py"}, C{"__init__.py"}).
    """
    known = {}
    for path, source in sources.items():
        parts = [ROOT, *Path(path).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        known[name] = Module(name, is_package, source)
    return known


class LayerTests(SynchronousTestCase):
    """
    The package's own layout obeys every rule.
    """

    def setUp(self) -> None:
        self.known = modules_under(PACKAGE)

    def test_modules_found(self) -> None:
        """
        The walk finds modules in every layer (so the checks below are not
        vacuous), and every module belongs to a layer.
        """
        layers = {layer_of(name) for name in self.known}
        self.assertTrue(set(LAYERS.values()) | {ROOT_LAYER} <= layers, layers)
        self.assertEqual(unlayered(self.known), [])

    def test_imports_go_down(self) -> None:
        """
        No module imports from a layer above its own, or from a sibling
        package of its own layer.
        """
        self.assertEqual(upward_imports(self.known), [])

    def test_no_root_imports(self) -> None:
        """
        No module inside a layer imports the package root.
        """
        self.assertEqual(root_imports(self.known), [])

    def test_private_stays_home(self) -> None:
        """
        No private module or name is imported from outside its package.
        """
        self.assertEqual(private_imports(self.known), [])

    def test_no_cycles(self) -> None:
        """
        No import cycle, within a layer or across layers.
        """
        self.assertEqual(cycles(import_graph(self.known)), [])

    def test_sansio_imports_no_twisted(self) -> None:
        """
        The sans-IO core (and the version) imports neither Twisted nor zope.
        """
        self.assertEqual(twisted_in_core(self.known), [])

    def test_tests_share_helpers_only(self) -> None:
        """
        A test module imports from the shared helpers, never from another
        test module.
        """
        self.assertEqual(cross_test_imports(modules_under(PACKAGE, tests=True)), [])


class RuleTests(SynchronousTestCase):
    """
    Each rule catches a made-up package that breaks it.
    """

    def test_upward(self) -> None:
        """
        An import from a higher layer is caught, relative or absolute.
        """
        known = made_up(
            {
                "sansio/__init__.py": "",
                "sansio/record.py": "from ..adapters.stream import StreamController\n",
                "adapters/__init__.py": "",
                "adapters/stream.py": "import rpctransport.program.cli\n",
                "program/__init__.py": "",
                "program/cli.py": "",
            }
        )
        self.assertEqual(
            upward_imports(known),
            [
                "rpctransport.sansio.record imports "
                "rpctransport.adapters.stream.StreamController (line 1)",
                "rpctransport.adapters.stream imports rpctransport.program.cli (line 1)",
            ],
        )

    def test_sibling(self) -> None:
        """
        The benchmark importing the program, or testing importing the
        benchmark, is caught; the program importing the benchmark is not.
        """
        known = made_up(
            {
                "bench/__init__.py": "",
                "bench/peer.py": "from ..program import cli\n",
                "testing/__init__.py": "from ..bench import peer\n",
                "program/__init__.py": "",
                "program/cli.py": "from ..bench import peer\n",
            }
        )
        self.assertEqual(
            upward_imports(known),
            [
                "rpctransport.bench.peer imports rpctransport.program.cli (line 1)",
                "rpctransport.testing imports rpctransport.bench.peer (line 1)",
            ],
        )

    def test_root(self) -> None:
        """
        C{import rpctransport}, C{from rpctransport import adapters} and
        C{from .. import x} reaching the root are caught, in functions too.
        """
        known = made_up(
            {
                "__init__.py": "",
                "sansio/__init__.py": "",
                "sansio/types.py": "def f():\n    import rpctransport\n",
                "sansio/record.py": "from rpctransport import adapters\n",
                "adapters/__init__.py": "",
                "adapters/stream.py": "from .. import sansio\nfrom ..sansio import types\n",
            }
        )
        self.assertEqual(
            root_imports(known),
            [
                "rpctransport.sansio.types imports the package root: rpctransport (line 2)",
                "rpctransport.sansio.record imports the package root: "
                "rpctransport.adapters (line 1)",
                "rpctransport.adapters.stream imports the package root: "
                "rpctransport.sansio (line 1)",
            ],
        )

    def test_private(self) -> None:
        """
        A private module, or a private name of a module, imported from
        another package is caught; from its own package it is not, nor are
        the private top-level modules every package shares.
        """
        known = made_up(
            {
                "_version.py": "__version__ = '1'\n",
                "adapters/__init__.py": "",
                "adapters/_common.py": "x = 1\n",
                "adapters/datagram.py": "from ._common import x\n_DatagramPort = 1\n",
                "entry/__init__.py": "",
                "entry/datagram.py": (
                    "from ..adapters._common import x\n"
                    "from ..adapters.datagram import _DatagramPort\n"
                    "from .._version import __version__\n"
                ),
            }
        )
        self.assertEqual(
            private_imports(known),
            [
                "rpctransport.entry.datagram imports rpctransport.adapters._common.x "
                "(line 1), private to rpctransport.adapters",
                "rpctransport.entry.datagram imports rpctransport.adapters.datagram."
                "_DatagramPort (line 2), private to rpctransport.adapters",
            ],
        )

    def test_cycle_within_layer(self) -> None:
        """
        Two modules of one package importing each other, one of them from a
        function, make a cycle.
        """
        known = made_up(
            {
                "program/__init__.py": "",
                "program/cli.py": "def main():\n    from . import commands\n",
                "program/commands.py": "from .cli import host_port\n",
                "program/echo.py": "",
            }
        )
        self.assertEqual(
            cycles(import_graph(known)),
            [["rpctransport.program.cli", "rpctransport.program.commands"]],
        )

    def test_cycle_across_layers(self) -> None:
        """
        A longer cycle through several packages is found whole.
        """
        known = made_up(
            {
                "entry/__init__.py": "",
                "entry/cli.py": "from ..bench.cli import main\n",
                "bench/__init__.py": "",
                "bench/cli.py": "from . import peer\n",
                "bench/peer.py": "from ..entry.cli import x\n",
            }
        )
        self.assertEqual(
            cycles(import_graph(known)),
            [["rpctransport.bench.cli", "rpctransport.bench.peer", "rpctransport.entry.cli"]],
        )

    def test_twisted_in_core(self) -> None:
        """
        Twisted in the sans-IO core is caught.
        """
        known = made_up(
            {"sansio/__init__.py": "", "sansio/record.py": "from twisted.internet import reactor\n"}
        )
        self.assertEqual(
            twisted_in_core(known),
            ["rpctransport.sansio.record imports twisted.internet.reactor (line 1)"],
        )

    def test_test_imports_test(self) -> None:
        """
        A test module importing another test module is caught; importing
        the helpers is not.
        """
        tests = {
            name: Module(name, False, source)
            for name, source in {
                "rpctransport.test.test_a": "from rpctransport.test.test_b import mark\n",
                "rpctransport.test.test_b": "from rpctransport.test.helpers import mark\n",
                "rpctransport.test.helpers": "",
            }.items()
        }
        self.assertEqual(
            cross_test_imports(tests),
            ["rpctransport.test.test_a imports rpctransport.test.test_b.mark (line 1)"],
        )
