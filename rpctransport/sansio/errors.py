# -*- test-case-name: rpctransport.test.test_errors -*-
"""
The errors of rpctransport: one root, two families.

L{TransportError} is the root. L{RpcCallError} and its subclasses are the
answers of an RPC call that are errors, with their RFC 5531 numbers: what
the RPC client fails a call with, and what a server's handler raises to give
that answer. L{RemoteProtocolError} and its subclasses say
that the peer broke RFC 5531 (or sent something that is not RPC at all); they
arrive as failed Deferreds, and the connection they came on is closed.
L{LocalProtocolError} and its subclasses say that our caller misused the API;
they are raised at once. Connection trouble reuses Twisted's own
C{ConnectionDone}/C{ConnectionLost}.

Every message says what happened with its numbers: sizes, limits, peers.
"""

from __future__ import annotations

__all__ = [
    "ALPNMismatch",
    "AddressMismatch",
    "AuthError",
    "CallTimeout",
    "GarbageArguments",
    "ProcedureUnavailable",
    "ProgramMismatch",
    "ProgramUnavailable",
    "RpcCallError",
    "RpcVersionMismatch",
    "ServerSystemError",
    "AddressRequired",
    "ControllerBusy",
    "ControllerInactive",
    "DatagramTooLarge",
    "DeadlineExceeded",
    "Evicted",
    "HandshakeTimeout",
    "IdleTimeout",
    "IncompleteRecord",
    "LocalProtocolError",
    "MalformedMessage",
    "MalformedRecord",
    "NotConnected",
    "PlaintextInjection",
    "RecordDeadlineExceeded",
    "RecordTooLarge",
    "RemoteProtocolError",
    "SendFailed",
    "StartTLSRefused",
    "TransportError",
    "WriteDeadlineExceeded",
]


class TransportError(Exception):
    """
    The root of every error rpctransport raises or fails a Deferred with.
    """


class RemoteProtocolError(TransportError):
    """
    The peer sent something RFC 5531 does not allow, or that exceeds a limit.
    The connection it came on is not usable any more.
    """


class LocalProtocolError(TransportError):
    """
    The caller used the API in a way it does not allow.
    """


class RecordTooLarge(RemoteProtocolError):
    """
    A record being accepted announced more bytes than C{max_record_size}.

    @ivar size: the total size announced so far, in bytes.
    @ivar limit: the limit it crossed.
    @ivar looks_like: what the bytes look like if they are not RPC at all
        (for example C{"an HTTP request"}), or L{None}.
    """

    def __init__(self, size: int, limit: int, looks_like: str | None = None) -> None:
        self.size = size
        self.limit = limit
        self.looks_like = looks_like
        message = (
            f"record of at least {size} bytes exceeds max_record_size of {limit} bytes"
        )
        if looks_like is not None:
            message += f"; the bytes look like {looks_like}, not ONC RPC"
        super().__init__(message)


class MalformedRecord(RemoteProtocolError):
    """
    The record marking is not acceptable: too many fragments in one record,
    or too many empty fragments in a row.
    """


class MalformedMessage(RemoteProtocolError):
    """
    An RPC message header is truncated or breaks RFC 5531.

    @ivar offset: where in the message the problem was found, in bytes.
    """

    def __init__(self, message: str, offset: int) -> None:
        self.offset = offset
        super().__init__(message)


class IncompleteRecord(RemoteProtocolError):
    """
    The stream ended inside a record (inside a record mark or a fragment).

    @ivar received: bytes of the record received (record marks included).
    @ivar expected: bytes announced by the marks seen (record marks included),
        a lower bound when the record was not complete.
    """

    def __init__(self, received: int, expected: int, where: str) -> None:
        super().__init__(
            f"connection closed inside a record ({where}): "
            f"received {received} of at least {expected} bytes"
        )
        self.received = received
        self.expected = expected


class ControllerBusy(LocalProtocolError):
    """
    A read (or write) was started while another one was still pending.
    """


class ControllerInactive(LocalProtocolError):
    """
    The controller was inactivated, or its reader and writer were aborted.
    """


class NotConnected(LocalProtocolError):
    """
    The socket has no fixed peer (an unconnected datagram socket).
    """


class AddressMismatch(LocalProtocolError):
    """
    A write named an address other than the connection's peer.
    """


class AddressRequired(LocalProtocolError):
    """
    A write on a datagram socket with no fixed peer did not say where to send
    the message (it passed C{IMPLIED}).
    """


class DatagramTooLarge(LocalProtocolError):
    """
    A message to send does not fit in one datagram; nothing was sent.

    @ivar size: the message's size, in bytes.
    @ivar limit: the largest message the socket sends, in bytes.
    """

    def __init__(self, size: int, limit: int, why: str = "") -> None:
        self.size = size
        self.limit = limit
        message = f"message of {size} bytes does not fit in one datagram of at most {limit} bytes"
        if why:
            message += f" ({why})"
        super().__init__(message + "; nothing was sent")


class StartTLSRefused(RemoteProtocolError):
    """
    The server did not answer an RFC 9289 C{AUTH_TLS} probe with
    C{STARTTLS}; the connection is left as it was.
    """


class PlaintextInjection(RemoteProtocolError):
    """
    Plaintext bytes followed the RFC 9289 probe or its answer before the TLS
    handshake: they would have been taken as part of the TLS session, so the
    connection is closed.

    @ivar count: how many such bytes there were.
    """

    def __init__(self, count: int, where: str) -> None:
        self.count = count
        super().__init__(
            f"{count} plaintext bytes were pipelined behind the {where} before the "
            "TLS handshake (a possible injection); closing the connection"
        )


class DeadlineExceeded(RemoteProtocolError):
    """
    The peer held the connection in one state longer than its deadline
    allows; the connection is closed.

    @ivar seconds: the deadline, in seconds.
    """

    seconds: float


class HandshakeTimeout(DeadlineExceeded):
    """
    The TLS handshake did not complete in time.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the TLS handshake did not complete within {seconds:g} s")


class ALPNMismatch(RemoteProtocolError):
    """
    The TLS handshake did not negotiate the ALPN protocol required.
    """

    def __init__(self, required: bytes, negotiated: bytes | None) -> None:
        self.required = required
        self.negotiated = negotiated
        super().__init__(
            f"the TLS handshake negotiated ALPN {negotiated!r}, not the required {required!r}"
        )


class RecordDeadlineExceeded(DeadlineExceeded):
    """
    A record whose first record mark had arrived was not complete within the
    record deadline (a peer trickling a record, or one that stopped halfway).

    @ivar received: the bytes of the record received so far (marks included).
    """

    def __init__(self, seconds: float, received: int) -> None:
        self.seconds = seconds
        self.received = received
        super().__init__(
            f"a record was not complete within {seconds:g} s "
            f"(record_deadline; {received} bytes of it received)"
        )


class IdleTimeout(DeadlineExceeded):
    """
    The connection sent nothing for its idle timeout while nothing else was in
    progress on it.

    @ivar proven: whether the connection had ever sent a whole record (the
        timeout is shorter for one that has not).
    """

    def __init__(self, seconds: float, proven: bool, setting: str = "idle_timeout") -> None:
        self.seconds = seconds
        self.proven = proven
        before = "" if proven else " before its first whole record"
        super().__init__(f"the connection was idle for {seconds:g} s{before} ({setting})")


class WriteDeadlineExceeded(DeadlineExceeded):
    """
    The peer did not read a reply within the write deadline; the connection is
    closed and what it pinned released.

    @ivar pending: bytes the transport still held for the peer, when known.
    """

    def __init__(self, seconds: float, pending: int | None) -> None:
        self.seconds = seconds
        self.pending = pending
        held = "" if pending is None else f"; {pending} bytes not yet sent"
        super().__init__(
            f"the peer did not drain a write within {seconds:g} s (write_deadline{held})"
        )


class Evicted(TransportError):
    """
    The listener closed this connection to make room for a new one, at its
    C{max_connections}.

    @ivar why: which class of connection it was evicted as (C{"unproven"},
        C{"idle"}, C{"oldest"}).
    @ivar limit: the listener's C{max_connections}.
    """

    def __init__(self, why: str, limit: int, detail: str = "") -> None:
        self.why = why
        self.limit = limit
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"evicted as the {why} connection to admit a new one at "
            f"max_connections {limit}{extra}"
        )


class SendFailed(TransportError):
    """
    A datagram could not be sent to one destination (C{sendto} refused it:
    port 0, an unreachable network, ...). Only that write fails; the socket
    and its other peers are untouched.

    @ivar address: the destination.
    @ivar errno: the C{errno} of the failure, when there was one.
    """

    def __init__(self, address: object, errno: int | None, why: str) -> None:
        self.address = address
        self.errno = errno
        host, port = getattr(address, "host", None), getattr(address, "port", None)
        if host is not None and port is not None:
            shown = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        else:
            shown = str(address)
        super().__init__(f"could not send a datagram to {shown}: {why}")


# -- Answers of RPC calls that are errors ---------------------------------------


class RpcCallError(TransportError):
    """
    An RPC call was answered with an error (RFC 5531 section 9: an accepted
    reply whose C{accept_stat} is not SUCCESS, or a rejected reply), or got
    no answer in time. The connection stays usable.

    A server's procedure handler raises one of the subclasses to answer its
    call with that error; an RPC client fails the call's Deferred with it.
    """


class ProgramUnavailable(RpcCallError):
    """
    PROG_UNAVAIL (1): the server does not serve the program.
    """

    def __init__(self, program: int) -> None:
        self.program = program
        super().__init__(f"program {program} ({program:#x}) is not available (PROG_UNAVAIL)")


class ProgramMismatch(RpcCallError):
    """
    PROG_MISMATCH (2): the server serves the program, in versions C{low} to
    C{high} only.
    """

    def __init__(self, program: int, version: int, low: int, high: int) -> None:
        self.program = program
        self.version = version
        self.low = low
        self.high = high
        super().__init__(
            f"program {program} ({program:#x}) version {version} is not served: versions "
            f"{low} to {high} are (PROG_MISMATCH)"
        )


class ProcedureUnavailable(RpcCallError):
    """
    PROC_UNAVAIL (3): the program has no such procedure.
    """

    def __init__(self, procedure: int) -> None:
        self.procedure = procedure
        super().__init__(f"procedure {procedure} is not available (PROC_UNAVAIL)")


class GarbageArguments(RpcCallError):
    """
    GARBAGE_ARGS (4): the server could not decode the arguments.
    """

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        extra = f": {detail}" if detail else ""
        super().__init__(f"the server could not decode the arguments (GARBAGE_ARGS){extra}")


class ServerSystemError(RpcCallError):
    """
    SYSTEM_ERR (5): the server failed for a reason of its own (out of
    memory, a handler that raised something else).
    """

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        extra = f": {detail}" if detail else ""
        super().__init__(f"the server failed to run the procedure (SYSTEM_ERR){extra}")


class RpcVersionMismatch(RpcCallError):
    """
    A rejected reply, RPC_MISMATCH (0): the server speaks RPC versions
    C{low} to C{high}, not 2.
    """

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high
        super().__init__(f"the server speaks RPC versions {low} to {high}, not 2 (RPC_MISMATCH)")


class AuthError(RpcCallError):
    """
    A rejected reply, AUTH_ERROR (1), with the reason: an
    C{rpctransport.sansio.rpcmsg.AuthStat} number (1 AUTH_BADCRED, 2
    AUTH_REJECTEDCRED, 5 AUTH_TOOWEAK, ...).
    """

    def __init__(self, stat: int, name: str = "") -> None:
        self.stat = stat
        label = f" {name}" if name else ""
        super().__init__(f"the server refused the credential: auth_stat {stat}{label} (AUTH_ERROR)")


class CallTimeout(RpcCallError):
    """
    No reply came within the call's timeout; its slot is free again.
    """

    def __init__(self, seconds: float, xid: int, sent: int = 1) -> None:
        self.seconds = seconds
        self.xid = xid
        self.sent = sent
        times = f", sent {sent} times" if sent > 1 else ""
        super().__init__(f"no reply within {seconds:g} s (xid {xid:#010x}{times})")
