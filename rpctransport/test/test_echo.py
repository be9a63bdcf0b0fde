# -*- test-case-name: rpctransport.test.test_echo -*-
"""
Tests for the echo test program (L{rpctransport.program.echo}): the server's
answers, and the client's checks, over the in-memory controller pair.
"""

from __future__ import annotations

import struct

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from rpctransport import END_OF_FILE, Accepted, GarbageArguments, RpcClient, ServerError
from rpctransport.program.echo import (
    ECHO_PROGRAM,
    ECHO_VERSION,
    PROC_ECHO,
    PROC_NULL,
    EchoServer,
    echo,
    encode_opaque,
    run_calls,
)
from rpctransport.rpcmsg import (
    AcceptedReply,
    AcceptStat,
    CallHeader,
    DeniedReply,
    RejectStat,
    decode_reply_header,
    encode_call_header,
    peek_xid,
    success_reply_header,
)
from rpctransport.testing import controller_pair


def call(proc: int, argument: bytes = b"", prog: int = ECHO_PROGRAM, vers: int = ECHO_VERSION, rpcvers: int = 2) -> bytes:
    """
    A call message of the echo program.
    """
    header = encode_call_header(CallHeader(0x01020304, prog, vers, proc, rpcvers=rpcvers))
    return header + argument


def answer(message: bytes) -> bytes | None:
    """
    What L{EchoServer} answers C{message} with, over the in-memory
    controller pair (L{None}: no answer).
    """
    client, server_side = controller_pair()
    server = EchoServer()
    server.serve(server_side)
    reading = client.start_reading()
    client.start_writing(message)
    if not reading.called:
        reading.addErrback(lambda failure: None)
        reading.cancel()
        server.stop()
        return None
    result = reading.result
    server.stop()
    if result is END_OF_FILE or type(result[0]) is not Accepted:
        return None
    return bytes(result[0].message)


class AnswerCallTests(SynchronousTestCase):
    """
    The echo server gives the RFC 5531 answer for each kind of call (the
    RPC layer's answers, with L{echo} registered).
    """

    def reply(self, message: bytes) -> tuple[object, bytes]:
        answered = answer(message)
        assert answered is not None
        header, offset = decode_reply_header(answered)
        self.assertEqual(header.xid, 0x01020304)
        return header, answered[offset:]

    def test_null(self) -> None:
        """
        NULL gets SUCCESS and no results.
        """
        header, results = self.reply(call(PROC_NULL))
        self.assertIsInstance(header, AcceptedReply)
        self.assertEqual(header.stat, AcceptStat.SUCCESS)  # type: ignore[attr-defined]
        self.assertEqual(results, b"")

    def test_echo(self) -> None:
        """
        ECHO returns its opaque argument as it came, padding included.
        """
        for size in (0, 1, 3, 4, 5, 1000):
            argument = b"".join(encode_opaque(bytes(i % 251 for i in range(size))))
            header, results = self.reply(call(PROC_ECHO, argument))
            self.assertEqual(header.stat, AcceptStat.SUCCESS)  # type: ignore[attr-defined]
            self.assertEqual(results, argument)
            self.assertEqual(len(results) % 4, 0)

    def test_echo_garbage(self) -> None:
        """
        An ECHO argument whose length runs past the message is GARBAGE_ARGS.
        """
        header, _ = self.reply(call(PROC_ECHO, struct.pack(">I", 100) + b"short"))
        self.assertEqual(header.stat, AcceptStat.GARBAGE_ARGS)  # type: ignore[attr-defined]
        header, _ = self.reply(call(PROC_ECHO, b"\0\0"))
        self.assertEqual(header.stat, AcceptStat.GARBAGE_ARGS)  # type: ignore[attr-defined]

    def test_rejections(self) -> None:
        """
        Unknown program, version and procedure, and RPC version 3, get their
        rejections, with the mismatch ranges.
        """
        header, _ = self.reply(call(PROC_NULL, prog=ECHO_PROGRAM + 1))
        self.assertEqual(header.stat, AcceptStat.PROG_UNAVAIL)  # type: ignore[attr-defined]
        header, _ = self.reply(call(PROC_NULL, vers=7))
        self.assertEqual(header.stat, AcceptStat.PROG_MISMATCH)  # type: ignore[attr-defined]
        self.assertEqual((header.low, header.high), (ECHO_VERSION, ECHO_VERSION))  # type: ignore[attr-defined]
        header, _ = self.reply(call(9))
        self.assertEqual(header.stat, AcceptStat.PROC_UNAVAIL)  # type: ignore[attr-defined]
        header, _ = self.reply(call(PROC_NULL, rpcvers=3))
        self.assertIsInstance(header, DeniedReply)
        self.assertEqual(header.stat, RejectStat.RPC_MISMATCH)  # type: ignore[attr-defined]
        self.assertEqual((header.low, header.high), (2, 2))  # type: ignore[attr-defined]

    def test_not_a_call(self) -> None:
        """
        A reply gets no answer.
        """
        self.assertIsNone(answer(b"\0\0\0\1\0\0\0\1" + b"\0" * 16))

    def test_echo_handler(self) -> None:
        """
        L{echo} returns its argument as it came, up to the opaque's end, and
        raises L{GarbageArguments} with the numbers for one that does not
        fit.
        """
        argument = b"".join(encode_opaque(b"abcde"))
        self.assertEqual(echo(argument, None), argument)  # type: ignore[arg-type]
        self.assertEqual(echo(argument + b"more", None), argument)  # type: ignore[arg-type]
        error = self.assertRaises(GarbageArguments, echo, struct.pack(">I", 9) + b"short", None)
        self.assertIn("9 bytes", str(error))
        self.assertRaises(GarbageArguments, echo, b"\0\0", None)


class EchoServerTests(SynchronousTestCase):
    """
    L{EchoServer} refuses records over its limit on their header and answers
    from the xid alone.
    """

    def test_before_record(self) -> None:
        """
        Records up to the limit are accepted; larger ones are rejected with
        GARBAGE_ARGS.
        """
        server = EchoServer(max_record_size=100)
        self.assertIs(server.before_record(100, None), __import__("rpctransport").ACCEPT)
        rule = server.before_record(101, None)
        self.assertEqual(rule.error, ServerError.GARBAGE_ARGS)  # type: ignore[union-attr]

    def test_oversized_call_answered_not_buffered(self) -> None:
        """
        Over a stream, a call over the limit is answered GARBAGE_ARGS and the
        next call on the same connection is answered normally.
        """
        client_side, server_side = controller_pair()
        server = EchoServer(max_record_size=1000)
        server.serve(server_side)
        client = RpcClient(client_side, reactor=Clock())
        d = run_calls(client, Clock(), proc=PROC_ECHO, size=5000, count=1)
        stats = self.successResultOf(d)
        self.assertEqual(stats.failures, 1)
        self.assertIn("GARBAGE_ARGS", stats.reasons[0])
        stats = self.successResultOf(run_calls(client, Clock(), proc=PROC_ECHO, size=500, count=3))
        self.assertTrue(stats.ok, stats.reasons)


class RunCallsTests(SynchronousTestCase):
    """
    L{run_calls} checks every reply.
    """

    def test_calls_in_flight(self) -> None:
        """
        Calls with several in flight all succeed against the echo server, and
        the stats count them.
        """
        client, server_side = controller_pair()
        EchoServer().serve(server_side)
        stats = self.successResultOf(
            run_calls(client, Clock(), proc=PROC_ECHO, size=100, count=50, concurrency=7)
        )
        self.assertTrue(stats.ok, stats.reasons)
        self.assertEqual(stats.calls, 50)
        self.assertEqual(len(stats.latencies), 50)

    def test_many_calls_flat(self) -> None:
        """
        Thousands of calls over a transport that answers within the call
        (the in-memory pair) do not recurse: the loop that makes them does,
        not the reply's callback.
        """
        client, server_side = controller_pair()
        EchoServer().serve(server_side)
        stats = self.successResultOf(run_calls(client, Clock(), count=3000, concurrency=4))
        self.assertTrue(stats.ok, stats.reasons)
        self.assertEqual(stats.calls, 3000)

    def test_connection_ends_mid_run(self) -> None:
        """
        When the connection ends with thousands of calls still to make, the
        run ends at once: every call left fails with the connection's end,
        which C{connection_error} names.
        """
        client, server_side = controller_pair()
        server = EchoServer()
        server.serve(server_side)
        answered = []

        def stop_after_ten(arguments: bytes, call: object) -> bytes:
            answered.append(arguments)
            if len(answered) == 10:
                server_side.abort_rw()
            return arguments

        server.register(ECHO_PROGRAM, ECHO_VERSION, 5, stop_after_ten)
        stats = self.successResultOf(run_calls(client, Clock(), proc=5, count=5000, concurrency=3))
        self.assertEqual(stats.calls, 5000)
        self.assertGreater(stats.failures, 4900)
        self.assertIsNotNone(stats.connection_error)

    def test_concurrency(self) -> None:
        """
        C{concurrency} calls are in flight at once, no more: the handler
        sees that many waiting before any is answered.
        """
        from twisted.internet.defer import Deferred

        client, server_side = controller_pair()
        server = EchoServer()
        server.serve(server_side)
        waiting: list[tuple[Deferred[bytes], bytes]] = []

        def later(arguments: bytes, call: object) -> Deferred[bytes]:
            d: Deferred[bytes] = Deferred()
            waiting.append((d, arguments))
            return d

        server.register(ECHO_PROGRAM, ECHO_VERSION, 6, later)
        d = run_calls(client, Clock(), proc=6, count=20, concurrency=7)
        most = 0
        while waiting:
            most = max(most, len(waiting))
            batch = waiting[:]
            del waiting[:]
            for answer, arguments in batch:
                answer.callback(arguments)
        stats = self.successResultOf(d)
        self.assertTrue(stats.ok, stats.reasons)
        self.assertEqual(most, 7)

    def test_wrong_program_fails(self) -> None:
        """
        A rejection counts as a failure, with the reason.
        """
        client, server_side = controller_pair()
        EchoServer().serve(server_side)
        stats = self.successResultOf(run_calls(client, Clock(), program=5, count=2))
        self.assertEqual(stats.failures, 2)
        self.assertIn("PROG_UNAVAIL", stats.reasons[0])

    def test_wrong_echo_detected(self) -> None:
        """
        A server that answers SUCCESS with other bytes than were sent fails
        the call.
        """
        client, server_side = controller_pair()

        def bad_server(result: object) -> None:
            record, _ = result  # type: ignore[misc]
            message = bytes(record.message)
            # SUCCESS, and the argument back with its last byte changed.
            reply = success_reply_header(peek_xid(message)) + message[40:]
            server_side.start_writing(reply[:-1] + b"X")

        server_side.start_reading().addCallback(bad_server)
        stats = self.successResultOf(run_calls(client, Clock(), proc=PROC_ECHO, size=8))
        self.assertEqual(stats.failures, 1)
        self.assertIn("differ", stats.reasons[0])

    def test_timeout(self) -> None:
        """
        A call without a reply fails after the timeout.
        """
        client, server_side = controller_pair()
        clock = Clock()
        d = run_calls(client, clock, count=1, timeout=2.0)
        self.assertNoResult(d)
        clock.advance(1.0)
        self.assertNoResult(d)
        clock.advance(1.0)
        stats = self.successResultOf(d)
        self.assertEqual(stats.failures, 1)
        self.assertIn("no reply", stats.reasons[0])
