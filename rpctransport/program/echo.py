# -*- test-case-name: rpctransport.test.test_echo -*-
"""
The echo test program, server and client: what C{rpctransport serve} serves
and C{rpctransport call} calls.

The program (number L{ECHO_PROGRAM}, version L{ECHO_VERSION} by default) has
two procedures:

  - 0, NULL: no arguments, no results;
  - 1, ECHO: the argument is an XDR C{opaque data<>}, returned as it came.

The server answers calls to other programs, versions and procedures with the
RFC 5531 rejections (PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL), and refuses
records over its limit in C{before_record}, before they are buffered,
answering GARBAGE_ARGS from the xid alone.
"""

from __future__ import annotations

import functools
import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import IRecordReceiver, IRecordStreaming, IRpcMultiplexController
from ..sansio.errors import SendFailed, TransportError
from ..sansio.record import DEFAULT_MAX_RECORD_SIZE
from ..sansio.rpcmsg import (
    AcceptedReply,
    CallHeader,
    MalformedMessage,
    SUCCESS,
    decode_call_header,
    decode_reply_header,
    encode_call_header,
    peek_xid,
    reply_for_rejection,
    success_reply_header,
)
from ..sansio.types import (
    ACCEPT, END_OF_FILE, Accepted, InRecord, InRule, Rejected, RejectedWith, RejectWith,
    RpcProtocol, ServerError,
)

__all__ = [
    "ECHO_PROGRAM",
    "ECHO_VERSION",
    "PROC_ECHO",
    "PROC_NULL",
    "CallStats",
    "EchoServer",
    "answer_call",
    "run_calls",
]

ECHO_PROGRAM: Final = 0x20000099
"""
The echo program's default number, in the range RFC 5531 leaves to users
(0x20000000-0x3fffffff).
"""

ECHO_VERSION: Final = 1
"""The echo program's default version."""

PROC_NULL: Final = 0
PROC_ECHO: Final = 1

_OPAQUE_LENGTH = struct.Struct(">I")
_TOO_LARGE: Final = RejectWith(ServerError.GARBAGE_ARGS, at_once=True)
"""
Oversized calls are answered from their xid, as soon as it arrives, while the
rest is discarded: never after a payload the peer may trickle for minutes.
"""

_FAST_HEADER_END: Final = len(encode_call_header(CallHeader(0, ECHO_PROGRAM, ECHO_VERSION, 0)))
"""
Where the header of a call with empty C{AUTH_NONE} credential and verifier
ends (40 bytes): the calls L{_fast_headers} recognises.
"""

_SUCCESS_AFTER_XID: Final = success_reply_header(0)[4:]
"""An accepted SUCCESS reply header (null verifier), after its xid."""

_JOIN_BELOW: Final = 4096
"""
An echoed argument up to this size is joined to its reply header into one
C{bytes} (cheaper to send than two pieces); a larger one is sent as a piece
of its own, not copied again.
"""


def answer_call(message: bytes, program: int, version: int) -> bytes | None:
    """
    The reply to one call of the echo program, or L{None} when the message is
    not a call worth answering (too short to carry an xid, or a reply).

    @param message: the whole call.
    @param program: the program number served.
    @param version: the version served.
    """
    pieces = _answer(message, program, version)
    if pieces is None:
        return None
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _answer(message: bytes, program: int, version: int) -> list[bytes] | None:
    """
    L{answer_call}, as the pieces of the reply (a header, then the echoed
    argument), so that a large argument is not copied into a new message.
    """
    # The common case, without decoding: a call of this program and version
    # whose header, after the xid, is byte for byte one of the headers
    # encode_call_header makes; everything else goes through
    # decode_call_header.
    proc = _fast_headers(program, version).get(message[4:_FAST_HEADER_END])
    if proc is not None:
        head = message[:4] + _SUCCESS_AFTER_XID
        if proc == PROC_NULL:
            return [head]
        argument = _opaque_at(message, _FAST_HEADER_END)
        if argument is not None:
            return [head, argument]
    reply = _answer_decoded(message, program, version)
    return None if reply is None else [reply]


@functools.lru_cache(maxsize=16)
def _fast_headers(program: int, version: int) -> dict[bytes, int]:
    """
    The call headers after the xid, as L{encode_call_header} makes them, of
    the calls answered without decoding: NULL and ECHO of C{program} and
    C{version} with empty C{AUTH_NONE} credential and verifier (what
    libtirpc's and our own clients send), each mapped to its procedure.
    """
    return {
        encode_call_header(CallHeader(0, program, version, proc))[4:]: proc
        for proc in (PROC_NULL, PROC_ECHO)
    }


def _answer_decoded(message: bytes, program: int, version: int) -> bytes | None:
    """
    L{answer_call} for any message, through L{decode_call_header}.
    """
    try:
        header, offset = decode_call_header(message)
    except MalformedMessage:
        if len(message) >= 12 and message[4:8] == b"\0\0\0\0":
            # A call, with the xid where it belongs, that we cannot decode.
            return reply_for_rejection(message[:4], ServerError.GARBAGE_ARGS)
        return None
    head = message[:4]
    if header.rpcvers != 2:
        return reply_for_rejection(head, ServerError.RPC_MISMATCH, low=2, high=2)
    if header.prog != program:
        return reply_for_rejection(head, ServerError.PROG_UNAVAIL)
    if header.vers != version:
        return reply_for_rejection(head, ServerError.PROG_MISMATCH, low=version, high=version)
    if header.proc == PROC_NULL:
        return success_reply_header(header.xid)
    if header.proc == PROC_ECHO:
        argument = _opaque_at(message, offset)
        if argument is None:
            return reply_for_rejection(head, ServerError.GARBAGE_ARGS)
        return success_reply_header(header.xid) + argument
    return reply_for_rejection(head, ServerError.PROC_UNAVAIL)


def _opaque_at(message: bytes, offset: int) -> bytes | None:
    """
    The XDR C{opaque<>} at C{offset}, with its length word and padding, or
    L{None} if it does not fit in C{message}.
    """
    if len(message) < offset + 4:
        return None
    (length,) = _OPAQUE_LENGTH.unpack_from(message, offset)
    end = offset + 4 + length + (-length % 4)
    if end > len(message):
        return None
    return message[offset:end]


def encode_opaque(data: bytes) -> list[bytes]:
    """
    C{data} as an XDR C{opaque<>}: length, bytes, padding (as pieces).
    """
    pad = -len(data) % 4
    return [_OPAQUE_LENGTH.pack(len(data)), data, b"\0" * pad] if pad else [
        _OPAQUE_LENGTH.pack(len(data)),
        data,
    ]


class EchoServer:
    """
    Serves the echo program on any number of controllers.

    @ivar program: the program number served.
    @ivar version: the version served.
    @ivar max_record_size: calls larger than this are refused on their
        header (GARBAGE_ARGS, answered from the xid alone).
    """

    log = Logger()

    def __init__(
        self,
        program: int = ECHO_PROGRAM,
        version: int = ECHO_VERSION,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    ) -> None:
        self.program = program
        self.version = version
        self.max_record_size = max_record_size
        self.controllers: set[IRpcMultiplexController] = set()

    def before_record(self, size: int, peer: object) -> InRule:
        """
        Accept records up to the limit; reject larger ones, keeping the xid.
        """
        return ACCEPT if size <= self.max_record_size else _TOO_LARGE

    def reply_to(self, record: object) -> bytes | None:
        """
        The reply to one record a read delivered, or L{None}.
        """
        pieces = self._reply(record)
        if pieces is None:
            return None
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _reply(self, record: object) -> list[bytes] | None:
        """
        L{reply_to}, as the pieces of the reply.
        """
        if type(record) is Accepted:
            return _answer(record.message, self.program, self.version)
        if type(record) is RejectedWith and len(record.head) == 4:
            return [reply_for_rejection(record.head, record.error)]
        if type(record) is Rejected and len(record.head) == 4:
            return [reply_for_rejection(record.head, ServerError.SYSTEM_ERR)]
        return None

    def serve(self, controller: IRpcMultiplexController) -> Deferred[None]:
        """
        Answer calls on C{controller} (stream or datagram) until its input
        ends or fails; then inactivate it.

        A controller that streams records (L{IRecordStreaming}) is served
        so: a receiver called per call, replies sent without a Deferred
        (in the same reactor turn), and the stream paused while the
        transport pushes back on replies. Others are served with one-shot
        reads and writes.

        @return: a Deferred that fires when the controller is done.
        """
        if IRecordStreaming.providedBy(controller):
            return _EchoReceiver(self, controller).start()
        return self._serve_one_shot(controller)

    def _serve_one_shot(self, controller: IRpcMultiplexController) -> Deferred[None]:
        """
        L{serve} with C{start_reading} and C{start_writing}.
        """
        done: Deferred[None] = Deferred()
        self.controllers.add(controller)
        before = self.before_record
        reply_pieces = self._reply
        # A datagram reply goes to whoever sent the call; a stream has one
        # peer, which the controller already knows.
        addressed = controller.protocol is not RpcProtocol.TCP

        def finish(reason: object = None) -> None:
            self.controllers.discard(controller)
            controller.inactivate()
            if not done.called:
                done.callback(None)

        def on_read(result: Any) -> None:
            if result is END_OF_FILE:
                finish()
                return
            reply = reply_pieces(result[0])
            if reply is None:
                read_next()
                return
            if addressed:
                d = controller.start_writing(reply, result[1])
                d.addCallbacks(written, not_sent)
            else:
                controller.start_writing(reply).addCallbacks(written, on_error)

        def written(_: object) -> None:
            read_next()

        def not_sent(failure: Any) -> None:
            # A datagram that could not go to one peer (port 0, an
            # unreachable network) concerns that peer only: the socket serves
            # the others.
            if failure.check(SendFailed) and controller.alive:
                # Counted by the controller; a forger must not flood the log.
                self.log.debug("reply not sent: {f}", f=failure.value)
                read_next()
            else:
                on_error(failure)

        def on_error(failure: Any) -> None:
            # The controller logged its own refusals and deadlines, with the
            # peer: one line per closed connection is enough.
            self.log.debug("connection ended: {f}", f=failure.value)
            finish()

        def read_next() -> None:
            if not controller.alive:
                finish()
                return
            controller.start_reading(before_record=before).addCallbacks(on_read, on_error)

        read_next()
        return done

    def stop(self) -> None:
        """
        Inactivate every controller being served.
        """
        for controller in list(self.controllers):
            controller.inactivate()
        self.controllers.clear()


@implementer(IRecordReceiver)
class _EchoReceiver:
    """
    Serves the echo program on one controller that streams records (see
    L{EchoServer.serve}).
    """

    log = Logger()

    def __init__(self, server: EchoServer, controller: Any) -> None:
        self._server = server
        self._controller = controller
        self._send = controller.send_record
        self._program = server.program
        self._version = server.version
        # A datagram reply goes to whoever sent the call; a stream has one
        # peer, which the controller already knows.
        self._addressed = controller.protocol is not RpcProtocol.TCP
        self._fast = _fast_headers(server.program, server.version)
        self.done: Deferred[None] = Deferred()

    def start(self) -> Deferred[None]:
        """
        Start serving; returns a Deferred that fires when the controller is
        done.
        """
        controller = self._controller
        self._server.controllers.add(controller)
        handle = controller.receive_records(self, self._server.before_record)
        controller.register_producer(handle)
        return self.done

    def record_received(self, message: bytes, peer: object) -> None:
        """
        Answer one call (the per-call path of C{serve}): an ECHO whose
        header is one L{_fast_headers} knows and whose argument ends the
        call exactly is answered here, from slices; everything else by
        L{_answer}.
        """
        reply: bytes | list[bytes] | None
        if self._fast.get(message[4:_FAST_HEADER_END]) == PROC_ECHO:
            length = _OPAQUE_LENGTH.unpack_from(message, _FAST_HEADER_END)[0] if (
                len(message) >= _FAST_HEADER_END + 4
            ) else -1
            if len(message) == _FAST_HEADER_END + 4 + length + (-length % 4):
                head = message[:4] + _SUCCESS_AFTER_XID
                tail = message[_FAST_HEADER_END:]
                reply = head + tail if len(tail) <= _JOIN_BELOW else [head, tail]
                if self._addressed:
                    self._send(reply, peer)
                else:
                    self._send(reply)
                return
        reply = _answer(message, self._program, self._version)
        if reply is None:
            return
        if self._addressed:
            self._send(reply, peer)
        else:
            self._send(reply)

    def record_refused(self, record: InRecord, peer: object) -> None:
        """
        Answer a call refused on its size from its xid, if it was kept.
        """
        reply = self._server._reply(record)
        if reply is None:
            return
        if self._addressed:
            self._send(reply, peer)
        else:
            self._send(reply)

    def receiving_ended(self, reason: Failure) -> None:
        """
        The calls ended: inactivate the controller.
        """
        if not reason.check(ConnectionDone):
            # The controller logged its own refusals and deadlines, with the
            # peer: one line per closed connection is enough.
            self.log.debug("connection ended: {f}", f=reason.value)
        self._server.controllers.discard(self._controller)
        self._controller.inactivate()
        if not self.done.called:
            self.done.callback(None)


@dataclass
class CallStats:
    """
    What a run of calls gave.

    @ivar calls: calls completed (with a good reply or a failure).
    @ivar failures: calls that failed, and why (the first few reasons).
    @ivar latencies: seconds from first send to reply, per good call.
    @ivar elapsed: seconds for the whole run.
    @ivar retransmissions: UDP calls sent again.
    @ivar connection_error: what ended the connection under the calls
        (when a read failed), or L{None}.
    """

    calls: int = 0
    failures: int = 0
    reasons: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    retransmissions: int = 0
    connection_error: BaseException | None = None

    def fail(self, reason: str) -> None:
        """
        Count a failed call and keep its reason (the first ten).
        """
        self.calls += 1
        self.failures += 1
        if len(self.reasons) < 10:
            self.reasons.append(reason)

    def percentile(self, p: float) -> float:
        """
        The C{p}-th percentile of the latencies, in seconds (0 if none).
        """
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    @property
    def ok(self) -> bool:
        """
        Whether every call succeeded.
        """
        return self.failures == 0


_PATTERN = bytes(range(251))
"""What ECHO arguments are made of, repeated."""


@dataclass
class _Pending:
    message: list[bytes]
    expected: bytes | None
    started: float
    deadline: float
    retry: IDelayedCall | None = None


def run_calls(
    controller: IRpcMultiplexController,
    clock: Any,
    *,
    program: int = ECHO_PROGRAM,
    version: int = ECHO_VERSION,
    proc: int = PROC_NULL,
    size: int = 0,
    count: int = 1,
    concurrency: int = 1,
    timeout: float = 25.0,
    retry: float | None = None,
    progress: Callable[[int], object] | None = None,
) -> Deferred[CallStats]:
    """
    Make C{count} calls of C{proc} on C{controller}, C{concurrency} at a time,
    and check every reply (xid, accept_stat, echoed bytes).

    @param controller: a connected stream controller, or a datagram
        controller whose peer is the server.
    @param clock: the reactor (C{IReactorTime}) for timeouts and for
        measuring latency.
    @param retry: on datagrams, seconds before a call is sent again (L{None}:
        never).
    @param timeout: seconds before a call counts as failed.
    @param progress: called with the number of calls done, now and then.
    @return: a Deferred firing with the L{CallStats} when all calls are done
        (or the connection failed: the calls left count as failures).
    """
    stats = CallStats()
    done: Deferred[CallStats] = Deferred()
    pending: dict[int, _Pending] = {}
    # A pattern that is not all zeros, built at C speed.
    payload = (_PATTERN * (size // len(_PATTERN) + 1))[:size] if proc == PROC_ECHO else b""
    arguments = encode_opaque(payload) if proc == PROC_ECHO else []
    expected = b"".join(arguments) if proc == PROC_ECHO else b""
    xid_base = int.from_bytes(os.urandom(4), "big")
    state = {"sent": 0, "writing": False, "closed": False}
    queue: deque[int] = deque()
    started = clock.seconds()
    timer: list[IDelayedCall | None] = [None]

    def finish() -> None:
        if done.called:
            return
        state["closed"] = True
        stats.elapsed = clock.seconds() - started
        if timer[0] is not None and timer[0].active():
            timer[0].cancel()
        for call in pending.values():
            if call.retry is not None and call.retry.active():
                call.retry.cancel()
        if controller.reading:
            controller.cancel_rd_polling()
        done.callback(stats)

    def call_done() -> None:
        if progress is not None and stats.calls % 256 == 0:
            progress(stats.calls)
        if stats.calls >= count:
            finish()
        else:
            send_more()

    def send_more() -> None:
        while state["sent"] < count and len(pending) < concurrency:
            xid = (xid_base + state["sent"]) & 0xFFFFFFFF
            state["sent"] += 1
            header = encode_call_header(CallHeader(xid, program, version, proc))
            now = clock.seconds()
            pending[xid] = _Pending([header, *arguments], expected, now, now + timeout)
            queue.append(xid)
        write_next()

    def write_next() -> None:
        if state["writing"] or state["closed"]:
            return
        while queue:
            xid = queue.popleft()
            call = pending.get(xid)
            if call is None:
                continue
            state["writing"] = True
            if retry is not None:
                call.retry = clock.callLater(retry, resend, xid)
            try:
                d = controller.start_writing(call.message)
            except TransportError as e:
                connection_failed(str(e))
                return
            d.addCallbacks(written, lambda f: connection_failed(str(f.value)))
            return

    def written(_: object) -> None:
        state["writing"] = False
        write_next()

    def resend(xid: int) -> None:
        call = pending.get(xid)
        if call is None:
            return
        call.retry = None
        if clock.seconds() >= call.deadline:
            return
        stats.retransmissions += 1
        queue.append(xid)
        write_next()

    def check_deadlines() -> None:
        timer[0] = clock.callLater(min(1.0, timeout), check_deadlines)
        now = clock.seconds()
        for xid, call in list(pending.items()):
            if now >= call.deadline:
                del pending[xid]
                if call.retry is not None and call.retry.active():
                    call.retry.cancel()
                stats.fail(f"xid {xid:#010x}: no reply within {timeout} s")
        if stats.calls >= count:
            finish()
        else:
            send_more()

    def on_read(result: Any) -> None:
        if result is END_OF_FILE:
            connection_failed("the server closed the connection")
            return
        record = result[0]
        if type(record) is Accepted:
            check_reply(record.message)
        if not state["closed"]:
            read_next()

    def check_reply(message: bytes) -> None:
        try:
            xid = peek_xid(message)
        except MalformedMessage:
            return
        call = pending.pop(xid, None)
        if call is None:
            return  # a late duplicate, or not ours
        if call.retry is not None and call.retry.active():
            call.retry.cancel()
        try:
            reply, offset = decode_reply_header(message)
        except MalformedMessage as e:
            stats.fail(f"xid {xid:#010x}: {e}")
            call_done()
            return
        if type(reply) is not AcceptedReply or reply.stat != SUCCESS:
            stats.fail(f"xid {xid:#010x}: {_describe(reply)}")
        elif message[offset:] != call.expected:
            stats.fail(
                f"xid {xid:#010x}: results of {len(message) - offset} bytes "
                f"differ from the {len(call.expected or b'')} bytes expected"
            )
        else:
            stats.calls += 1
            stats.latencies.append(clock.seconds() - call.started)
        call_done()

    def connection_failed(reason: str) -> None:
        if state["closed"]:
            return
        left = count - stats.calls
        for _ in range(left):
            stats.fail(reason)
        pending.clear()
        finish()

    def read_failed(failure: Any) -> None:
        if not state["closed"]:
            stats.connection_error = failure.value
            connection_failed(str(failure.value))

    def read_next() -> None:
        controller.start_reading().addCallbacks(on_read, read_failed)

    if count <= 0:
        done.callback(stats)
        return done
    timer[0] = clock.callLater(min(1.0, timeout), check_deadlines)
    read_next()
    send_more()
    return done


def _describe(reply: object) -> str:
    stat = getattr(reply, "stat", None)
    name = getattr(stat, "name", str(stat))
    extra = []
    for attr in ("low", "high", "auth_stat"):
        value = getattr(reply, attr, None)
        if value is not None:
            extra.append(f"{attr}={getattr(value, 'name', value)}")
    return f"{type(reply).__name__} {name}" + (f" ({', '.join(extra)})" if extra else "")
