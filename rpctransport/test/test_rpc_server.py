# -*- test-case-name: rpctransport.test.test_rpc_server -*-
"""
Tests for L{rpctransport.rpc.server}: L{RpcServer} on fakes (a stream
controller on a C{StringTransport}, a datagram controller on a
L{FakePort}, a L{Clock}), then on real loopback sockets (TCP, UNIX, TLS,
UDP), then against libtirpc's C client.

Calls are built here with L{encode_call_header} and replies read with
L{decode_reply_header}: the tests do not depend on an RPC client.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
from collections.abc import Callable, Generator
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from rpctransport import connect_datagram, connect_stream, listen_datagram, listen_stream
from rpctransport.program.echo import ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, encode_opaque, run_calls
from rpctransport.rpc.server import (
    ABANDONED,
    CALLS,
    DRC_DROPPED,
    DRC_EVICTED,
    DRC_MAX_AGE,
    DRC_REPLAYED,
    IGNORED,
    PAUSED,
    REPLY_AUTH_ERROR,
    REPLY_GARBAGE_ARGS,
    REPLY_PROC_UNAVAIL,
    REPLY_PROG_MISMATCH,
    REPLY_PROG_UNAVAIL,
    REPLY_RPC_MISMATCH,
    REPLY_SUCCESS,
    REPLY_SYSTEM_ERR,
    CallInfo,
    RpcServer,
)
from rpctransport.sansio.auth import AuthSys
from rpctransport.sansio.errors import (
    AuthError,
    CallTimeout,
    GarbageArguments,
    ProcedureUnavailable,
    ProgramMismatch,
    ProgramUnavailable,
    RpcVersionMismatch,
    ServerSystemError,
)
from rpctransport.sansio.rpcmsg import (
    NULL_AUTH,
    AcceptedReply,
    AcceptStat,
    AuthFlavor,
    AuthStat,
    CallHeader,
    DeniedReply,
    OpaqueAuth,
    RejectStat,
    ReplyHeader,
    decode_reply_header,
    encode_call_header,
    encode_tls_probe,
)
from rpctransport.test.helpers import (
    PEER,
    SocketTestMixin,
    client_options,
    connected,
    make_datagram,
    record,
    server_options,
)
from rpctransport.test.interop.build import build_or_skip, run_program

PROGRAM = ECHO_PROGRAM
VERSION = ECHO_VERSION
PROC_SLOW = 2
"""The tests' procedure whose handler answers through a Deferred."""

CLIENT = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40001)


def call(
    xid: int,
    proc: int = PROC_ECHO,
    args: bytes = b"",
    *,
    prog: int = PROGRAM,
    vers: int = VERSION,
    cred: OpaqueAuth = NULL_AUTH,
    verf: OpaqueAuth = NULL_AUTH,
    rpcvers: int = 2,
) -> bytes:
    """
    A call message (without its record mark).
    """
    return encode_call_header(CallHeader(xid, prog, vers, proc, cred, verf, rpcvers)) + args


def opaque(data: bytes) -> bytes:
    """C{data} as an XDR C{opaque<>}."""
    return b"".join(encode_opaque(data))


def split_records(data: bytes) -> list[bytes]:
    """
    The records in C{data} (record-marked bytes), fragments joined.
    """
    found = []
    parts: list[bytes] = []
    offset = 0
    while offset < len(data):
        (word,) = struct.unpack_from(">I", data, offset)
        size = word & 0x7FFFFFFF
        parts.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
        if word & 0x80000000:
            found.append(b"".join(parts))
            parts = []
    return found


def decoded(reply: bytes) -> tuple[ReplyHeader, bytes]:
    """
    A reply's header and what follows it.
    """
    header, offset = decode_reply_header(reply)
    return header, reply[offset:]


def echo(args: bytes, call: CallInfo) -> bytes:
    """A handler that answers with its arguments."""
    return args


class Recorder:
    """
    A handler that notes its calls and answers with C{answer(args, call)}
    (its arguments, by default).

    @ivar calls: C{(args, call)} for each call.
    """

    def __init__(self, answer: Callable[[bytes, CallInfo], Any] | None = None) -> None:
        self.calls: list[tuple[bytes, CallInfo]] = []
        self.answer = answer

    def __call__(self, args: bytes, call: CallInfo) -> Any:
        self.calls.append((args, call))
        if self.answer is None:
            return args
        return self.answer(args, call)


class Later:
    """
    A handler that answers through a Deferred it keeps, fired by the test.

    @ivar pending: C{(xid, args, deferred)} for each call not fired yet.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[int, bytes, Deferred[bytes]]] = []
        self.count = 0

    def __call__(self, args: bytes, call: CallInfo) -> Deferred[bytes]:
        self.count += 1
        d: Deferred[bytes] = Deferred()
        self.pending.append((call.xid, args, d))
        return d

    def fire(self, index: int = 0) -> int:
        """
        Answer the C{index}-th pending call with its arguments; returns its
        xid.
        """
        xid, args, d = self.pending.pop(index)
        d.callback(args)
        return xid


class _StreamTestCase(SynchronousTestCase):
    """
    A server on a stream controller over a fake transport. Has no tests of
    its own.
    """

    def serve(self, server: RpcServer | None = None, **options: Any) -> RpcServer:
        """
        Serve C{server} (one with C{echo} as procedure 1 by default) on a
        new controller: C{self.controller}, C{self.transport},
        C{self.clock}, C{self.done}.
        """
        if server is None:
            server = RpcServer()
            server.register(PROGRAM, VERSION, PROC_ECHO, echo)
        self.server = server
        self.controller, self.transport, self.clock = connected(**options)
        self.done = server.serve(self.controller)
        return server

    def send(self, *messages: bytes) -> None:
        """Deliver C{messages} as records, in one chunk."""
        self.controller.dataReceived(b"".join(record(m) for m in messages))

    def replies(self) -> list[bytes]:
        """The replies sent since last asked."""
        data = self.transport.value()
        self.transport.clear()
        return split_records(data)

    def only_reply(self) -> tuple[ReplyHeader, bytes]:
        """The one reply sent since last asked, decoded."""
        replies = self.replies()
        self.assertEqual(len(replies), 1, replies)
        return decoded(replies[0])

    def assertAccepted(
        self, header: ReplyHeader, xid: int, stat: AcceptStat
    ) -> AcceptedReply:
        """
        C{header} is an accepted reply to C{xid} with C{stat}.
        """
        self.assertIsInstance(header, AcceptedReply)
        assert isinstance(header, AcceptedReply)
        self.assertEqual((header.xid, header.stat), (xid, stat))
        return header


# -- Registration ------------------------------------------------------------


class RegistrationTests(SynchronousTestCase):
    """
    Handlers are registered one at a time or per program version; misuse
    raises at once.
    """

    def test_programs(self) -> None:
        """
        L{RpcServer.programs} lists the registered program versions, in
        order, whichever way they were registered.
        """
        server = RpcServer()
        server.add_program(PROGRAM, 3, {1: echo, 2: echo})
        server.register(PROGRAM, 1, 1, echo)
        server.register(7, 2, 0, echo)
        self.assertEqual(server.programs, [(7, 2), (PROGRAM, 1), (PROGRAM, 3)])

    def test_twice_refused(self) -> None:
        """
        A procedure that has a handler cannot get another; the automatic
        NULL can be replaced by a handler, once.
        """
        server = RpcServer()
        server.register(PROGRAM, VERSION, 1, echo)
        error = self.assertRaises(ValueError, server.register, PROGRAM, VERSION, 1, echo)
        self.assertIn("already has a handler", str(error))
        server.register(PROGRAM, VERSION, 0, echo)
        self.assertRaises(ValueError, server.register, PROGRAM, VERSION, 0, echo)

    def test_bad_numbers_and_handlers(self) -> None:
        """
        Numbers that are not unsigned 32-bit integers raise C{ValueError}
        naming the field; a handler that is not callable, C{TypeError}.
        """
        server = RpcServer()
        for args in ((-1, 1, 1), (PROGRAM, 1 << 32, 1), (PROGRAM, 1, "1")):
            error = self.assertRaises(ValueError, server.register, *args, echo)
            self.assertIn("unsigned 32-bit", str(error))
        self.assertRaises(TypeError, server.register, PROGRAM, 1, 1, b"not callable")
        self.assertEqual(server.programs, [])

    def test_add_program_all_or_nothing(self) -> None:
        """
        L{RpcServer.add_program} registers nothing when one of its handlers
        is refused.
        """
        server = RpcServer()
        server.register(PROGRAM, VERSION, 2, echo)
        self.assertRaises(ValueError, server.add_program, PROGRAM, VERSION, {1: echo, 2: echo})
        server.register(PROGRAM, VERSION, 1, echo)

    def test_limits(self) -> None:
        """
        Limits out of range are refused.
        """
        self.assertRaises(ValueError, RpcServer, max_in_progress=0)
        self.assertRaises(ValueError, RpcServer, max_record_size=0)
        self.assertRaises(ValueError, RpcServer, drc_max_entries=-1)


# -- Dispatch and the RFC 5531 answers ------------------------------------------


class DispatchTests(_StreamTestCase):
    """
    Calls go to their handlers; the server answers what has none.
    """

    def test_handler(self) -> None:
        """
        The handler gets the call's arguments (the bytes after the header)
        and a L{CallInfo}; its results follow an accepted SUCCESS header
        with the call's xid.
        """
        recorder = Recorder(lambda args, call: b"result")
        server = RpcServer()
        server.register(PROGRAM, VERSION, 5, recorder)
        self.serve(server)
        self.send(call(0xDEADBEEF, 5, b"\0\0\0\1args"))
        header, body = self.only_reply()
        self.assertAccepted(header, 0xDEADBEEF, AcceptStat.SUCCESS)
        self.assertEqual(header.verf, NULL_AUTH)  # type: ignore[union-attr]
        self.assertEqual(body, b"result")
        [(args, info)] = recorder.calls
        self.assertEqual(args, b"\0\0\0\1args")
        self.assertEqual(
            (info.xid, info.program, info.version, info.procedure),
            (0xDEADBEEF, PROGRAM, VERSION, 5),
        )
        self.assertIsNone(info.credential)
        self.assertEqual(info.flavor, AuthFlavor.AUTH_NONE)
        self.assertEqual((info.raw_credential, info.verifier), (NULL_AUTH, NULL_AUTH))
        self.assertEqual(info.peer, PEER)
        self.assertIs(info.controller, self.controller)
        self.assertIn("xid 0xdeadbeef", repr(info))

    def test_results(self) -> None:
        """
        Results may be C{bytes} (small or large), L{None} (no results),
        a C{bytearray}, a C{memoryview}, or a list or tuple of pieces.
        """
        big = bytes(range(256)) * 40
        answers: list[Any] = [
            b"abcd",
            big,
            None,
            bytearray(b"ba"),
            memoryview(b"mv"),
            [b"one", bytearray(b"two"), memoryview(b"three")],
            (b"tu", b"ple"),
        ]
        expected = [b"abcd", big, b"", b"ba", b"mv", b"onetwothree", b"tuple"]
        server = RpcServer()
        server.register(PROGRAM, VERSION, 1, lambda args, call: answers[call.xid])
        self.serve(server)
        self.send(*(call(xid, 1) for xid in range(len(answers))))
        replies = [decoded(reply) for reply in self.replies()]
        for xid, (header, body) in enumerate(replies):
            self.assertAccepted(header, xid, AcceptStat.SUCCESS)
        self.assertEqual([body for _, body in replies], expected)
        self.assertEqual(self.server.counters[REPLY_SUCCESS], len(answers))

    def test_null(self) -> None:
        """
        The NULL procedure of every registered version is answered SUCCESS
        with no results, without a handler; a NULL handler, when
        registered, answers instead.
        """
        recorder = Recorder(lambda args, call: b"mine")
        server = RpcServer()
        server.register(PROGRAM, 1, 1, echo)
        server.add_program(PROGRAM, 2, {3: echo})
        server.register(PROGRAM, 4, 0, recorder)
        self.serve(server)
        self.send(call(1, 0, vers=1), call(2, 0, vers=2), call(3, 0, vers=4))
        replies = [decoded(reply) for reply in self.replies()]
        for xid, (header, _) in enumerate(replies, 1):
            self.assertAccepted(header, xid, AcceptStat.SUCCESS)
        self.assertEqual([body for _, body in replies], [b"", b"", b"mine"])
        self.assertEqual(len(recorder.calls), 1)

    def test_prog_unavail(self) -> None:
        """
        A program without a registered version gets PROG_UNAVAIL.
        """
        self.serve()
        self.send(call(9, 0, prog=PROGRAM + 1))
        header, body = self.only_reply()
        self.assertAccepted(header, 9, AcceptStat.PROG_UNAVAIL)
        self.assertEqual(body, b"")

    def test_prog_mismatch(self) -> None:
        """
        A version not registered gets PROG_MISMATCH with the lowest and the
        highest registered versions of the program.
        """
        server = RpcServer()
        for version in (5, 2, 3):
            server.register(PROGRAM, version, 1, echo)
        server.register(PROGRAM + 1, 7, 1, echo)
        self.serve(server)
        self.send(call(1, 1, vers=4), call(2, 0, vers=1), call(3, 0, prog=PROGRAM + 1, vers=1))
        ranges = []
        for xid, reply in enumerate(self.replies(), 1):
            header = self.assertAccepted(decoded(reply)[0], xid, AcceptStat.PROG_MISMATCH)
            ranges.append((header.low, header.high))
        self.assertEqual(ranges, [(2, 5), (2, 5), (7, 7)])

    def test_proc_unavail(self) -> None:
        """
        A procedure not registered gets PROC_UNAVAIL.
        """
        self.serve()
        self.send(call(4, 2))
        self.assertAccepted(self.only_reply()[0], 4, AcceptStat.PROC_UNAVAIL)

    def test_rpc_mismatch(self) -> None:
        """
        A call of RPC version 3 is denied RPC_MISMATCH, versions 2 to 2.
        """
        self.serve()
        self.send(call(5, 1, rpcvers=3))
        header, _ = self.only_reply()
        self.assertEqual(header, DeniedReply(5, RejectStat.RPC_MISMATCH, 2, 2))

    def test_garbage_header(self) -> None:
        """
        A call whose header does not decode (a credential running past the
        message) gets GARBAGE_ARGS; the connection goes on.
        """
        self.serve()
        self.send(struct.pack(">8I", 6, 0, 2, PROGRAM, VERSION, 1, 1, 100), call(7, 1))
        replies = [decoded(reply)[0] for reply in self.replies()]
        self.assertAccepted(replies[0], 6, AcceptStat.GARBAGE_ARGS)
        self.assertAccepted(replies[1], 7, AcceptStat.SUCCESS)

    def test_not_calls(self) -> None:
        """
        Records that are not calls (a reply, three bytes) are not answered,
        and counted as ignored.
        """
        self.serve()
        self.send(struct.pack(">6I", 1, 1, 0, 0, 0, 0), b"abc", call(8, 0))
        [reply] = self.replies()
        self.assertAccepted(decoded(reply)[0], 8, AcceptStat.SUCCESS)
        self.assertEqual(self.server.counters[IGNORED], 2)
        self.assertEqual(self.server.counters[CALLS], 1)

    def test_oversized(self) -> None:
        """
        A call over C{max_record_size} is answered GARBAGE_ARGS as soon as
        its xid has arrived, before the rest; its handler is not called,
        and the next call is answered.
        """
        recorder = Recorder()
        server = RpcServer(max_record_size=100)
        server.register(PROGRAM, VERSION, 1, recorder)
        self.serve(server)
        big = call(0x0B16, 1, opaque(b"x" * 200))
        self.controller.dataReceived(record(big)[:8])
        self.assertAccepted(self.only_reply()[0], 0x0B16, AcceptStat.GARBAGE_ARGS)
        self.controller.dataReceived(record(big)[8:] + record(call(3, 1, opaque(b"ok"))))
        header, body = self.only_reply()
        self.assertAccepted(header, 3, AcceptStat.SUCCESS)
        self.assertEqual(body, opaque(b"ok"))
        self.assertEqual(len(recorder.calls), 1)
        self.assertEqual(server.counters[REPLY_GARBAGE_ARGS], 1)

    def test_counters(self) -> None:
        """
        The server counts the calls and each kind of reply.
        """
        self.serve()
        self.send(
            call(1, 0), call(2, 1), call(3, 9), call(4, 0, prog=1), call(5, 0, vers=9),
            call(6, 0, rpcvers=3),
        )
        self.assertEqual(
            dict(self.server.counters),
            {
                CALLS: 6,
                REPLY_SUCCESS: 2,
                REPLY_PROC_UNAVAIL: 1,
                REPLY_PROG_UNAVAIL: 1,
                REPLY_PROG_MISMATCH: 1,
                REPLY_RPC_MISMATCH: 1,
            },
        )

    def test_registered_while_serving(self) -> None:
        """
        A procedure registered while the server serves is answered on the
        connections it already serves.
        """
        self.serve()
        self.send(call(1, 3))
        self.assertAccepted(self.only_reply()[0], 1, AcceptStat.PROC_UNAVAIL)
        self.server.register(PROGRAM, VERSION, 3, echo)
        self.send(call(2, 3, b"late"))
        self.assertEqual(self.only_reply()[1], b"late")


class CredentialTests(_StreamTestCase):
    """
    Credentials are decoded for the handlers: AUTH_NONE is L{None},
    AUTH_SYS an L{AuthSys}, others raw.
    """

    def test_auth_sys(self) -> None:
        """
        An AUTH_SYS credential reaches the handler as an L{AuthSys}, with
        its flavor and raw bytes.
        """
        recorder = Recorder()
        server = self.serve(RpcServer())
        server.register(PROGRAM, VERSION, 1, recorder)
        credential = AuthSys(7, "client.example", 1000, 100, (4, 24, 27)).as_credential()
        for xid in (1, 2):
            self.send(call(xid, 1, b"args", cred=credential))
        for xid, reply in enumerate(self.replies(), 1):
            self.assertAccepted(decoded(reply)[0], xid, AcceptStat.SUCCESS)
        for args, info in recorder.calls:
            self.assertEqual(args, b"args")
            self.assertEqual(info.credential, AuthSys(7, "client.example", 1000, 100, (4, 24, 27)))
            self.assertEqual(info.flavor, AuthFlavor.AUTH_SYS)
            self.assertEqual(info.raw_credential, credential)
            self.assertEqual(info.verifier, NULL_AUTH)

    def test_bad_auth_sys(self) -> None:
        """
        An AUTH_SYS credential that does not decode is denied AUTH_ERROR
        AUTH_BADCRED, without calling the handler.
        """
        recorder = Recorder()
        server = self.serve(RpcServer())
        server.register(PROGRAM, VERSION, 1, recorder)
        self.send(call(3, 1, cred=OpaqueAuth(AuthFlavor.AUTH_SYS, b"\0\0\0\1\0\0\1\0")))
        header, _ = self.only_reply()
        self.assertEqual(
            header, DeniedReply(3, RejectStat.AUTH_ERROR, auth_stat=AuthStat.AUTH_BADCRED)
        )
        self.assertEqual(recorder.calls, [])
        self.assertEqual(server.counters[REPLY_AUTH_ERROR], 1)

    def test_other_flavors_raw(self) -> None:
        """
        A credential of another flavor reaches the handler as it came, and
        so does the verifier.
        """
        recorder = Recorder()
        server = self.serve(RpcServer())
        server.register(PROGRAM, VERSION, 1, recorder)
        cred = OpaqueAuth(AuthFlavor.AUTH_DH, b"dh credential")
        verf = OpaqueAuth(AuthFlavor.AUTH_DH, b"verifier")
        self.send(call(4, 1, cred=cred, verf=verf))
        self.assertAccepted(self.only_reply()[0], 4, AcceptStat.SUCCESS)
        [(_, info)] = recorder.calls
        self.assertEqual((info.credential, info.raw_credential), (cred, cred))
        self.assertEqual((info.flavor, info.verifier), (AuthFlavor.AUTH_DH, verf))

    def test_tls_probe(self) -> None:
        """
        An RFC 9289 probe that reaches the server (on a controller that
        does not answer probes) gets the answer of a server without TLS:
        SUCCESS with an empty AUTH_NONE verifier, not STARTTLS. AUTH_TLS on
        another procedure is denied AUTH_BADCRED.
        """
        self.serve()
        self.send(encode_tls_probe(5, PROGRAM, VERSION))
        header, body = self.only_reply()
        self.assertEqual(header, AcceptedReply(5, NULL_AUTH, AcceptStat.SUCCESS))
        self.assertEqual(body, b"")
        self.send(call(6, 1, cred=OpaqueAuth(AuthFlavor.AUTH_TLS)))
        header, _ = self.only_reply()
        self.assertEqual(
            header, DeniedReply(6, RejectStat.AUTH_ERROR, auth_stat=AuthStat.AUTH_BADCRED)
        )


class HandlerErrorTests(_StreamTestCase):
    """
    What a handler raises becomes its RFC 5531 answer.
    """

    def answer_to(self, error: BaseException) -> ReplyHeader:
        """
        The reply header when the handler of a call raises C{error}.
        """
        def handler(args: bytes, call: CallInfo) -> bytes:
            raise error

        server = RpcServer()
        server.register(PROGRAM, VERSION, 1, handler)
        self.serve(server)
        self.send(call(0x77, 1))
        header, body = self.only_reply()
        self.assertEqual(body, b"")
        return header

    def test_rpc_errors(self) -> None:
        """
        Each RPC error a handler raises is answered as RFC 5531 says, with
        its numbers.
        """
        verf = NULL_AUTH
        cases: list[tuple[BaseException, ReplyHeader]] = [
            (GarbageArguments("bad"), AcceptedReply(0x77, verf, AcceptStat.GARBAGE_ARGS)),
            (ProcedureUnavailable(1), AcceptedReply(0x77, verf, AcceptStat.PROC_UNAVAIL)),
            (ProgramUnavailable(PROGRAM), AcceptedReply(0x77, verf, AcceptStat.PROG_UNAVAIL)),
            (
                ProgramMismatch(PROGRAM, 1, 4, 6),
                AcceptedReply(0x77, verf, AcceptStat.PROG_MISMATCH, 4, 6),
            ),
            (ServerSystemError("disk"), AcceptedReply(0x77, verf, AcceptStat.SYSTEM_ERR)),
            (
                AuthError(AuthStat.AUTH_TOOWEAK),
                DeniedReply(0x77, RejectStat.AUTH_ERROR, auth_stat=AuthStat.AUTH_TOOWEAK),
            ),
            (AuthError(99), DeniedReply(0x77, RejectStat.AUTH_ERROR, auth_stat=99)),
            (RpcVersionMismatch(2, 3), DeniedReply(0x77, RejectStat.RPC_MISMATCH, 2, 3)),
        ]
        for error, expected in cases:
            self.assertEqual(self.answer_to(error), expected, error)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_other_errors(self) -> None:
        """
        Anything else a handler raises is answered SYSTEM_ERR and logged;
        so is an RPC answer that cannot be encoded (an empty range) and a
        client-side error (a timeout).
        """
        for error in (ZeroDivisionError(), ProgramMismatch(PROGRAM, 1, 5, 2), CallTimeout(1, 2)):
            self.assertEqual(
                self.answer_to(error), AcceptedReply(0x77, NULL_AUTH, AcceptStat.SYSTEM_ERR)
            )
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(len(self.flushLoggedErrors(CallTimeout)), 1)

    def test_bad_results(self) -> None:
        """
        Results that are not bytes, pieces or L{None} are answered
        SYSTEM_ERR, and the handler's mistake logged.
        """
        for bad in (42, "text", [b"a", 1]):
            server = RpcServer()
            server.register(PROGRAM, VERSION, 1, lambda args, call: bad)
            self.serve(server)
            self.send(call(1, 1))
            self.assertAccepted(self.only_reply()[0], 1, AcceptStat.SYSTEM_ERR)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 3)

    def test_unencodable_error_counted_once(self) -> None:
        """
        An error the handler raises that cannot be encoded (a range with low
        over high) is answered SYSTEM_ERR and counted once, as such.
        """
        from rpctransport.sansio.errors import ProgramMismatch

        def bad_range(args: bytes, call: object) -> bytes:
            raise ProgramMismatch(PROGRAM, VERSION, 5, 2)

        server = RpcServer()
        server.register(PROGRAM, VERSION, 1, bad_range)
        self.serve(server)
        self.send(call(1, 1))
        self.assertAccepted(self.only_reply()[0], 1, AcceptStat.SYSTEM_ERR)
        self.flushLoggedErrors(ValueError, ProgramMismatch)
        self.assertEqual(server.counters.get(CALLS), 1)
        self.assertEqual(server.counters.get(REPLY_SYSTEM_ERR), 1)
        self.assertEqual(server.counters.get(REPLY_PROG_MISMATCH, 0), 0)


# -- Replies out of order --------------------------------------------------------


class OutOfOrderTests(_StreamTestCase):
    """
    A handler may answer through a Deferred; later calls on the connection
    are answered meanwhile.
    """

    def setUp(self) -> None:
        self.later = Later()
        server = RpcServer()
        server.add_program(PROGRAM, VERSION, {PROC_ECHO: echo, PROC_SLOW: self.later})
        self.serve(server)

    def test_later_calls_first(self) -> None:
        """
        A call answered through a Deferred is answered when it fires, after
        the calls that came behind it.
        """
        self.send(call(1, PROC_SLOW, b"slow"), call(2, PROC_ECHO, b"two"), call(3, 0))
        self.assertEqual([decoded(r)[0].xid for r in self.replies()], [2, 3])
        self.later.fire()
        header, body = self.only_reply()
        self.assertAccepted(header, 1, AcceptStat.SUCCESS)
        self.assertEqual(body, b"slow")

    def test_any_order(self) -> None:
        """
        Calls in progress are answered in the order their Deferreds fire.
        """
        self.send(*(call(xid, PROC_SLOW, b"%d" % xid) for xid in (1, 2, 3)))
        self.later.fire(1)
        self.later.fire(1)
        self.later.fire(0)
        self.assertEqual([decoded(r)[0].xid for r in self.replies()], [2, 3, 1])
        self.assertEqual(self.server.counters[REPLY_SUCCESS], 3)

    def test_failed_deferred(self) -> None:
        """
        A Deferred that fails with an RPC error is answered with it; with
        anything else, SYSTEM_ERR, logged.
        """
        self.send(call(1, PROC_SLOW), call(2, PROC_SLOW))
        self.later.pending[0][2].errback(GarbageArguments())
        self.later.pending[1][2].errback(Failure(KeyError("x")))
        replies = [decoded(r)[0] for r in self.replies()]
        self.assertAccepted(replies[0], 1, AcceptStat.GARBAGE_ARGS)
        self.assertAccepted(replies[1], 2, AcceptStat.SYSTEM_ERR)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_fired_deferred(self) -> None:
        """
        A Deferred that has already fired is answered at once.
        """
        self.server.register(PROGRAM, VERSION, 3, lambda args, call: succeed(b"now"))
        self.send(call(1, 3))
        self.assertEqual(self.only_reply()[1], b"now")


# -- Flow control ----------------------------------------------------------------


class FlowTests(_StreamTestCase):
    """
    Reading pauses at the bound on calls in progress, and while the
    transport pushes back; it resumes only when neither holds.
    """

    def setUp(self) -> None:
        self.start()

    def start(self, **options: Any) -> None:
        """
        Serve echo and L{PROC_SLOW} (C{self.later}) with
        C{max_in_progress=2}, on a controller with C{options}.
        """
        self.later = Later()
        server = RpcServer(max_in_progress=2)
        server.add_program(PROGRAM, VERSION, {PROC_ECHO: echo, PROC_SLOW: self.later})
        self.serve(server, **options)

    def test_bound(self) -> None:
        """
        At C{max_in_progress} calls in progress, the next calls are not
        taken; they are, one by one, as calls complete.
        """
        self.send(*(call(xid, PROC_SLOW) for xid in (1, 2, 3, 4)), call(5, PROC_ECHO))
        self.assertEqual(self.later.count, 2)
        self.assertEqual(self.replies(), [])
        self.assertEqual(self.server.counters[PAUSED], 1)
        self.later.fire()
        self.assertEqual(self.later.count, 3)
        self.later.fire()
        self.assertEqual(self.later.count, 4)
        self.assertEqual([decoded(r)[0].xid for r in self.replies()], [1, 2])
        self.later.fire()
        self.assertEqual([decoded(r)[0].xid for r in self.replies()], [3, 5])
        self.assertEqual(self.server.counters[PAUSED], 3)

    def test_bound_pauses_transport(self) -> None:
        """
        While the bound holds, what arrives is left to the controller,
        which stops reading the socket once its buffer is full.
        """
        self.start(read_buffer_limit=16384)
        self.send(call(1, PROC_SLOW), call(2, PROC_SLOW))
        self.send(*(call(xid, PROC_ECHO, b"x" * 1000) for xid in range(3, 203)))
        self.assertEqual(self.transport.producerState, "paused")
        self.later.fire()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(len(self.replies()), 201)

    def test_writes_pause(self) -> None:
        """
        While the transport pushes back on replies, calls are not taken;
        they are once it drains.
        """
        self.controller.pauseProducing()
        self.send(call(1, PROC_ECHO), call(2, PROC_SLOW))
        self.assertEqual((self.replies(), self.later.count), ([], 0))
        self.controller.resumeProducing()
        self.assertEqual(self.later.count, 1)
        self.assertEqual([decoded(r)[0].xid for r in self.replies()], [1])

    def test_both_hold(self) -> None:
        """
        Calls are taken again only when neither the bound nor the
        transport holds, whichever lets go first.
        """
        self.send(call(1, PROC_SLOW), call(2, PROC_SLOW), call(3, PROC_ECHO))
        self.controller.pauseProducing()
        self.later.fire()
        self.assertEqual([decoded(r)[0].xid for r in self.replies()], [1])
        self.controller.resumeProducing()
        self.assertEqual([decoded(r)[0].xid for r in self.replies()], [3])
        # The other way round: the transport lets go first.
        self.send(call(4, PROC_SLOW), call(5, PROC_ECHO))
        self.controller.pauseProducing()
        self.controller.resumeProducing()
        self.assertEqual(self.replies(), [])
        self.later.fire()
        self.assertEqual([decoded(r)[0].xid for r in self.replies()], [2, 5])

    def test_clean_end_drains(self) -> None:
        """
        When the peer closes its side with calls in progress, they are
        answered, then the controller is inactivated.
        """
        self.send(call(1, PROC_SLOW))
        self.controller.readConnectionLost()
        self.assertNoResult(self.done)
        self.assertTrue(self.controller.alive)
        self.later.fire()
        self.assertEqual([decoded(r)[0].xid for r in self.replies()], [1])
        self.successResultOf(self.done)
        self.assertFalse(self.controller.alive)
        self.assertEqual(self.server.controllers, frozenset())

    def test_lost_ends_now(self) -> None:
        """
        When the connection is lost, serving ends at once; a handler that
        answers afterwards is counted as abandoned.
        """
        self.send(call(1, PROC_SLOW))
        self.controller.connectionLost(Failure(ConnectionLost()))
        self.successResultOf(self.done)
        self.later.fire()
        self.assertEqual(self.replies(), [])
        self.assertEqual(self.server.counters[ABANDONED], 1)
        self.assertEqual(self.server.counters[CALLS], 1)


class ServingTests(SynchronousTestCase):
    """
    L{RpcServer.serve} and L{RpcServer.stop}.
    """

    def test_stop(self) -> None:
        """
        C{stop} inactivates every controller served and fires their
        Deferreds; replies that come later are abandoned.
        """
        later = Later()
        server = RpcServer()
        server.register(PROGRAM, VERSION, PROC_SLOW, later)
        stream, transport, _ = connected()
        datagram, _, _ = make_datagram()
        done = [server.serve(stream), server.serve(datagram)]
        self.assertEqual(server.controllers, frozenset({stream, datagram}))
        stream.dataReceived(record(call(1, PROC_SLOW)))
        server.stop()
        for d in done:
            self.successResultOf(d)
        self.assertEqual(server.controllers, frozenset())
        self.assertFalse(stream.alive)
        self.assertFalse(datagram.alive)
        later.fire()
        self.assertEqual(transport.value(), b"")
        self.assertEqual(server.counters[ABANDONED], 1)

    def test_serve_refused(self) -> None:
        """
        A controller already served, or one that cannot stream records, is
        refused.
        """
        server = RpcServer()
        controller, _, _ = connected()
        server.serve(controller)
        self.assertRaises(ValueError, server.serve, controller)
        self.assertRaises(TypeError, server.serve, object())
        self.assertEqual(server.controllers, frozenset({controller}))

    def test_buffered_at_start(self) -> None:
        """
        Calls buffered before C{serve} are answered; when they fill the
        bound, the stream is paused as soon as it starts.
        """
        later = Later()
        server = RpcServer(max_in_progress=1)
        server.register(PROGRAM, VERSION, PROC_SLOW, later)
        controller, transport, _ = connected()
        controller.dataReceived(record(call(1, PROC_SLOW)) + record(call(2, PROC_SLOW)))
        server.serve(controller)
        self.assertEqual(later.count, 2)
        controller.dataReceived(record(call(3, PROC_SLOW)))
        self.assertEqual(later.count, 2)
        later.fire()
        self.assertEqual(later.count, 2)
        later.fire()
        self.assertEqual(later.count, 3)


# -- UDP and the duplicate-request cache --------------------------------------------


class DatagramTests(SynchronousTestCase):
    """
    On a datagram controller, replies go to each call's sender, and
    retransmissions are answered from the duplicate-request cache.
    """

    def serve(self, **options: Any) -> None:
        """
        Serve procedure 1 (C{self.recorder}, which echoes) and
        L{PROC_SLOW} (C{self.later}) on a datagram controller on a fake
        port.
        """
        self.recorder = Recorder()
        self.later = Later()
        self.server = RpcServer(**options)
        self.server.add_program(
            PROGRAM, VERSION, {PROC_ECHO: self.recorder, PROC_SLOW: self.later}
        )
        self.controller, self.port, self.clock = make_datagram()
        self.server.serve(self.controller)

    def replies(self) -> list[tuple[bytes, Any]]:
        """The datagrams sent since last asked, with their destinations."""
        written, self.port.written = self.port.written, []
        return written

    def test_reply_to_sender(self) -> None:
        """
        Each reply goes to the sender of its call.
        """
        self.serve()
        self.controller.datagramReceived(call(1, PROC_ECHO, b"one!"), CLIENT)
        self.controller.datagramReceived(call(2, PROC_ECHO, b"two!"), OTHER)
        self.controller.datagramReceived(call(3, 7), CLIENT)
        sent = [(decoded(data), addr) for data, addr in self.replies()]
        self.assertEqual([addr for _, addr in sent], [CLIENT, OTHER, CLIENT])
        self.assertEqual([body for (_, body), _ in sent], [b"one!", b"two!", b""])
        self.assertEqual(sent[2][0][0].stat, AcceptStat.PROC_UNAVAIL)  # type: ignore[union-attr]
        self.assertEqual(self.recorder.calls[0][1].peer, IPv4Address("UDP", *CLIENT))

    def test_retransmission_replayed(self) -> None:
        """
        A retransmitted call whose reply was sent gets the same reply
        bytes, without its handler running again.
        """
        self.serve()
        message = call(1, PROC_ECHO, b"once")
        self.controller.datagramReceived(message, CLIENT)
        self.controller.datagramReceived(message, CLIENT)
        first, second = self.replies()
        self.assertEqual(first, second)
        self.assertEqual(len(self.recorder.calls), 1)
        self.assertEqual(self.server.counters[DRC_REPLAYED], 1)
        self.assertEqual(self.server.counters[CALLS], 2)

    def test_not_retransmissions(self) -> None:
        """
        The same xid from another sender, for another procedure, or with
        other arguments is a new call.
        """
        self.serve()
        self.server.register(PROGRAM, VERSION + 1, PROC_ECHO, self.recorder)
        self.controller.datagramReceived(call(1, PROC_ECHO, b"args"), CLIENT)
        self.controller.datagramReceived(call(1, PROC_ECHO, b"args"), OTHER)
        self.controller.datagramReceived(call(1, PROC_ECHO, b"ARGS"), CLIENT)
        self.controller.datagramReceived(call(1, PROC_ECHO, b"args", vers=VERSION + 1), CLIENT)
        self.controller.datagramReceived(call(1, PROC_SLOW, b"args"), CLIENT)
        self.assertEqual(len(self.recorder.calls), 4)
        self.assertEqual(self.later.count, 1)
        self.assertNotIn(DRC_REPLAYED, self.server.counters)
        self.assertEqual(len(self.replies()), 4)

    def test_in_progress_dropped(self) -> None:
        """
        A retransmission of a call still in progress is dropped; once the
        call is answered, a retransmission gets the same reply.
        """
        self.serve()
        message = call(1, PROC_SLOW, b"slow")
        self.controller.datagramReceived(message, CLIENT)
        self.controller.datagramReceived(message, CLIENT)
        self.assertEqual((self.later.count, self.replies()), (1, []))
        self.assertEqual(self.server.counters[DRC_DROPPED], 1)
        self.later.fire()
        [reply] = self.replies()
        self.controller.datagramReceived(message, CLIENT)
        self.assertEqual(self.replies(), [reply])
        self.assertEqual(self.later.count, 1)

    def test_errors_replayed(self) -> None:
        """
        An error a handler answered is replayed too, not run again.
        """
        self.serve()
        self.server.register(PROGRAM, VERSION, 3, Recorder(lambda a, c: 1 / 0))
        message = call(1, 3)
        self.controller.datagramReceived(message, CLIENT)
        self.controller.datagramReceived(message, CLIENT)
        first, second = self.replies()
        self.assertEqual(first, second)
        self.assertEqual(decoded(first[0])[0].stat, AcceptStat.SYSTEM_ERR)  # type: ignore[union-attr]
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_entries_bound(self) -> None:
        """
        Past C{drc_max_entries}, the least recently used call is forgotten:
        its retransmission runs the handler again.
        """
        self.serve(drc_max_entries=2)
        one, two, three = (call(xid, PROC_ECHO, b"%d" % xid) for xid in (1, 2, 3))
        for message in (one, two, one, three):
            self.controller.datagramReceived(message, CLIENT)
        # "one" was used again after "two": "two" went.
        self.assertEqual(self.server.counters[DRC_EVICTED], 1)
        self.assertEqual(len(self.recorder.calls), 3)
        self.controller.datagramReceived(one, CLIENT)
        self.controller.datagramReceived(three, CLIENT)
        self.assertEqual(len(self.recorder.calls), 3)
        self.controller.datagramReceived(two, CLIENT)
        self.assertEqual(len(self.recorder.calls), 4)

    def test_bytes_bound(self) -> None:
        """
        Past C{drc_max_bytes} of replies, the least recently used go; a
        reply larger than the bound is not kept.
        """
        reply_size = 24 + 100
        self.serve(drc_max_bytes=2 * reply_size)
        one, two, three = (call(xid, PROC_ECHO, bytes(100)) for xid in (1, 2, 3))
        for message in (one, two, three):
            self.controller.datagramReceived(message, CLIENT)
        self.assertEqual(self.server.counters[DRC_EVICTED], 1)
        self.controller.datagramReceived(one, CLIENT)
        self.assertEqual(len(self.recorder.calls), 4)
        big = call(4, PROC_ECHO, bytes(300))
        self.controller.datagramReceived(big, CLIENT)
        self.controller.datagramReceived(big, CLIENT)
        self.assertEqual(len(self.recorder.calls), 6)
        # The big reply made no room for itself: the last small one stays.
        self.controller.datagramReceived(one, CLIENT)
        self.assertEqual(len(self.recorder.calls), 6)

    def test_age_bound(self) -> None:
        """
        A reply older than C{drc_max_age} does not answer a retransmission:
        the call is taken as new.
        """
        self.serve()
        message = call(1, PROC_ECHO)
        self.controller.datagramReceived(message, CLIENT)
        self.clock.advance(DRC_MAX_AGE - 1)
        self.controller.datagramReceived(message, CLIENT)
        self.assertEqual(len(self.recorder.calls), 1)
        self.clock.advance(2)
        self.controller.datagramReceived(message, CLIENT)
        self.assertEqual(len(self.recorder.calls), 2)

    def test_no_cache(self) -> None:
        """
        With C{drc_max_entries=0} there is no cache: every call runs.
        """
        self.serve(drc_max_entries=0)
        message = call(1, PROC_ECHO, b"x")
        self.controller.datagramReceived(message, CLIENT)
        self.controller.datagramReceived(message, CLIENT)
        self.assertEqual(len(self.recorder.calls), 2)
        self.assertEqual(len(self.replies()), 2)
        self.assertNotIn(DRC_EVICTED, self.server.counters)

    def test_not_on_streams(self) -> None:
        """
        On a stream the same call twice runs twice: streams have no cache.
        """
        recorder = Recorder()
        server = RpcServer()
        server.register(PROGRAM, VERSION, PROC_ECHO, recorder)
        controller, _, _ = connected()
        server.serve(controller)
        controller.dataReceived(record(call(1, PROC_ECHO)) * 2)
        self.assertEqual(len(recorder.calls), 2)

    def test_too_large_for_a_datagram(self) -> None:
        """
        Results too large for a datagram are answered SYSTEM_ERR.
        """
        self.serve()
        self.server.register(PROGRAM, VERSION, 3, lambda args, call: bytes(70000))
        self.controller.datagramReceived(call(9, 3), CLIENT)
        [(data, _)] = self.replies()
        self.assertEqual(decoded(data)[0].stat, AcceptStat.SYSTEM_ERR)  # type: ignore[union-attr]
        self.assertEqual(self.server.counters.get(REPLY_SUCCESS), None)
        self.assertEqual(self.server.counters[REPLY_SYSTEM_ERR], 1)

    def test_bound_udp(self) -> None:
        """
        The bound on calls in progress holds for the socket: datagrams
        wait in the controller's queue meanwhile.
        """
        self.serve(max_in_progress=1)
        self.controller.datagramReceived(call(1, PROC_SLOW), CLIENT)
        self.controller.datagramReceived(call(2, PROC_ECHO), OTHER)
        self.assertEqual(self.replies(), [])
        self.later.fire()
        self.assertEqual([addr for _, addr in self.replies()], [CLIENT, OTHER])


# -- Real sockets ---------------------------------------------------------------------


class SocketTests(SocketTestMixin, TestCase):
    """
    The server on loopback sockets, called by L{run_calls} and by a raw
    socket; its echo answers every other call through a Deferred that
    fires on a later reactor turn.
    """

    def setUp(self) -> None:
        self._setUpRegistry()
        self.server = RpcServer()
        self.addCleanup(self.server.stop)

        def maybe_later(args: bytes, call: CallInfo) -> Any:
            if call.xid % 2:
                return deferLater(self.reactor, 0, lambda: args)
            return args

        def slow(args: bytes, call: CallInfo) -> Deferred[bytes]:
            return deferLater(self.reactor, 0.2, lambda: args)

        self.server.add_program(PROGRAM, VERSION, {PROC_ECHO: maybe_later, PROC_SLOW: slow})

    @inlineCallbacks
    def listen(self, endpoint: str, **options: Any) -> Generator[Any, Any, Any]:
        """
        Serve on C{endpoint}; returns the listening port.
        """
        port = yield listen_stream(
            endpoint, lambda c: self.server.serve(self.track(c)), reactor=self.reactor, **options
        )
        self.addCleanup(port.stopListening)
        return port

    @inlineCallbacks
    def check_calls(self, endpoint: str, **options: Any) -> Generator[Any, Any, None]:
        """
        Calls through C{endpoint}, several in flight, all get their echoes.
        """
        client = yield self.within(
            connect_stream(endpoint, reactor=self.reactor, **options), "connect"
        )
        self.track(client)
        stats = yield self.within(
            run_calls(client, self.reactor, proc=PROC_ECHO, size=300, count=40, concurrency=8),
            "calls",
        )
        self.assertTrue(stats.ok, stats.reasons)
        self.assertEqual(stats.calls, 40)

    @inlineCallbacks
    def test_tcp(self) -> Generator[Any, Any, None]:
        """
        Over TCP, calls answered now and later all get their replies.
        """
        port = yield self.listen("tcp:0:interface=127.0.0.1")
        yield self.check_calls(f"tcp:host=127.0.0.1:port={port.getHost().port}")

    @inlineCallbacks
    def test_unix(self) -> Generator[Any, Any, None]:
        """
        Over a UNIX socket, likewise.
        """
        directory = tempfile.mkdtemp(prefix="rpcsrv-")
        self.addCleanup(os.rmdir, directory)
        path = os.path.join(directory, "s")
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        yield self.listen(f"unix:{path}")
        yield self.check_calls(f"unix:path={path}")

    @inlineCallbacks
    def test_tls(self) -> Generator[Any, Any, None]:
        """
        Over TLS, likewise.
        """
        port = yield self.listen("tcp:0:interface=127.0.0.1", tls=server_options())
        yield self.check_calls(
            f"tcp:host=127.0.0.1:port={port.getHost().port}", tls=client_options()
        )

    @inlineCallbacks
    def test_udp(self) -> Generator[Any, Any, None]:
        """
        Over UDP, likewise.
        """
        controller = listen_datagram(0, "127.0.0.1", self.reactor)
        self.server.serve(controller)
        port = controller.getsockname().port  # type: ignore[union-attr]
        client = connect_datagram("127.0.0.1", port, self.reactor, interface="127.0.0.1")
        self.addCleanup(client.inactivate)
        stats = yield self.within(
            run_calls(
                client, self.reactor, proc=PROC_ECHO, size=300, count=40, concurrency=8,
                retry=1.0,
            ),
            "calls",
        )
        self.assertTrue(stats.ok, stats.reasons)
        self.assertEqual(stats.calls, 40)

    @inlineCallbacks
    def test_out_of_order_raw(self) -> Generator[Any, Any, None]:
        """
        A raw TCP client sends a slow call and a fast one in one write: the
        fast one's reply comes first, the slow one's after.
        """
        port = yield self.listen("tcp:0:interface=127.0.0.1")
        sock = self.track_socket(socket.create_connection(("127.0.0.1", port.getHost().port)))
        sock.setblocking(False)
        sock.sendall(record(call(1, PROC_SLOW, opaque(b"slow"))) + record(call(2, 0)))
        received = bytearray()

        def two_replies() -> bool:
            try:
                received.extend(sock.recv(65536))
            except BlockingIOError:
                pass
            return len(split_records(bytes(received))) == 2

        yield self.until(two_replies, "two replies")
        replies = [decoded(reply) for reply in split_records(bytes(received))]
        self.assertEqual([header.xid for header, _ in replies], [2, 1])
        self.assertEqual(replies[1][1], opaque(b"slow"))


# -- libtirpc's client ------------------------------------------------------------------


class LateProgram:
    """
    The echo program as the interop tests serve it: procedure 1 echoes now;
    procedure 2 (L{PROC_SLOW}) echoes through a Deferred, after C{delay}
    seconds and once C{count} echoes were answered on its connection.

    @ivar events: C{("echo", xid)} and C{("late", xid)} as the replies are
        made, in order.
    """

    def __init__(self, reactor: Any, count: int, delay: float = 0.2) -> None:
        self.reactor = reactor
        self.count = count
        self.delay = delay
        self.echoed: dict[Any, int] = {}
        self.waiting: dict[Any, list[Callable[[], None]]] = {}
        self.events: list[tuple[str, int]] = []

    def echo(self, args: bytes, call: CallInfo) -> bytes:
        connection = call.controller
        self.echoed[connection] = self.echoed.get(connection, 0) + 1
        self.events.append(("echo", call.xid))
        if self.echoed[connection] == self.count:
            # On a later turn, so that this call's reply goes first.
            for release in self.waiting.pop(connection, []):
                self.reactor.callLater(0, release)
        return args

    def late(self, args: bytes, call: CallInfo) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        connection = call.controller

        def answer() -> None:
            self.events.append(("late", call.xid))
            d.callback(args)

        def after_delay() -> None:
            if self.echoed.get(connection, 0) >= self.count:
                answer()
            else:
                self.waiting.setdefault(connection, []).append(answer)

        self.reactor.callLater(self.delay, after_delay)
        return d


class TirpcClientTests(SocketTestMixin, TestCase):
    """
    libtirpc's C client (C{tirpc_client}) against the server, on loopback
    TCP and UDP, in the reactor's process: the client runs in a thread.
    """

    def setUp(self) -> None:
        self.client = str(build_or_skip("tirpc_client"))
        self._setUpRegistry()

    @inlineCallbacks
    def start(self, server: RpcServer) -> Generator[Any, Any, tuple[int, int]]:
        """
        Serve C{server} on loopback TCP and UDP; returns their ports.
        """
        self.addCleanup(server.stop)
        port = yield listen_stream(
            "tcp:0:interface=127.0.0.1", lambda c: server.serve(self.track(c)),
            reactor=self.reactor,
        )
        self.addCleanup(port.stopListening)
        udp = listen_datagram(0, "127.0.0.1", self.reactor)
        server.serve(udp)
        return port.getHost().port, udp.getsockname().port  # type: ignore[union-attr]

    def run_client(self, *argv: str) -> Deferred[Any]:
        """
        Run C{tirpc_client ARGV} in a thread; fires with its L{Finished}.
        """
        return deferToThread(run_program, [self.client, *argv], 60.0)

    @inlineCallbacks
    def test_late_reply(self) -> Generator[Any, Any, None]:
        """
        Over one TCP connection, libtirpc's client sends a call of the slow
        procedure without waiting (C{--late}), then 20 echoes, each
        answered while the slow call is in progress; the slow call's
        reply, which the server sends through a Deferred after a delay and
        once the 20 were answered, is then read by libtirpc with the slow
        call's bytes.
        """
        program = LateProgram(self.reactor, 20)
        server = RpcServer()
        server.add_program(PROGRAM, VERSION, {PROC_ECHO: program.echo, PROC_SLOW: program.late})
        tcp, _ = yield self.start(server)
        finished = yield self.run_client(
            "--late", str(PROC_SLOW), "--timeout", "10",
            "tcp", "127.0.0.1", str(tcp), str(PROGRAM), str(VERSION), "echo", "100", "20",
        )
        self.assertEqual(finished.returncode, 0, finished.describe())
        self.assertIn(" calls 20/20 ", finished.stdout)
        self.assertIn(" late ok", finished.stdout)
        kinds = [kind for kind, _ in program.events]
        self.assertEqual(kinds[:21], ["echo"] * 20 + ["late"])
        # The collecting call, with the slow call's xid, is answered after
        # the client is gone.
        yield self.until(lambda: len(program.events) == 22, "the collecting call")
        self.assertEqual(program.events[21], program.events[20])

    @inlineCallbacks
    def test_late_checked(self) -> Generator[Any, Any, None]:
        """
        C{--late} fails (exit status 1) against a server that answers the
        slow call at once, before the echoes: the out-of-order check cannot
        pass vacuously.
        """
        server = RpcServer()
        server.add_program(PROGRAM, VERSION, {PROC_ECHO: echo, PROC_SLOW: echo})
        tcp, _ = yield self.start(server)
        finished = yield self.run_client(
            "--late", str(PROC_SLOW), "--timeout", "10",
            "tcp", "127.0.0.1", str(tcp), str(PROGRAM), str(VERSION), "echo", "100", "5",
        )
        self.assertEqual(finished.returncode, 1, finished.describe())
        self.assertIn(" calls 5/5 ", finished.stdout)
        self.assertIn(" late FAIL: the first reply with xid", finished.stdout)

    @inlineCallbacks
    def test_calls_and_rejections(self) -> Generator[Any, Any, None]:
        """
        Over TCP and UDP, libtirpc's client gets its echoes, NULL, and the
        RFC 5531 errors as its C{clnt_stat}: an unknown program, an unknown
        version (with the real range of versions, 1 to 3), an unknown
        procedure.
        """
        server = RpcServer()
        server.register(PROGRAM, 1, PROC_ECHO, echo)
        server.register(PROGRAM, 3, PROC_ECHO, echo)
        ports = yield self.start(server)
        for kind, port in zip(("tcp", "udp"), ports):
            where = (kind, "127.0.0.1", str(port))
            runs = [
                ((), (*where, str(PROGRAM), "1", "echo", "4095", "5"), " calls 5/5 "),
                ((), (*where, str(PROGRAM), "3", "null", "0", "5"), " calls 5/5 "),
                (
                    ("--expect", "RPC_PROGUNAVAIL"),
                    (*where, str(PROGRAM + 1), "1", "null", "0", "1"),
                    "got RPC_PROGUNAVAIL",
                ),
                (
                    ("--expect", "RPC_PROGVERSMISMATCH"),
                    (*where, str(PROGRAM), "2", "null", "0", "1"),
                    "low 1 high 3",
                ),
                (
                    ("--expect", "RPC_PROCUNAVAIL"),
                    (*where, str(PROGRAM), "1", "7", "0", "1"),
                    "got RPC_PROCUNAVAIL",
                ),
            ]
            for options, args, expected in runs:
                finished = yield self.run_client(*options, *args)
                self.assertEqual(finished.returncode, 0, finished.describe())
                self.assertIn(expected, finished.stdout)
