# -*- test-case-name: rpctransport.test.test_stream -*-
"""
Layer 3: the stream multiplex controller, a Twisted C{Protocol}.

One L{StreamController} owns one stream connection (TCP, a UNIX stream
socket, or either under Twisted's TLS) and moves whole record-marked RPC
messages in and out of it. It feeds the bytes it receives to a
L{RecordReader <rpctransport.sansio.record.RecordReader>} and writes what
L{encode_record <rpctransport.sansio.record.encode_record>} returns; it never
parses bytes itself.

TLS (implicit, and RFC 9289 STARTTLS) is the part in
L{rpctransport.adapters.starttls}, mixed in.

Flow control goes both ways through Twisted's producer/consumer interfaces:
when records pile up unread, the controller pauses the transport so that TCP
pushes back on the peer; and the controller is the transport's streaming
producer, so a write's Deferred waits while the transport pushes back.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import BeforeRecord, IRpcMultiplexController, Message
from ..sansio.counters import (
    DEADLINE_FIRST_RECORD,
    DEADLINE_HANDSHAKE,
    DEADLINE_IDLE,
    DEADLINE_RECORD,
    DEADLINE_WRITE,
    REFUSED_LIMIT,
    REFUSED_MALFORMED,
    REFUSED_RULE,
    REFUSED_SNIFF,
    Counters,
)
from ..sansio.deadlines import ConnectionDeadlines, Deadlines, Expiry
from ..sansio.errors import (
    AddressMismatch,
    ControllerBusy,
    ControllerInactive,
    DeadlineExceeded,
    Evicted,
    HandshakeTimeout,
    IdleTimeout,
    IncompleteRecord,
    MalformedRecord,
    RecordDeadlineExceeded,
    RecordTooLarge,
    WriteDeadlineExceeded,
)
from ..sansio.record import (
    DEFAULT_MAX_EMPTY_FRAGMENTS,
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_RECORD_SIZE,
    NEED_DATA,
    RecordReader,
    encode_record,
)
from ..sansio.types import (
    ACCEPT,
    END_OF_FILE,
    IMPLIED,
    Accepted,
    Implied,
    InRule,
    RpcProtocol,
)
from ._common import (
    Life,
    ReadSlot,
    Side,
    accept_all,
    check_usable,
    descriptor_of,
    resolve_reactor,
)
from ._prompt import FLUSH_AFTER, SEND_AT_ONCE_LIMIT, PromptWrites
from ._timer import InactivityTimer
from .starttls import DEFAULT_HANDSHAKE_TIMEOUT, TLSHandling, TLSState, looks_like_auth_tls
from .tls import TLSSessionProps, session_props, tls_connection

if TYPE_CHECKING:
    from twisted.internet.interfaces import ITransport

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_LINGER",
    "DEFAULT_READ_BUFFER_LIMIT",
    "StreamController",
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


def _accept_size(size: int) -> InRule:
    """
    The reader's C{decide} while the pending read has no C{before_record}.
    """
    return ACCEPT


LARGE_RECORD: Final = 64 * 1024
LARGE_READ_SIZE: Final = 256 * 1024
"""
After a record of C{LARGE_RECORD} bytes or more, the controller reads
C{LARGE_READ_SIZE} bytes per reactor turn instead of Twisted's 64 KiB: four
times fewer turns and fewer, larger chunks to join for large records (the
benchmark measured 0.62 -> 0.98 of the bare-Protocol ceiling at 64 KiB,
0.72 -> 0.84 at 1 MiB). Not more: a 1 MiB read allocates a fresh megabyte
per turn and was slower. Small records go back to Twisted's default.
"""


@implementer(
    IRpcMultiplexController, IPushProducer, IHalfCloseableProtocol, IHandshakeListener
)
class StreamController(ReadSlot, TLSHandling, Protocol):
    """
    The multiplex controller for stream connections (TCP and UNIX sockets).

    Build it through L{rpctransport.listen_stream},
    L{rpctransport.connect_stream} or
    L{rpctransport.stream_rpc_multiplex_controller}; or use it as the
    protocol of any Twisted stream transport.

    @ivar max_fragment_size: written records are split into fragments of at
        most this many bytes (L{None}: one fragment per record).
    @ivar read_buffer_limit: see L{DEFAULT_READ_BUFFER_LIMIT}.
    @ivar linger: see L{DEFAULT_LINGER}.
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
        starttls: Any = None,
        recognise_probes: bool = False,
        require_alpn: bool | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        record_deadline: float | None = None,
        idle_timeout: float | None = None,
        first_record_timeout: float | None = None,
        write_deadline: float | None = None,
        counters_parent: Counters | None = None,
        on_lost: Callable[[StreamController], object] | None = None,
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
            reactor, rather than on its next turn; see L{PromptWrites}.
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
        """
        if read_buffer_limit < 1:
            raise ValueError(f"read_buffer_limit must be >= 1, not {read_buffer_limit}")
        if max_fragment_size is not None and max_fragment_size < 1:
            raise ValueError(f"max_fragment_size must be >= 1, not {max_fragment_size}")
        self._reactor = resolve_reactor(reactor)
        self._counters = Counters(counters_parent)
        self._on_lost = on_lost
        self.deadlines = Deadlines(
            record_deadline=record_deadline,
            idle_timeout=idle_timeout,
            first_record_timeout=first_record_timeout,
            write_deadline=write_deadline,
        )
        self._track = ConnectionDeadlines(self.deadlines, 0.0)
        self._deadline_call: IDelayedCall | None = None
        self._reader = RecordReader(
            max_record_size=max_record_size,
            max_fragments=max_fragments,
            max_empty_fragments=max_empty_fragments,
        )
        self.max_fragment_size = max_fragment_size
        self.read_buffer_limit = read_buffer_limit
        self.linger = linger
        self._close_inactive_descr = close_inactive_descr
        self._preclose = preclose
        self._adopted_fd = adopted_fd
        # Twisted's adoption makes the shared file description non-blocking;
        # the owner gets its own mode back when we let go without closing.
        self._adopted_blocking: bool | None = None
        if adopted_fd is not None:
            try:
                self._adopted_blocking = os.get_blocking(adopted_fd)
            except OSError:
                pass
        self.tcp_nodelay = tcp_nodelay
        self.prompt_writes = prompt_writes

        self._life = Life.STARTING
        self._lost_reason: Failure | None = None
        self._eof_seen = False
        self._peer: IAddress | None = None
        # The local address, kept when the transport is let go of.
        self._local: IAddress | Implied = IMPLIED
        self._on_connection: Callable[[StreamController], object] | None = None

        # Reader.
        self._read_side = Side.IDLE
        self._init_read_slot()
        self._pumping = False
        # Inside dataReceived; how many records were written meanwhile, and
        # whether the transport's buffer holds some of them (see
        # PromptWrites).
        self._receiving = False
        self._written_while_receiving = 0
        self._buffered_while_receiving = False
        self._flushed_at = 0.0
        self._flusher: PromptWrites | None = None
        self._transport_paused = False
        self._default_read_size: int | None = None
        self._read_size: int | None = None
        self._decide = self._decide_size

        # Writer.
        self._write_side = Side.IDLE
        self._write_d: Deferred[None] | None = None
        self._pushed_back = False
        self._producing = False

        # Shutdown.
        self._shutdown_d: Deferred[None] | None = None
        self._linger_call: IDelayedCall | None = None
        self._write_closed = False

        self._timer = InactivityTimer(self._reactor)
        self._close_call: IDelayedCall | None = None
        # Why we closed the connection ourselves, for the operations the
        # close fails (rather than Twisted's ConnectionAborted).
        self._close_reason: Failure | None = None

        # TLS.
        self._init_tls(starttls, recognise_probes, require_alpn, handshake_timeout)
        self._tls_props: TLSSessionProps | None = None

    # -- Properties of the contract ---------------------------------------

    @property
    def alive(self) -> bool:
        """
        Whether the connection is not yet completely down.
        """
        return self._life is Life.OPEN

    @property
    def protocol(self) -> RpcProtocol:
        """
        Always L{RpcProtocol.TCP}: streams use record marking.
        """
        return RpcProtocol.TCP

    @property
    def tls_session_props(self) -> TLSSessionProps | None:
        """
        The established TLS session (version, cipher, ALPN, server name, peer
        certificates), or L{None} without TLS or before the handshake
        completed.
        """
        if self._tls is not TLSState.ESTABLISHED or self._life is Life.INACTIVE:
            return None
        if self._tls_props is None:
            connection = tls_connection(self.transport)
            if connection is None:
                return None
            self._tls_props = session_props(connection)
        return self._tls_props

    @property
    def file_descr(self) -> int | None:
        """
        The descriptor of the connection (the adopted one, for controllers
        made by L{rpctransport.stream_rpc_multiplex_controller}), or L{None}
        once inactive or when the transport has none.
        """
        return descriptor_of(self._life, self.transport, self._adopted_fd)

    @property
    def peer_credentials(self) -> tuple[int, int, int] | None:
        """
        C{(pid, uid, gid)} of the peer process on a UNIX socket (Linux's
        C{SO_PEERCRED}, taken when the connection was made), else L{None}.
        """
        sock = self._socket()
        if sock is None or sock.family != socket.AF_UNIX:
            return None
        so_peercred = getattr(socket, "SO_PEERCRED", None)
        if so_peercred is None:
            return None
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, so_peercred, struct.calcsize("3i"))
        except OSError:
            return None
        pid, uid, gid = struct.unpack("3i", raw)
        return pid, uid, gid

    @property
    def peer_user_name(self) -> str | None:
        """
        With TLS, the identity in the peer's certificate (the rfc822 subject
        alternative name, else the subject's uid, emailAddress or CN; L{None}
        for an anonymous peer). Without TLS, on a UNIX socket, the user name
        of the peer process (from its uid; the uid in decimal when it has no
        name here). Else L{None}.
        """
        if self._tls is not TLSState.PLAIN:
            props = self.tls_session_props
            return None if props is None else props.peer_user_name
        creds = self.peer_credentials
        if creds is None:
            return None
        import pwd

        try:
            return pwd.getpwuid(creds[1]).pw_name
        except KeyError:
            return str(creds[1])

    @property
    def writing(self) -> bool:
        """
        Whether a write is pending.
        """
        return self._write_d is not None

    @property
    def counters(self) -> Mapping[str, int]:
        """
        What this connection refused or was closed for, counted per reason
        (the keys of L{rpctransport.sansio.counters}).
        """
        return self._counters.view

    @property
    def proven(self) -> bool:
        """
        Whether the peer has sent a whole record.
        """
        return self._track.proven

    @property
    def connected_at(self) -> float:
        """
        When the connection was made, in the reactor's seconds.
        """
        return self._track.connected_at

    @property
    def idle_since(self) -> float | None:
        """
        Since when (the reactor's seconds) the connection has been idle: the
        application waits for a record, none is half received and no write is
        pushed back; L{None} while it is not idle.
        """
        return self._track.idle_since(self._waiting())

    @property
    def read_eof(self) -> bool:
        """
        Whether the end of the input has been seen, or a shutdown completed.
        """
        return self._eof_seen

    def getsockname(self) -> IAddress | Implied:
        """
        The local address (a Twisted C{IAddress}).
        """
        if self.transport is None:
            return self._local
        return self.transport.getHost()

    def getpeername(self) -> IAddress | Implied:
        """
        The peer's address (a Twisted C{IAddress}).
        """
        if self._peer is None:
            return IMPLIED
        return self._peer

    def _socket(self) -> socket.socket | None:
        if self.transport is None or self._life is Life.INACTIVE:
            return None
        transport: Any = self.transport
        # Under TLS, getHandle() gives the TLS connection, not the socket:
        # look under Twisted's TLS wrapper (implicit TLS), and at the
        # transport's own socket (after startTLS).
        while getattr(transport, "wrappedProtocol", None) is not None:
            transport = transport.transport
        get_handle = getattr(transport, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if not isinstance(handle, socket.socket):
            handle = getattr(transport, "socket", None)
        return handle if isinstance(handle, socket.socket) else None

    # -- Twisted's protocol hooks ------------------------------------------

    def connectionMade(self) -> None:
        """
        Register as the transport's streaming producer and tell whoever waits
        for the connection.
        """
        assert self.transport is not None
        self._life = Life.OPEN
        self._peer = self.transport.getPeer()
        self._local = self.transport.getHost()
        now = self._reactor.seconds()
        self._track.connected_at = self._track.last_activity = now
        self._arm_deadline(self._track.next_check(now, False))
        self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        self._producing = True
        if not ISSLTransport.providedBy(self.transport):
            # Twisted's socket transports read bufferSize bytes per turn.
            size = getattr(self.transport, "bufferSize", None)
            if isinstance(size, int):
                self._default_read_size = self._read_size = size
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None and self.tcp_nodelay:
            # Records go out whole (one writeSequence each); Nagle would only
            # hold the tail of each record back for a delayed ACK (40 ms on
            # Linux) in a request/response exchange.
            try:
                set_no_delay(True)
            except OSError:
                pass
        if ISSLTransport.providedBy(self.transport):
            # Implicit TLS: Twisted's TLS layer is our transport, and its
            # handshake has only begun.
            self._begin_handshake()
        elif self.prompt_writes:
            self._flusher = PromptWrites.for_transport(self.transport)
        on_connection = self._on_connection
        if on_connection is not None:
            self._on_connection = None
            try:
                on_connection(self)
            except Exception:
                self.log.failure(
                    "on_connection raised for the connection from {peer}; closing it",
                    peer=self._peer,
                )
                self.inactivate()

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the bytes to the record reader and serve the pending read; then
        send what was written meanwhile (see L{PromptWrites}).
        """
        flusher = self._flusher
        if flusher is None:
            self._received(data)
            return
        self._receiving = True
        self._flushed_at = time.monotonic()
        try:
            self._received(data)
        finally:
            self._receiving = False
        self._written_while_receiving = 0
        if self._buffered_while_receiving:
            self._buffered_while_receiving = False
            if self._tls is TLSState.PLAIN and self._life is Life.OPEN:
                flusher.flush()

    def _received(self, data: bytes) -> None:
        if self._read_side is Side.ABORTED or self._life is Life.INACTIVE:
            return
        self._track.last_activity = self._reactor.seconds()
        reader = self._reader
        try:
            if self._read_d is not None:
                self._timer.activity(True)
                if self._peek is not None:
                    self._peek()
            reader.feed(data)
        except Exception as e:
            self._protocol_error(e)
            return
        if self._read_d is not None:
            self._pump()
        elif not self._transport_paused and reader.buffered >= self.read_buffer_limit:
            self._pause_transport()

    def readConnectionLost(self) -> None:
        """
        The peer closed its side: end the input, keep the output open.
        """
        if self._life is Life.INACTIVE:
            return
        self._input_ended()
        self._maybe_finish_shutdown()

    def writeConnectionLost(self) -> None:
        """
        Our half-close went out.
        """
        self._write_closed = True
        self._maybe_finish_shutdown()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """
        The connection is gone: deliver what was complete, then fail every
        pending operation with C{reason} (a clean close gives C{END_OF_FILE}
        to a read between records).
        """
        if self._close_call is not None:
            if self._close_call.active():
                self._close_call.cancel()
            self._close_call = None
        self._cancel_handshake_timer()
        self._cancel_deadline()
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            try:
                on_lost(self)
            except Exception:
                self.log.failure("on_lost raised for the connection from {peer}", peer=self._peer)
        if self._life is Life.INACTIVE:
            return
        if self._close_reason is not None:
            reason = self._close_reason
        self._life = Life.LOST
        self._lost_reason = reason
        self._timer.cancel()
        waiter, self._tls_waiter = self._tls_waiter, None
        if waiter is not None:
            waiter.errback(reason)
        self._input_ended()
        write_d, self._write_d = self._write_d, None
        if write_d is not None:
            write_d.errback(reason)
        d, self._shutdown_d = self._shutdown_d, None
        self._cancel_linger()
        if d is not None:
            if reason.check(ConnectionDone):
                d.callback(None)
            else:
                d.errback(reason)
        self._let_go_of_transport()

    def _let_go_of_transport(self) -> None:
        """
        The connection is gone: drop what refers to its transport, which
        still holds whatever the peer never read (Twisted keeps a closed
        transport's buffer). Whoever still refers to this controller, a log
        event for one, then pins nothing of the connection.
        """
        self._flusher = None
        self.transport = None

    # IPushProducer: the transport tells us when it pushes back.

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: writes wait.
        """
        self._pushed_back = True

    def resumeProducing(self) -> None:
        """
        The transport drained: a waiting write completes (once the TLS
        handshake, if any, is done).
        """
        self._pushed_back = False
        if self._tls is TLSState.HANDSHAKING:
            return
        d, self._write_d = self._write_d, None
        if d is not None:
            self._write_drained()
            self._timer.activity(self._busy())
            d.callback(None)

    def stopProducing(self) -> None:
        """
        The transport is going away; L{connectionLost} does the rest.
        """

    # -- Reading -------------------------------------------------------------

    def start_reading(
        self,
        peek: Callable[[], object] | None = None,
        before_record: BeforeRecord | None = None,
    ) -> Deferred[Any]:
        """
        Start one read; see L{IRpcMultiplexController.start_reading}.
        """
        d = self._begin_read(peek, before_record)
        if peek is not None and self._reader.buffered:
            try:
                peek()
            except Exception as e:
                self._protocol_error(e)
                return d
        self._pump()
        return d

    def _decide_size(self, size: int) -> InRule:
        return self._decide_for_read(size, self._peer)

    def _read_stopped(self) -> None:
        self._flow()

    def _pump(self) -> None:
        """
        Hand out records to pending reads while the reader has them. Reads
        started from a callback are served by this same loop, not by
        recursion.

        This is the per-record path of every read: what does not change from
        record to record is looked up once, and the timer and the read size
        are touched only when they are in use.
        """
        if self._pumping:
            return
        self._pumping = True
        delivered = False
        reader = self._reader
        try:
            timer = self._timer
            probes = self._recognise_probes
            while self._read_d is not None:
                decide = self._decide if self._before_record is not accept_all else _accept_size
                try:
                    event = reader.next_event(decide)
                except Exception as e:
                    self._read_failed(e)
                    break
                if event is NEED_DATA:
                    break
                delivered = True
                if (
                    probes
                    and type(event) is Accepted
                    and looks_like_auth_tls(event.message)
                    and self._answer_auth_tls(event.message)
                ):
                    continue
                d = self._read_d
                self._clear_read()
                if timer.enabled:
                    timer.activity(self._busy())
                if event is END_OF_FILE:
                    reason = self._lost_reason
                    if reason is not None and not reason.check(ConnectionDone):
                        d.errback(reason)
                    else:
                        d.callback(END_OF_FILE)
                else:
                    if type(event) is not Accepted:
                        self._counters.add(REFUSED_RULE)
                    elif self._read_size is not None:
                        large = len(event.message) >= LARGE_RECORD
                        if large is not (self._read_size == LARGE_READ_SIZE):
                            self._size_reads(large)
                    d.callback((event, self._peer))
        finally:
            self._pumping = False
        track = self._track
        if delivered:
            track.proven = True
        if self._read_d is not None and not reader.at_record_boundary:
            # A record is half received while the application waits for it:
            # from now on it has record_deadline seconds to arrive whole.
            if delivered or track.record_since is None:
                self._record_begun()
        elif track.record_since is not None:
            track.record_since = None
        self._flow()

    def _size_reads(self, large: bool) -> None:
        """
        Read in large chunks while records are large, in Twisted's default
        chunks otherwise (the benchmark's receive cases measure this).
        """
        self._read_size = LARGE_READ_SIZE if large else self._default_read_size
        self.transport.bufferSize = self._read_size  # type: ignore[union-attr]

    def _read_failed(self, error: Exception) -> None:
        """
        The reader raised: a remote error, the hook's exception, or the end
        of input inside a record.
        """
        reason = self._lost_reason
        if (
            isinstance(error, IncompleteRecord)
            and reason is not None
            and not reason.check(ConnectionDone)
        ):
            # The connection broke; the transport's reason says more.
            self._fail_read(reason)
            return
        if self._life is Life.OPEN:
            self.log.info(
                "closing the connection from {peer}: {error}", peer=self._peer, error=error
            )
            self._count_close(error)
            self._close_reason = Failure(error)
            self._abort_transport()
        self._fail_read(Failure(error))

    def _fail_read(self, reason: Failure) -> None:
        d = self._read_d
        if d is not None:
            self._clear_read()
            self._timer.busy(self._busy())
            d.errback(reason)

    def _protocol_error(self, error: Exception) -> None:
        """
        Bad input or a failing hook outside of the reader's loop: fail the
        reader for good and close the connection.
        """
        if self._reader.failed is None:
            self._reader.close(error)
        self._read_failed(error)

    def _input_ended(self) -> None:
        self._eof_seen = True
        self._reader.feed_eof()
        if self._read_d is not None:
            self._pump()

    def _flow(self) -> None:
        """
        Pause the transport while no read is pending and the buffer is full;
        resume it otherwise.
        """
        if self._life is not Life.OPEN:
            return
        full = self._read_d is None and self._reader.buffered >= self.read_buffer_limit
        if full and not self._transport_paused:
            self._pause_transport()
        elif not full and self._transport_paused:
            self._transport_paused = False
            assert self.transport is not None
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def _pause_transport(self) -> None:
        assert self.transport is not None
        self._transport_paused = True
        self.transport.pauseProducing()  # type: ignore[attr-defined]

    # -- Writing -------------------------------------------------------------

    def start_writing(self, message: Message, addr: object = IMPLIED) -> Deferred[None]:
        """
        Send one record; see L{IRpcMultiplexController.start_writing}.
        """
        if (
            self._write_d is not None
            or self._write_side is not Side.IDLE
            or self._life is not Life.OPEN
            or self._lost_reason is not None
            or (addr is not IMPLIED and addr != self._peer)
        ):
            refused = self._refuse_write(addr)
            if refused is not None:
                return refused
        transport = self.transport
        assert transport is not None
        pieces = encode_record(message, max_fragment_size=self.max_fragment_size)
        if not self._receiving:
            transport.writeSequence(pieces)
        else:
            self._write_while_receiving(pieces)
        lost = self._lost_reason
        if (not self._pushed_back and self._tls is not TLSState.HANDSHAKING) or (
            lost is not None
        ):
            if self._timer.enabled:
                self._timer.activity(self._busy())
            return succeed(None) if lost is None else fail(lost)
        d: Deferred[None] = Deferred(self._cancel_write)
        self._write_d = d
        self._timer.activity(True)
        self._write_blocked(pieces)
        return d

    def _write_while_receiving(self, pieces: list[bytes]) -> None:
        """
        Write a record while received bytes are being handled: the first
        one, when it is all there is to send, at once; the others through
        the transport's buffer, flushed when L{FLUSH_AFTER} seconds passed
        since the last flush (or the start of L{dataReceived}) and at its
        end.
        """
        flusher = self._flusher
        assert flusher is not None and self.transport is not None
        written = self._written_while_receiving + 1
        self._written_while_receiving = written
        if (
            written == 1
            and self._tls is TLSState.PLAIN
            and not self._reader.buffered
            and sum(map(len, pieces)) <= SEND_AT_ONCE_LIMIT
            and flusher.holds_nothing()
        ):
            flusher.send(b"".join(pieces))
            return
        self.transport.writeSequence(pieces)
        now = time.monotonic()
        if now - self._flushed_at < FLUSH_AFTER or self._tls is not TLSState.PLAIN:
            self._buffered_while_receiving = True
        else:
            self._flushed_at = now
            self._buffered_while_receiving = False
            flusher.flush()

    def _refuse_write(self, addr: object) -> Deferred[None] | None:
        """
        Why a write may not start now: raise a local error, or return the
        failed Deferred of a connection that is gone; L{None} if it may.
        """
        check_usable(self._life, self._write_side, "start_writing", "writer")
        if self._write_side is Side.SHUT:
            raise ControllerInactive("start_writing: the writing side was shut down")
        if self._write_d is not None:
            raise ControllerBusy("start_writing: a write is already pending")
        if addr is not IMPLIED and addr != self._peer:
            raise AddressMismatch(
                f"start_writing: {addr} is not this connection's peer {self._peer}"
            )
        if self._lost_reason is not None or self.transport is None:
            return fail(self._lost_reason or Failure(ConnectionDone("not connected")))
        return None

    def _cancel_write(self, d: Deferred[None]) -> None:
        # What the transport accepted cannot be taken back; the caller only
        # stops waiting.
        if self._write_d is d:
            self._write_d = None
            self._write_drained()
            self._timer.busy(self._busy())

    # -- Shutting down ------------------------------------------------------

    def start_shutting_down(self) -> Deferred[None]:
        """
        Half-close, then wait for the peer's EOF at most L{linger} seconds;
        see L{IRpcMultiplexController.start_shutting_down}.
        """
        if self._life is Life.INACTIVE:
            raise ControllerInactive("start_shutting_down: the controller is inactive")
        if self._shutdown_d is not None:
            raise ControllerBusy("start_shutting_down: a shutdown is already in progress")
        if self._life is Life.LOST:
            self._eof_seen = True
            reason = self._lost_reason
            if reason is None or reason.check(ConnectionDone):
                return succeed(None)
            return fail(reason)
        d: Deferred[None] = Deferred(lambda _: self.cancel_shutting_down())
        self._shutdown_d = d
        if self._write_side is not Side.ABORTED:
            self._write_side = Side.SHUT
        assert self.transport is not None
        if self._linger_call is None:
            self._linger_call = self._reactor.callLater(self.linger, self._linger_expired)
        if not self._write_closed:
            self._release_producer()
            lose_write = getattr(self.transport, "loseWriteConnection", None)
            if lose_write is not None and self._tls is TLSState.PLAIN:
                lose_write()
            else:
                # TLS: close_notify, then the peer's close_notify (or EOF)
                # ends the connection. A TCP half-close under TLS would be a
                # truncation attack's signature.
                self._write_closed = True
                self.transport.loseConnection()
        self._timer.busy(True)
        self._maybe_finish_shutdown()
        return d

    def cancel_shutting_down(self) -> None:
        """
        Cancel a shutdown in progress; its Deferred fails with
        C{CancelledError}.
        """
        d, self._shutdown_d = self._shutdown_d, None
        self._cancel_linger()
        if d is not None:
            self._timer.busy(self._busy())
            d.errback(Failure(CancelledError("cancel_shutting_down")))

    def _maybe_finish_shutdown(self) -> None:
        if self._shutdown_d is not None and self._write_closed and self._eof_seen:
            self._finish_shutdown()

    def _finish_shutdown(self) -> None:
        d, self._shutdown_d = self._shutdown_d, None
        self._cancel_linger()
        self._eof_seen = True
        if d is not None:
            self._timer.activity(self._busy())
            d.callback(None)

    def _linger_expired(self) -> None:
        self._linger_call = None
        self.log.debug(
            "shutdown: no EOF from {peer} within {linger} s", peer=self._peer, linger=self.linger
        )
        self._finish_shutdown()

    def _cancel_linger(self) -> None:
        if self._linger_call is not None:
            if self._linger_call.active():
                self._linger_call.cancel()
            self._linger_call = None

    # -- Timeouts, aborting, inactivation -------------------------------------

    def _busy(self) -> bool:
        return (
            self._read_d is not None
            or self._write_d is not None
            or self._shutdown_d is not None
        )

    def abort_rw(self) -> None:
        """
        End reader and writer for good; their Deferreds never fire.
        """
        self._read_side = Side.ABORTED
        self._write_side = Side.ABORTED
        self._clear_read()
        self._write_d = None
        self._reader.close(ControllerInactive("the reader was aborted with abort_rw()"))
        self._timer.busy(self._busy())
        if self._transport_paused and self._life is Life.OPEN:
            # Keep reading (and discarding) so that a shutdown sees the EOF.
            self._transport_paused = False
            assert self.transport is not None
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def inactivate(self) -> None:
        """
        Release everything now; see L{IRpcMultiplexController.inactivate}.
        """
        if self._life is Life.INACTIVE:
            return
        was_open = self._life is Life.OPEN
        self._life = Life.INACTIVE
        self._read_side = Side.ABORTED
        self._write_side = Side.ABORTED
        self._clear_read()
        self._write_d = None
        self._shutdown_d = None
        self._tls_waiter = None
        self._on_connection = None
        self._cancel_linger()
        self._cancel_handshake_timer()
        self._cancel_deadline()
        self._timer.cancel()
        self._reader.close(ControllerInactive("the controller was inactivated"))
        transport = self.transport
        if not self._close_inactive_descr:
            if transport is not None and was_open:
                self._detach(transport)
            return
        if self._preclose is not None:
            try:
                self._preclose()
            except Exception:
                self.log.failure("preclose raised")
        if transport is not None and was_open:
            pushed_back = self._pushed_back
            self._release_producer()
            transport.loseConnection()
            if (pushed_back or self._tls is TLSState.ESTABLISHED) and hasattr(
                transport, "abortConnection"
            ):
                # The transport holds more than its buffer size for a peer that
                # is slow to read, or TLS waits for the peer's close_notify
                # before it closes the socket: flush it, but not forever.
                self._close_call = self._reactor.callLater(
                    self.linger, transport.abortConnection
                )
        if self._adopted_fd is not None:
            try:
                os.close(self._adopted_fd)
            except OSError:
                pass
            self._adopted_fd = None

    def _detach(self, transport: Any) -> None:
        """
        Let go of the connection without touching the owner's socket.

        Twisted adopts a duplicate of the descriptor and its close calls
        C{shutdown()}, which would end the owner's copy too: close only the
        duplicate (C{_shouldShutdown} is the flag Twisted itself clears for
        sockets it did not create; C{test_stream_sockets} checks that the
        owner's socket stays usable, so a change in Twisted shows there).
        """
        if hasattr(transport, "_shouldShutdown") and hasattr(transport, "connectionLost"):
            transport._shouldShutdown = False
            transport.connectionLost(Failure(ConnectionDone("inactivated")))
            if self._adopted_fd is not None and self._adopted_blocking is not None:
                try:
                    os.set_blocking(self._adopted_fd, self._adopted_blocking)
                except OSError:
                    pass
            return
        # Not a socket Twisted duplicated: leave it open, but stop consuming
        # what the owner may still want to read.
        if self._producing:
            self._producing = False
            transport.unregisterProducer()
        pause = getattr(transport, "pauseProducing", None)
        if pause is not None:
            pause()

    def _release_producer(self) -> None:
        """
        Stop being the transport's producer, so that a close or half-close is
        not held up by a paused producer. A write waiting for the transport
        to drain completes now: its bytes go out before the close.
        """
        transport = self.transport
        if transport is not None and self._producing:
            # Not "transport.producer is self": TLS wraps us in its membrane.
            self._producing = False
            transport.unregisterProducer()  # type: ignore[attr-defined]
        self._pushed_back = False
        d, self._write_d = self._write_d, None
        if d is not None:
            self._write_drained()
            d.callback(None)

    def _abort_with(self, error: Exception, quiet: bool = False) -> None:
        """
        Close the connection because of C{error}, which every pending
        operation fails with.

        @param quiet: log at debug level only (whoever closes it logs).
        """
        log = self.log.debug if quiet else self.log.info
        log("closing the connection from {peer}: {error}", peer=self._peer, error=error)
        self._count_close(error)
        if self._reader.failed is None:
            self._reader.close(error)
        self._close_reason = Failure(error)
        self._fail_read(self._close_reason)
        self._abort_transport()

    def _abort_transport(self) -> None:
        transport = self.transport
        if transport is None:
            return
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()

    # -- Deadlines, eviction and counts ----------------------------------------

    def _waiting(self) -> bool:
        """
        Whether the application waits for the peer: a read is pending and no
        TLS handshake (which has its own timeout) is under way.
        """
        return self._read_d is not None and self._tls is not TLSState.HANDSHAKING

    def _record_begun(self) -> None:
        track = self._track
        now = self._reactor.seconds()
        track.record_since = now
        if self.deadlines.record_deadline is not None:
            self._arm_deadline(now + self.deadlines.record_deadline)

    def _write_blocked(self, pieces: list[bytes]) -> None:
        if self.deadlines.write_deadline is None:
            return
        now = self._reactor.seconds()
        self._track.write_since = now
        self._track.write_bytes = sum(map(len, pieces))
        self._arm_deadline(now + self.deadlines.write_deadline)

    def _write_drained(self) -> None:
        self._track.write_since = None

    def _arm_deadline(self, when: float | None) -> None:
        """
        Make sure the deadline timer runs no later than C{when}.
        """
        if when is None or self._life is not Life.OPEN or not self.deadlines.enabled:
            return
        call = self._deadline_call
        if call is not None:
            if call.getTime() <= when:
                return
            call.cancel()
        delay = max(0.0, when - self._reactor.seconds())
        self._deadline_call = self._reactor.callLater(delay, self._deadline_due)

    def _cancel_deadline(self) -> None:
        call, self._deadline_call = self._deadline_call, None
        if call is not None and call.active():
            call.cancel()

    def _deadline_due(self) -> None:
        """
        The deadline timer ran: close the connection if a deadline passed,
        else look again when the next one may.
        """
        self._deadline_call = None
        if self._life is not Life.OPEN:
            return
        now = self._reactor.seconds()
        waiting = self._waiting()
        track = self._track
        expiry = track.expired(now, waiting)
        if expiry is None:
            self._arm_deadline(track.next_check(now, waiting))
            return
        d = self.deadlines
        error: DeadlineExceeded
        if expiry is Expiry.RECORD:
            assert d.record_deadline is not None
            error = RecordDeadlineExceeded(d.record_deadline, self._reader.record_progress)
        elif expiry is Expiry.WRITE:
            assert d.write_deadline is not None
            error = WriteDeadlineExceeded(d.write_deadline, track.write_bytes)
        else:
            limit = track.idle_limit()
            assert limit is not None
            first = not track.proven and d.first_record_timeout is not None
            error = IdleTimeout(
                limit, track.proven, "first_record_timeout" if first else "idle_timeout"
            )
        self._abort_with(error)

    def evict(self, error: Evicted) -> None:
        """
        Close the connection now to make room for another; every pending
        operation fails with C{error}. Called by a listener at its
        C{max_connections}, which logs evictions itself (rate-limited: a
        flood must not flood the log).
        """
        if self._life is not Life.OPEN:
            return
        self._abort_with(error, quiet=True)

    def _count_close(self, error: BaseException) -> None:
        """
        Count why we closed the connection.
        """
        key = _close_key(error)
        if key is not None:
            self._counters.add(key)

    def __repr__(self) -> str:
        return f"<StreamController {self._life.value} peer={self._peer}>"


def _close_key(error: BaseException) -> str | None:
    """
    The counter a close for C{error} counts under, if any.
    """
    if isinstance(error, RecordTooLarge):
        return REFUSED_SNIFF if error.looks_like is not None else REFUSED_LIMIT
    if isinstance(error, MalformedRecord):
        return REFUSED_MALFORMED
    if isinstance(error, RecordDeadlineExceeded):
        return DEADLINE_RECORD
    if isinstance(error, WriteDeadlineExceeded):
        return DEADLINE_WRITE
    if isinstance(error, IdleTimeout):
        return DEADLINE_IDLE if error.proven else DEADLINE_FIRST_RECORD
    if isinstance(error, HandshakeTimeout):
        return DEADLINE_HANDSHAKE
    if isinstance(error, Evicted):
        return f"evicted.{error.why}"
    return None
