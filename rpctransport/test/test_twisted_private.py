# -*- test-case-name: rpctransport.test.test_twisted_private -*-
"""
Tests for L{rpctransport.adapters._twisted}: the one module that uses
Twisted beyond its published interfaces.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.internet import abstract, tcp, udp
from twisted.trial.unittest import SynchronousTestCase

from rpctransport.adapters import _twisted

PACKAGE = Path(__file__).resolve().parent.parent


class TwistedInternalsTests(SynchronousTestCase):
    """
    The private attributes of Twisted the package relies on are there, and
    only one module touches them.
    """

    def test_none_missing(self) -> None:
        """
        Every private attribute L{_twisted} relies on exists in this
        Twisted: an upgrade that removes one fails here, naming it, rather
        than quietly turning a feature off.
        """
        self.assertEqual(_twisted.MISSING, (), "Twisted no longer has these")

    def test_missing_detected(self) -> None:
        """
        The check really looks: an attribute no Twisted class has is
        reported as missing, and one set only in C{__init__} is found.
        """
        self.assertNotIn("_noSuchAttribute", _twisted._instance_names(tcp.Connection))
        self.assertIn("_tempDataLen", _twisted._instance_names(abstract.FileDescriptor))
        self.assertFalse(hasattr(udp.Port, "_noSuchAttribute"))

    def test_only_one_module(self) -> None:
        """
        No module of the package but L{_twisted} names one of the private
        attributes of Twisted it guards.
        """
        # Words too common to search for (an RPC header has an offset too).
        common = {"connected", "disconnecting", "offset"}
        names = {
            name
            for _, attributes in _twisted._REQUIRED.values()
            for name in attributes
            if name not in common
        }
        offenders = []
        for path in sorted(PACKAGE.rglob("*.py")):
            if "test" in path.relative_to(PACKAGE).parts or path.name == "_twisted.py":
                continue
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                used = None
                if isinstance(node, ast.Attribute) and node.attr in names:
                    used = node.attr
                elif isinstance(node, ast.Constant) and node.value in names:
                    used = node.value
                elif isinstance(node, ast.FunctionDef) and node.name in names:
                    used = node.name
                if used is not None:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {used}")
        self.assertEqual(offenders, [])
