# -*- test-case-name: rpctransport.test.test_twisted_private -*-
"""
Tests for L{rpctransport.adapters._twisted}: the one module that uses
Twisted beyond its published interfaces.
"""

from __future__ import annotations

import ast
import os
import socket
import tempfile
from pathlib import Path

from twisted.internet import abstract, tcp, udp
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from rpctransport.adapters import _twisted
from rpctransport.adapters.tls import SunRPCNegotiation

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


class NegotiateUnderTests(SynchronousTestCase):
    """
    L{_twisted.negotiate_under} gives Twisted's TLS layer a factory to ask
    for ALPN protocols only when it wraps none (as C{startTLS} makes it).
    """

    def layer(self, wrapped: Factory | None) -> object:
        """
        A Twisted TLS layer (not connected) whose factory wraps C{wrapped}.
        """
        from twisted.internet.ssl import CertificateOptions
        from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

        factory = TLSMemoryBIOFactory(CertificateOptions(), False, wrapped)
        return TLSMemoryBIOProtocol(factory, Protocol())

    def test_layer_without_factory(self) -> None:
        """
        A layer that wraps no factory gets the negotiation as its factory's
        wrapped factory.
        """
        layer = self.layer(None)
        negotiation = SunRPCNegotiation()
        self.assertTrue(_twisted.negotiate_under(layer, negotiation))
        self.assertIs(layer.factory.wrappedFactory, negotiation)  # type: ignore[attr-defined]

    def test_layer_with_factory(self) -> None:
        """
        A layer that wraps a factory (a listener's, shared by its
        connections) keeps it.
        """
        wrapped = Factory.forProtocol(Protocol)
        layer = self.layer(wrapped)
        self.assertFalse(_twisted.negotiate_under(layer, SunRPCNegotiation()))
        self.assertIs(layer.factory.wrappedFactory, wrapped)  # type: ignore[attr-defined]

    def test_not_a_layer(self) -> None:
        """
        Anything without a factory is left alone.
        """
        self.assertFalse(_twisted.negotiate_under(object(), SunRPCNegotiation()))


class AdoptUNIXListenerTests(TestCase):
    """
    L{_twisted.adopt_unix_listener} serves an adopted UNIX socket and leaves
    it to its owner when it stops.
    """

    @inlineCallbacks
    def test_left_to_its_owner(self) -> object:
        """
        Once the port stopped, the owner's socket still listens (Twisted's
        own adopted UNIX port calls C{shutdown()}: a client would be
        refused) and its path is still there (Twisted's removes it).
        """
        from twisted.internet import reactor

        directory = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, directory)
        path = os.path.join(directory, "s.sock")
        owner = socket.socket(socket.AF_UNIX)
        owner.bind(path)
        self.addCleanup(os.unlink, path)
        owner.listen(4)
        owner.setblocking(False)
        self.addCleanup(owner.close)
        port = _twisted.adopt_unix_listener(reactor, owner.fileno(), Factory.forProtocol(Protocol))
        self.assertEqual(port.getHost().name, path.encode())
        yield port.stopListening()
        self.assertTrue(os.path.exists(path))
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
