# -*- test-case-name: rpctransport.test.test_rpc_client -*-
"""
The bookkeeping of an RPC client's calls, sans I/O: xids, the bound on calls
in flight, deadlines and the retransmission schedule, and what a reply means
for its call.

L{CallTable} holds the calls of one connection: those in flight by xid,
those waiting for a slot in order. It allocates xids (from a start the
client picks at random, incrementing, skipping any still in use), tells
which calls are due for a retransmission or past their deadline at a given
time, and never reads a clock itself: the client passes the time in.

L{header_tail}, L{build_message} and L{reply_outcome} make a call's bytes
and read a reply's. Nothing here imports Twisted; the RPC client
(L{rpctransport.rpc.client}) feeds this with its reactor's time and
turns what it returns into Deferreds and sends.
"""

from __future__ import annotations

import enum
import functools
import math
import struct
from collections import deque
from collections.abc import Sequence
from typing import Final, Union

from .errors import (
    AuthError,
    GarbageArguments,
    ProcedureUnavailable,
    ProgramMismatch,
    ProgramUnavailable,
    RpcCallError,
    RpcVersionMismatch,
    ServerSystemError,
)
from .rpcmsg import (
    AcceptedReply,
    AcceptStat,
    AuthStat,
    Buffer,
    CallHeader,
    OpaqueAuth,
    RejectStat,
    decode_reply_header,
    encode_call_header,
    success_reply_header,
)

__all__ = [
    "CALL_RETRANSMITTED",
    "CALL_TIMED_OUT",
    "JOIN_BELOW",
    "MAX_RETRANSMIT_INTERVAL",
    "NEVER",
    "REPLY_MALFORMED",
    "REPLY_NOT_A_REPLY",
    "REPLY_UNKNOWN_XID",
    "SUCCESS_AFTER_XID",
    "CallMessage",
    "CallState",
    "CallTable",
    "PendingCall",
    "build_message",
    "header_tail",
    "is_reply",
    "reply_outcome",
]

NEVER: Final = math.inf
"""A timeout or a retransmission interval that never runs out."""

MAX_RETRANSMIT_INTERVAL: Final = 8.0
"""
The longest wait between two sends of one call, in seconds: the interval
doubles from the first one (1 s by default on UDP) up to this. libtirpc goes
up to 30 s, but within the default 25 s timeout that would leave one
retransmission after the 4 s one; stopping at 8 s sends at 0, 1, 3, 7, 15
and 23 s, so that a lost datagram late in the call still costs at most 8 s.
"""

JOIN_BELOW: Final = 4096
"""
Arguments up to this size are joined to the call header into one C{bytes}
(one piece is cheaper to send than two, and a datagram is joined anyway);
larger ones are sent as pieces of their own, not copied.
"""

_SLACK: Final = 1e-6
"""
Seconds by which a deadline may lie after the time a timer fired at it and
still count as reached: the timer's time is computed as C{now + (due - now)}
in floating point, which may land a hair before C{due}.
"""

_XID: Final = struct.Struct(">I")
_XID_MODULUS: Final = 1 << 32
_REPLY_WORD: Final = b"\0\0\0\1"

SUCCESS_AFTER_XID: Final = success_reply_header(0)[4:]
"""
The words after the xid of an accepted SUCCESS reply with an empty
C{AUTH_NONE} verifier (what nearly every server sends): a reply that starts
so after its xid is read without decoding, its results at offset 24.
"""

# Counter keys (see L{rpctransport.sansio.counters.Counters}).

REPLY_UNKNOWN_XID: Final = "reply.unknown_xid"
"""
Replies whose xid is no call in flight: late replies to calls that timed out
or were cancelled, second replies to retransmitted calls, strays. Dropped.
"""
REPLY_MALFORMED: Final = "reply.malformed"
"""
Replies that cannot be decoded (RFC 5531 broken, or shorter than an xid):
the call with their xid, if any, fails with the L{MalformedMessage
<rpctransport.sansio.errors.MalformedMessage>}; the connection goes on.
"""
REPLY_NOT_A_REPLY: Final = "reply.not_a_reply"
"""
Messages whose C{msg_type} is not REPLY (a server's callback, garbage):
dropped without looking at their xid.
"""
CALL_TIMED_OUT: Final = "call.timeout"
"""Calls that got no reply within their timeout."""
CALL_RETRANSMITTED: Final = "call.retransmit"
"""Sends of a call after its first (UDP retransmissions)."""

CallMessage = Union[bytes, list[bytes]]
"""A call as it is sent: one C{bytes}, or pieces (header, then arguments)."""


_COMPACT_SLACK: Final = 32
"""
Cancelled calls the waiting line may hold beyond twice the calls really
waiting, before it is compacted (each compaction costs one pass over it).
"""


class CallState(enum.Enum):
    """
    Where a call is: C{WAITING} for a slot (no xid yet) -> C{IN_FLIGHT}
    (has an xid, sent) -> C{DONE} (answered, failed, timed out or
    cancelled); C{WAITING} -> C{DONE} when cancelled or failed before it
    was sent.
    """

    WAITING = "waiting"
    IN_FLIGHT = "in flight"
    DONE = "done"


class PendingCall:
    """
    One call and its schedule.

    @ivar program: the program number.
    @ivar version: the program's version.
    @ivar procedure: the procedure number.
    @ivar tail: the call header after its xid (see L{header_tail}).
    @ivar body: the encoded arguments: C{bytes}, or a list of pieces.
    @ivar timeout: seconds from the first send to give up (C{NEVER}: never).
    @ivar waiter: what the client fires with the outcome (a Deferred);
        opaque here.
    @ivar state: see L{CallState}.
    @ivar xid: the xid, once in flight.
    @ivar message: the bytes sent (again on each retransmission), once in
        flight.
    @ivar sent: how many times it was sent.
    @ivar deadline: when it times out (once sent).
    @ivar resend_at: when it is sent again, unless its deadline comes first
        (C{NEVER}: not again).
    @ivar interval: the wait before the next retransmission.
    @ivar due: the earlier of L{resend_at} and L{deadline}.
    """

    __slots__ = (
        "body",
        "deadline",
        "due",
        "interval",
        "message",
        "procedure",
        "program",
        "resend_at",
        "sent",
        "state",
        "tail",
        "timeout",
        "version",
        "waiter",
        "xid",
    )

    def __init__(
        self,
        program: int,
        version: int,
        procedure: int,
        tail: bytes,
        body: bytes | list[bytes],
        timeout: float,
        waiter: object,
    ) -> None:
        self.program = program
        self.version = version
        self.procedure = procedure
        self.tail = tail
        self.body = body
        self.timeout = timeout
        self.waiter = waiter
        self.state = CallState.WAITING
        self.xid = -1
        self.message: CallMessage = b""
        self.sent = 0
        self.deadline = NEVER
        self.resend_at = NEVER
        self.interval = NEVER
        self.due = NEVER

    def __repr__(self) -> str:
        xid = f" xid={self.xid:#010x}" if self.xid >= 0 else ""
        return (
            f"<PendingCall {self.program}/{self.version}/{self.procedure}"
            f" {self.state.value}{xid} sent={self.sent}>"
        )


class CallTable:
    """
    The calls of one connection: at most L{max_in_flight} in flight, keyed
    by xid; the others wait, first come first served.

    The table moves calls between the states of L{CallState}; what a move
    means on the wire (send, fail, fire) is the caller's business. A call
    taken off the table (L{take}, L{drop}, L{due}, L{take_all}) is C{DONE}
    and never comes back.

    @ivar in_flight: the calls in flight, by xid.
    @ivar waiting: how many calls wait for a slot (read only).
    @ivar next_xid: the xid L{admit} tries first (then the following ones,
        skipping those in flight).
    """

    def __init__(
        self,
        max_in_flight: int,
        first_xid: int,
        retransmit: float = NEVER,
        max_retransmit_interval: float = MAX_RETRANSMIT_INTERVAL,
    ) -> None:
        """
        @param max_in_flight: the most calls in flight at once.
        @param first_xid: the first xid to hand out (the client picks it at
            random, so that a stale reply from a former connection, or a
            guess, rarely matches).
        @param retransmit: seconds from the first send to the second
            (doubling after each), or C{NEVER}.
        @param max_retransmit_interval: the cap of that doubling.
        @raise ValueError: C{max_in_flight} is below 1, or an interval is
            not positive.
        """
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, not {max_in_flight}")
        if not retransmit > 0 or not max_retransmit_interval > 0:
            raise ValueError(
                f"retransmission intervals must be > 0, not {retransmit} "
                f"and {max_retransmit_interval}"
            )
        self.max_in_flight = max_in_flight
        self.retransmit = retransmit
        self.max_retransmit_interval = max_retransmit_interval
        self.in_flight: dict[int, PendingCall] = {}
        self._waiting: deque[PendingCall] = deque()
        # Cancelled calls are left in the deque until they reach its head;
        # "waiting" counts the others.
        self.waiting = 0
        self.next_xid = first_xid % _XID_MODULUS

    def __len__(self) -> int:
        """
        How many calls are in flight or waiting.
        """
        return len(self.in_flight) + self.waiting

    def has_slot(self) -> bool:
        """
        Whether a new call may go in flight now: a slot is free and no call
        waits for one (calls are served in order).
        """
        return self.waiting == 0 and len(self.in_flight) < self.max_in_flight

    def admit(self, call: PendingCall) -> int:
        """
        Put C{call} in flight with a new xid (the caller checked
        L{has_slot}, or took it from the waiting line).

        @return: the xid: the next one after the last handed out that no
            call in flight holds, modulo 2**32.
        """
        in_flight = self.in_flight
        xid = self.next_xid
        while xid in in_flight:
            xid = (xid + 1) % _XID_MODULUS
        self.next_xid = (xid + 1) % _XID_MODULUS
        call.xid = xid
        call.state = CallState.IN_FLIGHT
        in_flight[xid] = call
        return xid

    def enqueue(self, call: PendingCall) -> None:
        """
        Make C{call} wait for a slot, behind the calls already waiting.
        """
        self._waiting.append(call)
        self.waiting += 1

    def admit_next(self) -> PendingCall | None:
        """
        Put the first waiting call in flight, if a slot is free.

        @return: that call (with its xid), or L{None}.
        """
        waiting = self._waiting
        if len(self.in_flight) >= self.max_in_flight:
            return None
        while waiting:
            call = waiting.popleft()
            if call.state is CallState.WAITING:
                self.waiting -= 1
                self.admit(call)
                return call
        return None

    def sent(self, call: PendingCall, now: float) -> float:
        """
        C{call} is being sent for the first time, at C{now}: its deadline
        and retransmission schedule start.

        @return: when something is next due for it (L{PendingCall.due}).
        """
        call.sent = 1
        call.deadline = deadline = now + call.timeout
        interval = self.retransmit
        call.interval = interval
        call.resend_at = resend_at = now + interval
        call.due = due = resend_at if resend_at < deadline else deadline
        return due

    def take(self, xid: int) -> PendingCall | None:
        """
        Take the call in flight with C{xid} off the table (its reply came).

        @return: the call, or L{None} when no call in flight has that xid.
        """
        call = self.in_flight.pop(xid, None)
        if call is not None:
            call.state = CallState.DONE
        return call

    def drop(self, call: PendingCall) -> None:
        """
        Take C{call} off the table, wherever it is (cancelled, failed);
        nothing happens to a call already C{DONE}.
        """
        state = call.state
        if state is CallState.IN_FLIGHT:
            del self.in_flight[call.xid]
        elif state is CallState.WAITING:
            # Left in the deque, admit_next skips it; the deque is compacted
            # once mostly such calls, so that cancelled calls (with their
            # bodies) do not pile up behind a stalled server.
            self.waiting -= 1
            waiting = self._waiting
            if len(waiting) > 2 * self.waiting + _COMPACT_SLACK:
                call.state = CallState.DONE
                self._waiting = deque(c for c in waiting if c.state is CallState.WAITING)
                return
        call.state = CallState.DONE

    def due(self, now: float) -> tuple[list[PendingCall], list[PendingCall]]:
        """
        What is due at C{now}.

        @return: C{(expired, resend)}: the calls past their deadline, taken
            off the table; and the calls to send again now, whose count of
            sends and next retransmission (the interval doubled, up to
            L{max_retransmit_interval}) are already updated. A call whose
            deadline comes first (or at the same time) expires instead: it is
            never sent at or past its deadline.
        """
        expired: list[PendingCall] = []
        resend: list[PendingCall] = []
        reached = now + _SLACK
        for call in self.in_flight.values():
            if call.due > reached:
                continue
            if call.deadline <= reached:
                expired.append(call)
                continue
            call.sent += 1
            # Doubled up to the cap, never below the first interval (a
            # retransmit set above the cap stays as it was).
            interval = min(call.interval * 2, max(self.max_retransmit_interval, self.retransmit))
            call.interval = interval
            call.resend_at = resend_at = now + interval
            deadline = call.deadline
            call.due = resend_at if resend_at < deadline else deadline
            resend.append(call)
        for call in expired:
            del self.in_flight[call.xid]
            call.state = CallState.DONE
        return expired, resend

    def next_due(self) -> float:
        """
        The earliest time something is due for a call in flight (C{NEVER}
        when nothing is).
        """
        earliest = NEVER
        for call in self.in_flight.values():
            if call.due < earliest:
                earliest = call.due
        return earliest

    def take_all(self) -> list[PendingCall]:
        """
        Take every call off the table, in flight (by xid order of sending)
        then waiting (in order).
        """
        calls = list(self.in_flight.values())
        self.in_flight.clear()
        calls.extend(call for call in self._waiting if call.state is CallState.WAITING)
        self._waiting.clear()
        self.waiting = 0
        for call in calls:
            call.state = CallState.DONE
        return calls


@functools.lru_cache(maxsize=256)
def header_tail(
    program: int, version: int, procedure: int, cred: OpaqueAuth, verf: OpaqueAuth
) -> bytes:
    """
    A call header after its xid: C{msg_type} CALL, C{rpcvers} 2, the
    program, version and procedure numbers, the credential and the verifier.
    Cached: a client calls a few procedures with a few credentials, and this
    leaves it packing only the xid per call.

    @raise ValueError: a number does not fit in an unsigned 32-bit integer.
    """
    return encode_call_header(CallHeader(0, program, version, procedure, cred, verf))[4:]


def build_message(xid: int, tail: bytes, body: bytes | Sequence[bytes]) -> CallMessage:
    """
    The call to send: the xid, the rest of the header, the arguments.

    @param body: the arguments: C{bytes} (joined to the header up to
        L{JOIN_BELOW} bytes, else a piece of its own), or pieces.
    """
    head = _XID.pack(xid) + tail
    if type(body) is bytes:
        if len(body) <= JOIN_BELOW:
            return head + body
        return [head, body]
    return [head, *body]


def reply_outcome(
    message: Buffer, program: int, version: int, procedure: int
) -> int | RpcCallError:
    """
    What a reply says about the call (C{program}, C{version}, C{procedure})
    it answers.

    @return: for an accepted SUCCESS reply, the offset where the results
        begin; otherwise the L{RpcCallError} it stands for, with its numbers.
    @raise MalformedMessage: the reply cannot be decoded.
    """
    reply, offset = decode_reply_header(message)
    if isinstance(reply, AcceptedReply):
        stat = reply.stat
        if stat is AcceptStat.SUCCESS:
            return offset
        if stat is AcceptStat.PROG_UNAVAIL:
            return ProgramUnavailable(program)
        if stat is AcceptStat.PROG_MISMATCH:
            assert reply.low is not None and reply.high is not None
            return ProgramMismatch(program, version, reply.low, reply.high)
        if stat is AcceptStat.PROC_UNAVAIL:
            return ProcedureUnavailable(procedure)
        if stat is AcceptStat.GARBAGE_ARGS:
            return GarbageArguments()
        return ServerSystemError()
    if reply.stat is RejectStat.RPC_MISMATCH:
        assert reply.low is not None and reply.high is not None
        return RpcVersionMismatch(reply.low, reply.high)
    auth_stat = reply.auth_stat
    assert auth_stat is not None
    name = auth_stat.name if isinstance(auth_stat, AuthStat) else ""
    return AuthError(int(auth_stat), name)


def is_reply(message: Buffer) -> bool:
    """
    Whether C{message}'s C{msg_type} word says REPLY.
    """
    return bytes(message[4:8]) == _REPLY_WORD
