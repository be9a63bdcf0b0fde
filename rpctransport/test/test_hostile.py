# -*- test-case-name: rpctransport.test.test_hostile -*-
"""
C{rpctransport serve} against hostile and careless stream peers, played with
raw sockets: a peer trickling a record, one that never sends, one that never
reads, an HTTP client and a TLS client on the plaintext port, a record mark
announcing 2 GiB, and oversized calls pipelined between good ones.

Each test starts the real program with deadlines short enough for a test and
checks what the peer sees on its socket, what the server logs, and what it
counts when it stops.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import ssl
import struct
import time
import tracemalloc

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from rpctransport import listen_stream

from rpctransport.program.echo import (
    PROC_ECHO,
    PROC_NULL,
    EchoServer,
    encode_opaque,
)
from rpctransport.sansio.rpcmsg import (
    GARBAGE_ARGS,
    SUCCESS,
    AcceptedReply,
    decode_reply_header,
)
from rpctransport.test.interop.build import (
    ServerProcess,
    rpctransport_command,
    rpctransport_env,
    start_server,
)
from rpctransport.test.helpers import LAST, fragments, read_record
from rpctransport.test.helpers import echo_call as call

ROUNDS = 3


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """
    Seconds until the server closed C{sock} (EOF or reset), discarding what
    it sends meanwhile; L{None} if it is still open after C{seconds}.
    """
    start = time.monotonic()
    while True:
        left = seconds - (time.monotonic() - start)
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        except socket.timeout:
            return None


def tls_client_hello() -> bytes:
    """
    The first flight of a real TLS client (Python's C{ssl}), as bytes.
    """
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="example.org")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class HostilePeerTests(SynchronousTestCase):
    """
    C{rpctransport serve}, with short deadlines, against raw-socket peers.
    """

    def serve(self, *options: str) -> ServerProcess:
        """
        Start C{serve} on loopback TCP with C{options}.
        """
        return start_server(
            self,
            rpctransport_command("serve", "--tcp", "127.0.0.1:0", *options),
            ["tcp"],
            env=rpctransport_env(),
        )

    def connect(self, server: ServerProcess) -> socket.socket:
        sock = socket.create_connection(server.host_port("tcp"), timeout=5)
        self.addCleanup(sock.close)
        return sock

    def stop(self, server: ServerProcess) -> str:
        """
        Stop the server; its standard error, with the counters line.
        """
        self.assertEqual(server.stop(), 0, server.describe())
        return "\n".join(server.stderr)

    def assertServes(self, server: ServerProcess) -> None:
        """
        A new connection still gets a NULL call answered.
        """
        sock = self.connect(server)
        sock.sendall(fragments(call(7, PROC_NULL), []))
        reply, _ = decode_reply_header(read_record(sock))
        self.assertEqual((reply.xid, reply.stat), (7, SUCCESS))

    def test_trickling_record_closed_at_record_deadline(self) -> None:
        """
        A peer that announces a 1 MiB record and then sends a byte every
        0.1 s is closed at the record deadline (1 s here), however it
        trickles; the close is logged with the numbers and counted.
        """
        server = self.serve("--record-deadline", "1")
        sock = self.connect(server)
        sock.sendall(struct.pack(">I", LAST | 1024 * 1024))
        start = time.monotonic()
        closed = None
        while time.monotonic() - start < 5:
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - start
                break
            if closed_within(sock, 0.1) is not None:
                closed = time.monotonic() - start
                break
        self.assertIsNotNone(closed, "the trickling peer was never closed")
        assert closed is not None
        self.assertGreater(closed, 0.8)
        self.assertLess(closed, 3.0)
        self.assertServes(server)
        stderr = self.stop(server)
        self.assertIn("was not complete within 1 s", stderr)
        self.assertIn("deadline.record=1", stderr)

    def test_silent_peer_closed_at_first_record_timeout(self) -> None:
        """
        A peer that connects and never sends is closed at the first-record
        timeout; one that made a call and then went silent at the (longer)
        idle timeout.
        """
        server = self.serve("--first-record-timeout", "0.5", "--idle-timeout", "1.5")
        silent = self.connect(server)
        proven = self.connect(server)
        proven.sendall(fragments(call(1, PROC_NULL), []))
        read_record(proven)
        start = time.monotonic()
        waited = closed_within(silent, 5)
        self.assertIsNotNone(waited, "the silent peer was never closed")
        assert waited is not None
        self.assertLess(waited, 2.0)
        waited = closed_within(proven, 5)
        self.assertIsNotNone(waited, "the idle peer was never closed")
        self.assertGreater(time.monotonic() - start, 1.2)
        stderr = self.stop(server)
        self.assertIn("before its first whole record", stderr)
        self.assertIn("deadline.first_record=1", stderr)
        self.assertIn("deadline.idle=1", stderr)

    def test_never_reading_peer_closed_at_write_deadline(self) -> None:
        """
        A peer that pipelines large calls and never reads its replies is
        closed at the write deadline, every time; the close is logged and
        counted. (L{WriteDeadlineMemoryTests} shows what it pinned is freed.)
        """
        server = self.serve("--write-deadline", "1")
        record = fragments(call(1, PROC_ECHO, os.urandom(4 * 1024 * 1024)), [])
        for _ in range(ROUNDS):
            sock = self.connect(server)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            try:
                for _ in range(6):
                    sock.sendall(record)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                pass
            start = time.monotonic()
            waited = closed_within(sock, 10)
            self.assertIsNotNone(waited, "the never-reading peer was never closed")
            self.assertLess(time.monotonic() - start, 5)
            sock.close()
        self.assertServes(server)
        stderr = self.stop(server)
        self.assertIn("did not drain a write within 1 s", stderr)
        self.assertIn(f"deadline.write={ROUNDS}", stderr)

    def test_http_and_tls_on_the_plaintext_port(self) -> None:
        """
        An HTTP request and a TLS ClientHello sent to the plaintext port are
        closed within a second, with one log line naming what they looked
        like.
        """
        server = self.serve()
        for first_bytes, looks_like in [
            (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "an HTTP request ('GET / HTTP/1.1')"),
            (tls_client_hello(), "a TLS handshake"),
        ]:
            sock = self.connect(server)
            sock.sendall(first_bytes)
            waited = closed_within(sock, 1.0)
            self.assertIsNotNone(waited, f"not closed within 1 s: {first_bytes[:16]!r}")
        self.assertServes(server)
        stderr = self.stop(server)
        self.assertEqual(stderr.count("an HTTP request ('GET / HTTP/1.1')"), 1, stderr)
        self.assertEqual(stderr.count("a TLS handshake"), 1, stderr)
        self.assertIn("refused.sniff=2", stderr)

    def test_counters_on_sigusr1(self) -> None:
        """
        SIGUSR1 makes C{serve} print its counters and go on serving.
        """
        server = self.serve()
        sock = self.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        self.assertIsNotNone(closed_within(sock, 1.0))
        server.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not any("counters: refused.sniff=1" in line for line in server.stderr):
            self.assertLess(time.monotonic(), deadline, server.describe())
            time.sleep(0.05)
        self.assertServes(server)
        self.stop(server)

    def test_two_gib_mark_answered_from_its_xid(self) -> None:
        """
        A call whose record mark announces 2 GiB is answered GARBAGE_ARGS,
        from its xid, within a second of its header: the payload never comes.
        """
        server = self.serve()
        sock = self.connect(server)
        start = time.monotonic()
        sock.sendall(struct.pack(">I", 0xFFFFFFFF) + call(0xDEADBEEF)[:40])
        reply, _ = decode_reply_header(read_record(sock, timeout=1.0))
        self.assertLess(time.monotonic() - start, 1.0)
        self.assertIsInstance(reply, AcceptedReply)
        self.assertEqual((reply.xid, reply.stat), (0xDEADBEEF, GARBAGE_ARGS))
        self.stop(server)

    def test_oversized_calls_pipelined_between_good_ones(self) -> None:
        """
        Oversized calls sent in full between normal ones, in one burst, are
        answered GARBAGE_ARGS from their own xid while the normal ones get
        their exact echoes, in order: in one fragment, in many fragments that
        cross the limit late, and with the xid split over 1-byte fragments.
        """
        server = self.serve("--max-record-size", "10000")
        sock = self.connect(server)
        big = os.urandom(20000)
        good = [os.urandom(n) for n in (0, 100, 5000, 9000)]
        burst = [
            fragments(call(1, PROC_ECHO, good[0]), []),
            fragments(call(2, PROC_ECHO, big), []),
            fragments(call(3, PROC_ECHO, good[1]), [7, 0, 50]),
            fragments(call(4, PROC_ECHO, big), [1000] * 19),
            fragments(call(5, PROC_ECHO, good[2]), []),
            fragments(call(6, PROC_ECHO, big), [1, 1, 1, 1, 19000]),
            fragments(call(7, PROC_ECHO, good[3]), [4000]),
        ]
        sock.sendall(b"".join(burst))
        expected = {1: good[0], 3: good[1], 5: good[2], 7: good[3]}
        for xid in range(1, 8):
            message = read_record(sock)
            reply, offset = decode_reply_header(message)
            self.assertEqual(reply.xid, xid)
            if xid in expected:
                self.assertEqual(reply.stat, SUCCESS)
                self.assertEqual(message[offset:], b"".join(encode_opaque(expected[xid])))
            else:
                self.assertEqual(reply.stat, GARBAGE_ARGS)
        stderr = self.stop(server)
        self.assertIn("refused.rule=3", stderr)


class _NeverReads(Protocol):
    """
    A client that sends its calls and never reads the replies.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.pauseProducing()
        self.transport.write(self.data)

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)


class WriteDeadlineMemoryTests(TestCase):
    """
    What a never-reading peer pinned is freed when the write deadline closes
    it (in process, so that Python's own allocator can be traced: the
    program's allocator tuning keeps freed heap mapped).
    """

    def test_memory_released(self) -> None:
        """
        The traced memory after the peer is closed at the write deadline is
        back within 1 MiB of what it was before its 4 MiB calls came.
        """
        from twisted.internet import reactor

        server = EchoServer()
        record = fragments(call(1, PROC_ECHO, os.urandom(4 * 1024 * 1024)), [])
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)

        async def scenario() -> None:
            port = await listen_stream(
                "tcp:0:interface=127.0.0.1", server.serve, reactor=reactor, write_deadline=0.5
            )
            self.addCleanup(port.stopListening)
            self.addCleanup(server.stop)
            peer = _NeverReads(record * 3)
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
            before = tracemalloc.get_traced_memory()[0]
            client = await connectProtocol(endpoint, peer)
            await peer.closed
            client.transport.abortConnection()
            del client, peer
            # Twisted closes the connection on the next turn.
            await deferLater(reactor, 0.05, lambda: None)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
            # The client side's own copy of its calls is gone too (del).
            self.assertLess(after - before, 1024 * 1024, f"{after - before} bytes still held")
            self.assertEqual(server.controllers, set())

        return Deferred.fromCoroutine(scenario())
