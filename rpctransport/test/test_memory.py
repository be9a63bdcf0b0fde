# -*- test-case-name: rpctransport.test.test_memory -*-
"""
Tests for L{rpctransport.testing.controller_pair}: two stream controllers
joined in memory.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from rpctransport import END_OF_FILE, Accepted, IRpcMultiplexController
from rpctransport.testing import controller_pair


class ControllerPairTests(SynchronousTestCase):
    """
    The in-memory pair behaves like a connected pair of stream controllers.
    """

    def test_verify_object(self) -> None:
        """
        Both controllers of the pair provide L{IRpcMultiplexController}.
        """
        client, server = controller_pair()
        self.assertTrue(verifyObject(IRpcMultiplexController, client))
        self.assertTrue(verifyObject(IRpcMultiplexController, server))

    def test_round_trip(self) -> None:
        """
        What one side writes the other reads, synchronously, with the
        writer's address as the peer.
        """
        client, server = controller_pair()
        d = server.start_reading()
        self.successResultOf(client.start_writing([b"ca", b"ll"]))
        self.assertEqual(self.successResultOf(d), (Accepted(b"call"), client.getsockname()))
        reply = client.start_reading()
        self.successResultOf(server.start_writing(b"reply"))
        self.assertEqual(self.successResultOf(reply)[0], Accepted(b"reply"))

    def test_ping_pong_does_not_recurse(self) -> None:
        """
        Two read-write loops driving each other 5,000 times finish without
        recursion: deliveries are pumped by one loop.
        """
        client, server = controller_pair()
        count = []

        def serve(result: Any) -> None:
            server.start_writing(result[0].message)
            server.start_reading().addCallback(serve)

        def on_reply(result: Any) -> None:
            count.append(1)
            if len(count) < 5000:
                client.start_reading().addCallback(on_reply)
                client.start_writing(b"ping")

        server.start_reading().addCallback(serve)
        client.start_reading().addCallback(on_reply)
        client.start_writing(b"ping")
        self.assertEqual(len(count), 5000)

    def test_shutdown_both_ways(self) -> None:
        """
        A shutdown on one side gives the other C{END_OF_FILE}; when it shuts
        down too, both shutdowns complete and both have seen EOF.
        """
        client, server = controller_pair()
        server_read = server.start_reading()
        client_shutdown = client.start_shutting_down()
        self.assertIs(self.successResultOf(server_read), END_OF_FILE)
        self.assertNoResult(client_shutdown)
        self.successResultOf(server.start_shutting_down())
        self.successResultOf(client_shutdown)
        self.assertTrue(client.read_eof)
        self.assertTrue(server.read_eof)

    def test_linger_on_clock(self) -> None:
        """
        Timers run on the pair's clock: a shutdown whose peer never answers
        completes after the linger.
        """
        clock = Clock()
        client, server = controller_pair(clock, linger=2)
        d = client.start_shutting_down()
        self.assertNoResult(d)
        clock.advance(2)
        self.successResultOf(d)

    def test_inactivate_closes_peer(self) -> None:
        """
        Inactivating one side closes the connection: the other side's read
        gets C{END_OF_FILE}.
        """
        client, server = controller_pair()
        d = server.start_reading()
        client.inactivate()
        self.assertIs(self.successResultOf(d), END_OF_FILE)
        self.assertFalse(client.alive)

    def test_abort_fails_peer(self) -> None:
        """
        An aborted connection fails the other side's read with
        C{ConnectionLost}.
        """
        client, server = controller_pair()
        d = server.start_reading()
        client.transport.abortConnection()  # type: ignore[union-attr]
        self.failureResultOf(d, ConnectionLost)

    def test_pause_holds_deliveries(self) -> None:
        """
        Records nobody reads past C{read_buffer_limit} are held in the pipe,
        not in the controller, and all arrive once reading resumes.
        """
        client, server = controller_pair(read_buffer_limit=10)
        for i in range(5):
            client.start_writing(b"%d" % i * 20)
        self.assertLess(server._reader.buffered, 50)
        got = [self.successResultOf(server.start_reading())[0].message for i in range(5)]
        self.assertEqual(got, [b"%d" % i * 20 for i in range(5)])
