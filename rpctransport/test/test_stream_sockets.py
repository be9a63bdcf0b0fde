# -*- test-case-name: rpctransport.test.test_stream_sockets -*-
"""
Integration tests of L{rpctransport.StreamController} over real loopback
sockets: TCP on 127.0.0.1 and UNIX sockets in a temporary directory, on the
real reactor.

The controllers come from L{rpctransport.listen_stream},
L{rpctransport.connect_stream} and
L{rpctransport.stream_rpc_multiplex_controller}; the misbehaving peers are
plain Twisted protocols writing raw bytes, or plain sockets. Every test
cleans up its listening ports, controllers and sockets so that trial never
finds the reactor dirty. Nothing here asserts how long anything takes: waits
are bounded only so that a broken controller fails a test instead of hanging
it.
"""

from __future__ import annotations

import collections
import os
import pwd
import random
import select
import shutil
import socket
import struct
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Generator
from typing import Any

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import CancelledError, Deferred, DeferredQueue, inlineCallbacks
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from rpctransport.adapters.sameturn import FLUSH_AFTER

from rpctransport import (
    ACCEPT,
    DENY,
    DROP,
    END_OF_FILE,
    REJECT,
    Accepted,
    AddressMismatch,
    ControllerInactive,
    Denied,
    Dropped,
    IRpcMultiplexController,
    RecordTooLarge,
    Rejected,
    RpcProtocol,
    StreamController,
    connect_stream,
    encode_record,
    listen_stream,
    stream_rpc_multiplex_controller,
)
from rpctransport.test.helpers import (
    TLS_CLIENT_HELLO,
    WAIT,
    RawPeer,
    SocketTestMixin,
    fires_within,
    mark,
    outcome,
    pattern,
    sleep,
)

KiB = 1024
MiB = 1024 * 1024

MEMORY_BUDGET = 1 * MiB
"""
Peak traced memory a refused 64 MiB record may cost, above where it started:
a few of Twisted's 64 KiB reads and writes, never the record.
"""

HTTP_GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n"

@implementer(IPullProducer)
class BigRecordSender:
    """
    Stream one huge single-fragment record through a transport without ever
    holding it: the record mark, then one reused block per pull from the
    transport, then optional trailing bytes.

    @ivar done: fires when everything has been handed to the transport.
    """

    def __init__(self, transport: Any, block: bytes, total: int, trailer: bytes = b"") -> None:
        self.transport = transport
        self.block = block
        self.left = total
        self.total = total
        self.trailer = trailer
        self.done: Deferred[None] = Deferred()

    def start(self) -> Deferred[None]:
        """
        Write the record mark and let the transport pull the payload.
        """
        self.transport.write(mark(self.total))
        self.transport.registerProducer(self, False)
        return self.done

    def resumeProducing(self) -> None:
        """
        The transport drained: write the next block.
        """
        if self.left <= 0:
            return
        n = min(len(self.block), self.left)
        self.transport.write(self.block if n == len(self.block) else self.block[:n])
        self.left -= n
        if self.left == 0:
            if self.trailer:
                self.transport.write(self.trailer)
            self.transport.unregisterProducer()
            self.done.callback(None)

    def stopProducing(self) -> None:
        """
        The connection is going away; nothing to release.
        """


def wire(message: bytes) -> bytes:
    """
    C{message} record-marked, as one C{bytes}: what the peer reads.
    """
    return b"".join(encode_record(message))


class _StreamSocketTestsMixin(SocketTestMixin):
    """
    Tests of controllers made by L{listen_stream} and L{connect_stream},
    shared by TCP and UNIX sockets. Subclasses say how to listen and connect.

    @cvar family: the socket family under test.
    @cvar address_type: the Twisted address class of its ends.
    """

    family: socket.AddressFamily
    address_type: type

    def setUp(self) -> None:
        self._setUpRegistry()
        self.accepted: DeferredQueue[StreamController] = DeferredQueue()
        self.port: Any = None

    def server_endpoint(self) -> str:
        """
        The server endpoint string to listen on.
        """
        raise NotImplementedError()

    def client_endpoint(self) -> str:
        """
        The client endpoint string reaching the listener.
        """
        raise NotImplementedError()

    def expected_credentials(self) -> tuple[int, int, int] | None:
        """
        What C{peer_credentials} must say for a peer in this process.
        """
        raise NotImplementedError()

    # -- Setting up connections ----------------------------------------------

    def _on_connection(self, controller: StreamController) -> None:
        self.track(controller)
        self.accepted.put(controller)

    @inlineCallbacks
    def listen(self, **options: Any) -> Generator[Any, Any, Any]:
        """
        Listen with L{listen_stream}; accepted controllers go to
        C{self.accepted}.
        """
        port = yield listen_stream(
            self.server_endpoint(), self._on_connection, reactor=self.reactor, **options
        )
        self.addCleanup(port.stopListening)
        self.port = port
        return port

    @inlineCallbacks
    def connect(self, **options: Any) -> Generator[Any, Any, StreamController]:
        """
        Connect a controller with L{connect_stream} to the listener.
        """
        client = yield self.within(
            connect_stream(self.client_endpoint(), reactor=self.reactor, **options), "connect"
        )
        return self.track(client)

    @inlineCallbacks
    def next_server(self) -> Generator[Any, Any, StreamController]:
        """
        The next controller the listener accepted.
        """
        server: StreamController = yield self.within(
            self.accepted.get(), "an accepted connection"
        )
        return server

    @inlineCallbacks
    def pair(
        self,
        server_options: dict[str, Any] | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> Generator[Any, Any, tuple[StreamController, StreamController]]:
        """
        Listen, connect, and return C{(client, server)} controllers.
        """
        yield self.listen(**(server_options or {}))
        client = yield self.connect(**(client_options or {}))
        server = yield self.next_server()
        return client, server

    @inlineCallbacks
    def connect_raw(self, peer: RawPeer | None = None) -> Generator[Any, Any, RawPeer]:
        """
        Connect a L{RawPeer} to the listener.
        """
        peer = peer if peer is not None else RawPeer()
        endpoint = clientFromString(self.reactor, self.client_endpoint())
        yield self.within(connectProtocol(endpoint, peer), "raw connect")
        return self.track_peer(peer)

    @inlineCallbacks
    def round_trip(
        self, client: StreamController, server: StreamController, message: bytes
    ) -> Generator[Any, Any, None]:
        """
        Send C{message} from C{client} to C{server} and back, and check that
        it arrives exactly both ways.
        """
        reading = server.start_reading()
        yield self.within(client.start_writing(message), "client write")
        got = yield self.within(reading, "server read")
        self.assertEqual(got, (Accepted(message), server.getpeername()))
        reading = client.start_reading()
        yield self.within(server.start_writing(message), "server write")
        got = yield self.within(reading, "client read")
        self.assertEqual(got, (Accepted(message), client.getpeername()))

    @inlineCallbacks
    def write_until_stuck(
        self, writer: StreamController, make_record: Callable[[int], Any], max_writes: int = 96
    ) -> Generator[Any, Any, tuple[Deferred[None], int]]:
        """
        Write records until one write stays pending while the peer does not
        read; return its Deferred and how many records were written.

        A write that has not fired after a short while is watched a little
        longer before it counts as stuck, so that a slow machine does not
        pass for backpressure; at most C{max_writes} records are written, far
        more than the kernel's buffers hold, so a writer that is never
        pushed back fails the test.
        """
        for n in range(1, max_writes + 1):
            d = writer.start_writing(make_record(n - 1))
            fired = yield fires_within(d, 0.3)
            if fired:
                yield d
                continue
            fired = yield fires_within(d, 0.5)
            if fired:
                yield d
                continue
            return d, n
        self.fail(
            f"{max_writes} records written and none waited for the peer to read"
        )

    @inlineCallbacks
    def assert_closed_by_peer(self, d: Deferred[Any]) -> Generator[Any, Any, None]:
        """
        Check that a read ends because the connection closed: with
        END_OF_FILE or a failure saying the connection closed.
        """
        ok, result = yield self.within(outcome(d), "the end of the connection")
        if ok:
            self.assertIs(result, END_OF_FILE)
        elif not result.check(ConnectionClosed):
            result.raiseException()

    # -- 1. Reads and writes --------------------------------------------------

    @inlineCallbacks
    def test_round_trip_sizes(self) -> Generator[Any, Any, None]:
        """
        Records of 0, 1, 4, 1000, 65536 bytes and 1 MiB written by a
        connect_stream controller arrive exactly at the listen_stream
        controller, and come back exactly the other way.
        """
        client, server = yield self.pair()
        for size in (0, 1, 4, 1000, 65536, MiB):
            yield self.round_trip(client, server, pattern(size, seed=size))

    @inlineCallbacks
    def test_multi_fragment_record(self) -> Generator[Any, Any, None]:
        """
        A record written with max_fragment_size=4096 goes out as many
        fragments (before_record sees each, with the growing total) and
        arrives as one whole record.
        """
        client, server = yield self.pair(client_options={"max_fragment_size": 4096})
        message = pattern(100_000, seed=3)
        sizes: list[int] = []

        def before_record(size: int, peer: object) -> Any:
            sizes.append(size)
            return ACCEPT

        reading = server.start_reading(before_record=before_record)
        yield self.within(client.start_writing(message), "write")
        record, _ = yield self.within(reading, "read")
        self.assertEqual(record, Accepted(message))
        expected = list(range(4096, 100_000, 4096)) + [100_000]
        self.assertEqual(sizes, expected)

    @inlineCallbacks
    def test_scatter_gather_write(self) -> Generator[Any, Any, None]:
        """
        A record written as a list of bytes-like pieces arrives as the pieces
        joined, as one record.
        """
        client, server = yield self.pair()
        pieces = [b"head", bytearray(b"-middle-"), memoryview(b"tail"), b"", pattern(70_000)]
        reading = server.start_reading()
        yield self.within(client.start_writing(pieces), "write")
        record, _ = yield self.within(reading, "read")
        self.assertEqual(record, Accepted(b"head-middle-tail" + pattern(70_000)))

    @inlineCallbacks
    def test_pipelined_records_in_order(self) -> Generator[Any, Any, None]:
        """
        Records written back to back, all before the reader reads any, are
        all delivered, in order and intact.
        """
        client, server = yield self.pair()
        messages = [struct.pack(">I", i) + pattern((i * 37) % 1500, seed=i) for i in range(120)]
        for message in messages:
            yield self.within(client.start_writing(message), "write")
        for i, message in enumerate(messages):
            record, _ = yield self.within(server.start_reading(), f"read {i}")
            self.assertEqual(record, Accepted(message), f"record {i}")

    # -- Prompt writes ----------------------------------------------------------

    def plain_client(self) -> socket.socket:
        """
        A blocking plain socket connected to the listener.
        """
        raise NotImplementedError()

    @inlineCallbacks
    def _reply_seen_in_the_same_turn(
        self, prompt_writes: bool, close_after: bool = False
    ) -> Generator[Any, Any, tuple[bool, bytes]]:
        """
        A plain socket sends one call; the server replies from the read's
        callback (and, with C{close_after}, inactivates). Return whether the
        reply had reached the socket when the server's C{dataReceived}
        returned, before the reactor's next turn, and everything the socket
        then received until EOF or the reply.
        """
        yield self.listen(prompt_writes=prompt_writes)
        sock = self.track_socket(self.plain_client())
        server = yield self.next_server()
        seen: list[bool] = []
        original = server.dataReceived

        def observing(data: bytes) -> None:
            original(data)
            # The reactor is blocked here: only the controller itself can
            # have sent the reply. Without prompt writes it cannot come, and
            # waiting longer would prove nothing more.
            readable, _, _ = select.select([sock], [], [], WAIT if prompt_writes else 0.2)
            seen.append(bool(readable))

        server.dataReceived = observing  # type: ignore[method-assign]

        def reply(result: Any) -> None:
            server.start_writing(b"re:" + result[0].message)
            if close_after:
                server.inactivate()

        server.start_reading().addCallback(reply)
        sock.sendall(wire(b"call"))
        yield self.until(lambda: bool(seen), "the call to be received")
        got = yield self.receive(sock, len(wire(b"re:call")), until_eof=close_after)
        return seen[0], got

    @inlineCallbacks
    def receive(
        self, sock: socket.socket, size: int, until_eof: bool = False
    ) -> Generator[Any, Any, bytes]:
        """
        Read C{size} bytes from C{sock} (or, with C{until_eof}, everything
        until the end of the input), letting the reactor run meanwhile.
        """
        got = b""
        while len(got) < size or until_eof:
            chunk = yield self.reactor_recv(sock)
            if not chunk:
                break
            got += chunk
        return got

    @inlineCallbacks
    def reactor_recv(self, sock: socket.socket) -> Generator[Any, Any, bytes]:
        """
        Wait (letting the reactor run) until C{sock} is readable, then read.
        """
        yield self.until(
            lambda: bool(select.select([sock], [], [], 0)[0]), "the socket to be readable"
        )
        return sock.recv(65536)

    @inlineCallbacks
    def test_reply_sent_before_the_next_reactor_turn(self) -> Generator[Any, Any, None]:
        """
        A record written while received bytes are handled (a reply, from the
        read's callback) is sent before C{dataReceived} returns to the
        reactor, and only once.
        """
        seen, got = yield self._reply_seen_in_the_same_turn(prompt_writes=True)
        self.assertTrue(seen, "the reply waited for the reactor")
        self.assertEqual(got, wire(b"re:call"))

    @inlineCallbacks
    def test_reply_waits_for_the_reactor_without_prompt_writes(
        self,
    ) -> Generator[Any, Any, None]:
        """
        With C{prompt_writes=False}, Twisted sends the reply on the reactor's
        next turn, as it does for any protocol.
        """
        seen, got = yield self._reply_seen_in_the_same_turn(prompt_writes=False)
        self.assertFalse(seen, "the reply left before the reactor's turn")
        self.assertEqual(got, wire(b"re:call"))

    @inlineCallbacks
    def test_reply_then_inactivate(self) -> Generator[Any, Any, None]:
        """
        A reply written just before C{inactivate()}, in the same callback,
        reaches the peer whole, and then the connection closes: a closing
        transport is left to the reactor.
        """
        _, got = yield self._reply_seen_in_the_same_turn(prompt_writes=True, close_after=True)
        self.assertEqual(got, wire(b"re:call"))

    @inlineCallbacks
    def _serve_replies(
        self, reply: Callable[[bytes], bytes]
    ) -> Generator[Any, Any, tuple[socket.socket, StreamController, list[int]]]:
        """
        Listen, connect a plain socket, and have the server answer every
        record with C{reply(message)} from its read's callback. Return the
        socket, the server and a list that gets one entry per record handled.
        """
        yield self.listen()
        sock = self.track_socket(self.plain_client())
        server = yield self.next_server()
        handled: list[int] = []

        def on_read(result: Any) -> None:
            if result is END_OF_FILE:
                return
            handled.append(len(result[0].message))
            server.start_writing(reply(result[0].message)).addCallback(read_next)

        def read_next(_: object = None) -> None:
            server.start_reading().addCallback(on_read)

        server.start_reading().addCallback(on_read)
        return sock, server, handled

    @inlineCallbacks
    def test_pipelined_replies_sent_before_the_next_reactor_turn(
        self,
    ) -> Generator[Any, Any, None]:
        """
        Calls that arrive together are answered together: every reply goes
        out before C{dataReceived} returns to the reactor.
        """
        sock, server, handled = yield self._serve_replies(lambda m: b"re:" + m)
        calls = [b"call %d" % i for i in range(3)]
        expected = b"".join(wire(b"re:" + c) for c in calls)
        waiting: list[int] = []
        original = server.dataReceived

        def observing(data: bytes) -> None:
            original(data)
            if len(handled) == len(calls):
                try:
                    waiting.append(len(sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)))
                except BlockingIOError:
                    waiting.append(0)

        server.dataReceived = observing  # type: ignore[method-assign]
        sock.sendall(b"".join(wire(c) for c in calls))
        yield self.until(lambda: bool(waiting), "the calls to be handled")
        self.assertEqual(waiting, [len(expected)])

    @inlineCallbacks
    def _early_replies_seen(self, prompt_writes: bool) -> Generator[Any, Any, int]:
        """
        Three calls arrive together and each takes the server longer than
        L{FLUSH_AFTER} to answer; return how many bytes of replies the peer
        could read when the server began answering the third.
        """
        yield self.listen(prompt_writes=prompt_writes)
        sock = self.track_socket(self.plain_client())
        server = yield self.next_server()
        seen: list[int] = []

        def on_read(result: Any) -> None:
            if len(seen) == 0 and result[0].message == b"call 2":
                try:
                    seen.append(len(sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)))
                except BlockingIOError:
                    seen.append(0)
            time.sleep(2 * FLUSH_AFTER)
            server.start_writing(b"re:" + result[0].message)
            server.start_reading().addCallback(on_read)

        server.start_reading().addCallback(on_read)
        calls = [b"call %d" % i for i in range(3)]
        sock.setblocking(False)
        sock.sendall(b"".join(wire(c) for c in calls))
        yield self.until(lambda: bool(seen), "the third call to be handled")
        return seen[0]

    @inlineCallbacks
    def test_replies_leave_while_later_calls_are_handled(
        self,
    ) -> Generator[Any, Any, None]:
        """
        When calls that arrived together take a while to answer, the first
        replies are sent while the later calls are still being handled, not
        all at the end.
        """
        seen = yield self._early_replies_seen(prompt_writes=True)
        self.assertEqual(seen, 2 * len(wire(b"re:call 0")))

    @inlineCallbacks
    def test_replies_wait_for_the_end_without_prompt_writes(
        self,
    ) -> Generator[Any, Any, None]:
        """
        With C{prompt_writes=False}, no reply leaves while later calls of the
        same chunk are being handled.
        """
        seen = yield self._early_replies_seen(prompt_writes=False)
        self.assertEqual(seen, 0)

    @inlineCallbacks
    def test_reply_keeps_its_place_behind_earlier_writes(
        self,
    ) -> Generator[Any, Any, None]:
        """
        A reply is not sent ahead of a record the transport still holds: a
        record written just before the call arrives (and not yet sent by the
        reactor) goes out first.
        """
        sock, server, handled = yield self._serve_replies(lambda m: b"re:" + m)
        original = server.dataReceived

        def write_first(data: bytes) -> None:
            server.start_writing(b"earlier")
            original(data)

        server.dataReceived = write_first  # type: ignore[method-assign]
        sock.sendall(wire(b"call"))
        expected = wire(b"earlier") + wire(b"re:call")
        got = yield self.receive(sock, len(expected))
        self.assertEqual(got, expected)

    @inlineCallbacks
    def test_writes_of_every_kind_keep_their_order(self) -> Generator[Any, Any, None]:
        """
        Records of every size, written from read callbacks (sent at once,
        buffered and flushed, or waiting for the transport to drain, then
        written from the drain's callback) and from timers outside any
        received bytes, reach the peer whole and in the order written.
        """
        rng = random.Random(6)
        sizes = [0, 1, 60, 1000, 8 * KiB, 70 * KiB, 300 * KiB]
        weights = [40, 40, 80, 40, 10, 5, 2]
        yield self.listen()
        peer = yield self.connect_raw()
        server = yield self.next_server()
        written: list[bytes] = []
        queue: collections.deque[bytes] = collections.deque()
        state = {"writing": False, "handled": 0, "later": 0}
        errors: list[Failure] = []

        def write_queued(_: object = None) -> None:
            state["writing"] = False
            while queue and not state["writing"]:
                payload = queue.popleft()
                written.append(payload)
                d = server.start_writing(payload)
                if not d.called:
                    state["writing"] = True
                    d.addCallback(write_queued)
                d.addErrback(errors.append)

        def enqueue(payloads: list[bytes]) -> None:
            queue.extend(payloads)
            if not state["writing"]:
                write_queued()

        def later(payloads: list[bytes]) -> None:
            state["later"] -= 1
            enqueue(payloads)

        def on_read(result: Any) -> None:
            if result is END_OF_FILE:
                return
            state["handled"] += 1
            count = rng.choice([0, 1, 1, 1, 2, 3])
            payloads = [
                pattern(rng.choices(sizes, weights)[0], seed=rng.randrange(250))
                for _ in range(count)
            ]
            if rng.random() < 0.2:
                state["later"] += 1
                self.reactor.callLater(0, later, payloads)
            else:
                enqueue(payloads)
            server.start_reading().addCallback(on_read).addErrback(errors.append)

        server.start_reading().addCallback(on_read).addErrback(errors.append)
        calls = 150
        sent = 0
        while sent < calls:
            group = min(calls - sent, rng.choice([1, 1, 1, 2, 4, 6]))
            peer.transport.write(
                b"".join(wire(b"call %d" % (sent + i)) for i in range(group))
            )
            sent += group
            if rng.random() < 0.7:
                yield sleep(0)
        yield self.until(
            lambda: state["handled"] == calls
            and not state["later"]
            and not queue
            and not state["writing"],
            "every call to be answered",
        )
        self.assertEqual(errors, [])
        expected = b"".join(wire(p) for p in written)
        yield self.within(peer.wait_for_bytes(len(expected)), "every record")
        self.assertEqual(len(peer.received), len(expected))
        self.assertTrue(peer.received == expected, "the records arrived out of order or damaged")

    @inlineCallbacks
    def test_replies_keep_order_when_the_socket_pushes_back(
        self,
    ) -> Generator[Any, Any, None]:
        """
        Replies written while the peer does not read, each from its own
        C{dataReceived}, fill the socket (some are sent at once in part, the
        rest buffered by the transport) and then all arrive whole and in
        order.
        """
        sock, server, handled = yield self._serve_replies(
            lambda m: m + pattern(20 * KiB, seed=m[0])
        )
        server.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * KiB)
        count = 40
        for i in range(count):
            sock.sendall(wire(bytes([i])))
            if not server.writing:
                yield self.until(
                    lambda: len(handled) == i + 1 or server.writing, f"call {i} to be handled"
                )
        self.assertTrue(server.writing, "the socket never pushed back")
        expected = b"".join(
            wire(bytes([i]) + pattern(20 * KiB, seed=i)) for i in range(count)
        )
        got = yield self.receive(sock, len(expected))
        self.assertEqual(len(got), len(expected))
        self.assertTrue(got == expected, "the replies differ from what was written")

    # -- 2. Peers that do not speak RPC ----------------------------------------

    @inlineCallbacks
    def _check_not_rpc(self, garbage: bytes, looks_like: str) -> Generator[Any, Any, None]:
        """
        A raw peer sending C{garbage} makes the pending read fail with
        RecordTooLarge naming C{looks_like}, and gets its connection closed,
        while another connection to the same listener keeps working.
        """
        yield self.listen()
        good_client = yield self.connect()
        good_server = yield self.next_server()
        peer = yield self.connect_raw()
        bad_server = yield self.next_server()
        reading = bad_server.start_reading()
        peer.transport.write(garbage)
        ok, failure = yield self.within(outcome(reading), "the failed read")
        self.assertFalse(ok, f"the read succeeded with {failure!r}")
        failure.trap(RecordTooLarge)
        self.assertIn(looks_like, str(failure.value))
        yield self.within(peer.lost, "the raw peer to see the connection closed")
        assert peer.reason is not None
        self.assertTrue(peer.reason.check(ConnectionClosed), peer.reason)
        self.assertFalse(bad_server.alive)
        yield self.round_trip(good_client, good_server, b"still here")
        self.assertTrue(good_server.alive)

    def test_http_request_is_refused(self) -> Deferred[None]:
        """
        A peer sending an HTTP GET request makes the read fail with
        RecordTooLarge saying it looks like an HTTP request; that connection
        is closed and another one keeps working.
        """
        return self._check_not_rpc(HTTP_GET, "HTTP request")

    def test_tls_client_hello_is_refused(self) -> Deferred[None]:
        """
        A peer sending a TLS ClientHello makes the read fail with
        RecordTooLarge saying it looks like a TLS handshake; that connection
        is closed and another one keeps working.
        """
        return self._check_not_rpc(TLS_CLIENT_HELLO, "TLS handshake")

    # -- 3. Backpressure ---------------------------------------------------------

    @inlineCallbacks
    def test_writer_waits_for_slow_reader(self) -> Generator[Any, Any, None]:
        """
        Writing 1 MiB records to a peer that stopped reading: once the
        kernel's and Twisted's buffers are full, a write's Deferred stays
        pending (and C{writing} is true) for as long as the peer does not
        read; when the peer reads again it fires, and every byte arrives.
        """
        yield self.listen()
        peer = yield self.connect_raw(RawPeer(keep=False))
        peer.transport.pauseProducing()
        server = yield self.next_server()
        block = pattern(MiB)
        stuck, written = yield self.write_until_stuck(server, lambda i: block)
        self.assertTrue(server.writing)
        yield sleep(0.3)
        self.assertFalse(stuck.called, "the write completed while the peer did not read")
        peer.transport.resumeProducing()
        yield self.within(stuck, "the stuck write to complete")
        self.assertFalse(server.writing)
        total = written * (4 + MiB)
        yield self.within(peer.wait_for_bytes(total), "every byte to arrive")
        self.assertEqual(peer.count, total)
        # The writer is usable again.
        yield self.within(server.start_writing(b"after"), "a write after the stall")
        yield self.within(peer.wait_for_bytes(total + 9), "the last record")

    @inlineCallbacks
    def test_unread_records_pause_transport(self) -> Generator[Any, Any, None]:
        """
        Records arriving while nobody reads are kept while they stay under
        C{read_buffer_limit} (the transport keeps reading); past it the
        receiver pauses its transport (it leaves the reactor's readers) and
        the sender's writes are pushed back. Reading resumes the transport
        and delivers every record, in order, and the sender's pending write
        completes.
        """
        limit = 128 * KiB
        client, server = yield self.pair(server_options={"read_buffer_limit": limit})
        self.assertIn(server.transport, self.reactor.getReaders())
        small = [struct.pack(">I", i) + pattern(1000, seed=i) for i in range(10)]
        for message in small:
            yield self.within(client.start_writing(message), "a small write")
        yield sleep(0.2)
        self.assertIn(
            server.transport, self.reactor.getReaders(), "paused below read_buffer_limit"
        )

        block = pattern(MiB)

        def make_record(i: int) -> list[bytes]:
            return [struct.pack(">I", i), block]

        stuck, written = yield self.write_until_stuck(client, make_record)
        self.assertNotIn(
            server.transport, self.reactor.getReaders(), "the receiver's transport was not paused"
        )
        self.assertFalse(stuck.called)
        for i, message in enumerate(small):
            record, _ = yield self.within(server.start_reading(), f"small record {i}")
            self.assertEqual(record, Accepted(message), f"small record {i}")
        for i in range(written):
            record, _ = yield self.within(server.start_reading(), f"record {i}")
            self.assertIsInstance(record, Accepted)
            self.assertEqual(len(record.message), 4 + MiB, f"record {i}")
            self.assertEqual(record.message[:4], struct.pack(">I", i))
            self.assertTrue(record.message[4:] == block, f"record {i} is corrupt")
        yield self.within(stuck, "the sender's pushed-back write")
        yield self.until(
            lambda: server.transport in self.reactor.getReaders(),
            "the receiver's transport to resume",
        )
        # Nothing more was sent, nothing more is there.
        extra = server.start_reading()
        yield sleep(0.1)
        self.assertNoResult(extra)
        server.cancel_rd_polling()
        self.failureResultOf(extra, CancelledError)

    # -- 4. Shutting down --------------------------------------------------------

    @inlineCallbacks
    def test_half_close_shutdown(self) -> Generator[Any, Any, None]:
        """
        The client's shutdown sends EOF: the server's pending read gets
        END_OF_FILE (and again on the next read), the server can still write
        a reply that the client reads, then the server shuts down too, both
        shutdowns complete, the client's next read gets END_OF_FILE, and
        C{read_eof} is true on both sides.
        """
        client, server = yield self.pair()
        server_read = server.start_reading()
        client_down = client.start_shutting_down()
        result = yield self.within(server_read, "END_OF_FILE on the server")
        self.assertIs(result, END_OF_FILE)
        result = yield self.within(server.start_reading(), "END_OF_FILE again")
        self.assertIs(result, END_OF_FILE)
        self.assertTrue(server.read_eof)
        self.assertFalse(client_down.called)

        client_read = client.start_reading()
        yield self.within(server.start_writing(b"the reply"), "the reply")
        record, _ = yield self.within(client_read, "the reply at the client")
        self.assertEqual(record, Accepted(b"the reply"))

        client_read = client.start_reading()
        server_down = server.start_shutting_down()
        yield self.within(server_down, "the server's shutdown")
        yield self.within(client_down, "the client's shutdown")
        result = yield self.within(client_read, "END_OF_FILE on the client")
        self.assertIs(result, END_OF_FILE)
        self.assertTrue(client.read_eof)
        self.assertTrue(server.read_eof)

    @inlineCallbacks
    def test_shutdown_linger(self) -> Generator[Any, Any, None]:
        """
        When the peer never closes its side, the shutdown still succeeds once
        C{linger} seconds have passed, and C{read_eof} is then true.
        """
        client, server = yield self.pair(client_options={"linger": 0.2})
        down = client.start_shutting_down()
        result = yield self.within(down, "the lingering shutdown")
        self.assertIsNone(result)
        self.assertTrue(client.read_eof)
        # The peer did see our EOF.
        result = yield self.within(server.start_reading(), "END_OF_FILE on the server")
        self.assertIs(result, END_OF_FILE)

    # -- 5. Timeouts -----------------------------------------------------------

    @inlineCallbacks
    def test_timeout_notifies_once_and_rearms(self) -> Generator[Any, Any, None]:
        """
        With a read pending and a silent peer, C{set_timeout(notify, 0.2)}
        calls C{notify} once (not again while nothing happens); bytes
        arriving re-arm it so that it fires again; once the read completes
        nothing is pending and it stays quiet.
        """
        yield self.listen()
        peer = yield self.connect_raw()
        server = yield self.next_server()
        calls: list[int] = []
        waiters: list[Deferred[None]] = []

        def notify() -> None:
            calls.append(1)
            while waiters:
                waiters.pop().callback(None)

        def next_notify() -> Deferred[None]:
            d: Deferred[None] = Deferred()
            waiters.append(d)
            return d

        reading = server.start_reading()
        first = next_notify()
        server.set_timeout(notify, 0.2)
        yield self.within(first, "the first timeout")
        yield sleep(0.6)
        self.assertEqual(len(calls), 1)
        self.assertFalse(reading.called)

        second = next_notify()
        peer.transport.write(mark(8) + b"abcd")
        yield self.within(second, "the timeout after data arrived")
        self.assertEqual(len(calls), 2)
        self.assertFalse(reading.called)

        peer.transport.write(b"efgh")
        record, _ = yield self.within(reading, "the read")
        self.assertEqual(record, Accepted(b"abcdefgh"))
        yield sleep(0.5)
        self.assertEqual(len(calls), 2)

    # -- 6. Inactivation ---------------------------------------------------------

    @inlineCallbacks
    def test_inactivate_with_preclose(self) -> Generator[Any, Any, None]:
        """
        C{inactivate()} calls C{preclose} once, while the connection is still
        open; the peer then sees the connection closed (END_OF_FILE); no
        Deferred or timeout of the inactivated controller fires afterwards; a
        second C{inactivate()} does nothing; reads, writes and shutdowns
        after it raise ControllerInactive.
        """
        seen: list[tuple[bool, bool]] = []
        holder: list[StreamController] = []

        def preclose() -> None:
            transport: Any = holder[0].transport
            seen.append((bool(transport.connected), bool(transport.disconnecting)))

        client, server = yield self.pair(client_options={"preclose": preclose})
        holder.append(client)
        notified: list[int] = []
        client_read = client.start_reading()
        client.set_timeout(lambda: notified.append(1), 0.1)
        server_read = server.start_reading()

        client.inactivate()
        self.assertEqual(seen, [(True, False)])
        self.assertFalse(client.alive)
        self.assertIsNone(client.file_descr)
        client.inactivate()
        self.assertEqual(len(seen), 1)

        result = yield self.within(server_read, "the peer to see EOF")
        self.assertIs(result, END_OF_FILE)
        # (The controller lets go of its transport once the connection is gone.)
        yield self.until(
            lambda: client.transport is None or client.transport.disconnected,
            "the close to complete",
        )
        yield sleep(0.3)
        self.assertFalse(client_read.called)
        self.assertEqual(notified, [])
        self.assertEqual(len(seen), 1)
        self.assertRaises(ControllerInactive, client.start_reading)
        self.assertRaises(ControllerInactive, client.start_writing, b"x")
        self.assertRaises(ControllerInactive, client.start_shutting_down)

    # -- 8, 9, 11. Identity of the connection --------------------------------------

    @inlineCallbacks
    def test_peer_credentials(self) -> Generator[Any, Any, None]:
        """
        On a UNIX socket both ends see this process's (pid, uid, gid) as the
        peer's credentials and its user name as C{peer_user_name}; on TCP
        both are None.
        """
        client, server = yield self.pair()
        expected = self.expected_credentials()
        self.assertEqual(server.peer_credentials, expected)
        self.assertEqual(client.peer_credentials, expected)
        name = None if expected is None else pwd.getpwuid(os.getuid()).pw_name
        self.assertEqual(server.peer_user_name, name)
        self.assertEqual(client.peer_user_name, name)

    @inlineCallbacks
    def test_addresses_and_properties(self) -> Generator[Any, Any, None]:
        """
        C{getsockname}/C{getpeername} give Twisted addresses of the right
        type that match across the connection (the server's is the
        listener's); writing to another address raises AddressMismatch while
        writing to the peer works; C{protocol} is TCP; C{file_descr} is the
        socket's descriptor while alive.
        """
        client, server = yield self.pair()
        for end in (client, server):
            self.assertIsInstance(end.getsockname(), self.address_type)
            self.assertIsInstance(end.getpeername(), self.address_type)
            self.assertIs(end.protocol, RpcProtocol.TCP)
            self.assertTrue(end.alive)
        self.assertEqual(server.getsockname(), self.port.getHost())
        self.assertEqual(client.getpeername(), server.getsockname())
        self.assertEqual(client.getsockname(), server.getpeername())
        self.assertEqual(server.getsockname(), client.getpeername())

        wrong = IPv4Address("TCP", "192.0.2.1", 9)
        for end in (client, server):
            self.assertRaises(AddressMismatch, end.start_writing, b"x", wrong)
            self.assertFalse(end.writing)
        reading = server.start_reading()
        yield self.within(client.start_writing(b"to the peer", client.getpeername()), "write")
        record, peer = yield self.within(reading, "read")
        self.assertEqual(record, Accepted(b"to the peer"))
        self.assertEqual(peer, client.getsockname())

        for end in (client, server):
            fd = end.file_descr
            self.assertIsInstance(fd, int)
            self.assertEqual(fd, end.transport.fileno())
            probe = socket.socket(fileno=os.dup(fd))
            try:
                self.assertEqual(probe.family, self.family)
                self.assertEqual(probe.type, socket.SOCK_STREAM)
            finally:
                probe.close()

    @inlineCallbacks
    def test_provides_interface(self) -> Generator[Any, Any, None]:
        """
        Connected controllers on both sides provide IRpcMultiplexController.
        """
        client, server = yield self.pair()
        self.assertTrue(verifyObject(IRpcMultiplexController, client))
        self.assertTrue(verifyObject(IRpcMultiplexController, server))

    # -- 10. Memory -------------------------------------------------------------

    @inlineCallbacks
    def _stream_big_record(
        self, before_record: Callable[[int, object], Any], trailer: bytes = b""
    ) -> Generator[Any, Any, tuple[Deferred[Any], Deferred[None], int, RawPeer, Any]]:
        """
        Connect a raw peer and set up a 64 MiB record for it to send; start
        the server's read and tracing. Returns the read, the sender's done
        Deferred, the memory traced at the start, the peer and the server.
        """
        yield self.listen()
        peer = yield self.connect_raw(RawPeer())
        server = yield self.next_server()
        block = b"\x12\x34\x56\x78" + pattern(64 * KiB - 4, seed=9)
        sender = BigRecordSender(peer.transport, block, 64 * MiB, trailer)
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            self.addCleanup(tracemalloc.stop)
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        reading = server.start_reading(before_record=before_record)
        done = sender.start()
        return reading, done, base, peer, server

    def assert_peak_below(self, base: int) -> None:
        """
        Check that the peak traced memory stayed within L{MEMORY_BUDGET} of
        C{base}.
        """
        _, peak = tracemalloc.get_traced_memory()
        self.assertLess(
            peak - base, MEMORY_BUDGET, f"peak {peak - base} bytes above the start"
        )

    @inlineCallbacks
    def test_dropped_record_memory(self) -> Generator[Any, Any, None]:
        """
        A 64 MiB record (4 times max_record_size) whose before_record answers
        DROP completes the read with Dropped() once it has all arrived, and
        the peak traced memory stays under 1 MiB above the start.
        """
        calls: list[int] = []

        def drop(size: int, peer: object) -> Any:
            calls.append(size)
            return DROP

        reading, done, base, peer, server = yield self._stream_big_record(drop)
        record, _ = yield self.within(reading, "the dropped record", 30)
        self.assertEqual(record, Dropped())
        self.assertTrue(done.called, "the read completed before the record ended")
        self.assert_peak_below(base)
        self.assertEqual(calls, [64 * MiB])
        self.assertTrue(server.alive)

    @inlineCallbacks
    def test_denied_record_memory(self) -> Generator[Any, Any, None]:
        """
        A 64 MiB record whose before_record answers DENY completes the read
        at once with Denied(); the rest of it is discarded as it arrives
        although no read is pending, the record after it arrives intact,
        and the peak traced memory stays under 1 MiB above the start.
        """
        after = encode_record(b"the next record")
        reading, done, base, peer, server = yield self._stream_big_record(
            lambda size, peer: DENY, trailer=b"".join(after)
        )
        record, _ = yield self.within(reading, "the denied record")
        self.assertEqual(record, Denied())
        self.assertFalse(done.called, "Denied() was not reported at the header")
        yield self.within(done, "the sender to finish", 30)
        record, _ = yield self.within(server.start_reading(), "the record after it", 30)
        self.assertEqual(record, Accepted(b"the next record"))
        self.assert_peak_below(base)

    @inlineCallbacks
    def test_rejected_record_memory(self) -> Generator[Any, Any, None]:
        """
        A 64 MiB record whose before_record answers REJECT completes the read
        with Rejected(head) holding the record's xid (its first 4 bytes), and
        the peak traced memory stays under 1 MiB above the start.
        """
        reading, done, base, peer, server = yield self._stream_big_record(
            lambda size, peer: REJECT
        )
        record, _ = yield self.within(reading, "the rejected record", 30)
        self.assertEqual(record, Rejected(b"\x12\x34\x56\x78"))
        self.assertTrue(done.called)
        self.assert_peak_below(base)

    # -- 12. A failing hook --------------------------------------------------------

    @inlineCallbacks
    def test_before_record_raises(self) -> Generator[Any, Any, None]:
        """
        A before_record hook that raises fails the read with that very
        exception and closes that connection (its peer sees it end); another
        connection on the same listener is unaffected.
        """
        yield self.listen()
        good_client = yield self.connect()
        good_server = yield self.next_server()
        bad_client = yield self.connect()
        bad_server = yield self.next_server()
        error = ValueError("before_record exploded")

        def explode(size: int, peer: object) -> Any:
            raise error

        reading = bad_server.start_reading(before_record=explode)
        bad_client_read = bad_client.start_reading()
        yield self.within(bad_client.start_writing(b"a call"), "write")
        ok, failure = yield self.within(outcome(reading), "the failed read")
        self.assertFalse(ok, f"the read succeeded with {failure!r}")
        self.assertIs(failure.value, error)
        yield self.assert_closed_by_peer(bad_client_read)
        self.assertFalse(bad_server.alive)
        yield self.round_trip(good_client, good_server, b"unaffected")


class TCPStreamSocketTests(_StreamSocketTestsMixin, TestCase):
    """
    Stream controllers over TCP on 127.0.0.1.
    """

    family = socket.AF_INET
    address_type = IPv4Address

    def server_endpoint(self) -> str:
        return "tcp:0:interface=127.0.0.1"

    def client_endpoint(self) -> str:
        return f"tcp:host=127.0.0.1:port={self.port.getHost().port}"

    def expected_credentials(self) -> None:
        return None

    def plain_client(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port.getHost().port), timeout=WAIT)


class UNIXStreamSocketTests(_StreamSocketTestsMixin, TestCase):
    """
    Stream controllers over UNIX sockets in a temporary directory.
    """

    family = socket.AF_UNIX
    address_type = UNIXAddress

    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="rpctransport-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.path = os.path.join(directory, "rpc.sock")
        super().setUp()

    def server_endpoint(self) -> str:
        return f"unix:{self.path}"

    def client_endpoint(self) -> str:
        return f"unix:path={self.path}"

    def expected_credentials(self) -> tuple[int, int, int]:
        return os.getpid(), os.getuid(), os.getgid()

    def plain_client(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(WAIT)
        sock.connect(self.path)
        return sock


# -- 7. Adopted descriptors ---------------------------------------------------------


class _AdoptedDescriptorTestsMixin(SocketTestMixin):
    """
    Controllers made by L{stream_rpc_multiplex_controller} from a connected
    pair of plain sockets; subclasses say how to make the pair.
    """

    family: socket.AddressFamily

    def setUp(self) -> None:
        self._setUpRegistry()

    def socket_pair(self) -> tuple[socket.socket, socket.socket]:
        """
        Two connected stream sockets.
        """
        raise NotImplementedError()

    def adopt_raw(self, sock: socket.socket) -> RawPeer:
        """
        Hand C{sock} to a L{RawPeer} on the reactor (which works on a
        duplicate of it) and close C{sock}.
        """
        peer = RawPeer()
        self.reactor.adoptStreamConnection(
            sock.fileno(), self.family, Factory.forProtocol(lambda: peer)
        )
        sock.close()
        return self.track_peer(peer)

    @inlineCallbacks
    def recv_some(self, sock: socket.socket) -> Generator[Any, Any, bytes]:
        """
        Wait (on the reactor) for bytes on plain socket C{sock}, then take
        them with a plain C{recv}, whatever its blocking mode; fail if none
        come, or if the peer closed (C{b""}).
        """
        for _ in range(int(WAIT / 0.01)):
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                yield sleep(0.01)
                continue
            data = sock.recv(65536)
            self.assertNotEqual(data, b"", "the peer closed the connection")
            return data
        self.fail("no bytes arrived")

    @inlineCallbacks
    def test_records_flow_both_ways(self) -> Generator[Any, Any, None]:
        """
        Two controllers adopted from the two ends of a connected pair
        exchange records both ways, and report a stream peer.
        """
        a, b = self.socket_pair()
        self.track_socket(a)
        self.track_socket(b)
        left = self.track(
            stream_rpc_multiplex_controller(a.fileno(), self.reactor, close_inactive_descr=False)
        )
        right = self.track(
            stream_rpc_multiplex_controller(b.fileno(), self.reactor, close_inactive_descr=False)
        )
        self.assertTrue(left.alive and right.alive)
        self.assertEqual(left.file_descr, a.fileno())
        self.assertIs(left.protocol, RpcProtocol.TCP)
        for sender, receiver, size in ((left, right, 1000), (right, left, 300_000)):
            message = pattern(size, seed=size)
            reading = receiver.start_reading()
            yield self.within(sender.start_writing(message), "write")
            record, _ = yield self.within(reading, "read")
            self.assertEqual(record, Accepted(message))

    @inlineCallbacks
    def test_keep_descriptor_after_inactivate(self) -> Generator[Any, Any, None]:
        """
        With close_inactive_descr=False, after C{inactivate()} the owner's
        socket is still fully usable, in the blocking mode it had: it sends
        a record the peer reads (the peer never sees EOF) and receives the
        peer's reply; C{preclose} is not called.
        """
        a, b = self.socket_pair()
        self.track_socket(a)
        self.track_socket(b)
        blocking = os.get_blocking(a.fileno())
        self.assertTrue(blocking)
        precloses: list[int] = []
        owned = self.track(
            stream_rpc_multiplex_controller(
                a.fileno(),
                self.reactor,
                close_inactive_descr=False,
                preclose=lambda: precloses.append(1),
            )
        )
        peer = self.track(
            stream_rpc_multiplex_controller(b.fileno(), self.reactor, close_inactive_descr=False)
        )
        reading = peer.start_reading()
        yield self.within(owned.start_writing(b"before"), "write")
        record, _ = yield self.within(reading, "read")
        self.assertEqual(record, Accepted(b"before"))

        peer_read = peer.start_reading()
        owned.inactivate()
        self.assertEqual(precloses, [])
        self.assertFalse(owned.alive)
        self.assertIsNone(owned.file_descr)
        os.fstat(a.fileno())
        yield sleep(0.2)
        self.assertFalse(peer_read.called, "the peer saw the connection end")
        # Twisted made the shared file description non-blocking; the owner
        # gets its blocking socket back as it was.
        self.assertEqual(os.get_blocking(a.fileno()), blocking)
        self.assertIsNone(a.gettimeout())

        a.sendall(wire(b"from the owner"))
        record, _ = yield self.within(peer_read, "the owner's record")
        self.assertEqual(record, Accepted(b"from the owner"))
        yield self.within(peer.start_writing(b"to the owner"), "reply")
        received = b""
        expected = wire(b"to the owner")
        while len(received) < len(expected):
            received += yield self.recv_some(a)
        self.assertEqual(received, expected)

    @inlineCallbacks
    def test_close_descriptor_on_inactivate(self) -> Generator[Any, Any, None]:
        """
        With close_inactive_descr=True, records flow both ways with a raw
        peer; C{inactivate()} calls C{preclose} once, closes the adopted
        descriptor (C{os.fstat} fails) and the peer sees the connection
        closed.
        """
        a, b = self.socket_pair()
        fd = a.detach()
        peer = self.adopt_raw(b)
        precloses: list[int] = []
        owned = self.track(
            stream_rpc_multiplex_controller(
                fd, self.reactor, close_inactive_descr=True, preclose=lambda: precloses.append(1)
            )
        )
        reading = owned.start_reading()
        assert peer.transport is not None
        peer.transport.write(wire(b"from the raw peer"))
        record, _ = yield self.within(reading, "read")
        self.assertEqual(record, Accepted(b"from the raw peer"))
        yield self.within(owned.start_writing(b"to the raw peer"), "write")
        expected = wire(b"to the raw peer")
        yield self.within(peer.wait_for_bytes(len(expected)), "the raw peer to read")
        self.assertEqual(bytes(peer.received), expected)

        owned.inactivate()
        self.assertEqual(precloses, [1])
        self.assertRaises(OSError, os.fstat, fd)
        yield self.within(peer.lost, "the peer to see the connection closed")
        assert peer.reason is not None
        self.assertTrue(peer.reason.check(ConnectionClosed), peer.reason)
        owned.inactivate()
        self.assertEqual(precloses, [1])


class UNIXSocketPairAdoptionTests(_AdoptedDescriptorTestsMixin, TestCase):
    """
    Adopted descriptors from C{socket.socketpair()} (AF_UNIX).
    """

    family = socket.AF_UNIX

    def socket_pair(self) -> tuple[socket.socket, socket.socket]:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


class TCPSocketPairAdoptionTests(_AdoptedDescriptorTestsMixin, TestCase):
    """
    Adopted descriptors from a TCP connection made with plain sockets on
    127.0.0.1.
    """

    family = socket.AF_INET

    def socket_pair(self) -> tuple[socket.socket, socket.socket]:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            client = socket.create_connection(listener.getsockname(), timeout=WAIT)
            client.settimeout(None)
            server, _ = listener.accept()
        finally:
            listener.close()
        return server, client
