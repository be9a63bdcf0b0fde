# -*- test-case-name: rpctransport.test.test_tls -*-
"""
Layer 3: TLS in the stream controller, as a mixin.

L{TLSHandling} holds what a L{StreamController
<rpctransport.adapters.stream.StreamController>} does about TLS: it hears
from Twisted's TLS layer when the handshake completed (C{IHandshakeListener})
and checks ALPN; it times out stalled handshakes; and it speaks RFC 9289
(RPC-with-TLS): C{start_tls} on the client, the answer to C{AUTH_TLS}
probes on the server. Twisted's TLS layer does the TLS itself.
"""

from __future__ import annotations

import enum
import os
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, ITLSTransport
from twisted.python.failure import Failure

from ..sansio.errors import (
    ALPNMismatch,
    ControllerBusy,
    HandshakeTimeout,
    LocalProtocolError,
    PlaintextInjection,
    StartTLSRefused,
)
from ..sansio.record import RecordReader, encode_record
from ..sansio.rpcmsg import (
    STARTTLS_VERIFIER,
    AcceptedReply,
    AcceptStat,
    AuthFlavor,
    MalformedMessage,
    decode_call_header,
    decode_reply_header,
    encode_tls_probe,
    is_tls_probe,
    reply_for_rejection,
    starttls_reply,
    success_reply_header,
)
from ..sansio.types import END_OF_FILE, Accepted, ServerError
from ._common import Life, Side, check_usable
from ._timer import InactivityTimer
from .tls import SUNRPC_ALPN, tls_connection

if TYPE_CHECKING:
    from twisted.internet.interfaces import ITransport

__all__ = ["DEFAULT_HANDSHAKE_TIMEOUT", "TLSHandling", "TLSState", "looks_like_auth_tls"]

DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
"""
Seconds a TLS handshake may take before the connection is dropped: a peer
that stalls mid-handshake holds a connection and its buffers for nothing.
"""

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


class TLSState(enum.Enum):
    """
    Where the connection is with TLS.

    C{PLAIN} -> C{PROBING} (our RFC 9289 probe is out) -> C{PLAIN} (refused)
    or C{HANDSHAKING}; C{PLAIN} -> C{HANDSHAKING} (implicit TLS, or a probe
    answered on the server side) -> C{ESTABLISHED}.
    """

    PLAIN = "plain"
    PROBING = "probing"
    HANDSHAKING = "handshaking"
    ESTABLISHED = "established"


class TLSHandling:
    """
    The TLS side of a stream controller (see the module docstring).

    A subclass provides the controller's state (C{transport}, C{_life},
    C{_reader}, C{_read_side}, C{_write_side}, C{_read_d}, C{_write_d},
    C{_pushed_back}, C{_timer}, C{_reactor}), the operations C{start_writing},
    C{start_reading}, C{_busy} and C{_abort_with}, and calls
    L{_init_tls} from its constructor.
    """

    transport: ITransport | None
    _life: Life
    _reader: RecordReader
    _read_side: Side
    _write_side: Side
    _read_d: Deferred[Any] | None
    _write_d: Deferred[None] | None
    _pushed_back: bool
    _timer: InactivityTimer
    _reactor: Any

    def _init_tls(
        self,
        starttls: Any,
        recognise_probes: bool,
        require_alpn: bool | None,
        handshake_timeout: float,
    ) -> None:
        self._tls = TLSState.PLAIN
        self._starttls = starttls
        self._recognise_probes = recognise_probes or starttls is not None
        self._require_alpn = require_alpn
        self._via_starttls = False
        self.handshake_timeout = handshake_timeout
        self._handshake_call: IDelayedCall | None = None
        self._tls_waiter: Deferred[None] | None = None

    if TYPE_CHECKING:

        def start_writing(self, message: Any, addr: object = ...) -> Deferred[None]: ...

        def start_reading(
            self, peek: Any = None, before_record: Any = None
        ) -> Deferred[Any]: ...

        def _busy(self) -> bool: ...

        def _abort_with(self, error: Exception) -> None: ...

    # IHandshakeListener: Twisted's TLS layer tells us when it is ready.

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake completed: check ALPN when it is required, then let
        waiting writes (and a waiting C{start_tls}) go on.
        """
        if self._life is not Life.OPEN or self._tls is not TLSState.HANDSHAKING:
            return
        self._cancel_handshake_timer()
        require = self._via_starttls if self._require_alpn is None else self._require_alpn
        if require:
            connection = tls_connection(self.transport)
            negotiated = None
            if connection is not None:
                negotiated = connection.get_alpn_proto_negotiated() or None
            if negotiated != SUNRPC_ALPN:
                self._abort_with(ALPNMismatch(SUNRPC_ALPN, negotiated))
                return
        self._tls = TLSState.ESTABLISHED
        self._timer.activity(self._busy())
        if not self._pushed_back:
            d, self._write_d = self._write_d, None
            if d is not None:
                d.callback(None)
        waiter, self._tls_waiter = self._tls_waiter, None
        if waiter is not None:
            waiter.callback(None)

    def _begin_handshake(self) -> None:
        self._tls = TLSState.HANDSHAKING
        self._handshake_call = self._reactor.callLater(
            self.handshake_timeout, self._handshake_expired
        )

    def _handshake_expired(self) -> None:
        self._handshake_call = None
        if self._tls is TLSState.HANDSHAKING and self._life is Life.OPEN:
            self._abort_with(HandshakeTimeout(self.handshake_timeout))

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_call is not None:
            if self._handshake_call.active():
                self._handshake_call.cancel()
            self._handshake_call = None

    # -- RPC-with-TLS (RFC 9289) ----------------------------------------------

    def start_tls(
        self,
        options: Any,
        program: int,
        version: int,
        *,
        require_alpn: bool = True,
    ) -> Deferred[None]:
        """
        Upgrade this plaintext connection to TLS as RFC 9289 says: send the
        C{AUTH_TLS} probe (a NULL call of C{program} and C{version}), check
        that the server answers C{STARTTLS}, then start the TLS handshake on
        the same connection.

        @param options: client TLS options, such as
            C{optionsForClientTLS(hostname, trustRoot,
            acceptableProtocols=[b"sunrpc"])} (see
            L{rpctransport.client_tls_options}).
        @param program: the program number to probe with.
        @param version: its version.
        @param require_alpn: refuse a session that did not negotiate ALPN
            C{sunrpc}.
        @return: a Deferred that fires when the handshake is done; it fails
            with L{StartTLSRefused} when the server did not answer
            C{STARTTLS} (the connection is then left as it was, for the
            caller to decide), or with the TLS error.
        @raise ControllerBusy: a read or write is pending, or TLS is already
            on.
        @raise LocalProtocolError: the transport cannot start TLS.
        """
        check_usable(self._life, self._read_side, "start_tls", "reader")
        check_usable(self._life, self._write_side, "start_tls", "writer")
        if self._tls is not TLSState.PLAIN:
            raise ControllerBusy(f"start_tls: TLS is already {self._tls.value}")
        if self._read_d is not None or self._write_d is not None:
            raise ControllerBusy("start_tls: a read or write is pending")
        if not ITLSTransport.providedBy(self.transport):
            raise LocalProtocolError(f"start_tls: the transport {self.transport!r} cannot start TLS")
        xid = int.from_bytes(os.urandom(4), "big")
        self._tls = TLSState.PROBING
        done: Deferred[None] = Deferred()
        self.start_writing(encode_tls_probe(xid, program, version))
        reading = self.start_reading()

        def answered(result: Any) -> None:
            self._tls = TLSState.PLAIN
            refusal = self._starttls_refusal(result, xid)
            if refusal is not None:
                done.errback(StartTLSRefused(refusal))
                return
            if self._reader.buffered:
                error = PlaintextInjection(self._reader.buffered, "server's STARTTLS answer")
                self._abort_with(error)
                done.errback(error)
                return
            self._via_starttls = True
            self._require_alpn = require_alpn
            self._tls_waiter = done
            self._begin_handshake()
            try:
                self._start_tls_as(options, client=True)
            except Exception as e:
                # Options Twisted cannot use: the server now expects a
                # handshake that will not come.
                self._tls_waiter = None
                self._abort_with(e)
                done.errback(e)

        def failed(reason: Failure) -> None:
            if self._tls is TLSState.PROBING:
                self._tls = TLSState.PLAIN
            done.errback(reason)

        reading.addCallbacks(answered, failed)
        return done

    def _start_tls_as(self, options: Any, client: bool) -> None:
        """
        Start TLS on the transport as the TLS client or the TLS server.

        Twisted's C{startTLS} goes the way the connection was made unless
        told otherwise, and takes an adopted socket for an accepted one; in
        RFC 9289 the side that probed is the TLS client either way.
        (C{_tlsClientDefault} is the flag Twisted's C{startTLS} itself reads;
        C{test_tls} runs STARTTLS on adopted sockets, so a change in Twisted
        shows there.)
        """
        transport: Any = self.transport
        made_as_client = getattr(transport, "_tlsClientDefault", None)
        if made_as_client is None:
            transport.startTLS(options)
        else:
            transport.startTLS(options, made_as_client == client)

    @staticmethod
    def _starttls_refusal(result: Any, xid: int) -> str | None:
        """
        Why a reply to our probe is not C{STARTTLS}, or L{None} if it is.
        """
        if result is END_OF_FILE:
            return "the server closed the connection instead of answering the AUTH_TLS probe"
        record = result[0]
        if type(record) is not Accepted:
            return f"the answer to the AUTH_TLS probe was {record!r}"
        try:
            reply, _ = decode_reply_header(record.message)
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

    def _answer_auth_tls(self, message: bytes) -> bool:
        """
        Answer a call with an C{AUTH_TLS} credential on the server side;
        L{False} if it is not one after all (the application gets it).
        """
        try:
            header, _ = decode_call_header(message)
        except MalformedMessage:
            return False
        if header.cred.flavor != AuthFlavor.AUTH_TLS:
            return False
        assert self.transport is not None
        head = message[:4]
        if not is_tls_probe(header) or self._tls is not TLSState.PLAIN:
            # A probe with a body, on another procedure, or on a connection
            # that is already TLS (RFC 9289 section 4.1).
            reply = reply_for_rejection(head, ServerError.AUTH_BADCRED)
        elif self._starttls is None:
            # No TLS here: an accepted reply without STARTTLS, as Linux
            # answers, so that the client fails fast.
            reply = success_reply_header(header.xid)
        elif self._reader.buffered:
            self._abort_with(PlaintextInjection(self._reader.buffered, "client's AUTH_TLS probe"))
            return True
        else:
            self.transport.writeSequence(encode_record(starttls_reply(header.xid)))
            self._via_starttls = True
            self._begin_handshake()
            try:
                self._start_tls_as(self._starttls, client=False)
            except Exception as e:
                self._abort_with(e)
            return True
        self.transport.writeSequence(encode_record(reply))
        return True
