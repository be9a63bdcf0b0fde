# -*- test-case-name: rpctransport.test.test_tls -*-
"""
Layer 3: TLS in the stream controller, as an object the controller holds.

L{TLSDriver} does what a L{StreamController
<rpctransport.adapters.stream.StreamController>} does about TLS: it times
out stalled handshakes and checks ALPN when Twisted's TLS layer says the
handshake completed; it speaks RFC 9289 (RPC-with-TLS): C{start_tls} on the
client, the answer to C{AUTH_TLS} probes on the server, each starting TLS so
that ALPN C{sunrpc} is offered and accepted whatever the options say; and it
describes the established session. The TLS state itself is the connection's
(L{rpctransport.sansio.connection.TLSState}); the probe's bytes and the
answer's check are L{rpctransport.sansio.rpcmsg}'s; Twisted's TLS layer does
the TLS.
"""

from __future__ import annotations

import enum
import os
from typing import Any, Final, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, ITLSTransport
from twisted.python.failure import Failure

from ..sansio.connection import StreamConnection, TLSState
from ..sansio.errors import (
    ALPNMismatch,
    ControllerBusy,
    HandshakeTimeout,
    LocalProtocolError,
    PlaintextInjection,
    StartTLSRefused,
)
from ..sansio.record import encode_record
from ..sansio.rpcmsg import TLSProbeAnswer, encode_tls_probe, starttls_refusal
from ._twisted import start_tls_as
from .tls import (
    SUNRPC_ALPN,
    SunRPCConnectionCreator,
    TLSOptions,
    TLSSessionProps,
    session_props,
    tls_connection,
)

__all__ = ["DEFAULT_HANDSHAKE_TIMEOUT", "TLSDriver", "TLSHost", "TLSOrigin"]

DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
"""
Seconds a TLS handshake may take before the connection is dropped: a peer
that stalls mid-handshake holds a connection and its buffers for nothing.
"""


class TLSOrigin(enum.Enum):
    """
    How TLS came to the connection: not at all (yet), from the first byte,
    or through RFC 9289's STARTTLS (which requires ALPN by default).
    """

    NONE = "none"
    IMPLICIT = "implicit"
    STARTTLS = "starttls"


class TLSHost(Protocol):
    """
    What a L{TLSDriver} needs from the controller that holds it.
    """

    transport: Any

    @property
    def reactor(self) -> Any:
        """The reactor for the handshake timer."""

    @property
    def connection(self) -> StreamConnection:
        """The connection's state."""

    @property
    def reading(self) -> bool:
        """Whether a read is pending."""

    @property
    def writing(self) -> bool:
        """Whether a write is pending."""

    def start_writing(self, message: Any, addr: object = ...) -> Deferred[None]:
        """Send one record."""

    def start_reading(self, peek: Any = None, before_record: Any = None) -> Deferred[Any]:
        """Read one record."""

    def abort_with(self, error: Exception, quiet: bool = False) -> None:
        """Close the connection because of C{error}."""

    def hand_over_writes(self) -> None:
        """Hand the records held for the end of the turn to the transport."""

    def tls_established(self) -> None:
        """The handshake completed: waiting writes may go on."""


class TLSDriver:
    """
    The TLS side of one stream controller (see the module docstring).

    @ivar handshake_timeout: seconds a handshake may take.
    """

    def __init__(
        self,
        host: TLSHost,
        starttls: TLSOptions | None,
        require_alpn: bool | None,
        handshake_timeout: float,
    ) -> None:
        """
        @param starttls: server-side options to answer probes with
            C{STARTTLS} (L{None}: this side offers no STARTTLS).
        @param require_alpn: refuse a session without ALPN C{sunrpc}
            (L{None}: only after STARTTLS).
        """
        self._host = host
        self._starttls = starttls
        self._require_alpn = require_alpn
        self.handshake_timeout = handshake_timeout
        self.origin = TLSOrigin.NONE
        self._timer: IDelayedCall | None = None
        self._waiter: Deferred[None] | None = None
        self._props: TLSSessionProps | None = None

    @property
    def _state(self) -> TLSState:
        return self._host.connection.tls

    def session_props(self) -> TLSSessionProps | None:
        """
        The established session, or L{None} (see the controller's
        C{tls_session_props}).
        """
        if self._state is not TLSState.ESTABLISHED:
            return None
        if self._props is None:
            connection = tls_connection(self._host.transport)
            if connection is None:
                return None
            self._props = session_props(connection)
        return self._props

    # -- The handshake -----------------------------------------------------------

    def begin_handshake(self, origin: TLSOrigin) -> None:
        """
        A handshake begins (implicit TLS, or after STARTTLS): time it.
        """
        self.origin = origin
        self._host.connection.handshake_begins()
        self._timer = self._host.reactor.callLater(self.handshake_timeout, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._state is TLSState.HANDSHAKING and self._host.connection.open:
            self._host.abort_with(HandshakeTimeout(self.handshake_timeout))

    def handshake_completed(self) -> None:
        """
        Twisted's TLS layer says the handshake completed: check ALPN when it
        is required, then let waiting writes (and a waiting C{start_tls}) go
        on.
        """
        host = self._host
        if not host.connection.open or self._state is not TLSState.HANDSHAKING:
            return
        self.stop()
        require = self._require_alpn
        if require is None:
            require = self.origin is TLSOrigin.STARTTLS
        if require:
            connection = tls_connection(host.transport)
            negotiated = None
            if connection is not None:
                negotiated = connection.get_alpn_proto_negotiated() or None
            if negotiated != SUNRPC_ALPN:
                host.abort_with(ALPNMismatch(SUNRPC_ALPN, negotiated))
                return
        host.connection.handshake_done()
        host.tls_established()
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    def stop(self) -> None:
        """
        Stop the handshake timer.
        """
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def connection_lost(self, reason: Failure | None) -> None:
        """
        The connection is gone (or inactivated, with no C{reason}): a
        waiting C{start_tls} fails with C{reason}.
        """
        self.stop()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and reason is not None:
            waiter.errback(reason)

    # -- RPC-with-TLS (RFC 9289) ---------------------------------------------------

    def start_tls(
        self, options: TLSOptions, program: int, version: int, require_alpn: bool
    ) -> Deferred[None]:
        """
        See L{StreamController.start_tls
        <rpctransport.adapters.stream.StreamController.start_tls>}.
        """
        host = self._host
        connection = host.connection
        connection.check_start_tls()
        if host.reading or host.writing:
            raise ControllerBusy("start_tls: a read or write is pending")
        if not ITLSTransport.providedBy(host.transport):
            raise LocalProtocolError(f"start_tls: the transport {host.transport!r} cannot start TLS")
        xid = int.from_bytes(os.urandom(4), "big")
        connection.probe_sent()
        done: Deferred[None] = Deferred()
        host.start_writing(encode_tls_probe(xid, program, version))
        reading = host.start_reading()

        def answered(result: Any) -> None:
            connection.probe_answered()
            refusal = starttls_refusal(result if not isinstance(result, tuple) else result[0], xid)
            if refusal is not None:
                done.errback(StartTLSRefused(refusal))
                return
            if connection.reader.buffered:
                error = PlaintextInjection(connection.reader.buffered, "server's STARTTLS answer")
                host.abort_with(error)
                done.errback(error)
                return
            self._require_alpn = require_alpn
            self._waiter = done
            self._upgrade(options, client=True)

        def failed(reason: Failure) -> None:
            connection.probe_answered()
            done.errback(reason)

        reading.addCallbacks(answered, failed)
        return done

    def _upgrade(self, options: TLSOptions, client: bool) -> None:
        """
        Start the handshake on the plaintext connection, as the TLS client
        or server, offering and accepting ALPN C{sunrpc} (RFC 9289 requires
        it, and plain Twisted options offer none).
        """
        self.begin_handshake(TLSOrigin.STARTTLS)
        try:
            start_tls_as(self._host.transport, SunRPCConnectionCreator(options, client), client)
        except Exception as e:
            # Options Twisted cannot use: the peer now expects a handshake
            # that will not come.
            waiter, self._waiter = self._waiter, None
            self._host.abort_with(e)
            if waiter is not None:
                waiter.errback(e)

    def answer_probe(self, answer: TLSProbeAnswer) -> None:
        """
        Send the server's answer to a probe, and upgrade if it is
        C{STARTTLS}.
        """
        transport = self._host.transport
        assert transport is not None
        # Replies written before the probe go out before its answer, in
        # plaintext, whatever follows.
        self._host.hand_over_writes()
        transport.writeSequence(encode_record(answer.reply))
        if answer.upgrade:
            # Only a server with STARTTLS options answers a probe so.
            assert self._starttls is not None
            self._upgrade(self._starttls, client=False)
