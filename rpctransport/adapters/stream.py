# -*- test-case-name: rpctransport.test.test_stream -*-
"""
Layer 3: the stream multiplex controller, a thin Twisted C{Protocol}.

One L{StreamController} owns one stream connection (TCP, a UNIX stream
socket, or either under Twisted's TLS) and moves whole record-marked RPC
messages in and out of it. Its state lives in a sans-IO
L{StreamConnection <rpctransport.sansio.connection.StreamConnection>}: the
controller feeds it the bytes it receives, runs the application's
C{before_record} when it asks for a rule, and turns what it returns into
Deferreds, timers and transport calls. It never parses bytes itself.

It holds, rather than inherits, its parts: the reads
(L{StreamReads <rpctransport.adapters.reads.StreamReads>}), the writes
(L{StreamWrites <rpctransport.adapters.writes.StreamWrites>}, with
same-turn replies), the ends (L{StreamClosing
<rpctransport.adapters.closing.StreamClosing>}) and TLS (L{TLSDriver
<rpctransport.adapters.starttls.TLSDriver>}), which share one
L{StreamLink <rpctransport.adapters.link.StreamLink>}.

Flow control goes both ways through Twisted's producer/consumer interfaces:
when records pile up unread, the controller pauses the transport so that TCP
pushes back on the peer; and the controller is the transport's streaming
producer, so a write's Deferred waits while the transport pushes back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IHalfCloseableProtocol,
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import (
    BeforeRecord,
    IRecordReceiver,
    IRecordStreaming,
    IRpcMultiplexController,
    Message,
    ReadResult,
)
from ..sansio.connection import Life, Output, StreamConnection, TLSState
from ..sansio.counters import Counters
from ..sansio.deadlines import Deadlines
from ..sansio.errors import Evicted
from ..sansio.proxyheader import ProxyHeader
from ..sansio.record import (
    DEFAULT_MAX_EMPTY_FRAGMENTS,
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_RECORD_SIZE,
    RecordReader,
)
from ..sansio.types import IMPLIED, Implied, RpcProtocol
from ._twisted import adopt_unix_listener
from .closing import StreamClosing
from .common import OwnedDescriptor, descriptor_of, resolve_reactor
from .link import StreamLink
from .peer import socket_under, unix_peer_credentials, user_name_of
from .reads import LARGE_READ_SIZE, LARGE_RECORD, StreamReads
from .sameturn import SameTurnWrites
from .starttls import DEFAULT_HANDSHAKE_TIMEOUT, TLSDriver, TLSOrigin
from .tls import TLSSessionProps
from .writes import StreamWrites

if TYPE_CHECKING:
    from twisted.internet.interfaces import ITransport

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_LINGER",
    "DEFAULT_READ_BUFFER_LIMIT",
    "LARGE_READ_SIZE",
    "LARGE_RECORD",
    "StreamController",
    "adopt_unix_listener",
]

DEFAULT_READ_BUFFER_LIMIT: Final = 256 * 1024
"""
Bytes kept for the next read while no read is pending; past this the
controller stops reading from the socket, so the kernel's buffers fill and TCP
pushes back on the peer. Four of Twisted's 64 KiB reads: enough that a reader
which comes back soon never stalls the stream, small enough that ten thousand
idle-but-flooded connections cost 2.5 GiB at the very worst.
"""

DEFAULT_LINGER: Final = 60.0
"""
Seconds a shutdown waits for the peer's EOF (the seed's default), and that a
closed connection may take to flush what the transport already accepted
before it is aborted.
"""

@implementer(
    IRpcMultiplexController,
    IRecordStreaming,
    IPushProducer,
    IHalfCloseableProtocol,
    IHandshakeListener,
)
class StreamController(Protocol):
    """
    The multiplex controller for stream connections (TCP and UNIX sockets).

    Build it through L{rpctransport.listen_stream},
    L{rpctransport.connect_stream} or
    L{rpctransport.stream_rpc_multiplex_controller}; or use it as the
    protocol of any Twisted stream transport.

    @ivar deadlines: the deadlines this connection runs under.
    @ivar tcp_nodelay: see C{__init__}.
    @ivar prompt_writes: see C{__init__}.
    """

    log = Logger()
    transport: ITransport | None

    def __init__(
        self,
        reactor: IReactorTime | None = None,
        *,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        max_empty_fragments: int = DEFAULT_MAX_EMPTY_FRAGMENTS,
        max_fragment_size: int | None = None,
        read_buffer_limit: int = DEFAULT_READ_BUFFER_LIMIT,
        linger: float = DEFAULT_LINGER,
        close_inactive_descr: bool = True,
        preclose: Callable[[], object] | None = None,
        adopted_fd: int | None = None,
        tcp_nodelay: bool = True,
        prompt_writes: bool = True,
        starttls: IOpenSSLServerConnectionCreator | IOpenSSLContextFactory | None = None,
        recognise_probes: bool = False,
        require_alpn: bool | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        record_deadline: float | None = None,
        idle_timeout: float | None = None,
        first_record_timeout: float | None = None,
        write_deadline: float | None = None,
        counters_parent: Counters | None = None,
        on_lost: Callable[[StreamController], object] | None = None,
        on_connection: Callable[[StreamController], object] | None = None,
    ) -> None:
        """
        @param reactor: the reactor for timers (L{None}: the global one).
        @param max_record_size: the largest record a read accepts, in bytes.
        @param max_fragments: the most fragments one record may have.
        @param max_empty_fragments: the longest run of empty fragments.
        @param max_fragment_size: split written records into fragments of at
            most this many bytes.
        @param read_buffer_limit: bytes kept while no read is pending before
            the transport is paused.
        @param linger: seconds to wait for the peer's EOF in a shutdown.
        @param close_inactive_descr: whether L{inactivate} closes the
            connection.
        @param preclose: called just before L{inactivate} closes it.
        @param tcp_nodelay: set C{TCP_NODELAY} on TCP connections (records
            are written whole, so Nagle's algorithm only adds latency).
        @param prompt_writes: send what was written while received bytes were
            being handled (a reply, typically) before returning to the
            reactor, rather than on its next turn; see L{SameTurnWrites}.
        @param adopted_fd: the descriptor this controller was made from, when
            it was adopted; closed by L{inactivate} with
            C{close_inactive_descr}.
        @param starttls: server-side TLS options (C{CertificateOptions}, best
            with C{acceptableProtocols=[b"sunrpc"]}): answer RFC 9289 probes
            with C{STARTTLS} and upgrade the connection.
        @param recognise_probes: this is the server side of the connection:
            RFC 9289 probes (calls with an C{AUTH_TLS} credential) are
            answered here and never reach the application's reads. Set by
            L{rpctransport.listen_stream}.
        @param require_alpn: refuse a TLS session that did not negotiate ALPN
            C{sunrpc}; by default, required after STARTTLS and not for
            implicit TLS.
        @param handshake_timeout: seconds a TLS handshake may take.
        @param record_deadline: seconds within which a record whose first
            mark has arrived must be complete, while a read waits for it
            (L{None}: no limit); see L{rpctransport.sansio.deadlines}.
        @param idle_timeout: seconds a connection may send nothing while the
            application waits for a record and nothing else is in progress.
        @param first_record_timeout: the idle timeout until the peer has sent
            a whole record (L{None}: C{idle_timeout}).
        @param write_deadline: seconds a write may stay pushed back by the
            transport (a peer that does not read).
        @param counters_parent: counters that also count what this
            controller counts (its listener's).
        @param on_lost: called once with this controller when its connection
            is gone (the descriptor closed), for whoever counts connections.
        @param on_connection: called once with this controller when its
            connection is made (an exception from it closes the connection).
        """
        if read_buffer_limit < 1:
            raise ValueError(f"read_buffer_limit must be >= 1, not {read_buffer_limit}")
        if max_fragment_size is not None and max_fragment_size < 1:
            raise ValueError(f"max_fragment_size must be >= 1, not {max_fragment_size}")
        self._reactor = resolve_reactor(reactor)
        self.deadlines = Deadlines(
            record_deadline=record_deadline,
            idle_timeout=idle_timeout,
            first_record_timeout=first_record_timeout,
            write_deadline=write_deadline,
        )
        self._reader = RecordReader(
            max_record_size=max_record_size,
            max_fragments=max_fragments,
            max_empty_fragments=max_empty_fragments,
        )
        self._conn = StreamConnection(
            self._reader,
            self.deadlines,
            Counters(counters_parent),
            answers_probes=recognise_probes,
            offers_tls=starttls is not None,
        )
        self._link = StreamLink(self._conn, self._reactor, self.cancel_rd_polling)
        self._tls = TLSDriver(self, starttls, require_alpn, handshake_timeout)
        self._reads = StreamReads(self._link, self._tls, read_buffer_limit)
        self._writes = StreamWrites(self._link, max_fragment_size)
        self._closing = StreamClosing(
            self._link,
            self._reads,
            self._writes,
            self._tls,
            OwnedDescriptor(adopted_fd, close_inactive_descr, preclose),
            linger,
        )
        self.tcp_nodelay = tcp_nodelay
        self.prompt_writes = prompt_writes
        self._on_lost = on_lost
        self._on_connection = on_connection
        # The local address, kept when the transport is let go of.
        self._local: IAddress | Implied = IMPLIED
        # Behind a proxy (see awaiting_proxy_header): the connection while
        # its PROXY header is awaited, when it was accepted, the header,
        # and the addresses it gave.
        self._header_transport: Any = None
        self._accepted_at: float | None = None
        self._proxy_header: ProxyHeader | None = None
        self._proxied_peer: IAddress | None = None
        self._proxied_local: IAddress | None = None

    # -- Settings kept by the parts -------------------------------------------

    @property
    def max_fragment_size(self) -> int | None:
        """Written records are split into fragments of at most this size."""
        return self._writes.max_fragment_size

    @property
    def read_buffer_limit(self) -> int:
        """See L{DEFAULT_READ_BUFFER_LIMIT}."""
        return self._reads.read_buffer_limit

    @property
    def linger(self) -> float:
        """See L{DEFAULT_LINGER}."""
        return self._closing.linger

    @property
    def handshake_timeout(self) -> float:
        """Seconds a TLS handshake may take."""
        return self._tls.handshake_timeout

    # -- Properties of the contract ---------------------------------------

    @property
    def alive(self) -> bool:
        """
        Whether the connection is not yet completely down (behind a proxy:
        counting the time its PROXY header is awaited).
        """
        life = self._conn.life
        return life is Life.OPEN or (
            life is Life.STARTING and self._header_transport is not None
        )

    @property
    def protocol(self) -> RpcProtocol:
        """Always L{RpcProtocol.TCP}: streams use record marking."""
        return RpcProtocol.TCP

    @property
    def reactor(self) -> IReactorTime:
        """The reactor this controller's timers run on."""
        return self._reactor

    @property
    def connection(self) -> StreamConnection:
        """The sans-IO state of the connection."""
        return self._conn

    @property
    def tls_session_props(self) -> TLSSessionProps | None:
        """
        The established TLS session (version, cipher, ALPN, server name, peer
        certificates), or L{None} without TLS or before the handshake
        completed.
        """
        if self._conn.life is Life.INACTIVE:
            return None
        return self._tls.session_props()

    @property
    def file_descr(self) -> int | None:
        """
        The descriptor of the connection (the adopted one, for controllers
        made by L{rpctransport.stream_rpc_multiplex_controller}), or L{None}
        once inactive or when the transport has none.
        """
        return descriptor_of(self._conn.life, self.transport, self._closing.descriptor.fd)

    @property
    def peer_credentials(self) -> tuple[int, int, int] | None:
        """
        C{(pid, uid, gid)} of the peer process on a UNIX socket (Linux's
        C{SO_PEERCRED}), else L{None}.
        """
        if self.transport is None or self._conn.life is Life.INACTIVE:
            return None
        if self._proxied_peer is not None:
            # The socket's peer is the proxy, not the client it names.
            return None
        return unix_peer_credentials(socket_under(self.transport))

    @property
    def peer_user_name(self) -> str | None:
        """
        With TLS, the identity in the peer's certificate (the rfc822 subject
        alternative name, else the subject's uid, emailAddress or CN; L{None}
        for an anonymous peer). Without TLS, on a UNIX socket, the user name
        of the peer process (from its uid; the uid in decimal when it has no
        name here). Else L{None}.
        """
        if self._conn.tls is not TLSState.PLAIN:
            props = self.tls_session_props
            return None if props is None else props.peer_user_name
        creds = self.peer_credentials
        return None if creds is None else user_name_of(creds[1])

    @property
    def reading(self) -> bool:
        """Whether a read is pending, or a stream of records delivers."""
        return self._link.read.wanted

    @property
    def writing(self) -> bool:
        """Whether a write is pending."""
        return self._link.write_d is not None

    @property
    def counters(self) -> Mapping[str, int]:
        """
        What this connection refused or was closed for, counted per reason
        (the keys of L{rpctransport.sansio.counters}).
        """
        return self._conn.counters.view

    @property
    def proven(self) -> bool:
        """Whether the peer has sent a whole record."""
        return self._conn.track.proven

    @property
    def connected_at(self) -> float:
        """When the connection was made, in the reactor's seconds."""
        return self._conn.track.connected_at

    @property
    def idle_since(self) -> float | None:
        """
        Since when (the reactor's seconds) the connection has been idle: the
        application waits for a record, none is half received and no write is
        pushed back; L{None} while it is not idle.
        """
        conn = self._conn
        return conn.track.idle_since(conn.waiting(self._link.read.wanted))

    @property
    def read_eof(self) -> bool:
        """Whether the end of the input has been seen, or a shutdown completed."""
        return self._conn.eof_seen

    def getsockname(self) -> IAddress | Implied:
        """
        The local address (a Twisted C{IAddress}); behind a proxy whose
        PROXY header names the client, the address that client connected
        to, on the proxy.
        """
        if self.transport is None or self._proxied_local is not None:
            return self._local
        return self.transport.getHost()

    def getpeername(self) -> IAddress | Implied:
        """
        The peer's address (a Twisted C{IAddress}); behind a proxy whose
        PROXY header names the client, that client (until the header is
        in, the proxy).
        """
        peer = self._link.peer
        return IMPLIED if peer is None else peer

    @property
    def proxy_header(self) -> ProxyHeader | None:
        """
        The PROXY header the connection began with, on a listener behind a
        proxy (L{rpctransport.listen_stream}'s C{proxy_protocol}); else
        L{None}.
        """
        return self._proxy_header

    # -- Behind a proxy ------------------------------------------------------

    def awaiting_proxy_header(self, transport: Any) -> Counters:
        """
        The connection is accepted, and its PROXY header is read below this
        controller (by L{ProxyHeaderProtocol
        <rpctransport.adapters.peer.ProxyHeaderProtocol>}) before
        L{connectionMade}: until then the connection counts as L{alive} and
        unproven, and an eviction or L{inactivate} closes C{transport}.

        @return: the counters a refused header counts in.
        """
        self._header_transport = transport
        self._link.peer = transport.getPeer()
        self._accepted_at = self._reactor.seconds()
        self._conn.track.connected_at = self._accepted_at
        return self._conn.counters

    def proxy_header_received(
        self, header: ProxyHeader, source: IAddress | None, destination: IAddress | None
    ) -> None:
        """
        The PROXY header is in: C{source} is the peer from now on, and
        C{destination} the local address; L{None} for the connection's own
        (the header's C{LOCAL} command, or no addresses).
        """
        self._proxy_header = header
        self._proxied_peer = source
        self._proxied_local = destination

    # -- Twisted's protocol hooks ------------------------------------------

    def connectionMade(self) -> None:
        """
        Register as the transport's streaming producer and tell whoever waits
        for the connection.
        """
        transport: Any = self.transport
        link = self._link
        link.transport = transport
        self._header_transport = None
        link.peer = self._proxied_peer or transport.getPeer()
        self._local = self._proxied_local or transport.getHost()
        conn = self._conn
        first_check = conn.made(self._reactor.seconds())
        if self._accepted_at is not None:
            # Behind a proxy: the connection is as old as its accept.
            conn.track.connected_at = self._accepted_at
        link.arm_deadline(first_check)
        if self._conn.life is Life.INACTIVE:
            # Inactivated before the connection was made: it is not wanted.
            transport.loseConnection()
            return
        transport.registerProducer(self, True)
        implicit_tls = ISSLTransport.providedBy(transport)
        if not implicit_tls:
            self._reads.connected(transport)
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None and self.tcp_nodelay:
            # Records go out whole (one writeSequence each); Nagle would only
            # hold the tail of each record back for a delayed ACK (40 ms on
            # Linux) in a request/response exchange.
            try:
                set_no_delay(True)
            except OSError:
                pass
        if implicit_tls:
            # Twisted's TLS layer is our transport; its handshake has begun.
            self._tls.begin_handshake(TLSOrigin.IMPLICIT)
            if self.prompt_writes:
                self._writes.same_turn = SameTurnWrites.under_tls(transport)
        elif self.prompt_writes:
            self._writes.same_turn = SameTurnWrites.for_transport(transport)
        on_connection, self._on_connection = self._on_connection, None
        if on_connection is not None:
            try:
                on_connection(self)
            except Exception:
                self.log.failure(
                    "on_connection raised for the connection from {peer}; closing it",
                    peer=link.peer,
                )
                self.inactivate()

    def dataReceived(self, data: bytes) -> None:
        """
        Hand the bytes to the reads; then send what was written meanwhile
        (see L{SameTurnWrites}).
        """
        same_turn = self._writes.same_turn
        if same_turn is None:
            self._reads.received(data)
            return
        same_turn.begin()
        try:
            self._reads.received(data)
        finally:
            conn = self._conn
            same_turn.end(
                conn.life is Life.OPEN
                and (conn.tls is TLSState.PLAIN or conn.tls is TLSState.ESTABLISHED)
            )

    def readConnectionLost(self) -> None:
        """The peer closed its side: end the input, keep the output open."""
        if self._conn.life is not Life.INACTIVE:
            self._reads.input_ended()
            self._closing.maybe_finish()

    def writeConnectionLost(self) -> None:
        """Our half-close went out."""
        self._conn.output_closed()
        self._closing.maybe_finish()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """
        The connection is gone: deliver what was complete, then fail every
        pending operation with C{reason} (a clean close gives C{END_OF_FILE}
        to a read between records).
        """
        self._header_transport = None
        self._closing.stop_timers()
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            try:
                on_lost(self)
            except Exception:
                self.log.failure(
                    "on_lost raised for the connection from {peer}", peer=self._link.peer
                )
        self._closing.connection_lost(reason)
        # Twisted keeps a closed transport's buffer (whatever the peer never
        # read): whoever still refers to this controller, a log event for
        # one or a receiver that inactivated it first, then pins nothing of
        # the connection.
        self._writes.same_turn = None
        producer, self._writes.producer = self._writes.producer, None
        self.transport = self._link.transport = None
        if producer is not None and self._conn.output is Output.PUSHED_BACK:
            # The transport will never drain now: what it paused goes on (a
            # stream of records delivers what was received, then its end;
            # what is sent is discarded).
            producer.resumeProducing()

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: writes wait, and the producer
        registered with L{register_producer} is paused.
        """
        self._writes.pushed_back()

    def resumeProducing(self) -> None:
        """
        The transport drained: a waiting write completes, and the registered
        producer is resumed.
        """
        self._writes.drained()

    def stopProducing(self) -> None:
        """The transport is going away; L{connectionLost} does the rest."""

    def handshakeCompleted(self) -> None:
        """The TLS handshake completed (see L{TLSDriver.handshake_completed})."""
        self._tls.handshake_completed()

    # -- The contract's operations ---------------------------------------------

    def start_reading(
        self,
        peek: Callable[[], object] | None = None,
        before_record: BeforeRecord | None = None,
    ) -> Deferred[ReadResult]:
        """Start one read; see L{IRpcMultiplexController.start_reading}."""
        return self._reads.start(peek, before_record)

    def cancel_rd_polling(self) -> None:
        """
        Stop the pending read (its Deferred fails with C{CancelledError});
        what was received stays for the next read.
        """
        self._reads.cancel()

    def start_writing(self, message: Message, addr: object = IMPLIED) -> Deferred[None]:
        """Send one record; see L{IRpcMultiplexController.start_writing}."""
        return self._writes.start(message, addr)

    def receive_records(
        self, receiver: IRecordReceiver, before_record: BeforeRecord | None = None
    ) -> IPushProducer:
        """
        Deliver every record to C{receiver} as it arrives; see
        L{IRecordStreaming.receive_records}.
        """
        return self._reads.receive_records(receiver, before_record)

    def send_record(self, message: Message, addr: object = IMPLIED) -> None:
        """Send one record, without a Deferred; see L{IRecordStreaming.send_record}."""
        self._writes.send_one(message, addr)

    def send_records(self, messages: Sequence[Message], addr: object = IMPLIED) -> None:
        """
        Send records in one C{writeSequence}; see
        L{IRecordStreaming.send_records}.
        """
        self._writes.send(messages, addr, "send_records")

    def register_producer(self, producer: IPushProducer) -> None:
        """
        Pause C{producer} while the transport pushes back; see
        L{IRecordStreaming.register_producer}.
        """
        self._writes.register_producer(producer)

    def unregister_producer(self) -> None:
        """Forget the producer registered with L{register_producer}."""
        self._writes.producer = None

    def start_shutting_down(self) -> Deferred[None]:
        """
        Half-close, then wait for the peer's EOF at most L{linger} seconds;
        see L{IRpcMultiplexController.start_shutting_down}.
        """
        return self._closing.start_shutting_down()

    def cancel_shutting_down(self) -> None:
        """
        Cancel a shutdown in progress; its Deferred fails with
        C{CancelledError}.
        """
        self._closing.cancel_shutting_down()

    def set_timeout(self, notify: Callable[[], object], seconds: float) -> None:
        """See L{IRpcMultiplexController.set_timeout}."""
        self._link.timer.configure(notify, seconds, self._link.busy())

    def abort_rw(self) -> None:
        """End reader and writer for good; their Deferreds never fire."""
        self._closing.abort_rw()

    def inactivate(self) -> None:
        """Release everything now; see L{IRpcMultiplexController.inactivate}."""
        self._on_connection = None
        waiting, self._header_transport = self._header_transport, None
        self._closing.inactivate()
        if waiting is not None:
            # Its PROXY header was still awaited: this controller never had
            # the connection, but owns it.
            _abort(waiting)

    def start_tls(
        self,
        options: IOpenSSLClientConnectionCreator,
        program: int,
        version: int,
        *,
        require_alpn: bool = True,
    ) -> Deferred[None]:
        """
        Upgrade this plaintext connection to TLS as RFC 9289 says; see
        L{TLSDriver.start_tls}.
        """
        return self._tls.start_tls(options, program, version, require_alpn)

    # -- For the parts, and for listeners --------------------------------------

    def tls_established(self) -> None:
        """TLS is on: a write that waited for the handshake may complete."""
        self._writes.tls_established()

    def abort_with(self, error: Exception, quiet: bool = False) -> None:
        """
        Close the connection because of C{error}, which every pending
        operation fails with.

        @param quiet: log at debug level only (whoever closes it logs).
        """
        self._link.abort_with(error, quiet)

    def hand_over_writes(self) -> None:
        """
        Hand the records held for the end of this turn (same-turn writes) to
        the transport now, in order.
        """
        same_turn = self._writes.same_turn
        if same_turn is not None:
            same_turn.hand_over()

    def evict(self, error: Evicted) -> None:
        """
        Close the connection now to make room for another; every pending
        operation fails with C{error}. Called by a listener at its
        C{max_connections}, which logs evictions itself (rate-limited: a
        flood must not flood the log).
        """
        conn = self._conn
        if conn.life is Life.OPEN:
            self.abort_with(error, quiet=True)
        elif self._header_transport is not None and conn.life is Life.STARTING:
            # Its PROXY header is still awaited: count, and close.
            waiting, self._header_transport = self._header_transport, None
            conn.closing_for(error)
            self._link.close_reason = Failure(error)
            _abort(waiting)

    def __repr__(self) -> str:
        return f"<StreamController {self._conn.life.value} peer={self._link.peer}>"


def _abort(transport: Any) -> None:
    """
    Drop C{transport}'s connection now (or close it, when it cannot abort).
    """
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()
