# -*- test-case-name: rpctransport.test.test_rpcmsg -*-
"""
RPC message headers (RFC 5531 section 9), sans I/O.

The transports move whole messages and do not decode arguments; this module
knows the few parts of the RPC message that a transport, a proxy or a small
server needs: the call header (up to where the procedure's arguments begin),
the reply header (up to where the results begin), the xid, the rejection
replies a server sends for a L{Rejected} or L{RejectedWith} record, and the
RFC 9289 (RPC-with-TLS) C{AUTH_TLS} probe and its C{STARTTLS} answer.

Every function takes and returns bytes; nothing here imports Twisted.

Decoding follows libtirpc where RFC 5531 leaves room:

  - The padding after an opaque body (to a multiple of 4 bytes) must be
    present, but its bytes are not checked: non-zero padding is accepted, as
    libtirpc's C{xdr_opaque} does. Encoding always pads with zero bytes.
  - A call whose C{rpcvers} is not 2 is not an error: the header is decoded
    (with the version 2 layout) and reports the version, so that a server can
    answer C{RPC_MISMATCH} as RFC 5531 requires. A call that does not fit the
    version 2 layout at all raises L{MalformedMessage}; L{peek_xid} still
    gives the xid for the answer.
  - Credential and verifier flavors, and C{auth_stat} values, are not
    checked against a list: they are open-ended registries (RFC 5531
    section 13), and judging a flavor is the authentication layer's job.
    C{msg_type}, C{reply_stat}, C{accept_stat} and C{reject_stat} are
    closed: an unknown value raises L{MalformedMessage}.
  - An opaque_auth body longer than L{MAX_AUTH_BYTES} raises
    L{MalformedMessage}, before anything is read past its length.

Decoders accept C{bytes}, C{bytearray} or C{memoryview}, read only the header
(never the arguments or results behind it) and return the offset where the
header ends. Errors in input from the network raise L{MalformedMessage} (a
L{RemoteProtocolError}) with the offset and sizes in the message; errors in
values our caller passes to an encoder raise C{ValueError}.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Final, TypeVar, Union

from .errors import MalformedMessage
from .types import END_OF_FILE, Accepted, EndOfFile, InRecord, ServerError

__all__ = [
    "AUTH_DH",
    "AUTH_ERROR",
    "AUTH_NONE",
    "AUTH_SHORT",
    "AUTH_SYS",
    "AUTH_TLS",
    "CALL",
    "GARBAGE_ARGS",
    "MAX_AUTH_BYTES",
    "MSG_ACCEPTED",
    "MSG_DENIED",
    "NULL_AUTH",
    "PROC_UNAVAIL",
    "PROG_MISMATCH",
    "PROG_UNAVAIL",
    "REPLY",
    "RPCSEC_GSS",
    "RPC_MISMATCH",
    "RPC_VERSION",
    "STARTTLS_VERIFIER",
    "SUCCESS",
    "SYSTEM_ERR",
    "AcceptStat",
    "AcceptedReply",
    "AuthFlavor",
    "AuthStat",
    "CallHeader",
    "DeniedReply",
    "MalformedMessage",
    "MsgType",
    "OpaqueAuth",
    "RejectStat",
    "ReplyHeader",
    "ReplyStat",
    "decode_call_header",
    "decode_reply_header",
    "encode_call_header",
    "encode_reply_header",
    "encode_tls_probe",
    "TLSProbeAnswer",
    "answer_tls_probe",
    "is_tls_probe",
    "looks_like_auth_tls",
    "starttls_refusal",
    "peek_xid",
    "reply_for_rejection",
    "starttls_reply",
    "success_reply_header",
]


# ---------------------------------------------------------------------------
# Numbers of the protocol
# ---------------------------------------------------------------------------

RPC_VERSION: Final = 2
"""The only RPC protocol version (C{rpcvers}) RFC 5531 defines."""

MAX_AUTH_BYTES: Final = 400
"""
The largest opaque_auth body RFC 5531 allows (C{opaque body<400>}). Checked
on the length word, before the body is read, so a bogus length costs nothing.
"""


class MsgType(enum.IntEnum):
    """
    C{msg_type}: whether a message is a call or a reply.
    """

    CALL = 0
    REPLY = 1


class ReplyStat(enum.IntEnum):
    """
    C{reply_stat}: whether the server accepted the call's RPC version and
    authentication.
    """

    MSG_ACCEPTED = 0
    MSG_DENIED = 1


class AcceptStat(enum.IntEnum):
    """
    C{accept_stat}: the outcome of an accepted call.
    """

    SUCCESS = 0
    PROG_UNAVAIL = 1
    PROG_MISMATCH = 2
    PROC_UNAVAIL = 3
    GARBAGE_ARGS = 4
    SYSTEM_ERR = 5


class RejectStat(enum.IntEnum):
    """
    C{reject_stat}: why a call was denied.
    """

    RPC_MISMATCH = 0
    AUTH_ERROR = 1


class AuthFlavor(enum.IntEnum):
    """
    The well-known authentication flavors (C{auth_flavor}). Other numbers are
    legal on the wire; decoders keep them as plain C{int}s.
    """

    AUTH_NONE = 0
    AUTH_SYS = 1
    AUTH_SHORT = 2
    AUTH_DH = 3
    RPCSEC_GSS = 6
    AUTH_TLS = 7
    """RFC 9289: the credential flavor of the RPC-with-TLS probe."""


class AuthStat(enum.IntEnum):
    """
    C{auth_stat}: why authentication failed (RFC 5531 and RFC 2203). Decoders
    give a member when the number is known here and a plain C{int}
    otherwise.
    """

    AUTH_OK = 0
    AUTH_BADCRED = 1
    AUTH_REJECTEDCRED = 2
    AUTH_BADVERF = 3
    AUTH_REJECTEDVERF = 4
    AUTH_TOOWEAK = 5
    AUTH_INVALIDRESP = 6
    AUTH_FAILED = 7
    AUTH_KERB_GENERIC = 8
    AUTH_TIMEEXPIRE = 9
    AUTH_TKT_FILE = 10
    AUTH_DECODE = 11
    AUTH_NET_ADDR = 12
    RPCSEC_GSS_CREDPROBLEM = 13
    RPCSEC_GSS_CTXPROBLEM = 14


CALL: Final = MsgType.CALL
REPLY: Final = MsgType.REPLY
MSG_ACCEPTED: Final = ReplyStat.MSG_ACCEPTED
MSG_DENIED: Final = ReplyStat.MSG_DENIED
SUCCESS: Final = AcceptStat.SUCCESS
PROG_UNAVAIL: Final = AcceptStat.PROG_UNAVAIL
PROG_MISMATCH: Final = AcceptStat.PROG_MISMATCH
PROC_UNAVAIL: Final = AcceptStat.PROC_UNAVAIL
GARBAGE_ARGS: Final = AcceptStat.GARBAGE_ARGS
SYSTEM_ERR: Final = AcceptStat.SYSTEM_ERR
RPC_MISMATCH: Final = RejectStat.RPC_MISMATCH
AUTH_ERROR: Final = RejectStat.AUTH_ERROR
AUTH_NONE: Final = AuthFlavor.AUTH_NONE
AUTH_SYS: Final = AuthFlavor.AUTH_SYS
AUTH_SHORT: Final = AuthFlavor.AUTH_SHORT
AUTH_DH: Final = AuthFlavor.AUTH_DH
RPCSEC_GSS: Final = AuthFlavor.RPCSEC_GSS
AUTH_TLS: Final = AuthFlavor.AUTH_TLS

# Lookup tables: a dict lookup is cheaper than calling the enum on each
# decode, and gives None for the unknown values we must refuse.
_ACCEPT_STATS: Final = {int(s): s for s in AcceptStat}
_REJECT_STATS: Final = {int(s): s for s in RejectStat}
_AUTH_STATS: Final = {int(s): s for s in AuthStat}

_U32_LIMIT: Final = 1 << 32
"""Every number in these headers is an XDR unsigned int."""

_U32: Final = struct.Struct(">I")
_TWO_U32: Final = struct.Struct(">II")
# xid, msg_type, rpcvers, prog, vers, proc: the fixed part of a call.
_CALL_FIXED: Final = struct.Struct(">6I")
# xid, msg_type, reply_stat: the fixed part of a reply.
_REPLY_FIXED: Final = struct.Struct(">3I")
# After the xid: msg_type, reply_stat, reject_stat, then low and high, or
# the auth_stat.
_DENIED_MISMATCH: Final = struct.Struct(">5I")
_DENIED_AUTH: Final = struct.Struct(">4I")

# Zero bytes that bring an opaque of length n to a multiple of 4, by n % 4.
_PADDING: Final = (b"", b"\0\0\0", b"\0\0", b"\0")

_STARTTLS: Final = b"STARTTLS"
"""RFC 9289 section 4.1: the verifier body that says "go ahead with TLS"."""

Buffer = Union[bytes, bytearray, memoryview]
"""What the decoders read from."""


def _truncated(
    kind: str, what: str, offset: int, needed: int, length: int
) -> MalformedMessage:
    """
    Build the error for a header that ends too early.

    @param kind: C{"call header"} or C{"reply header"}.
    @param what: the field that did not fit.
    @param offset: where that field starts.
    @param needed: how many bytes it needs from there.
    @param length: how long the message is.
    """
    return MalformedMessage(
        f"truncated {kind}: {needed} bytes needed at offset {offset} for "
        f"{what}, but the message is {length} bytes long",
        offset,
    )


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpaqueAuth:
    """
    An C{opaque_auth}: a credential or a verifier.

    @ivar flavor: the authentication flavor (see L{AuthFlavor}); any unsigned
        32-bit number.
    @ivar body: the flavor's data, at most L{MAX_AUTH_BYTES} bytes, without
        the XDR padding. A C{bytearray} or C{memoryview} given here is copied
        into C{bytes}.
    """

    flavor: int
    body: bytes = b""

    def __post_init__(self) -> None:
        """
        Copy the body into C{bytes} and check its length.

        @raise ValueError: if the body is longer than L{MAX_AUTH_BYTES}.
        """
        if type(self.body) is not bytes:
            object.__setattr__(self, "body", bytes(self.body))
        if len(self.body) > MAX_AUTH_BYTES:
            raise ValueError(
                f"opaque_auth body of {len(self.body)} bytes exceeds the "
                f"RFC 5531 limit of {MAX_AUTH_BYTES} bytes"
            )


NULL_AUTH: Final = OpaqueAuth(AuthFlavor.AUTH_NONE, b"")
"""The empty C{AUTH_NONE} credential or verifier."""

STARTTLS_VERIFIER: Final = OpaqueAuth(AuthFlavor.AUTH_NONE, _STARTTLS)
"""
RFC 9289: the reply verifier with which a server accepts the C{AUTH_TLS}
probe.
"""


@dataclass(frozen=True, slots=True)
class CallHeader:
    """
    The header of an RPC call, up to the procedure's arguments.

    @ivar xid: the transaction id the reply will carry.
    @ivar prog: the program number.
    @ivar vers: the program's version.
    @ivar proc: the procedure number (0 is the NULL procedure).
    @ivar cred: the credential.
    @ivar verf: the verifier.
    @ivar rpcvers: the RPC protocol version; a server answers C{RPC_MISMATCH}
        to anything but L{RPC_VERSION}.
    """

    xid: int
    prog: int
    vers: int
    proc: int
    cred: OpaqueAuth = NULL_AUTH
    verf: OpaqueAuth = NULL_AUTH
    rpcvers: int = RPC_VERSION


@dataclass(frozen=True, slots=True)
class AcceptedReply:
    """
    The header of a reply with C{reply_stat} C{MSG_ACCEPTED}.

    @ivar xid: the xid of the call answered.
    @ivar verf: the server's verifier.
    @ivar stat: the outcome; for L{SUCCESS} the results follow the header.
    @ivar low: for L{PROG_MISMATCH} only, the lowest version supported.
    @ivar high: for L{PROG_MISMATCH} only, the highest version supported.
    """

    xid: int
    verf: OpaqueAuth
    stat: AcceptStat
    low: int | None = None
    high: int | None = None

    def __post_init__(self) -> None:
        """
        Check that the version range is given exactly for L{PROG_MISMATCH}.

        @raise ValueError: if it is not, or if C{stat} is not an
            C{accept_stat}.
        """
        stat = AcceptStat(self.stat)
        object.__setattr__(self, "stat", stat)
        _check_range(stat is AcceptStat.PROG_MISMATCH, stat, self.low, self.high)


@dataclass(frozen=True, slots=True)
class DeniedReply:
    """
    The header of a reply with C{reply_stat} C{MSG_DENIED}: the whole reply.

    @ivar xid: the xid of the call answered.
    @ivar stat: L{RPC_MISMATCH} or L{AUTH_ERROR}.
    @ivar low: for L{RPC_MISMATCH} only, the lowest RPC version supported.
    @ivar high: for L{RPC_MISMATCH} only, the highest RPC version supported.
    @ivar auth_stat: for L{AUTH_ERROR} only, why authentication failed (an
        L{AuthStat} when the number is known, else an C{int}).
    """

    xid: int
    stat: RejectStat
    low: int | None = None
    high: int | None = None
    auth_stat: int | None = None

    def __post_init__(self) -> None:
        """
        Check that each kind of denial carries its own data and no other.

        @raise ValueError: if it does not, or if C{stat} is not a
            C{reject_stat}.
        """
        stat = RejectStat(self.stat)
        object.__setattr__(self, "stat", stat)
        is_auth = stat is RejectStat.AUTH_ERROR
        _check_range(not is_auth, stat, self.low, self.high)
        if is_auth and self.auth_stat is None:
            raise ValueError("AUTH_ERROR needs an auth_stat")
        if not is_auth and self.auth_stat is not None:
            raise ValueError(f"auth_stat only goes with AUTH_ERROR, not {stat.name}")


ReplyHeader = Union[AcceptedReply, DeniedReply]
"""What L{decode_reply_header} gives."""


def _check_range(
    wanted: bool, stat: enum.Enum, low: int | None, high: int | None
) -> None:
    """
    Check a C{mismatch_info} pair: present when C{wanted}, absent otherwise.

    The order of C{low} and C{high} is not checked here, so that a decoded
    reply with an empty range (a peer's bug, which libtirpc accepts too) is
    still reported as the mismatch it is; L{reply_for_rejection} checks it
    for the ranges we send.

    @raise ValueError: if not.
    """
    if wanted:
        if low is None or high is None:
            raise ValueError(f"{stat.name} needs low and high (got {low}, {high})")
    elif low is not None or high is not None:
        raise ValueError(f"low/high only go with a mismatch, not {stat.name}")


def _bad_u32(error: struct.error, **fields: object) -> ValueError:
    """
    Turn C{struct}'s complaint about a number into one that names the field.

    @param error: what C{struct} raised.
    @param fields: the numbers that were packed, by name; L{None} ones were
        not packed and are skipped.
    """
    for name, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, int) or not 0 <= value < _U32_LIMIT:
            return ValueError(
                f"{name} must be an unsigned 32-bit integer, not {value!r}"
            )
    return ValueError(str(error))  # pragma: no cover - struct failed otherwise


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


def _pack_auth(auth: OpaqueAuth) -> bytes:
    """
    Encode an C{opaque_auth}: flavor, length, body, zero padding.
    """
    body = auth.body
    return _TWO_U32.pack(auth.flavor, len(body)) + body + _PADDING[len(body) & 3]


def encode_call_header(header: CallHeader) -> bytes:
    """
    Encode the header of a call; the procedure's arguments go after it.

    @param header: the header.
    @return: C{xid}, C{msg_type} CALL, C{rpcvers}, C{prog}, C{vers},
        C{proc}, the credential and the verifier.
    @raise ValueError: if a number does not fit in an unsigned 32-bit integer.
    """
    try:
        return (
            _CALL_FIXED.pack(
                header.xid, CALL, header.rpcvers, header.prog, header.vers, header.proc
            )
            + _pack_auth(header.cred)
            + _pack_auth(header.verf)
        )
    except struct.error as e:
        raise _bad_u32(
            e,
            xid=header.xid,
            rpcvers=header.rpcvers,
            prog=header.prog,
            vers=header.vers,
            proc=header.proc,
            cred_flavor=header.cred.flavor,
            verf_flavor=header.verf.flavor,
        ) from None


def encode_reply_header(reply: ReplyHeader) -> bytes:
    """
    Encode the header of a reply; for an accepted L{SUCCESS} reply the
    results go after it, for any other reply it is the whole message.

    @param reply: the header.
    @return: the encoded header.
    @raise ValueError: if a number does not fit in an unsigned 32-bit integer.
    """
    try:
        if isinstance(reply, AcceptedReply):
            out = (
                _REPLY_FIXED.pack(reply.xid, REPLY, MSG_ACCEPTED)
                + _pack_auth(reply.verf)
                + _U32.pack(reply.stat)
            )
            if reply.low is not None and reply.high is not None:
                out += _TWO_U32.pack(reply.low, reply.high)
            return out
        out = _REPLY_FIXED.pack(reply.xid, REPLY, MSG_DENIED) + _U32.pack(reply.stat)
        if reply.auth_stat is not None:
            return out + _U32.pack(reply.auth_stat)
        assert reply.low is not None and reply.high is not None
        return out + _TWO_U32.pack(reply.low, reply.high)
    except struct.error as e:
        fields: dict[str, object] = {
            "xid": reply.xid,
            "low": reply.low,
            "high": reply.high,
        }
        if isinstance(reply, AcceptedReply):
            fields["verf_flavor"] = reply.verf.flavor
        else:
            fields["auth_stat"] = reply.auth_stat
        raise _bad_u32(e, **fields) from None


def success_reply_header(xid: int, verf: OpaqueAuth = NULL_AUTH) -> bytes:
    """
    Encode the header of an accepted L{SUCCESS} reply, for a server to put
    the results behind.

    @param xid: the xid of the call answered.
    @param verf: the server's verifier.
    @return: the header.
    @raise ValueError: if C{xid} does not fit in an unsigned 32-bit integer.
    """
    return encode_reply_header(AcceptedReply(xid, verf, AcceptStat.SUCCESS))


def reply_for_rejection(
    head: Buffer,
    error: ServerError,
    *,
    low: int | None = None,
    high: int | None = None,
    verf: OpaqueAuth = NULL_AUTH,
) -> bytes:
    """
    Build the whole reply that refuses a call, from the head of its record.

    The xid bytes are copied as they are from C{head}, so this works on
    whatever a L{Rejected} or L{RejectedWith} record kept, without decoding
    the call.

      - C{PROG_UNAVAIL}, C{PROC_UNAVAIL}, C{GARBAGE_ARGS}, C{SYSTEM_ERR}: an
        accepted reply with that C{accept_stat}.
      - C{PROG_MISMATCH}: an accepted reply with the versions supported,
        C{low} to C{high}; both are required.
      - C{RPC_MISMATCH}: a denied reply with the RPC versions supported,
        C{low} to C{high} (both default to 2).
      - The C{AUTH_*} and C{RPCSEC_GSS_*} errors: a denied C{AUTH_ERROR}
        reply with that C{auth_stat}.

    C{low} and C{high} are ignored for the other errors, and C{verf} for
    denied replies (which carry no verifier), so that a server may pass the
    same arguments whatever the error.

    @param head: the record's first 4 bytes (the xid), as C{bytes},
        C{bytearray} or C{memoryview}; bytes past the fourth are ignored.
    @param error: why the call is refused.
    @param low: the lowest version supported, for the mismatches.
    @param high: the highest version supported, for the mismatches.
    @param verf: the verifier of an accepted reply.
    @return: the whole reply message (without record marking).
    @raise ValueError: if C{head} is shorter than 4 bytes (the record was too
        short to carry an xid, so it cannot be answered), if
        C{PROG_MISMATCH} lacks C{low} or C{high}, or if C{low > high}.
    """
    if len(head) < 4:
        raise ValueError(
            f"cannot answer a record of {len(head)} bytes: a reply needs the "
            "4-byte xid"
        )
    xid = bytes(head[:4])
    kind, code = error.value
    try:
        if kind == "accepted":
            if error is ServerError.PROG_MISMATCH:
                tail = _TWO_U32.pack(*_range_to_send(error, low, high))
            else:
                tail = b""
            return (
                xid
                + _TWO_U32.pack(REPLY, MSG_ACCEPTED)
                + _pack_auth(verf)
                + _U32.pack(code)
                + tail
            )
        if kind == "rpc_mismatch":
            low = RPC_VERSION if low is None else low
            high = RPC_VERSION if high is None else high
            return xid + _DENIED_MISMATCH.pack(
                REPLY, MSG_DENIED, RPC_MISMATCH, *_range_to_send(error, low, high)
            )
        return xid + _DENIED_AUTH.pack(REPLY, MSG_DENIED, AUTH_ERROR, code)
    except struct.error as e:
        raise _bad_u32(e, low=low, high=high, verf_flavor=verf.flavor) from None


def _range_to_send(
    error: ServerError, low: int | None, high: int | None
) -> tuple[int, int]:
    """
    Check the version range of a mismatch reply we are about to send.

    @raise ValueError: if C{low} or C{high} is missing, or C{low > high}.
    """
    if low is None or high is None:
        raise ValueError(f"{error.name} needs low and high (got {low}, {high})")
    if low > high:
        raise ValueError(f"{error.name} range is empty: low {low} > high {high}")
    return low, high


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


def _as_bytes_view(data: Buffer) -> Buffer:
    """
    Make sure that lengths and offsets count bytes: a C{memoryview} of
    another format is cast to unsigned bytes.
    """
    if type(data) is memoryview and data.format != "B":
        return data.cast("B")
    return data


def peek_xid(data: Buffer) -> int:
    """
    Read the xid of a message (call or reply) without decoding anything else.

    @param data: the message, or at least its first 4 bytes.
    @return: the xid.
    @raise MalformedMessage: if there are fewer than 4 bytes.
    """
    data = _as_bytes_view(data)
    if len(data) < 4:
        raise _truncated("message", "the xid", 0, 4, len(data))
    xid: int = _U32.unpack_from(data, 0)[0]
    return xid


def _check_msg_type(data: Buffer, expected: MsgType, kind: str) -> None:
    """
    Check C{msg_type}, so that a reply given as a call (or the reverse) is
    reported as such rather than as a truncated or garbled header.

    @raise MalformedMessage: if there are fewer than 8 bytes, or the
        C{msg_type} is not C{expected}.
    """
    if len(data) < 8:
        if len(data) < 4:
            raise _truncated(kind, "the xid", 0, 4, len(data))
        raise _truncated(kind, "msg_type", 4, 4, len(data))
    mtype: int = _U32.unpack_from(data, 4)[0]
    if mtype != expected:
        if mtype in (MsgType.CALL, MsgType.REPLY):
            found = f"a {MsgType(mtype).name} (msg_type {mtype})"
        else:
            found = f"msg_type {mtype}, which is neither CALL (0) nor REPLY (1)"
        raise MalformedMessage(
            f"expected a {expected.name} (msg_type {int(expected)}), got {found} "
            "at offset 4",
            4,
        )


def _read_auth(
    data: Buffer, offset: int, which: str, kind: str
) -> tuple[OpaqueAuth, int]:
    """
    Decode an C{opaque_auth} at C{offset}.

    @param which: C{"credential"} or C{"verifier"}, for messages.
    @param kind: C{"call header"} or C{"reply header"}, for messages.
    @return: the value and the offset after it (and its padding).
    @raise MalformedMessage: if it is truncated or its body is too long.
    """
    length_of_data = len(data)
    if length_of_data < offset + 8:
        raise _truncated(
            kind, f"the {which} flavor and length", offset, 8, length_of_data
        )
    flavor, length = _TWO_U32.unpack_from(data, offset)
    if length > MAX_AUTH_BYTES:
        raise MalformedMessage(
            f"{kind}: {which} body length {length} at offset {offset + 4} exceeds "
            f"the RFC 5531 limit of {MAX_AUTH_BYTES} bytes",
            offset + 4,
        )
    offset += 8
    padded = (length + 3) & ~3
    if length_of_data < offset + padded:
        raise _truncated(
            kind,
            f"the {which} body ({length} bytes, padded)",
            offset,
            padded,
            length_of_data,
        )
    # Padding bytes are not checked (see the module docstring).
    return OpaqueAuth(flavor, bytes(data[offset : offset + length])), offset + padded


def decode_call_header(data: Buffer) -> tuple[CallHeader, int]:
    """
    Decode the header of a call.

    @param data: the message (or at least its header).
    @return: the header, and the offset where the procedure's arguments
        begin.
    @raise MalformedMessage: if the message is not a call, is truncated, or
        has an opaque_auth body longer than L{MAX_AUTH_BYTES}. An C{rpcvers}
        other than 2 is not an error: see L{CallHeader.rpcvers}.
    """
    data = _as_bytes_view(data)
    kind = "call header"
    _check_msg_type(data, MsgType.CALL, kind)
    if len(data) < _CALL_FIXED.size:
        # Name the first field that does not fit.
        names = ("rpcvers", "prog", "vers", "proc")
        offset = len(data) & ~3
        raise _truncated(kind, names[offset // 4 - 2], offset, 4, len(data))
    xid, _, rpcvers, prog, vers, proc = _CALL_FIXED.unpack_from(data, 0)
    cred, offset = _read_auth(data, _CALL_FIXED.size, "credential", kind)
    verf, offset = _read_auth(data, offset, "verifier", kind)
    return CallHeader(xid, prog, vers, proc, cred, verf, rpcvers), offset


_Stat = TypeVar("_Stat", AcceptStat, RejectStat)


def _read_stat(
    data: Buffer,
    offset: int,
    kind: str,
    field: str,
    table: Mapping[int, _Stat],
    defined: str,
) -> tuple[_Stat, int]:
    """
    Read the status word C{field} at C{offset}: its value in C{table} and
    the offset after it; a truncated or unknown word is malformed.
    """
    if len(data) < offset + 4:
        raise _truncated(kind, field, offset, 4, len(data))
    value: int = _U32.unpack_from(data, offset)[0]
    stat = table.get(value)
    if stat is None:
        raise MalformedMessage(
            f"{kind}: unknown {field} {value} at offset {offset} (RFC 5531 defines {defined})",
            offset,
        )
    return stat, offset + 4


def _read_range(data: Buffer, offset: int, kind: str) -> tuple[int, int]:
    """
    Read a C{mismatch_info} (low, high) at C{offset}.
    """
    if len(data) < offset + 8:
        raise _truncated(kind, "mismatch_info (low, high)", offset, 8, len(data))
    low, high = _TWO_U32.unpack_from(data, offset)
    return low, high


def decode_reply_header(data: Buffer) -> tuple[ReplyHeader, int]:
    """
    Decode the header of a reply.

    @param data: the message (or at least its header).
    @return: the header, and the offset where it ends: where the results
        begin for an accepted L{SUCCESS} reply; for the other replies,
        nothing should follow.
    @raise MalformedMessage: if the message is not a reply, is truncated,
        has an unknown C{reply_stat}, C{accept_stat} or C{reject_stat}, or has
        a verifier body longer than L{MAX_AUTH_BYTES}.
    """
    data = _as_bytes_view(data)
    kind = "reply header"
    size = len(data)
    _check_msg_type(data, MsgType.REPLY, kind)
    if size < _REPLY_FIXED.size:
        raise _truncated(kind, "reply_stat", 8, 4, size)
    xid, _, reply_stat = _REPLY_FIXED.unpack_from(data, 0)
    if reply_stat == MSG_ACCEPTED:
        verf, offset = _read_auth(data, _REPLY_FIXED.size, "verifier", kind)
        stat, offset = _read_stat(
            data, offset, kind, "accept_stat", _ACCEPT_STATS, "0 to 5"
        )
        if stat is AcceptStat.PROG_MISMATCH:
            low, high = _read_range(data, offset, kind)
            return AcceptedReply(xid, verf, stat, low, high), offset + 8
        return AcceptedReply(xid, verf, stat), offset
    if reply_stat == MSG_DENIED:
        reject, offset = _read_stat(
            data, _REPLY_FIXED.size, kind, "reject_stat", _REJECT_STATS, "0 and 1"
        )
        if reject is RejectStat.RPC_MISMATCH:
            low, high = _read_range(data, offset, kind)
            return DeniedReply(xid, reject, low, high), offset + 8
        if size < offset + 4:
            raise _truncated(kind, "auth_stat", offset, 4, size)
        value = _U32.unpack_from(data, offset)[0]
        auth_stat: int = _AUTH_STATS.get(value, value)
        return DeniedReply(xid, reject, auth_stat=auth_stat), offset + 4
    raise MalformedMessage(
        f"{kind}: unknown reply_stat {reply_stat} at offset 8 "
        "(MSG_ACCEPTED is 0, MSG_DENIED is 1)",
        8,
    )


# ---------------------------------------------------------------------------
# RFC 9289: RPC-with-TLS
# ---------------------------------------------------------------------------

_TLS_CRED: Final = OpaqueAuth(AuthFlavor.AUTH_TLS, b"")


def encode_tls_probe(xid: int, prog: int, vers: int) -> bytes:
    """
    Encode the RFC 9289 C{AUTH_TLS} probe: a call to the NULL procedure
    (0) whose credential is C{AUTH_TLS} with an empty body and whose verifier
    is C{AUTH_NONE} with an empty body. The NULL procedure takes no
    arguments, so this is the whole message.

    @param xid: the call's xid.
    @param prog: the program the client means to use over TLS.
    @param vers: its version.
    @return: the message (without record marking).
    @raise ValueError: if a number does not fit in an unsigned 32-bit integer.
    """
    return encode_call_header(CallHeader(xid, prog, vers, 0, _TLS_CRED, NULL_AUTH))


def is_tls_probe(header: CallHeader) -> bool:
    """
    Tell whether a call is a well-formed RFC 9289 C{AUTH_TLS} probe.

    It must be an RPC version 2 call to the NULL procedure with an empty
    C{AUTH_TLS} credential and an empty C{AUTH_NONE} verifier, as the Linux
    server requires. A call that uses C{AUTH_TLS} in any other way is not a
    probe; a server should deny it (C{AUTH_BADCRED} or C{AUTH_BADVERF}).

    @param header: the decoded call header.
    @return: C{True} for a probe.
    """
    return (
        header.cred == _TLS_CRED
        and header.proc == 0
        and header.verf == NULL_AUTH
        and header.rpcvers == RPC_VERSION
    )


def starttls_reply(xid: int) -> bytes:
    """
    Encode the answer of a server that accepts the C{AUTH_TLS} probe: an
    accepted L{SUCCESS} reply whose verifier is C{AUTH_NONE} with the body
    C{STARTTLS}, and no results. The TLS handshake follows it on the same
    connection.

    @param xid: the probe's xid.
    @return: the whole reply message (without record marking).
    @raise ValueError: if C{xid} does not fit in an unsigned 32-bit integer.
    """
    return success_reply_header(xid, STARTTLS_VERIFIER)


# The words of a call whose credential is AUTH_TLS: msg_type CALL at offset
# 4, the credential's flavor at offset 24 (RFC 5531 section 9).
_CALL_WORD: Final = b"\0\0\0\0"
_AUTH_TLS_WORD: Final = b"\0\0\0\x07"


def looks_like_auth_tls(message: bytes) -> bool:
    """
    Whether C{message} is a call with an C{AUTH_TLS} credential, by two
    words: cheap enough for every record a server reads.
    """
    return message[24:28] == _AUTH_TLS_WORD and message[4:8] == _CALL_WORD


@dataclass(frozen=True)
class TLSProbeAnswer:
    """
    What a server answers to a call with an C{AUTH_TLS} credential.

    @ivar reply: the reply message (without record marking).
    @ivar upgrade: whether the TLS handshake follows the reply (the answer
        is C{STARTTLS}).
    """

    reply: bytes
    upgrade: bool


def answer_tls_probe(message: bytes, offers_tls: bool, tls_on: bool) -> TLSProbeAnswer | None:
    """
    The server's answer to a call with an C{AUTH_TLS} credential (RFC 9289
    section 4.1), or L{None} when C{message} is not one after all (the
    application gets it).

    @param offers_tls: whether this server can start TLS.
    @param tls_on: whether the connection already is TLS (or on its way).
    """
    try:
        header, _ = decode_call_header(message)
    except MalformedMessage:
        return None
    if header.cred.flavor != AuthFlavor.AUTH_TLS:
        return None
    if not is_tls_probe(header) or tls_on:
        # A probe with a body, on another procedure, or on a connection that
        # is already TLS.
        return TLSProbeAnswer(reply_for_rejection(message[:4], ServerError.AUTH_BADCRED), False)
    if not offers_tls:
        # No TLS here: an accepted reply without STARTTLS, as Linux answers,
        # so that the client fails fast.
        return TLSProbeAnswer(success_reply_header(header.xid), False)
    return TLSProbeAnswer(starttls_reply(header.xid), True)


def starttls_refusal(answer: InRecord | EndOfFile, xid: int) -> str | None:
    """
    Why the answer to our C{AUTH_TLS} probe of C{xid} is not C{STARTTLS}, or
    L{None} if it is.

    @param answer: the record read after the probe, or
        L{END_OF_FILE <rpctransport.sansio.types.END_OF_FILE>}.
    """
    if answer is END_OF_FILE:
        return "the server closed the connection instead of answering the AUTH_TLS probe"
    if type(answer) is not Accepted:
        return f"the answer to the AUTH_TLS probe was {answer!r}"
    try:
        reply, _ = decode_reply_header(answer.message)
    except MalformedMessage as e:
        return f"the answer to the AUTH_TLS probe is not an RPC reply: {e}"
    if reply.xid != xid:
        return f"the answer has xid {reply.xid:#010x}, the probe {xid:#010x}"
    if type(reply) is not AcceptedReply or reply.stat != AcceptStat.SUCCESS:
        return f"the server answered the AUTH_TLS probe with {reply}"
    if reply.verf != STARTTLS_VERIFIER:
        return (
            "the server does not offer RPC-with-TLS: its verifier is flavor "
            f"{reply.verf.flavor} with {len(reply.verf.body)} bytes, not STARTTLS"
        )
    return None
