# -*- test-case-name: rpctransport.test.test_rpc_client -*-
"""
Tests of L{rpctransport.rpc.client}: the RPC client, and its sans-IO
bookkeeping in L{rpctransport.sansio.calls}.

First on fakes: in-memory stream controllers (L{controller_pair}) and a
fake UDP port (L{make_datagram}), with a L{Clock}; the server side is the
test, which reads the calls and answers them by hand. Then on real loopback
sockets (TCP, UNIX, TLS, UDP) against the echo program's server, and
against libtirpc's C server.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, gatherResults, inlineCallbacks
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IAddress
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from rpctransport.adapters.stream import StreamController
from rpctransport.entry.datagram import listen_datagram
from rpctransport.entry.stream import listen_stream
from rpctransport.interfaces import IRecordReceiver
from rpctransport.program.echo import EchoServer, encode_opaque
from rpctransport.rpc.client import (
    DEFAULT_UDP_RETRANSMIT,
    NEVER,
    ClientLife,
    RpcClient,
    connect_rpc_client,
    datagram_rpc_client,
)
from rpctransport.sansio.auth import AuthSys, decode_auth_sys
from rpctransport.sansio.calls import (
    CALL_RETRANSMITTED,
    CALL_TIMED_OUT,
    REPLY_MALFORMED,
    REPLY_NOT_A_REPLY,
    REPLY_UNKNOWN_XID,
    CallState,
    CallTable,
    PendingCall,
)
from rpctransport.sansio.errors import (
    AuthError,
    CallTimeout,
    ControllerInactive,
    DatagramTooLarge,
    GarbageArguments,
    MalformedMessage,
    NotConnected,
    ProcedureUnavailable,
    ProgramMismatch,
    ProgramUnavailable,
    RecordTooLarge,
    RpcCallError,
    RpcVersionMismatch,
    ServerSystemError,
)
from rpctransport.sansio.rpcmsg import (
    AcceptedReply,
    AcceptStat,
    AuthFlavor,
    CallHeader,
    DeniedReply,
    OpaqueAuth,
    RejectStat,
    decode_call_header,
    encode_call_header,
    encode_reply_header,
    peek_xid,
    reply_for_rejection,
    success_reply_header,
)
from rpctransport.sansio.types import RpcProtocol, ServerError
from rpctransport.test.helpers import (
    SocketTestMixin,
    client_options,
    make_datagram,
    outcome,
    pattern,
    refused,
    server_options,
)
from rpctransport.test.interop.build import build_or_skip, start_server
from rpctransport.testing.memory import controller_pair

PROGRAM = 0x20000099
"""The echo program's number."""
VERSION = 1
PROC_ECHO = 1

SERVER = ("127.0.0.1", 111)
"""The server of the fake datagram controllers."""


@implementer(IRecordReceiver)
class Server:
    """
    The server side of a L{controller_pair}: keeps the calls it receives,
    and answers them when the test says so.

    @ivar calls: the calls received, in order.
    @ivar ended: the reasons its records ended.
    """

    def __init__(self, controller: StreamController) -> None:
        self.controller = controller
        self.calls: list[bytes] = []
        self.ended: list[Failure] = []
        controller.receive_records(self)

    def record_received(self, message: bytes, peer: IAddress) -> None:
        self.calls.append(message)

    def record_refused(self, record: object, peer: IAddress) -> None:
        raise AssertionError(f"refused {record!r}")

    def receiving_ended(self, reason: Failure) -> None:
        self.ended.append(reason)

    def header(self, i: int) -> tuple[CallHeader, bytes]:
        """
        The header and the arguments of call C{i}.
        """
        header, offset = decode_call_header(self.calls[i])
        return header, self.calls[i][offset:]

    def xid(self, i: int) -> int:
        return peek_xid(self.calls[i])

    def succeed(self, i: int, results: bytes = b"") -> None:
        """
        Answer call C{i} with SUCCESS and C{results}.
        """
        self.controller.send_record(success_reply_header(self.xid(i)) + results)

    def send(self, message: bytes) -> None:
        self.controller.send_record(message)


def stream_client(**options: Any) -> tuple[RpcClient, Server, Clock]:
    """
    An L{RpcClient} on one side of a L{controller_pair}, the test's
    L{Server} on the other.

    @param options: for the client; C{controller} options go to both
        controllers.
    """
    clock = Clock()
    client_side, server_side = controller_pair(clock, **options.pop("controller", {}))
    server = Server(server_side)
    return RpcClient(client_side, **options), server, clock


def datagram_client(**options: Any) -> tuple[RpcClient, Any, Clock]:
    """
    An L{RpcClient} on a datagram controller whose server is L{SERVER}, on
    a fake port: C{port.written} has what was sent.
    """
    controller, port, clock = make_datagram(
        peer=SERVER, **options.pop("controller", {})
    )
    return RpcClient(controller, **options), port, clock


def outcomes(ds: list[Deferred[Any]]) -> list[Any]:
    """
    Collect what each Deferred fires with (a result or a L{Failure}) into
    a list that fills as they fire.
    """
    got: list[Any] = [None] * len(ds)
    for i, d in enumerate(ds):

        def keep(result: object, i: int = i) -> None:
            got[i] = result

        d.addBoth(keep)
    return got


class CallTableTests(SynchronousTestCase):
    """
    The sans-IO bookkeeping: xids, the bound, the schedule.
    """

    def call(self, timeout: float = 10.0) -> PendingCall:
        return PendingCall(1, 1, 0, b"", b"", timeout, None)

    def test_xids_increment_and_wrap(self) -> None:
        """
        Xids start where asked, increment, and wrap at 2**32.
        """
        table = CallTable(8, 0xFFFFFFFE)
        xids = [table.admit(self.call()) for _ in range(3)]
        self.assertEqual(xids, [0xFFFFFFFE, 0xFFFFFFFF, 0])

    def test_xids_skip_those_in_flight(self) -> None:
        """
        An xid still in flight is skipped when the counter comes round to it.
        """
        table = CallTable(8, 7)
        first, second = self.call(), self.call()
        table.admit(first)
        table.admit(second)
        table.take(7)
        table.next_xid = 7
        # 7 is free again, 8 is not.
        self.assertEqual(table.admit(self.call()), 7)
        self.assertEqual(table.admit(self.call()), 9)

    def test_bound_and_order(self) -> None:
        """
        At the bound, calls wait; they are admitted in order as slots free,
        those dropped while waiting skipped.
        """
        table = CallTable(1, 0)
        a, b, c, d = (self.call() for _ in range(4))
        self.assertTrue(table.has_slot())
        table.admit(a)
        self.assertFalse(table.has_slot())
        for call in (b, c, d):
            table.enqueue(call)
        table.drop(c)
        self.assertEqual((table.waiting, len(table)), (2, 3))
        self.assertIsNone(table.admit_next())
        table.take(a.xid)
        self.assertIs(table.admit_next(), b)
        table.drop(b)
        self.assertIs(table.admit_next(), d)
        self.assertEqual(c.state, CallState.DONE)

    def test_schedule(self) -> None:
        """
        Retransmissions come after 1, 2, 4, 8, 8 seconds (the cap), none at
        or after the deadline; then the call expires with its count.
        """
        table = CallTable(4, 0, retransmit=1.0)
        call = self.call(timeout=25.0)
        table.admit(call)
        due = table.sent(call, 100.0)
        times = []
        while True:
            expired, resend = table.due(due)
            if expired:
                self.assertEqual(expired, [call])
                break
            self.assertEqual(resend, [call])
            times.append(due - 100.0)
            due = table.next_due()
        self.assertEqual(times, [1, 3, 7, 15, 23])
        self.assertEqual(due - 100.0, 25)
        self.assertEqual(call.sent, 6)
        self.assertEqual(len(table), 0)
        self.assertEqual(table.next_due(), NEVER)


    def test_long_first_interval(self) -> None:
        """
        A first retransmission interval above the cap is not shortened: the
        interval never drops below it (20 s: resends at 20, 40; expiry at 50).
        """
        table = CallTable(4, 0, retransmit=20.0)
        call = self.call(timeout=50.0)
        table.admit(call)
        due = table.sent(call, 100.0)
        times = []
        while True:
            expired, resend = table.due(due)
            if expired:
                break
            times.append(due - 100.0)
            due = table.next_due()
        self.assertEqual(times, [20, 40])

    def test_cancelled_waiting_calls_let_go(self) -> None:
        """
        Calls dropped while waiting (cancelled behind a stalled server) do
        not pile up in the waiting line: it is compacted, and the calls
        still waiting keep their order.
        """
        table = CallTable(1, 0)
        table.admit(self.call())
        calls = [self.call() for _ in range(10_000)]
        for call in calls:
            table.enqueue(call)
        for call in calls[:-3]:
            table.drop(call)
        self.assertEqual(table.waiting, 3)
        self.assertLess(len(table._waiting), 100)
        table.in_flight.clear()
        self.assertIs(table.admit_next(), calls[-3])


class StreamCallTests(SynchronousTestCase):
    """
    Calls over an in-memory stream connection.
    """

    def test_call(self) -> None:
        """
        A call goes out with the program, version, procedure, credential,
        verifier and arguments given; it fires with the results of its
        SUCCESS reply.
        """
        client, server, _ = stream_client()
        cred = OpaqueAuth(AuthFlavor.AUTH_SYS, b"\0" * 20)
        verf = OpaqueAuth(9, b"verf")
        d = client.call(PROGRAM, VERSION, 5, b"args", cred=cred, verf=verf)
        self.assertNoResult(d)
        header, args = server.header(0)
        self.assertEqual(
            (header.prog, header.vers, header.proc, header.cred, header.verf, header.rpcvers),
            (PROGRAM, VERSION, 5, cred, verf, 2),
        )
        self.assertEqual(args, b"args")
        server.succeed(0, b"results")
        self.assertEqual(self.successResultOf(d), b"results")
        self.assertEqual((client.in_flight, client.waiting), (0, 0))

    def test_auth_sys_and_pieces(self) -> None:
        """
        An L{AuthSys} credential is sent encoded; arguments given as pieces
        (and large ones) arrive whole, after the header.
        """
        client, server, _ = stream_client()
        who = AuthSys(7, "host", 1000, 100, (4, 24))
        big = pattern(10000)
        client.call(PROGRAM, VERSION, 1, [b"ab", b"cd"], cred=who)
        client.call(PROGRAM, VERSION, 1, big)
        header, args = server.header(0)
        self.assertEqual(header.cred.flavor, AuthFlavor.AUTH_SYS)
        self.assertEqual(decode_auth_sys(header.cred.body), who)
        self.assertEqual(args, b"abcd")
        self.assertEqual(server.header(1)[1], big)

    def test_out_of_order(self) -> None:
        """
        Many calls in flight on one connection, each with its own xid
        (consecutive), answered in reverse order: each gets its own results.
        """
        client, server, _ = stream_client()
        ds = [client.call(PROGRAM, VERSION, 1, b"%d" % i) for i in range(20)]
        got = outcomes(ds)
        xids = [server.xid(i) for i in range(20)]
        self.assertEqual(xids, [(xids[0] + i) % 2**32 for i in range(20)])
        for i in reversed(range(20)):
            self.assertEqual(server.header(i)[1], b"%d" % i)
            server.succeed(i, b"reply %d" % i)
        self.assertEqual(got, [b"reply %d" % i for i in range(20)])

    def test_first_xid_random(self) -> None:
        """
        Two clients start at different xids (random: 2**-32 to collide).
        """
        first, server_one, _ = stream_client()
        second, server_two, _ = stream_client()
        first.call(PROGRAM, VERSION, 0)
        second.call(PROGRAM, VERSION, 0)
        self.assertNotEqual(server_one.xid(0), server_two.xid(0))

    def test_null(self) -> None:
        """
        C{null} calls procedure 0 without arguments and fires with L{None}.
        """
        client, server, _ = stream_client()
        d = client.null(PROGRAM, 4)
        header, args = server.header(0)
        self.assertEqual((header.prog, header.vers, header.proc, args), (PROGRAM, 4, 0, b""))
        server.succeed(0)
        self.assertIsNone(self.successResultOf(d))

    def test_bound_waits(self) -> None:
        """
        At C{max_in_flight}, further calls wait instead of failing, and go
        out in order as replies free slots.
        """
        client, server, _ = stream_client(max_in_flight=2)
        ds = [client.call(PROGRAM, VERSION, 1, b"%d" % i) for i in range(5)]
        got = outcomes(ds)
        self.assertEqual(len(server.calls), 2)
        self.assertEqual((client.in_flight, client.waiting), (2, 3))
        server.succeed(1)
        self.assertEqual(len(server.calls), 3)
        self.assertEqual(server.header(2)[1], b"2")
        server.succeed(0)
        server.succeed(2)
        self.assertEqual([server.header(i)[1] for i in range(5)], [b"%d" % i for i in range(5)])
        server.succeed(3)
        server.succeed(4)
        self.assertEqual(got, [b""] * 5)

    def test_call_from_callback_keeps_order(self) -> None:
        """
        A call made from the callback of a call that freed a slot waits
        behind the calls already waiting.
        """
        client, server, _ = stream_client(max_in_flight=1)
        first = client.call(PROGRAM, VERSION, 1, b"first")
        client.call(PROGRAM, VERSION, 1, b"second")
        first.addCallback(lambda _: client.call(PROGRAM, VERSION, 1, b"third"))
        server.succeed(0)
        server.succeed(1)
        self.assertEqual([server.header(i)[1] for i in range(3)], [b"first", b"second", b"third"])

    def test_timeout(self) -> None:
        """
        A call unanswered for its timeout fails with L{CallTimeout} (the
        seconds, its xid, one send) and frees its slot; the timeout of a
        call that waited counts from its send; a late reply is an unknown
        xid.
        """
        client, server, clock = stream_client(max_in_flight=1, timeout=5.0)
        first = client.call(PROGRAM, VERSION, 1)
        clock.advance(3)
        second = client.call(PROGRAM, VERSION, 1)
        clock.advance(2)
        error = self.failureResultOf(first, CallTimeout).value
        self.assertEqual((error.seconds, error.xid, error.sent), (5.0, server.xid(0), 1))
        self.assertEqual(len(server.calls), 2)
        clock.advance(4.9)
        self.assertNoResult(second)
        clock.advance(0.1)
        self.failureResultOf(second, CallTimeout)
        server.succeed(0)
        self.assertEqual(
            dict(client.counters), {CALL_TIMED_OUT: 2, REPLY_UNKNOWN_XID: 1}
        )

    def test_own_timeout(self) -> None:
        """
        A call's own timeout replaces the client's.
        """
        client, server, clock = stream_client(timeout=5.0)
        short = client.call(PROGRAM, VERSION, 1, timeout=2.0)
        default = client.call(PROGRAM, VERSION, 1)
        long = client.call(PROGRAM, VERSION, 1, timeout=NEVER)
        clock.advance(2)
        self.failureResultOf(short, CallTimeout)
        self.assertNoResult(default)
        clock.advance(3)
        self.failureResultOf(default, CallTimeout)
        clock.advance(10**6)
        self.assertNoResult(long)
        self.assertRaises(ValueError, client.call, PROGRAM, VERSION, 1, timeout=0)

    def test_one_timer(self) -> None:
        """
        The client keeps one timer, however many calls are in flight, and
        none once they are done.
        """
        client, server, clock = stream_client()
        for _ in range(10):
            client.call(PROGRAM, VERSION, 1)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        for i in range(10):
            server.succeed(i)
        clock.advance(25)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel_in_flight(self) -> None:
        """
        Cancelling a call in flight fails it with C{CancelledError} and
        frees its slot for a waiting call; its late reply is an unknown xid.
        """
        client, server, _ = stream_client(max_in_flight=1)
        first = client.call(PROGRAM, VERSION, 1, b"first")
        second = client.call(PROGRAM, VERSION, 1, b"second")
        first.cancel()
        self.failureResultOf(first, CancelledError)
        self.assertEqual(server.header(1)[1], b"second")
        server.succeed(0)
        self.assertEqual(client.counters, {REPLY_UNKNOWN_XID: 1})
        self.assertNoResult(second)
        server.succeed(1)
        self.successResultOf(second)

    def test_cancel_waiting(self) -> None:
        """
        Cancelling a waiting call fails it with C{CancelledError}; it is
        never sent, and the calls behind it move up.
        """
        client, server, _ = stream_client(max_in_flight=1)
        first = client.call(PROGRAM, VERSION, 1, b"first")
        second = client.call(PROGRAM, VERSION, 1, b"second")
        third = client.call(PROGRAM, VERSION, 1, b"third")
        second.cancel()
        self.failureResultOf(second, CancelledError)
        self.assertEqual(client.waiting, 1)
        server.succeed(0)
        self.successResultOf(first)
        self.assertEqual([server.header(i)[1] for i in range(2)], [b"first", b"third"])
        server.succeed(1)
        self.successResultOf(third)

    def test_unknown_xid(self) -> None:
        """
        A reply whose xid is no call in flight is counted and dropped; the
        call in flight is untouched.
        """
        client, server, _ = stream_client()
        d = client.call(PROGRAM, VERSION, 1)
        server.send(success_reply_header((server.xid(0) + 1) % 2**32) + b"stray")
        server.send(reply_for_rejection(b"\0\0\0\0", ServerError.PROC_UNAVAIL))
        self.assertNoResult(d)
        self.assertEqual(client.counters, {REPLY_UNKNOWN_XID: 2})
        server.succeed(0, b"mine")
        self.assertEqual(self.successResultOf(d), b"mine")

    def test_errors(self) -> None:
        """
        Each refusal fails its call with its own L{RpcCallError} and the
        numbers: the call's program, version and procedure, the server's
        version ranges, the C{auth_stat}.
        """
        cases: list[tuple[bytes | None, ServerError | None, dict[str, int], type, dict[str, int]]]
        cases = [
            (None, ServerError.PROG_UNAVAIL, {}, ProgramUnavailable, {"program": PROGRAM}),
            (
                None,
                ServerError.PROG_MISMATCH,
                {"low": 2, "high": 5},
                ProgramMismatch,
                {"program": PROGRAM, "version": 7, "low": 2, "high": 5},
            ),
            (None, ServerError.PROC_UNAVAIL, {}, ProcedureUnavailable, {"procedure": 3}),
            (None, ServerError.GARBAGE_ARGS, {}, GarbageArguments, {}),
            (None, ServerError.SYSTEM_ERR, {}, ServerSystemError, {}),
            (
                None,
                ServerError.RPC_MISMATCH,
                {"low": 3, "high": 4},
                RpcVersionMismatch,
                {"low": 3, "high": 4},
            ),
            (None, ServerError.AUTH_BADCRED, {}, AuthError, {"stat": 1}),
            (None, ServerError.AUTH_TOOWEAK, {}, AuthError, {"stat": 5}),
            (
                encode_reply_header(DeniedReply(0, RejectStat.AUTH_ERROR, auth_stat=99)),
                None,
                {},
                AuthError,
                {"stat": 99},
            ),
        ]
        client, server, _ = stream_client()
        for i, (raw, error, numbers, kind, expected) in enumerate(cases):
            d = client.call(PROGRAM, 7, 3)
            head = server.calls[i][:4]
            if raw is None:
                assert error is not None
                server.send(reply_for_rejection(head, error, **numbers))
            else:
                server.send(head + raw[4:])
            failure = self.failureResultOf(d, kind)
            self.assertIsInstance(failure.value, RpcCallError)
            for name, value in expected.items():
                self.assertEqual(getattr(failure.value, name), value, (kind, name))
        self.assertEqual(client.counters, {})

    def test_success_with_verifier(self) -> None:
        """
        A SUCCESS reply with a verifier that is not empty is decoded, and
        its results are what follows the verifier.
        """
        client, server, _ = stream_client()
        d = client.call(PROGRAM, VERSION, 1)
        verf = OpaqueAuth(AuthFlavor.AUTH_SHORT, b"abcdef")
        reply = AcceptedReply(server.xid(0), verf, AcceptStat.SUCCESS)
        server.send(encode_reply_header(reply) + b"results")
        self.assertEqual(self.successResultOf(d), b"results")

    def test_malformed_reply(self) -> None:
        """
        A reply to a call in flight that cannot be decoded fails that call
        with L{MalformedMessage} and is counted; records too short for an
        xid and messages that are not replies are counted and dropped; the
        connection goes on.
        """
        client, server, _ = stream_client()
        first = client.call(PROGRAM, VERSION, 1)
        second = client.call(PROGRAM, VERSION, 1)
        # A reply whose verifier says 64 bytes and has none.
        truncated = success_reply_header(server.xid(0))[:16] + b"\0\0\0\x40"
        server.send(truncated)
        self.failureResultOf(first, MalformedMessage)
        server.send(b"abc")
        server.send(encode_call_header(CallHeader(server.xid(1), 1, 1, 0)))
        self.assertNoResult(second)
        self.assertEqual(client.counters, {REPLY_MALFORMED: 2, REPLY_NOT_A_REPLY: 1})
        server.succeed(1)
        self.successResultOf(second)
        third = client.null(PROGRAM, VERSION)
        server.succeed(2)
        self.successResultOf(third)

    def test_backpressure(self) -> None:
        """
        While the transport pushes back on what was sent, new calls wait
        (under the bound); they go when it drains.
        """
        client, server, _ = stream_client()
        client.controller.pauseProducing()
        d = client.call(PROGRAM, VERSION, 1, b"held")
        self.assertEqual((len(server.calls), client.waiting), (0, 1))
        client.controller.resumeProducing()
        self.assertEqual(server.header(0)[1], b"held")
        server.succeed(0)
        self.successResultOf(d)

    def test_no_retransmission_on_streams(self) -> None:
        """
        A stream sends a call once, unless C{retransmit} is given: then the
        same bytes again.
        """
        client, server, clock = stream_client()
        client.call(PROGRAM, VERSION, 1)
        clock.advance(24)
        self.assertEqual(len(server.calls), 1)
        client, server, clock = stream_client(retransmit=2.0)
        client.call(PROGRAM, VERSION, 1)
        clock.advance(2)
        self.assertEqual(server.calls, [server.calls[0]] * 2)
        self.assertEqual(client.counters, {CALL_RETRANSMITTED: 1})


class StreamEndTests(SynchronousTestCase):
    """
    The end of the connection, or of the client.
    """

    def check_ended(
        self, client: RpcClient, ds: list[Deferred[bytes]], kind: type[BaseException]
    ) -> None:
        """
        C{client} ended: every Deferred of C{ds} failed with C{kind}, the
        controller is inactive, a later call fails at once with it.
        """
        for d in ds:
            self.failureResultOf(d, kind)
        self.assertIs(client.life, ClientLife.ENDED)
        self.assertFalse(client.controller.alive)
        self.failureResultOf(client.call(PROGRAM, VERSION, 1), kind)
        self.assertEqual((client.in_flight, client.waiting), (0, 0))

    def test_server_closes(self) -> None:
        """
        When the server closes the connection, every call in flight or
        waiting fails with C{ConnectionDone}; so do later calls.
        """
        client, server, clock = stream_client(max_in_flight=2)
        ds = [client.call(PROGRAM, VERSION, 1) for _ in range(4)]
        server.controller.transport.loseConnection()
        self.check_ended(client, ds, ConnectionDone)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_connection_lost(self) -> None:
        """
        When the connection is lost, the calls fail with C{ConnectionLost}.
        """
        client, server, _ = stream_client(max_in_flight=1)
        ds = [client.call(PROGRAM, VERSION, 1) for _ in range(2)]
        server.controller.transport.abortConnection()
        self.check_ended(client, ds, ConnectionLost)

    def test_controller_error(self) -> None:
        """
        When the controller closes the connection for an error of the
        server's (a reply over C{max_record_size}), the calls fail with it.
        """
        client, server, _ = stream_client(controller={"max_record_size": 100})
        ds = [client.call(PROGRAM, VERSION, 1) for _ in range(2)]
        server.succeed(0, b"x" * 200)
        self.check_ended(client, ds, RecordTooLarge)

    def test_send_fails(self) -> None:
        """
        When a send raises (the controller was inactivated behind the
        client's back), that call and the others fail with the error.
        """
        client, server, _ = stream_client()
        first = client.call(PROGRAM, VERSION, 1)
        client.controller.inactivate()
        second = client.call(PROGRAM, VERSION, 1)
        self.check_ended(client, [first, second], ControllerInactive)

    def test_close(self) -> None:
        """
        C{close} inactivates the controller and fails what is pending with
        C{ConnectionDone}; the server sees the connection closed.
        """
        client, server, clock = stream_client(max_in_flight=1)
        ds = [client.call(PROGRAM, VERSION, 1) for _ in range(2)]
        self.successResultOf(client.close())
        self.check_ended(client, ds, ConnectionDone)
        self.assertEqual(len(server.ended), 1)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.successResultOf(client.close())

    def test_close_draining(self) -> None:
        """
        C{close(drain=True)} refuses new calls at once and ends the client
        once the calls in flight and waiting are done.
        """
        client, server, _ = stream_client(max_in_flight=1)
        first = client.call(PROGRAM, VERSION, 1)
        second = client.call(PROGRAM, VERSION, 1)
        closed = client.close(drain=True)
        self.assertIs(client.life, ClientLife.ENDING)
        self.failureResultOf(client.call(PROGRAM, VERSION, 1), ConnectionDone)
        server.succeed(0)
        self.successResultOf(first)
        self.assertNoResult(closed)
        server.succeed(1)
        self.successResultOf(second)
        self.successResultOf(closed)
        self.assertIs(client.life, ClientLife.ENDED)
        self.assertFalse(client.controller.alive)

    def test_misuse(self) -> None:
        """
        Bad options and numbers raise at once.
        """
        clock = Clock()
        controller, _ = controller_pair(clock)
        self.assertRaises(ValueError, RpcClient, controller, max_in_flight=0)
        self.assertRaises(ValueError, RpcClient, controller, timeout=0)
        self.assertRaises(ValueError, RpcClient, controller, retransmit=-1)
        client = RpcClient(controller)
        self.assertRaises(ValueError, client.call, 2**32, VERSION, 1)
        self.assertRaises(TypeError, RpcClient, object())


class DatagramTests(SynchronousTestCase):
    """
    Calls over a datagram controller on a fake port.
    """

    def reply(self, client: RpcClient, message: bytes) -> None:
        client.controller.datagramReceived(message, SERVER)

    def test_retransmission(self) -> None:
        """
        Unanswered, a call is sent again (the same bytes) after 1 s, then
        2, 4, 8 and 8 s; at its deadline it fails with L{CallTimeout}
        counting the sends.
        """
        client, port, clock = datagram_client()
        d = client.call(PROGRAM, VERSION, 1, b"args")
        sent_at = []
        for _ in range(25):
            before = len(port.written)
            clock.advance(1)
            if len(port.written) > before:
                sent_at.append(clock.seconds())
        self.assertEqual(sent_at, [1, 3, 7, 15, 23])
        self.assertEqual({datagram for datagram, _ in port.written}, {port.written[0][0]})
        self.assertEqual({addr for _, addr in port.written}, {SERVER})
        error = self.failureResultOf(d, CallTimeout).value
        self.assertEqual((error.sent, error.seconds), (6, 25.0))
        self.assertEqual(client.counters, {CALL_RETRANSMITTED: 5, CALL_TIMED_OUT: 1})

    def test_retransmission_within_timeout(self) -> None:
        """
        No retransmission is sent at or after the call's deadline: here
        the fourth send would be due at the deadline.
        """
        client, port, clock = datagram_client(timeout=3.5, retransmit=0.5)
        d = client.call(PROGRAM, VERSION, 1)
        clock.pump([0.5] * 10)
        self.assertEqual(self.failureResultOf(d, CallTimeout).value.sent, 3)
        self.assertEqual(len(port.written), 3)

    def test_reply_after_retransmission(self) -> None:
        """
        A reply to a retransmitted call fires it; the reply to the other
        send is an unknown xid; nothing is sent afterwards.
        """
        client, port, clock = datagram_client()
        d = client.call(PROGRAM, VERSION, 1)
        clock.advance(DEFAULT_UDP_RETRANSMIT)
        xid = peek_xid(port.written[0][0])
        self.reply(client, success_reply_header(xid) + b"late")
        self.reply(client, success_reply_header(xid) + b"later")
        self.assertEqual(self.successResultOf(d), b"late")
        clock.advance(60)
        self.assertEqual(len(port.written), 2)
        self.assertEqual(client.counters, {CALL_RETRANSMITTED: 1, REPLY_UNKNOWN_XID: 1})

    def test_no_retransmission(self) -> None:
        """
        C{retransmit=NEVER} turns retransmission off on UDP.
        """
        client, port, clock = datagram_client(retransmit=NEVER, timeout=10.0)
        d = client.call(PROGRAM, VERSION, 1)
        clock.pump([1.0] * 10)
        self.assertEqual(self.failureResultOf(d, CallTimeout).value.sent, 1)
        self.assertEqual(len(port.written), 1)

    def test_server_refused(self) -> None:
        """
        An ICMP port unreachable from the server fails the calls in flight
        with C{ConnectionRefusedError}; the client goes on.
        """
        client, port, clock = datagram_client()
        ds = [client.call(PROGRAM, VERSION, 1) for _ in range(2)]
        client.controller.errorReceived(
            refused(SERVER[1]), SERVER, errno.ECONNREFUSED
        )
        for d in ds:
            self.failureResultOf(d, ConnectionRefusedError)
        self.assertIs(client.life, ClientLife.OPEN)
        d = client.call(PROGRAM, VERSION, 1)
        self.reply(client, success_reply_header(peek_xid(port.written[-1][0])))
        self.successResultOf(d)
        clock.advance(60)
        self.assertEqual(len(port.written), 3)

    def test_too_large(self) -> None:
        """
        A call too large for a datagram fails alone with
        C{DatagramTooLarge}; nothing is sent and the slot is free.
        """
        client, port, _ = datagram_client(max_in_flight=1, controller={"max_record_size": 200})
        too_large = client.call(PROGRAM, VERSION, 1, b"x" * 300)
        self.failureResultOf(too_large, DatagramTooLarge)
        d = client.call(PROGRAM, VERSION, 1, b"x" * 100)
        self.assertEqual(len(port.written), 1)
        self.reply(client, success_reply_header(peek_xid(port.written[0][0])))
        self.successResultOf(d)

    def test_not_connected(self) -> None:
        """
        A datagram controller without a fixed peer is refused.
        """
        controller, _, _ = make_datagram()
        self.assertRaises(NotConnected, RpcClient, controller)

    def test_port_lost(self) -> None:
        """
        When the port goes away, the calls fail with C{ConnectionLost}.
        """
        client, port, _ = datagram_client()
        d = client.call(PROGRAM, VERSION, 1)
        port.stopListening()
        self.failureResultOf(d, ConnectionLost)
        self.assertIs(client.life, ClientLife.ENDED)


# -- Real sockets ------------------------------------------------------------------


def echo_args(data: bytes) -> list[bytes]:
    """
    The arguments of ECHO: C{data} as an XDR C{opaque<>}.
    """
    return encode_opaque(data)


class _EchoChecks(SocketTestMixin):
    """
    Calls of the echo program on a real connection: NULL, many ECHOs in
    flight, the rejections.
    """

    @inlineCallbacks
    def error_of(self, d: Deferred[Any], what: str) -> Generator[Any, Any, Any]:
        """
        Wait for C{d} to fail; give the exception it failed with (not the
        L{Failure}, which would fail this Deferred too).
        """
        ok, result = yield self.within(outcome(d), what)
        self.assertFalse(ok, f"{what}: succeeded with {result!r}")
        return result.value

    @inlineCallbacks
    def check_client(
        self, client: RpcClient, sizes: tuple[int, ...], mismatch: tuple[int, int] = (1, 1)
    ) -> Generator[Any, Any, None]:
        """
        NULL succeeds; ECHOs of C{sizes} (several of each, in flight at
        once) come back intact; an unknown procedure and version are
        refused with their numbers.
        """
        yield self.within(client.null(PROGRAM, VERSION), "NULL")
        payloads = [pattern(size, seed) for size in sizes for seed in range(3)]
        ds = [client.call(PROGRAM, VERSION, PROC_ECHO, echo_args(p)) for p in payloads]
        results = yield self.within(gatherResults(ds), "the ECHOs")
        self.assertEqual(results, [b"".join(echo_args(p)) for p in payloads])
        error = yield self.error_of(client.call(PROGRAM, VERSION, 99), "PROC_UNAVAIL")
        self.assertIsInstance(error, ProcedureUnavailable)
        self.assertEqual(error.procedure, 99)
        error = yield self.error_of(client.null(PROGRAM, VERSION + 1), "PROG_MISMATCH")
        self.assertIsInstance(error, ProgramMismatch)
        self.assertEqual((error.program, error.version), (PROGRAM, VERSION + 1))
        self.assertEqual((error.low, error.high), mismatch)
        if client.controller.protocol is RpcProtocol.UDP:
            # Loopback drops datagrams when a socket's buffer is full (15
            # of 60,000 B at once): retransmission recovers them, and both
            # copies may be answered.
            self.assertLessEqual(set(client.counters), {CALL_RETRANSMITTED, REPLY_UNKNOWN_XID})
        else:
            self.assertEqual(client.counters, {})


class SocketTests(_EchoChecks, TestCase):
    """
    The client over real loopback sockets, against the echo program's
    server (C{EchoServer.serve}).
    """

    STREAM_SIZES = (0, 1, 4095, 65536, 1 << 20)
    UDP_SIZES = (0, 1, 4095, 8801, 60000)

    def setUp(self) -> None:
        self._setUpRegistry()

    @inlineCallbacks
    def listen(self, endpoint: str, **options: Any) -> Generator[Any, Any, Any]:
        """
        Serve the echo program on C{endpoint}.
        """
        server = EchoServer()

        def on_connection(controller: StreamController) -> None:
            self.track(controller)
            server.serve(controller)

        port = yield listen_stream(endpoint, on_connection, reactor=self.reactor, **options)
        self.addCleanup(port.stopListening)
        return port

    @inlineCallbacks
    def connect(self, endpoint: str, **options: Any) -> Generator[Any, Any, RpcClient]:
        client = yield self.within(
            connect_rpc_client(endpoint, reactor=self.reactor, max_in_flight=8, **options),
            "connect",
        )
        self.track(client.controller)
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def test_tcp(self) -> Generator[Any, Any, None]:
        """
        Over TCP.
        """
        port = yield self.listen("tcp:0:interface=127.0.0.1")
        client = yield self.connect(f"tcp:host=127.0.0.1:port={port.getHost().port}")
        yield self.check_client(client, self.STREAM_SIZES)
        yield client.close()

    @inlineCallbacks
    def test_unix(self) -> Generator[Any, Any, None]:
        """
        Over a UNIX socket.
        """
        directory = tempfile.mkdtemp(prefix="rpctransport-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "s")
        yield self.listen(f"unix:{path}")
        client = yield self.connect(f"unix:path={path}")
        yield self.check_client(client, self.STREAM_SIZES)

    @inlineCallbacks
    def test_tls(self) -> Generator[Any, Any, None]:
        """
        Over TLS, the calls made before the handshake completed included.
        """
        port = yield self.listen("tcp:0:interface=127.0.0.1", tls=server_options())
        client = yield self.connect(
            f"tcp:host=127.0.0.1:port={port.getHost().port}", tls=client_options()
        )
        yield self.check_client(client, self.STREAM_SIZES)
        self.assertIsNotNone(client.controller.tls_session_props)

    @inlineCallbacks
    def test_server_goes_away(self) -> Generator[Any, Any, None]:
        """
        When the server's connection closes, the calls in flight fail with
        C{ConnectionDone} (C{ConnectionLost} where the kernel resets it).
        """
        servers: list[StreamController] = []

        def on_connection(controller: StreamController) -> None:
            servers.append(self.track(controller))
            controller.receive_records(_Deaf())

        port = yield listen_stream(
            "tcp:0:interface=127.0.0.1", on_connection, reactor=self.reactor
        )
        self.addCleanup(port.stopListening)
        client = yield self.connect(f"tcp:host=127.0.0.1:port={port.getHost().port}")
        d = client.null(PROGRAM, VERSION)
        yield self.until(lambda: bool(servers), "the connection")
        servers[0].inactivate()
        error = yield self.error_of(d, "the call to fail")
        self.assertIsInstance(error, (ConnectionDone, ConnectionLost))
        self.assertIs(client.life, ClientLife.ENDED)

    @inlineCallbacks
    def test_udp(self) -> Generator[Any, Any, None]:
        """
        Over UDP.
        """
        server_controller = listen_datagram(0, "127.0.0.1", self.reactor)
        self.addCleanup(server_controller.when_closed)
        self.addCleanup(server_controller.inactivate)
        EchoServer().serve(server_controller)
        port: Any = server_controller.getsockname()
        client = datagram_rpc_client("127.0.0.1", port.port, reactor=self.reactor)
        controller: Any = client.controller
        self.addCleanup(controller.when_closed)
        self.addCleanup(client.close)
        yield self.check_client(client, self.UDP_SIZES)


@implementer(IRecordReceiver)
class _Deaf:
    """
    A receiver that takes calls and never answers.
    """

    def record_received(self, message: bytes, peer: IAddress) -> None:
        pass

    def record_refused(self, record: object, peer: IAddress) -> None:
        pass

    def receiving_ended(self, reason: Failure) -> None:
        pass


class TirpcServerTests(_EchoChecks, TestCase):
    """
    The client against libtirpc's C server (C{tirpc_server}), which serves
    the echo program version 1.
    """

    def setUp(self) -> None:
        self._setUpRegistry()
        self.server = start_server(self, [str(build_or_skip("tirpc_server"))])

    @inlineCallbacks
    def test_tcp(self) -> Generator[Any, Any, None]:
        """
        Over TCP: NULL, ECHO up to 1 MiB (libtirpc answers in 65,532-byte
        fragments), PROC_UNAVAIL, and PROG_MISMATCH with the C server's
        range (1 to 1); an unknown program is PROG_UNAVAIL.
        """
        host, port = self.server.host_port("tcp")
        client = yield self.within(
            connect_rpc_client(f"tcp:host={host}:port={port}", reactor=self.reactor),
            "connect",
        )
        self.track(client.controller)
        self.addCleanup(client.close)
        yield self.check_client(client, (0, 1, 4095, 65536, 1 << 20))
        error = yield self.error_of(client.null(PROGRAM + 1, VERSION), "PROG_UNAVAIL")
        self.assertIsInstance(error, ProgramUnavailable)

    @inlineCallbacks
    def test_udp(self) -> Generator[Any, Any, None]:
        """
        Over UDP: NULL, ECHO up to 60,000 B, PROC_UNAVAIL and
        PROG_MISMATCH.
        """
        host, port = self.server.host_port("udp")
        client = datagram_rpc_client(host, port, reactor=self.reactor)
        controller: Any = client.controller
        self.addCleanup(controller.when_closed)
        self.addCleanup(client.close)
        yield self.check_client(client, (0, 1, 4095, 8801, 60000))
