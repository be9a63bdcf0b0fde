# -*- test-case-name: rpctransport.test.test_types -*-
"""
Value types of the controller contract: rules, records, sentinels.

These are the words the record-marking codec and the controllers speak. They
import nothing but the standard library, so the sans-IO codecs below the
Twisted adapters can use them.

A I{rule} is what a C{before_record} hook answers for a record it is offered
(the seed's C{in_rule}); a I{record} is what a read delivers (the seed's
C{in_record}).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Union

__all__ = [
    "ACCEPT",
    "DENY",
    "DROP",
    "REJECT",
    "END_OF_FILE",
    "IMPLIED",
    "Accepted",
    "Denied",
    "Dropped",
    "EndOfFile",
    "Implied",
    "InRecord",
    "InRule",
    "RejectWith",
    "Rejected",
    "RejectedWith",
    "Rule",
    "RpcProtocol",
    "Sentinel",
    "ServerError",
    "check_rule",
    "record_for_rule",
]


class Rule(enum.Enum):
    """
    The simple rules a C{before_record} hook can answer.

    @cvar ACCEPT: buffer the record and deliver it as L{Accepted}.
    @cvar REJECT: keep only the first 4 bytes (the xid) and deliver
        L{Rejected}, so that the caller can send a rejection reply.
    @cvar DENY: keep nothing; deliver L{Denied} at once, as soon as the header
        that decided it has been read, and discard the rest of the record as
        it arrives. It tells the caller to refuse or close.
    @cvar DROP: keep nothing; deliver L{Dropped} when the record ends. It tells
        the caller to ignore the record silently.
    """

    ACCEPT = "accept"
    REJECT = "reject"
    DENY = "deny"
    DROP = "drop"

    def __repr__(self) -> str:
        return self.name


ACCEPT: Final = Rule.ACCEPT
REJECT: Final = Rule.REJECT
DENY: Final = Rule.DENY
DROP: Final = Rule.DROP


class ServerError(enum.Enum):
    """
    The reasons RFC 5531 gives a server for refusing a call.

    Each member's value is C{(kind, code)}: C{kind} is C{"accepted"} for an
    accepted reply with a non-success C{accept_stat}, C{"rpc_mismatch"} for a
    denied reply with C{reject_stat} RPC_MISMATCH, and C{"auth"} for a denied
    reply with C{reject_stat} AUTH_ERROR and the C{auth_stat} C{code}.
    """

    PROG_UNAVAIL = ("accepted", 1)
    """The program is not available on this server."""
    PROG_MISMATCH = ("accepted", 2)
    """The program is here, but not in the version asked for."""
    PROC_UNAVAIL = ("accepted", 3)
    """The program cannot support the procedure asked for."""
    GARBAGE_ARGS = ("accepted", 4)
    """The arguments could not be decoded."""
    SYSTEM_ERR = ("accepted", 5)
    """A system error, such as a failed memory allocation."""
    RPC_MISMATCH = ("rpc_mismatch", 0)
    """The call's RPC version is not 2."""
    AUTH_BADCRED = ("auth", 1)
    """Bad credential (seal broken)."""
    AUTH_REJECTEDCRED = ("auth", 2)
    """The client must begin a new session."""
    AUTH_BADVERF = ("auth", 3)
    """Bad verifier (seal broken)."""
    AUTH_REJECTEDVERF = ("auth", 4)
    """The verifier expired or was replayed."""
    AUTH_TOOWEAK = ("auth", 5)
    """Rejected for security reasons."""
    AUTH_INVALIDRESP = ("auth", 6)
    """Bogus response verifier."""
    AUTH_FAILED = ("auth", 7)
    """Reason unknown."""
    RPCSEC_GSS_CREDPROBLEM = ("auth", 13)
    """RPCSEC_GSS: no credentials for the user."""
    RPCSEC_GSS_CTXPROBLEM = ("auth", 14)
    """RPCSEC_GSS: problem with the context."""

    @property
    def kind(self) -> str:
        """
        C{"accepted"}, C{"rpc_mismatch"} or C{"auth"}: which reply carries it.
        """
        return self.value[0]

    @property
    def code(self) -> int:
        """
        The C{accept_stat} or C{auth_stat} number on the wire (0 for
        RPC_MISMATCH, whose C{reject_stat} is 0).
        """
        return self.value[1]


@dataclass(frozen=True, slots=True)
class RejectWith:
    """
    Like L{REJECT}, and carry the reason the caller should reply with.

    With C{at_once}, the record is reported as soon as its first 4 bytes (the
    xid) have arrived, not when it ends: a server can answer an oversized
    call within milliseconds of its header, while the rest of the record is
    discarded as it arrives (the next read starts at the next record).

    @ivar error: the reason to put in the rejection reply.
    @ivar at_once: report from the xid, before the record ends.
    """

    error: ServerError
    at_once: bool = False


InRule = Union[Rule, RejectWith]
"""What a C{before_record} hook returns."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """
    A whole record, accepted and buffered.

    @ivar message: the record's bytes (the RPC message, record marks removed).
    """

    message: bytes

    def __repr__(self) -> str:
        # A 16 MiB message in a traceback helps nobody.
        shown = self.message[:32]
        more = "..." if len(self.message) > 32 else ""
        return f"Accepted({shown!r}{more}, {len(self.message)} bytes)"


@dataclass(frozen=True, slots=True)
class Rejected:
    """
    A record refused with L{REJECT}.

    @ivar head: the record's first 4 bytes (its xid), or all of it when the
        record is shorter.
    """

    head: bytes


@dataclass(frozen=True, slots=True)
class RejectedWith:
    """
    A record refused with L{RejectWith}.

    @ivar head: the record's first 4 bytes (its xid), or all of it when the
        record is shorter.
    @ivar error: the reason the hook gave.
    """

    head: bytes
    error: ServerError


@dataclass(frozen=True, slots=True)
class Denied:
    """
    A record refused with L{DENY}; nothing of it is kept.
    """


@dataclass(frozen=True, slots=True)
class Dropped:
    """
    A record refused with L{DROP}; nothing of it is kept.
    """


InRecord = Union[Accepted, Rejected, RejectedWith, Denied, Dropped]
"""What a read delivers for a record."""


def check_rule(rule: object) -> InRule:
    """
    C{rule}, if it is one a C{before_record} hook may return.

    @raise TypeError: it is not (a type test, not a set lookup: an
        unhashable answer such as a list must give this error too).
    """
    if type(rule) is not Rule and type(rule) is not RejectWith:
        raise TypeError(f"before_record must return a rule, not {rule!r}")
    return rule


def record_for_rule(rule: InRule, message: bytes) -> InRecord:
    """
    What a read delivers for a record under C{rule}: the one map from rules
    to records, for streams and datagrams alike.

    @param message: the record's bytes; for a rejected record, at least its
        first 4 bytes (the xid), of which no more are kept.
    @raise TypeError: C{rule} is not a rule.
    """
    if rule is Rule.ACCEPT:
        return Accepted(message)
    if rule is Rule.REJECT:
        return Rejected(message[:4])
    if type(rule) is RejectWith:
        return RejectedWith(message[:4], rule.error)
    if rule is Rule.DENY:
        return Denied()
    if rule is Rule.DROP:
        return Dropped()
    raise TypeError(f"before_record must return a rule, not {rule!r}")


class Sentinel(enum.Enum):
    """
    The base of the one-member enums that stand for a value (L{END_OF_FILE},
    L{IMPLIED}, C{NEED_DATA}): a member's repr is its name.
    """

    def __repr__(self) -> str:
        return self.name


class EndOfFile(Sentinel):
    """
    The type of L{END_OF_FILE}.
    """

    END_OF_FILE = "END_OF_FILE"


END_OF_FILE: Final = EndOfFile.END_OF_FILE
"""
What a read delivers when the peer closed cleanly between two records.
"""


class Implied(Sentinel):
    """
    The type of L{IMPLIED}.
    """

    IMPLIED = "IMPLIED"


IMPLIED: Final = Implied.IMPLIED
"""
The address of a connected socket's peer, when it need not be spelt out: the
default address of C{start_writing}.
"""


class RpcProtocol(enum.Enum):
    """
    The transport protocol of a controller, as RPC sees it.

    @cvar TCP: a stream with record marking (TCP, UNIX stream sockets, TLS).
    @cvar UDP: datagrams, one record each.
    """

    TCP = "tcp"
    UDP = "udp"

    def __repr__(self) -> str:
        return f"RpcProtocol.{self.name}"
