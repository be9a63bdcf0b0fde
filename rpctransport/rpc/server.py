# -*- test-case-name: rpctransport.test.test_rpc_server -*-
"""
An RPC server on the multiplex controllers: handlers registered per
program, version and procedure, and RFC 5531 answers for everything else::

    server = RpcServer()
    server.add_program(PROGRAM, 1, {1: echo, 2: lookup})
    listen_stream("tcp:2049", server.serve)       # every connection
    server.serve(listen_datagram(2049))           # one UDP socket

A handler is called as C{handler(arguments, call)}:

  - C{arguments} is the call's body after its header, as C{bytes}: decode
    it with the XDR library of your choice;
  - C{call} is a L{CallInfo}: xid, program, version, procedure, the
    credential (L{None} for C{AUTH_NONE}, an L{AuthSys} for C{AUTH_SYS},
    the raw L{OpaqueAuth} for other flavors), the verifier, the peer and
    the controller.

It returns the results, already XDR-encoded (L{Results}): C{bytes}, a
sequence of bytes-like pieces sent without being joined, or L{None} for a
procedure without results; or a L{Deferred} of them, and the reply goes out
when it fires, while later calls on the same connection are answered
meanwhile (replies may leave in another order than their calls came). It
may raise (or fail its Deferred with) one of the errors of
L{rpctransport.sansio.errors} to answer with that RFC 5531 error:

  - L{GarbageArguments}: C{GARBAGE_ARGS};
  - L{ProcedureUnavailable}: C{PROC_UNAVAIL};
  - L{ProgramUnavailable}: C{PROG_UNAVAIL};
  - L{ProgramMismatch}: C{PROG_MISMATCH} with its C{low} and C{high};
  - L{ServerSystemError}: C{SYSTEM_ERR};
  - L{AuthError}: a rejected reply, C{AUTH_ERROR} with its C{stat};
  - L{RpcVersionMismatch}: a rejected reply, C{RPC_MISMATCH}.

Anything else it raises is answered C{SYSTEM_ERR} and logged (namespace
C{rpctransport.rpc.server}).

The server answers by itself, without a handler:

  - the NULL procedure (0) of every registered version, unless a handler
    is registered for it;
  - C{PROG_UNAVAIL} for a program without a registered version,
    C{PROG_MISMATCH} with the lowest and highest registered versions of
    the program, C{PROC_UNAVAIL} for a procedure not registered;
  - C{RPC_MISMATCH} (2 to 2) for an C{rpcvers} other than 2;
  - C{GARBAGE_ARGS} for a call whose header does not decode, and for a
    call over L{RpcServer.max_record_size}, answered from its xid as soon
    as its record mark is read (the rest is discarded as it arrives, never
    buffered);
  - C{AUTH_ERROR}/C{AUTH_BADCRED} for an C{AUTH_SYS} credential that does
    not decode, and for an C{AUTH_TLS} credential on anything but the RFC
    9289 probe; a probe that reaches the server (on a controller that does
    not answer probes itself, which those of L{rpctransport.listen_stream}
    do) is answered without C{STARTTLS}, as a server without TLS must.

Flow control. A connection has at most L{RpcServer.max_in_progress} calls
whose handlers returned a Deferred that has not fired yet; at the bound the
server pauses its stream of records (the controller stops reading, and TCP
pushes back on the client), and resumes it once a call completes. It also
registers itself as the controller's producer, so that it stops taking
calls while the transport pushes back on replies. Reading goes on only when
neither holds (L{_Hold}). On a UDP socket the bound is the socket's: while
it is paused, datagrams wait in the controller's queue, within its bounds.

On datagram controllers, a duplicate-request cache (L{DuplicateRequestCache})
answers a retransmitted call whose reply was sent with the same reply bytes,
without running its handler again, and drops a retransmission of a call
still in progress. Streams have none: a stream client does not retransmit
on the same connection.

What the server did is counted per reply kind (L{RpcServer.counters}, with
the keys C{rpc.*} below).
"""

from __future__ import annotations

import enum
import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Union, cast

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import IRecordReceiver, IRecordStreaming, IRpcMultiplexController
from ..sansio.auth import AuthSys, decode_auth_sys
from ..sansio.errors import (
    AuthError,
    DatagramTooLarge,
    GarbageArguments,
    MalformedMessage,
    ProcedureUnavailable,
    ProgramMismatch,
    ProgramUnavailable,
    RpcVersionMismatch,
    ServerSystemError,
    TransportError,
)
from ..sansio.record import DEFAULT_MAX_RECORD_SIZE
from ..sansio.rpcmsg import (
    NULL_AUTH,
    RPC_VERSION,
    AuthFlavor,
    CallHeader,
    DeniedReply,
    OpaqueAuth,
    RejectStat,
    answer_tls_probe,
    decode_call_header,
    encode_call_header,
    encode_reply_header,
    reply_for_rejection,
    success_reply_header,
)
from ..sansio.types import (
    ACCEPT,
    InRecord,
    InRule,
    Rejected,
    RejectedWith,
    RejectWith,
    RpcProtocol,
    ServerError,
)

__all__ = [
    "ABANDONED",
    "AUTH_SYS_CACHE_SIZE",
    "CALLS",
    "DEFAULT_MAX_IN_PROGRESS",
    "DRC_CHECKSUM_BYTES",
    "DRC_DROPPED",
    "DRC_EVICTED",
    "DRC_MAX_AGE",
    "DRC_MAX_BYTES",
    "DRC_MAX_ENTRIES",
    "DRC_REPLAYED",
    "IGNORED",
    "PAUSED",
    "REPLY_AUTH_ERROR",
    "REPLY_GARBAGE_ARGS",
    "REPLY_PROC_UNAVAIL",
    "REPLY_PROG_MISMATCH",
    "REPLY_PROG_UNAVAIL",
    "REPLY_RPC_MISMATCH",
    "REPLY_SUCCESS",
    "REPLY_SYSTEM_ERR",
    "UNSENT",
    "CallInfo",
    "DuplicateRequestCache",
    "Handler",
    "HandlerResult",
    "Results",
    "RpcServer",
]

# -- Limits ------------------------------------------------------------------

DEFAULT_MAX_IN_PROGRESS: Final = 64
"""
Calls per connection (per socket, on UDP) whose handlers have not answered
yet, before the server stops reading more: what one client may make the
server hold at once. libtirpc's and Linux's clients keep far fewer calls in
flight per connection (the Linux client's default slot table is 65), so a
well-behaved client never meets it.
"""

DRC_MAX_ENTRIES: Final = 1024
"""
Calls the duplicate-request cache remembers per UDP socket. A client
retransmits a call a second or a few after sending it (until its timeout,
tens of seconds), so the cache needs the calls of that window: 1024 is a
second's worth at 1000 calls a second, for a few hundred bytes of bookkeeping
each, plus the replies, which L{DRC_MAX_BYTES} bounds.
"""

DRC_MAX_BYTES: Final = 4 * 1024 * 1024
"""
Reply bytes the duplicate-request cache keeps per UDP socket: 64 replies of
the largest UDP size (65,507 bytes), thousands of small ones.
"""

DRC_MAX_AGE: Final = 120.0
"""
Seconds a cached reply may answer a retransmission: past that, a call with
the same xid is taken as new (a client that restarted and reused its xids).
Linux's nfsd keeps its entries the same 120 s.
"""

DRC_CHECKSUM_BYTES: Final = 256
"""
How much of a call's arguments the cache checks, with their length, to tell
a retransmission from a new call that happens to reuse an xid: what Linux's
nfsd checks (C{RC_CSUMLEN}). Hashing every byte of 60 KB datagrams would
cost more than the calls it saves.
"""

AUTH_SYS_CACHE_SIZE: Final = 256
"""
Decoded C{AUTH_SYS} credentials kept, by their bytes: a client sends the
same credential on every call, so most calls skip decoding it.
"""

_JOIN_BELOW: Final = 4096
"""
Results up to this size are joined to their reply header into one
C{bytes} (cheaper to send than two pieces); larger ones are sent as a
piece of their own, not copied again.
"""

# -- Counter keys --------------------------------------------------------------

CALLS: Final = "rpc.calls"
"""
Records that were calls (well-formed or not), retransmissions included:
the sum of what became of them (a reply of each kind, L{DRC_REPLAYED},
L{DRC_DROPPED}, L{ABANDONED}) and of the calls in progress, so that the
per-call path counts once.
"""
IGNORED: Final = "rpc.ignored"
"""Records that are not calls (too short for an xid, or replies): no answer."""
REPLY_SUCCESS: Final = "rpc.reply.success"
"""Calls answered SUCCESS."""
REPLY_PROG_UNAVAIL: Final = "rpc.reply.prog_unavail"
"""Calls answered PROG_UNAVAIL."""
REPLY_PROG_MISMATCH: Final = "rpc.reply.prog_mismatch"
"""Calls answered PROG_MISMATCH."""
REPLY_PROC_UNAVAIL: Final = "rpc.reply.proc_unavail"
"""Calls answered PROC_UNAVAIL."""
REPLY_GARBAGE_ARGS: Final = "rpc.reply.garbage_args"
"""Calls answered GARBAGE_ARGS (oversized ones included)."""
REPLY_SYSTEM_ERR: Final = "rpc.reply.system_err"
"""Calls answered SYSTEM_ERR."""
REPLY_RPC_MISMATCH: Final = "rpc.reply.rpc_mismatch"
"""Calls denied with RPC_MISMATCH."""
REPLY_AUTH_ERROR: Final = "rpc.reply.auth_error"
"""Calls denied with AUTH_ERROR."""
ABANDONED: Final = "rpc.abandoned"
"""
Calls whose handler answered after the server stopped serving their
connection: no reply was made.
"""
UNSENT: Final = "rpc.reply.unsent"
"""
Replies (counted by kind) that the controller refused when a handler's
Deferred fired: it was inactivated, or its writer aborted.
"""
DRC_REPLAYED: Final = "rpc.drc.replayed"
"""UDP retransmissions answered from the duplicate-request cache."""
DRC_DROPPED: Final = "rpc.drc.dropped"
"""UDP retransmissions of calls still in progress, dropped."""
DRC_EVICTED: Final = "rpc.drc.evicted"
"""Entries the duplicate-request cache let go of to stay within its bounds."""
PAUSED: Final = "rpc.paused"
"""Times a connection stopped reading at L{RpcServer.max_in_progress}."""

_OUTCOME_KEYS: Final = (
    REPLY_SUCCESS,
    REPLY_PROG_UNAVAIL,
    REPLY_PROG_MISMATCH,
    REPLY_PROC_UNAVAIL,
    REPLY_GARBAGE_ARGS,
    REPLY_SYSTEM_ERR,
    REPLY_RPC_MISMATCH,
    REPLY_AUTH_ERROR,
    DRC_REPLAYED,
    DRC_DROPPED,
    ABANDONED,
)
"""What a call may become: one of these counts once per call (L{CALLS})."""

_COUNTER_KEYS: Final = (*_OUTCOME_KEYS, IGNORED, UNSENT, DRC_EVICTED, PAUSED)
"""The keys counted as they happen (L{CALLS} is a sum)."""

_REPLY_KEYS: Final = {
    ServerError.PROG_UNAVAIL: REPLY_PROG_UNAVAIL,
    ServerError.PROG_MISMATCH: REPLY_PROG_MISMATCH,
    ServerError.PROC_UNAVAIL: REPLY_PROC_UNAVAIL,
    ServerError.GARBAGE_ARGS: REPLY_GARBAGE_ARGS,
    ServerError.SYSTEM_ERR: REPLY_SYSTEM_ERR,
    ServerError.RPC_MISMATCH: REPLY_RPC_MISMATCH,
}
"""The counter of each error the server answers (the C{AUTH_*} ones count
under L{REPLY_AUTH_ERROR})."""

# -- Wire constants --------------------------------------------------------------

_FAST_HEADER_END: Final = len(encode_call_header(CallHeader(0, 0, 0, 0)))
"""
Where the header of a call with empty C{AUTH_NONE} credential and verifier
ends (40 bytes): the calls dispatched by their header bytes alone.
"""

_SUCCESS_AFTER_XID: Final = success_reply_header(0)[4:]
"""An accepted SUCCESS reply header (null verifier), after its xid."""

_CALL_WORD: Final = b"\0\0\0\0"
"""C{msg_type} CALL, at offset 4 of a call."""

_TOO_LARGE: Final = RejectWith(ServerError.GARBAGE_ARGS, at_once=True)
"""
Oversized calls are answered from their xid, as soon as it arrives, while the
rest is discarded: never after a payload the peer may trickle for minutes.
"""

# -- Types ---------------------------------------------------------------------

_Piece = Union[bytes, bytearray, memoryview]

Results = Union[bytes, bytearray, memoryview, Sequence[_Piece], None]
"""
What a handler answers with: the XDR-encoded results, as one bytes-like
value, as a sequence of bytes-like pieces (sent as they are, not joined),
or L{None} for none (a C{void} result).
"""

HandlerResult = Union[Results, "Deferred[Any]"]
"""
What a handler returns: its L{Results}, or a Deferred that fires with them
(typed C{Deferred[Any]} because Twisted's C{Deferred} is invariant: a
handler's C{Deferred[bytes]} must fit).
"""

Handler = Callable[[bytes, "CallInfo"], HandlerResult]
"""
A procedure's handler: C{handler(arguments, call)}, C{arguments} being the
call's body after its header (see the module docstring).
"""


# -- Calls ------------------------------------------------------------------------


class _Procedure:
    """
    One registered procedure: its numbers and its handler (L{None} for the
    NULL procedure the server answers itself).
    """

    __slots__ = ("program", "version", "procedure", "handler")

    def __init__(
        self, program: int, version: int, procedure: int, handler: Handler | None
    ) -> None:
        self.program = program
        self.version = version
        self.procedure = procedure
        self.handler = handler


class CallInfo:
    """
    What a handler learns about its call, besides the arguments.

    One is made for every call dispatched to a handler, without an
    C{__init__} (the per-call path cannot afford a Python frame more), and it holds references only: what is derived (the xid as a
    number, the numbers called) is computed when asked for. The server
    makes them; handlers only read them. A call with empty C{AUTH_NONE}
    credential and verifier (the common one) is dispatched by its header
    bytes without decoding them: its L{CallInfo} knows that they are empty.
    Other calls get a L{_DecodedCallInfo}.

    @ivar peer: who sent the call: the connection's peer on a stream, the
        datagram's source address on UDP (a Twisted C{IAddress}).
    @ivar controller: the controller the call came on (its
        C{tls_session_props} and C{peer_user_name} say more about the peer).
    """

    __slots__ = ("_head", "_procedure", "peer", "controller")

    _head: bytes
    _procedure: _Procedure
    peer: IAddress
    controller: IRpcMultiplexController

    @property
    def xid(self) -> int:
        """The call's transaction id."""
        return int.from_bytes(self._head, "big")

    @property
    def program(self) -> int:
        """The program called."""
        return self._procedure.program

    @property
    def version(self) -> int:
        """The program's version."""
        return self._procedure.version

    @property
    def procedure(self) -> int:
        """The procedure called."""
        return self._procedure.procedure

    @property
    def credential(self) -> AuthSys | OpaqueAuth | None:
        """
        The caller's credential: L{None} for C{AUTH_NONE}, an L{AuthSys}
        for C{AUTH_SYS}, the raw L{OpaqueAuth} for any other flavor (see
        L{raw_credential} for the bytes in every case).
        """
        return None

    @property
    def flavor(self) -> int:
        """The credential's flavor (C{AuthFlavor.AUTH_NONE} is 0)."""
        return AuthFlavor.AUTH_NONE

    @property
    def raw_credential(self) -> OpaqueAuth:
        """The credential as it came: flavor and body."""
        return NULL_AUTH

    @property
    def verifier(self) -> OpaqueAuth:
        """The call's verifier."""
        return NULL_AUTH

    def __repr__(self) -> str:
        return (
            f"<CallInfo xid {self.xid:#010x} program {self.program} version "
            f"{self.version} procedure {self.procedure} flavor {self.flavor} "
            f"from {self.peer}>"
        )


class _DecodedCallInfo(CallInfo):
    """
    A L{CallInfo} of a call whose header was decoded: any credential and
    verifier.
    """

    __slots__ = ("_header", "_credential")

    _header: CallHeader
    _credential: AuthSys | OpaqueAuth | None

    @property
    def credential(self) -> AuthSys | OpaqueAuth | None:
        """See L{CallInfo.credential}."""
        return self._credential

    @property
    def flavor(self) -> int:
        """See L{CallInfo.flavor}."""
        return self._header.cred.flavor

    @property
    def raw_credential(self) -> OpaqueAuth:
        """See L{CallInfo.raw_credential}."""
        return self._header.cred

    @property
    def verifier(self) -> OpaqueAuth:
        """See L{CallInfo.verifier}."""
        return self._header.verf


_new: Final = object.__new__
"""
Makes a L{CallInfo} without calling C{__init__}; the caller sets every
slot.
"""


@functools.lru_cache(maxsize=AUTH_SYS_CACHE_SIZE)
def _auth_sys(body: bytes) -> AuthSys:
    """
    L{decode_auth_sys}, remembered: an L{AuthSys} is immutable, so the same
    credential bytes may share one.
    """
    return decode_auth_sys(body)


def _u32(name: str, value: int) -> None:
    """
    @raise ValueError: C{value} is not an XDR unsigned int.
    """
    if not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise ValueError(f"{name} must be an unsigned 32-bit integer, not {value!r}")


# -- The duplicate-request cache ---------------------------------------------------

_DrcKey = tuple[str, int, bytes, int, int, int]
"""The peer's host and port, xid bytes, program, version, procedure."""


class _DrcEntry:
    """
    One call in the cache: in progress while C{reply} is L{None}.
    """

    __slots__ = ("key", "fingerprint", "born", "reply")

    def __init__(self, key: _DrcKey, fingerprint: tuple[int, int], born: float) -> None:
        self.key = key
        self.fingerprint = fingerprint
        self.born = born
        self.reply: bytes | None = None


class DuplicateRequestCache:
    """
    The replies of a UDP socket's recent calls, to answer retransmissions
    without running their handlers again (RFC 5531 leaves at-most-once
    execution to the server; this is the classic "DRC" of NFS servers).

    A call is known by its sender, xid, program, version and procedure, and
    checked by its arguments' length and a hash of their first
    L{DRC_CHECKSUM_BYTES} bytes: the same key with other arguments is a new
    call (an xid reused). A retransmission of a call whose reply was sent
    gets the same reply bytes; one of a call still in progress is dropped
    (the reply will answer both). Only calls that reach a handler are
    cached: the server's own answers (rejections, the automatic NULL) cost
    less to make again than to keep.

    The cache is bounded three ways: L{DRC_MAX_ENTRIES} calls,
    L{DRC_MAX_BYTES} bytes of replies, L{DRC_MAX_AGE} seconds; past a
    bound, the least recently used entries go first (a call in progress
    whose entry went is still answered, just not remembered).

    @ivar entries: the cached calls, least recently used first.
    @ivar size: the bytes of the replies held.
    """

    def __init__(
        self,
        clock: IReactorTime,
        counts: dict[str, int],
        max_entries: int = DRC_MAX_ENTRIES,
        max_bytes: int = DRC_MAX_BYTES,
        max_age: float = DRC_MAX_AGE,
    ) -> None:
        """
        @param clock: tells the time entries are made and looked up.
        @param counts: where evictions are counted (under L{DRC_EVICTED}).
        """
        self._clock = clock
        self._counts = counts
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.entries: OrderedDict[_DrcKey, _DrcEntry] = OrderedDict()
        self.size = 0

    def lookup(self, key: _DrcKey, fingerprint: tuple[int, int]) -> _DrcEntry | None:
        """
        The entry of a retransmission of C{key} with these arguments (in
        progress, or with its reply), now the most recently used; or
        L{None} for a new call. An entry with other arguments or past
        L{max_age} is forgotten.
        """
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.fingerprint != fingerprint or self._clock.seconds() - entry.born > self.max_age:
            self._forget(entry)
            return None
        self.entries.move_to_end(key)
        return entry

    def begin(self, key: _DrcKey, fingerprint: tuple[int, int]) -> _DrcEntry:
        """
        Remember a new call, in progress, making room for it.
        """
        old = self.entries.get(key)
        if old is not None:
            self._forget(old)
        entry = _DrcEntry(key, fingerprint, self._clock.seconds())
        self.entries[key] = entry
        self._trim()
        return entry

    def complete(self, entry: _DrcEntry, reply: bytes) -> None:
        """
        Keep the reply of C{entry}'s call, unless the entry went meanwhile
        (evicted, or replaced by a new call with its key) or the reply
        alone is over L{max_bytes}.
        """
        if self.entries.get(entry.key) is not entry:
            return
        if len(reply) > self.max_bytes:
            self._forget(entry)
            return
        entry.reply = reply
        self.size += len(reply)
        self._trim()

    def _forget(self, entry: _DrcEntry) -> None:
        del self.entries[entry.key]
        if entry.reply is not None:
            self.size -= len(entry.reply)

    def _trim(self) -> None:
        """
        Evict from the least recently used end until within the bounds,
        stale entries first found there too.
        """
        entries = self.entries
        now = self._clock.seconds()
        while entries:
            oldest = next(iter(entries.values()))
            if (
                len(entries) <= self.max_entries
                and self.size <= self.max_bytes
                and now - oldest.born <= self.max_age
            ):
                return
            self._forget(oldest)
            self._counts[DRC_EVICTED] += 1


# -- The server ---------------------------------------------------------------------


class RpcServer:
    """
    Serves registered procedures on any number of controllers (see the
    module docstring).

    @ivar max_record_size: calls larger than this are refused on their
        header (C{GARBAGE_ARGS}, answered from the xid alone).
    @ivar max_in_progress: calls per connection (per socket on UDP) whose
        handlers' Deferreds have not fired, before reading pauses.
    """

    log = Logger(namespace="rpctransport.rpc.server")

    def __init__(
        self,
        *,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        max_in_progress: int = DEFAULT_MAX_IN_PROGRESS,
        drc_max_entries: int = DRC_MAX_ENTRIES,
        drc_max_bytes: int = DRC_MAX_BYTES,
        drc_max_age: float = DRC_MAX_AGE,
    ) -> None:
        """
        @param max_record_size: see L{max_record_size}.
        @param max_in_progress: see L{max_in_progress}; at least 1.
        @param drc_max_entries: the duplicate-request cache's bound on calls
            (0: no cache on UDP).
        @param drc_max_bytes: its bound on reply bytes.
        @param drc_max_age: its bound on an entry's age, in seconds.
        @raise ValueError: a limit is out of range.
        """
        if max_in_progress < 1:
            raise ValueError(f"max_in_progress must be >= 1, not {max_in_progress}")
        if max_record_size < 1:
            raise ValueError(f"max_record_size must be >= 1, not {max_record_size}")
        if drc_max_entries < 0 or drc_max_bytes < 0 or drc_max_age < 0:
            raise ValueError("the duplicate-request cache's bounds must be >= 0")
        self.max_record_size = max_record_size
        self.max_in_progress = max_in_progress
        self.drc_max_entries = drc_max_entries
        self.drc_max_bytes = drc_max_bytes
        self.drc_max_age = drc_max_age
        self._procedures: dict[tuple[int, int, int], _Procedure] = {}
        self._versions: dict[int, set[int]] = {}
        # Shared with the connections, and changed in place only: a
        # registration made while serving is seen at once.
        self._fast: dict[bytes, _Procedure] = {}
        self._counts: dict[str, int] = dict.fromkeys(_COUNTER_KEYS, 0)
        # Calls whose handlers' Deferreds have not fired, on every
        # connection (those the server stopped serving included).
        self._pending = 0
        self._serving: dict[IRpcMultiplexController, _Connection] = {}

    # -- Registration ----------------------------------------------------------------

    def register(self, program: int, version: int, procedure: int, handler: Handler) -> None:
        """
        Have C{handler} answer C{procedure} of C{program} C{version}. The
        version's NULL procedure is then answered too, by the server unless
        a handler is registered for it.

        @raise ValueError: a number is not an unsigned 32-bit integer, or
            the procedure already has a handler.
        @raise TypeError: C{handler} is not callable.
        """
        self._check(program, version, procedure, handler)
        self._add(program, version, procedure, handler)

    def add_program(
        self, program: int, version: int, procedures: Mapping[int, Handler]
    ) -> None:
        """
        Register the handlers of several procedures of one program version
        at once, C{{procedure: handler}}: all of them, or (when one is
        refused) none.

        @raise ValueError: as for L{register}.
        @raise TypeError: as for L{register}.
        """
        for procedure, handler in procedures.items():
            self._check(program, version, procedure, handler)
        for procedure, handler in procedures.items():
            self._add(program, version, procedure, handler)

    def _check(self, program: int, version: int, procedure: int, handler: Handler) -> None:
        """
        Raise why C{handler} may not be registered for these numbers.
        """
        _u32("program", program)
        _u32("version", version)
        _u32("procedure", procedure)
        if not callable(handler):
            raise TypeError(f"the handler must be callable, not {handler!r}")
        existing = self._procedures.get((program, version, procedure))
        if existing is not None and existing.handler is not None:
            raise ValueError(
                f"program {program} version {version} procedure {procedure} already has "
                f"a handler: {existing.handler!r}"
            )

    def _add(self, program: int, version: int, procedure: int, handler: Handler | None) -> None:
        """
        Register one procedure (L{None}: the automatic NULL), and the
        version's automatic NULL if it has none yet.
        """
        self._versions.setdefault(program, set()).add(version)
        if procedure != 0 and (program, version, 0) not in self._procedures:
            self._add(program, version, 0, None)
        entry = _Procedure(program, version, procedure, handler)
        self._procedures[(program, version, procedure)] = entry
        fast = encode_call_header(CallHeader(0, program, version, procedure))[4:]
        self._fast[fast] = entry

    @property
    def programs(self) -> list[tuple[int, int]]:
        """
        The registered C{(program, version)} pairs, in order (what rpcbind
        registration announces).
        """
        return sorted((p, v) for p, versions in self._versions.items() for v in versions)

    @property
    def counters(self) -> Mapping[str, int]:
        """
        What the server did, per reason (the C{rpc.*} keys of this module),
        a snapshot: a key appears once its count is at least 1.
        """
        counts = dict(self._counts)
        counts[REPLY_SUCCESS] += sum(c._successes for c in self._serving.values())
        calls = sum(counts[key] for key in _OUTCOME_KEYS) + self._pending
        found = {CALLS: calls} if calls else {}
        found.update((k, v) for k, v in counts.items() if v)
        return MappingProxyType(found)

    @property
    def controllers(self) -> frozenset[IRpcMultiplexController]:
        """The controllers being served."""
        return frozenset(self._serving)

    # -- Serving ----------------------------------------------------------------------

    def before_record(self, size: int, peer: IAddress) -> InRule:
        """
        Accept calls up to L{max_record_size}; refuse larger ones on their
        header, keeping the xid for the C{GARBAGE_ARGS} answer.
        """
        return ACCEPT if size <= self.max_record_size else _TOO_LARGE

    def serve(self, controller: IRpcMultiplexController) -> Deferred[None]:
        """
        Answer calls on C{controller} (stream or datagram, which must stream
        records: L{IRecordStreaming}) until its input ends or fails, or
        L{stop}; then inactivate it. A stream whose peer closed cleanly is
        inactivated once the calls in progress are answered.

        Usable as C{listen_stream}'s C{on_connection}.

        @return: a Deferred that fires with L{None} when the controller is
            done.
        @raise TypeError: the controller cannot stream records.
        @raise ValueError: this server already serves it.
        @raise RuntimeError: the controller has another producer
            registered (C{register_producer}).
        """
        if not IRecordStreaming.providedBy(controller):
            raise TypeError(
                f"{controller!r} does not stream records (IRecordStreaming): "
                "RpcServer serves only controllers that do"
            )
        if controller in self._serving:
            raise ValueError(f"{controller!r} is already served")
        connection = _Connection(self, controller)
        self._serving[controller] = connection
        try:
            return connection.start()
        except BaseException:
            self._serving.pop(controller, None)
            raise

    def stop(self) -> None:
        """
        Stop serving: inactivate every controller being served. Handlers
        still running may complete; their replies are discarded.
        """
        for connection in list(self._serving.values()):
            connection.finish()
        self._serving.clear()

    # -- Answers ------------------------------------------------------------------------

    def _reject(
        self, head: bytes, error: ServerError, low: int | None = None, high: int | None = None
    ) -> bytes:
        """
        The reply refusing a call with C{error}, counted.

        @param head: the call's first 4 bytes (its xid).
        """
        # Encoded first: an answer that cannot be (a handler's bad range)
        # raises, is answered SYSTEM_ERR, and is counted once, there.
        reply = reply_for_rejection(head, error, low=low, high=high)
        self._counts[_REPLY_KEYS.get(error, REPLY_AUTH_ERROR)] += 1
        return reply

    def _success(self, head: bytes, results: object) -> bytes | list[_Piece]:
        """
        The reply carrying C{results} (see L{Results}); the connection
        counts it.

        @raise TypeError: C{results} is not a L{Results}.
        """
        header = head + _SUCCESS_AFTER_XID
        if results is None:
            reply: bytes | list[_Piece] = header
        elif type(results) is bytes:
            reply = header + results if len(results) <= _JOIN_BELOW else [header, results]
        elif isinstance(results, (bytes, bytearray, memoryview)):
            reply = [header, results]
        elif isinstance(results, (list, tuple)) and all(
            isinstance(piece, (bytes, bytearray, memoryview)) for piece in results
        ):
            reply = [header, *results]
        else:
            raise TypeError(
                "a handler must answer with bytes, a sequence of bytes-like pieces, None, "
                f"or a Deferred of one of them, not {type(results).__name__}"
            )
        return reply

    def _error_reply(
        self, head: bytes, error: BaseException, call: CallInfo, failure: Failure | None = None
    ) -> bytes:
        """
        The reply for what a handler raised (or failed its Deferred with),
        counted; what is not an RPC answer is logged.
        """
        try:
            if isinstance(error, GarbageArguments):
                return self._reject(head, ServerError.GARBAGE_ARGS)
            if isinstance(error, ProcedureUnavailable):
                return self._reject(head, ServerError.PROC_UNAVAIL)
            if isinstance(error, ProgramUnavailable):
                return self._reject(head, ServerError.PROG_UNAVAIL)
            if isinstance(error, ProgramMismatch):
                return self._reject(head, ServerError.PROG_MISMATCH, error.low, error.high)
            if isinstance(error, RpcVersionMismatch):
                return self._reject(head, ServerError.RPC_MISMATCH, error.low, error.high)
            if isinstance(error, AuthError):
                reply = encode_reply_header(
                    DeniedReply(
                        int.from_bytes(head, "big"), RejectStat.AUTH_ERROR, auth_stat=error.stat
                    )
                )
                self._counts[REPLY_AUTH_ERROR] += 1
                return reply
            if isinstance(error, ServerSystemError):
                return self._reject(head, ServerError.SYSTEM_ERR)
        except ValueError as e:
            # An answer that cannot be encoded (a range with low > high, a
            # number over 32 bits): the handler's bug.
            error, failure = e, None
        if failure is None:
            failure = Failure(error, type(error), error.__traceback__)
        self.log.failure(
            "the handler of {call} raised; answered SYSTEM_ERR", failure, call=call
        )
        return self._reject(head, ServerError.SYSTEM_ERR)


class _Hold(enum.Flag):
    """
    Why a connection's stream of records is paused: reading goes on only
    when no reason holds.
    """

    CALLS = enum.auto()
    """L{RpcServer.max_in_progress} calls are in progress."""
    WRITES = enum.auto()
    """The transport pushes back on replies."""


_NO_HOLD: Final = _Hold(0)


class _Life(enum.Enum):
    """
    A connection's life, as the server sees it.

      - C{SERVING} --(input ends cleanly, calls in progress)--> C{DRAINING}
      - C{SERVING} --(input ends otherwise, or L{RpcServer.stop})--> C{ENDED}
      - C{DRAINING} --(last call answered, or L{RpcServer.stop})--> C{ENDED}
    """

    SERVING = "serving"
    DRAINING = "draining"
    ENDED = "ended"


@implementer(IRecordReceiver, IPushProducer)
class _Connection:
    """
    Serves one controller: its stream's receiver, and the producer its
    transport pauses while replies cannot go out.
    """

    log = Logger(namespace="rpctransport.rpc.server")

    def __init__(self, server: RpcServer, controller: Any) -> None:
        self._server = server
        self._controller = controller
        self._send = controller.send_record
        # A datagram reply goes to whoever sent the call; a stream has one
        # peer, which the controller already knows.
        self._addressed = controller.protocol is not RpcProtocol.TCP
        self._fast = server._fast
        self._procedures = server._procedures
        self._counts = server._counts
        self._max = server.max_in_progress
        self._in_progress = 0
        # Counted here, not in the server's counts, on the per-call path;
        # added to them when the connection ends.
        self._successes = 0
        self._holds = _NO_HOLD
        self._life = _Life.SERVING
        self._handle: IPushProducer | None = None
        self._drc: DuplicateRequestCache | None = None
        if self._addressed and server.drc_max_entries > 0:
            self._drc = DuplicateRequestCache(
                controller.reactor,
                server._counts,
                server.drc_max_entries,
                server.drc_max_bytes,
                server.drc_max_age,
            )
        self.done: Deferred[None] = Deferred()

    def start(self) -> Deferred[None]:
        """
        Start the stream of records; returns L{done}.
        """
        controller = self._controller
        controller.register_producer(self)
        try:
            handle = controller.receive_records(self, self._server.before_record)
        except BaseException:
            controller.unregister_producer()
            raise
        if self._life is _Life.ENDED:
            # Ended while the buffered records were delivered.
            return self.done
        self._handle = handle
        if self._holds:
            # Buffered records filled the bound before the handle was ours.
            handle.pauseProducing()
        return self.done

    # -- IRecordReceiver ---------------------------------------------------------

    def record_received(self, message: bytes, peer: IAddress) -> None:
        """
        Answer one call (the per-call path): a call whose header is one the
        server registered byte for byte (empty C{AUTH_NONE} credential and
        verifier) goes straight to its handler; every other record is
        decoded by L{_decoded}.
        """
        procedure = self._fast.get(message[4:_FAST_HEADER_END])
        if procedure is None:
            self._decoded(message, peer)
            return
        head = message[:4]
        handler = procedure.handler
        if handler is None:
            self._successes += 1
            if self._addressed:
                self._send(head + _SUCCESS_AFTER_XID, peer)
            else:
                self._send(head + _SUCCESS_AFTER_XID)
            return
        call: CallInfo = _new(CallInfo)
        call._head = head
        call._procedure = procedure
        call.peer = peer
        call.controller = self._controller
        if self._drc is not None:
            self._run_cached(handler, message, _FAST_HEADER_END, head, call, peer)
            return
        try:
            results = handler(message[_FAST_HEADER_END:], call)
        except Exception as e:
            self._reply(self._server._error_reply(head, e, call), peer)
            return
        if type(results) is bytes and not self._addressed:
            # The common answer on a stream, inline.
            self._successes += 1
            header = head + _SUCCESS_AFTER_XID
            self._send(header + results if len(results) <= _JOIN_BELOW else [header, results])
            return
        if isinstance(results, Deferred):
            self._later(results, head, call, peer, None)
            return
        self._reply(self._answer(head, results, call), peer)

    def record_refused(self, record: InRecord, peer: IAddress) -> None:
        """
        Answer a call refused on its size from its xid, if it was kept.
        """
        if type(record) is RejectedWith:
            head, error = record.head, record.error
        elif type(record) is Rejected:
            # Not a rule of ours: the call was refused for a reason we do
            # not know.
            head, error = record.head, ServerError.SYSTEM_ERR
        else:
            return
        if len(head) != 4:
            return
        self._reply(self._server._reject(bytes(head), error), peer)

    def _decoded(self, message: bytes, peer: IAddress) -> None:
        """
        Answer any record that is not a registered call with empty
        C{AUTH_NONE} credential and verifier, through L{decode_call_header}.
        """
        server = self._server
        counts = self._counts
        try:
            header, offset = decode_call_header(message)
        except MalformedMessage:
            if len(message) >= 12 and message[4:8] == _CALL_WORD:
                # A call, with the xid where it belongs, that does not decode.
                self._reply(server._reject(message[:4], ServerError.GARBAGE_ARGS), peer)
            else:
                counts[IGNORED] += 1
            return
        head = message[:4]
        if header.rpcvers != RPC_VERSION:
            self._reply(server._reject(head, ServerError.RPC_MISMATCH, 2, 2), peer)
            return
        flavor = header.cred.flavor
        credential: AuthSys | OpaqueAuth | None
        if flavor == AuthFlavor.AUTH_NONE:
            credential = None
        elif flavor == AuthFlavor.AUTH_SYS:
            try:
                credential = _auth_sys(header.cred.body)
            except MalformedMessage:
                self._reply(server._reject(head, ServerError.AUTH_BADCRED), peer)
                return
        elif flavor == AuthFlavor.AUTH_TLS:
            self._answer_tls(message, head, peer)
            return
        else:
            credential = header.cred
        procedure = self._procedures.get((header.prog, header.vers, header.proc))
        if procedure is None:
            versions = server._versions.get(header.prog)
            if not versions:
                reply = server._reject(head, ServerError.PROG_UNAVAIL)
            elif header.vers not in versions:
                reply = server._reject(
                    head, ServerError.PROG_MISMATCH, min(versions), max(versions)
                )
            else:
                reply = server._reject(head, ServerError.PROC_UNAVAIL)
            self._reply(reply, peer)
            return
        handler = procedure.handler
        if handler is None:
            self._successes += 1
            self._reply(head + _SUCCESS_AFTER_XID, peer)
            return
        call: _DecodedCallInfo = _new(_DecodedCallInfo)
        call._head = head
        call._procedure = procedure
        call.peer = peer
        call.controller = self._controller
        call._header = header
        call._credential = credential
        if self._drc is not None:
            self._run_cached(handler, message, offset, head, call, peer)
            return
        self._run(handler, message, offset, head, call, peer, None)

    def _answer_tls(self, message: bytes, head: bytes, peer: IAddress) -> None:
        """
        Answer a call with an C{AUTH_TLS} credential that reached the
        application (this controller does not answer RFC 9289 probes): the
        probe gets the answer of a server without TLS, anything else
        C{AUTH_BADCRED}.
        """
        answer = answer_tls_probe(message, offers_tls=False, tls_on=False)
        if answer is None:  # pragma: no cover - the header decoded above
            self._reply(self._server._reject(head, ServerError.GARBAGE_ARGS), peer)
            return
        if answer.reply[8:12] == b"\0\0\0\0":
            self._successes += 1
        else:
            self._counts[REPLY_AUTH_ERROR] += 1
        self._reply(answer.reply, peer)

    def _run_cached(
        self,
        handler: Handler,
        message: bytes,
        offset: int,
        head: bytes,
        call: CallInfo,
        peer: IAddress,
    ) -> None:
        """
        Run a call on a datagram socket through the duplicate-request cache.
        """
        drc = self._drc
        assert drc is not None
        procedure = call._procedure
        # The peer by its host and port: hashing Twisted's address objects
        # (attrs classes) costs several times more, on every dict operation.
        sender = cast(IPv4Address, peer)
        key = (
            sender.host, sender.port, head, procedure.program, procedure.version,
            procedure.procedure,
        )
        fingerprint = (len(message) - offset, hash(message[offset : offset + DRC_CHECKSUM_BYTES]))
        entry = drc.lookup(key, fingerprint)
        if entry is not None:
            if entry.reply is None:
                self._counts[DRC_DROPPED] += 1
            else:
                self._counts[DRC_REPLAYED] += 1
                self._reply(entry.reply, peer)
            return
        self._run(handler, message, offset, head, call, peer, drc.begin(key, fingerprint))

    def _run(
        self,
        handler: Handler,
        message: bytes,
        offset: int,
        head: bytes,
        call: CallInfo,
        peer: IAddress,
        entry: _DrcEntry | None,
    ) -> None:
        """
        Call C{handler} and answer with what it returns or raises, now or
        when its Deferred fires.
        """
        try:
            results = handler(message[offset:], call)
        except Exception as e:
            reply: bytes | list[_Piece] = self._server._error_reply(head, e, call)
        else:
            if isinstance(results, Deferred):
                self._later(results, head, call, peer, entry)
                return
            reply = self._answer(head, results, call)
        self._reply(reply, peer, entry)

    def _answer(self, head: bytes, results: object, call: CallInfo) -> bytes | list[_Piece]:
        """
        The reply for C{results}; C{SYSTEM_ERR} when they are not
        L{Results}.
        """
        try:
            reply = self._server._success(head, results)
        except TypeError as e:
            return self._server._error_reply(head, e, call)
        self._successes += 1
        return reply

    def _reply(
        self, reply: bytes | list[_Piece], peer: IAddress, entry: _DrcEntry | None = None
    ) -> None:
        """
        Send C{reply} to C{peer}, and keep it in the cache for C{entry}. A
        reply too large for a datagram is replaced by C{SYSTEM_ERR}.
        """
        if not self._addressed:
            self._send(reply)
            return
        if entry is not None:
            reply = reply if isinstance(reply, bytes) else b"".join(reply)
        try:
            self._send(reply, peer)
        except DatagramTooLarge as e:
            # Only results can be that large: say they could not be sent.
            self.log.warn(
                "reply to {peer} not sent: {error}; answered SYSTEM_ERR", peer=peer, error=e
            )
            self._successes -= 1
            first = reply if isinstance(reply, bytes) else reply[0]
            reply = self._server._reject(bytes(first[:4]), ServerError.SYSTEM_ERR)
            self._send(reply, peer)
        if entry is not None and self._drc is not None:
            assert type(reply) is bytes
            self._drc.complete(entry, reply)

    # -- Calls answered later --------------------------------------------------------

    def _later(
        self,
        d: Deferred[Any],
        head: bytes,
        call: CallInfo,
        peer: IAddress,
        entry: _DrcEntry | None,
    ) -> None:
        """
        A handler answered with a Deferred: reply when it fires; pause
        reading at the bound on calls in progress.
        """
        self._in_progress += 1
        self._server._pending += 1
        d.addCallbacks(
            self._answered,
            self._answer_failed,
            callbackArgs=(head, call, peer, entry),
            errbackArgs=(head, call, peer, entry),
        )
        if self._in_progress >= self._max and not self._holds & _Hold.CALLS:
            self._counts[PAUSED] += 1
            self._hold(_Hold.CALLS)

    def _answered(
        self,
        results: object,
        head: bytes,
        call: CallInfo,
        peer: IAddress,
        entry: _DrcEntry | None,
    ) -> None:
        """
        A handler's Deferred fired with its results.
        """
        self._in_progress -= 1
        self._server._pending -= 1
        if self._life is _Life.ENDED:
            self._counts[ABANDONED] += 1
        else:
            self._send_later(self._answer(head, results, call), peer, entry)
        self._call_done()

    def _answer_failed(
        self,
        failure: Failure,
        head: bytes,
        call: CallInfo,
        peer: IAddress,
        entry: _DrcEntry | None,
    ) -> None:
        """
        A handler's Deferred failed: answer with the error.
        """
        self._in_progress -= 1
        self._server._pending -= 1
        if self._life is _Life.ENDED:
            self._counts[ABANDONED] += 1
        else:
            error = failure.value
            assert error is not None
            self._send_later(self._server._error_reply(head, error, call, failure), peer, entry)
        self._call_done()

    def _send_later(
        self, reply: bytes | list[_Piece], peer: IAddress, entry: _DrcEntry | None
    ) -> None:
        """
        L{_reply}, outside of the controller's delivery: what the
        controller refuses (it was inactivated, its writer aborted) is
        counted and logged, not raised into the handler's Deferred.
        """
        try:
            self._reply(reply, peer, entry)
        except TransportError as e:
            self._counts[UNSENT] += 1
            self.log.debug("reply to {peer} not sent: {error}", peer=peer, error=e)

    def _call_done(self) -> None:
        """
        A call in progress was answered: read again below the bound; end a
        drained connection.
        """
        if self._holds & _Hold.CALLS and self._in_progress < self._max:
            self._release(_Hold.CALLS)
        if self._life is _Life.DRAINING and self._in_progress == 0:
            self.finish()

    # -- Flow control -----------------------------------------------------------------

    def _hold(self, reason: _Hold) -> None:
        """
        Pause the stream for C{reason} (it was reading if nothing held it).
        """
        before = self._holds
        self._holds = before | reason
        if not before and self._handle is not None and self._life is not _Life.ENDED:
            self._handle.pauseProducing()

    def _release(self, reason: _Hold) -> None:
        """
        C{reason} no longer holds: resume the stream if nothing else does.
        """
        before = self._holds
        if not before & reason:
            return
        self._holds = before & ~reason
        if not self._holds and self._handle is not None and self._life is not _Life.ENDED:
            # Delivers what waits, now: calls may be dispatched from here.
            self._handle.resumeProducing()

    def pauseProducing(self) -> None:
        """
        The transport pushes back on replies: stop taking calls.
        """
        self._hold(_Hold.WRITES)

    def resumeProducing(self) -> None:
        """
        The transport drained (or is gone): take calls again, unless the
        calls in progress are at their bound.
        """
        self._release(_Hold.WRITES)

    def stopProducing(self) -> None:
        """
        The transport is going away: L{receiving_ended} follows.
        """

    # -- The end ------------------------------------------------------------------------

    def receiving_ended(self, reason: Failure) -> None:
        """
        The calls ended: on a clean end with calls in progress, answer them
        first; otherwise inactivate the controller now.
        """
        if not reason.check(ConnectionDone):
            # The controller logged its own refusals and deadlines, with the
            # peer: one line per closed connection is enough.
            self.log.debug("connection ended: {f}", f=reason.value)
        elif self._in_progress and not self._addressed and self._life is _Life.SERVING:
            self._life = _Life.DRAINING
            return
        self.finish()

    def finish(self) -> None:
        """
        Stop serving: inactivate the controller (replies still to come are
        discarded) and fire L{done}.
        """
        if self._life is _Life.ENDED:
            return
        self._life = _Life.ENDED
        server = self._server
        server._serving.pop(self._controller, None)
        server._counts[REPLY_SUCCESS] += self._successes
        self._successes = 0
        self._controller.inactivate()
        if not self.done.called:
            self.done.callback(None)
