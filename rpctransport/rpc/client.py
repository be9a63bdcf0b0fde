# -*- test-case-name: rpctransport.test.test_rpc_client -*-
"""
An RPC client on any controller: calls on Deferreds, many in flight on one
connection, xids allocated and matched, per-call timeouts, UDP
retransmission.

L{RpcClient} takes a connected controller (a stream: TCP, UNIX or TLS; or a
datagram controller with one server, from
L{connect_datagram <rpctransport.entry.datagram.connect_datagram>}) and owns
it from then on. It receives with the stream of records (one
L{IRecordReceiver}, no Deferred per reply) and sends with C{send_record}.
L{connect_rpc_client} and L{datagram_rpc_client} make the controller and
the client in one go.

What the client decides where RFC 5531 leaves it open:

  - B{Xids} start at a random number and increment (modulo 2**32), skipping
    any still in flight.
  - B{The bound}: at most C{max_in_flight} calls are in flight; further
    calls wait, first come first served, and go out as slots free (a reply,
    a failure, a timeout, a cancellation). While the transport pushes back
    on what was sent, new calls wait too, whatever the bound.
  - B{Timeouts} count from a call's first send, not from the time it was
    made: waiting for a slot is the client's own pacing, not the server's
    slowness. To bound the whole wait, cancel the Deferred (for example with
    C{Deferred.addTimeout}). A timed-out call fails with L{CallTimeout}.
  - B{Retransmission}: on a datagram controller the same bytes (same xid)
    are sent again after C{retransmit} seconds (1 s by default), the
    interval doubling up to L{MAX_RETRANSMIT_INTERVAL}, never at or past the
    call's deadline. Streams retransmit only when C{retransmit} is given
    (TCP does not lose records).
  - B{Replies}: an xid that is no call in flight is counted and dropped
    (late and duplicate replies). A reply with a known xid that cannot be
    decoded fails that call with L{MalformedMessage} and is counted; the
    connection goes on, as the record itself was well delimited. A message
    that is not a reply at all is counted and dropped.
  - B{The end}: when the controller's records end (the server closed, the
    connection was lost, a limit or deadline closed it) or a send raises,
    every call in flight or waiting fails with that reason (Twisted's
    C{ConnectionDone} for a clean close), the controller is inactivated,
    and later calls fail at once with the same reason. On a datagram
    controller an error about the server (an ICMP port unreachable: a
    C{ConnectError}) fails the calls in flight and the client goes on, as
    libtirpc's UDP client does.

Timers cost one C{IDelayedCall} per client, not one per call: it is armed
at the earliest deadline or retransmission and moved only when a call with
an earlier one is sent.
"""

from __future__ import annotations

import enum
import secrets
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectError, ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..entry.datagram import connect_datagram
from ..entry.stream import connect_stream
from ..interfaces import IRecordReceiver, IRecordStreaming, IRpcMultiplexController
from ..sansio.auth import AuthSys
from ..sansio.calls import (
    CALL_RETRANSMITTED,
    CALL_TIMED_OUT,
    MAX_RETRANSMIT_INTERVAL,
    NEVER,
    REPLY_MALFORMED,
    REPLY_NOT_A_REPLY,
    REPLY_UNKNOWN_XID,
    SUCCESS_AFTER_XID,
    CallState,
    CallTable,
    PendingCall,
    build_message,
    header_tail,
    is_reply,
    reply_outcome,
)
from ..sansio.counters import Counters
from ..sansio.errors import CallTimeout, DatagramTooLarge, MalformedMessage
from ..sansio.rpcmsg import NULL_AUTH, OpaqueAuth
from ..sansio.types import InRecord, RpcProtocol

if TYPE_CHECKING:
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator

    from ..adapters.stream import StreamController

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_UDP_RETRANSMIT",
    "MAX_RETRANSMIT_INTERVAL",
    "NEVER",
    "ClientLife",
    "RpcClient",
    "connect_rpc_client",
    "datagram_rpc_client",
]

DEFAULT_MAX_IN_FLIGHT: Final = 64
"""
Calls in flight at once on one connection, by default: enough to keep a
loopback or LAN connection busy (the benchmark's pipelined cases use up to
100), few enough that a stalled server holds a bounded amount of the
client's memory; further calls wait.
"""

DEFAULT_TIMEOUT: Final = 25.0
"""
Seconds from a call's first send to its L{CallTimeout}, by default: the
total timeout rpcgen writes into every generated client stub (C{static
struct timeval TIMEOUT = { 25, 0 };}), which libtirpc users know.
"""

DEFAULT_UDP_RETRANSMIT: Final = 1.0
"""
Seconds from a call's first send over UDP to its first retransmission, by
default (then doubling): about the Linux NFS client's 1.1 s over UDP
(C{timeo=11}), far above loopback and LAN round trips; libtirpc's 15 s would
leave one retransmission in a 25 s call.
"""

_XID: Final = struct.Struct(">I")
_RESULTS_AT: Final = 4 + len(SUCCESS_AFTER_XID)
"""Where the results of a reply that starts with L{SUCCESS_AFTER_XID} begin."""


class ClientLife(enum.Enum):
    """
    An L{RpcClient}'s life: C{OPEN} -> C{ENDING} (C{close(drain=True)}: no
    new calls, the pending ones finish) -> C{ENDED}; C{OPEN} -> C{ENDED}
    (closed, or the connection ended).
    """

    OPEN = "open"
    ENDING = "ending"
    ENDED = "ended"


class _Output(enum.Enum):
    """
    Whether the transport takes new calls (C{FLOWING}) or pushes back on
    what was sent (C{PAUSED}: new calls wait).
    """

    FLOWING = "flowing"
    PAUSED = "paused"


class _Call(PendingCall):
    """
    A call of an L{RpcClient}: the table's entry, and its Deferred's
    canceller.
    """

    __slots__ = ("client",)

    waiter: Deferred[bytes]

    def __init__(
        self,
        client: RpcClient,
        program: int,
        version: int,
        procedure: int,
        tail: bytes,
        body: bytes | list[bytes],
        timeout: float,
    ) -> None:
        super().__init__(program, version, procedure, tail, body, timeout, None)
        self.client = client

    def cancel(self, d: Deferred[bytes]) -> None:
        """
        The Deferred was cancelled: free the call's slot (a late reply is
        then an unknown xid). The Deferred fails with C{CancelledError}.
        """
        client = self.client
        client._table.drop(self)
        client._slot_freed()


@implementer(IPushProducer)
class _Valve:
    """
    The client as its controller's producer: paused while the transport
    pushes back on what was sent, so that new calls wait.
    """

    def __init__(self, client: RpcClient) -> None:
        self._client = client

    def pauseProducing(self) -> None:
        """
        The transport is full: new calls wait.
        """
        self._client._output = _Output.PAUSED

    def resumeProducing(self) -> None:
        """
        The transport drained: send what waits.
        """
        client = self._client
        client._output = _Output.FLOWING
        client._slot_freed()

    def stopProducing(self) -> None:
        """
        Nothing to do: the end of the connection comes through
        C{receiving_ended}.
        """


def _discard(result: object) -> None:
    return None


@implementer(IRecordReceiver)
class RpcClient:
    """
    Calls procedures over one controller; see the module's docstring for
    the behaviour.

    @ivar timeout: the timeout of calls that do not give their own, in
        seconds (C{NEVER}: none); may be changed, for later calls.
    """

    log = Logger()

    def __init__(
        self,
        controller: IRpcMultiplexController,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        timeout: float = DEFAULT_TIMEOUT,
        retransmit: float | None = None,
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        Start receiving replies on C{controller}; the client owns it from
        now on (L{close} inactivates it).

        @param controller: a connected controller that also streams records
            (L{IRecordStreaming}): a stream controller, or a datagram
            controller with a fixed peer.
        @param max_in_flight: the most calls in flight at once; further
            calls wait.
        @param timeout: seconds from a call's first send until it fails
            with L{CallTimeout} (C{NEVER}: never).
        @param retransmit: seconds until a call unanswered is sent again,
            doubling each time up to L{MAX_RETRANSMIT_INTERVAL}; L{None}: the
            transport's default (L{DEFAULT_UDP_RETRANSMIT} on datagrams,
            never on streams); C{NEVER}: never.
        @param reactor: the clock for timeouts and retransmissions (the
            controller's reactor by default).
        @raise ValueError: a bound or a time is not positive.
        @raise TypeError: C{controller} does not stream records.
        @raise NotConnected: a datagram controller without a fixed peer.
        @raise ControllerBusy: a read is pending on C{controller}, or its
            records stream to someone else.
        @raise ControllerInactive: C{controller} was inactivated.
        @raise RuntimeError: another producer is registered with
            C{controller}.
        """
        multiplex = IRpcMultiplexController(controller)
        streaming = IRecordStreaming(controller)
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        protocol = multiplex.protocol
        if protocol is RpcProtocol.UDP:
            # Replies must come from one server: refuse a socket without one.
            multiplex.getpeername()
        if retransmit is None:
            retransmit = DEFAULT_UDP_RETRANSMIT if protocol is RpcProtocol.UDP else NEVER
        self.timeout = timeout
        self._controller = multiplex
        self._protocol = protocol
        self._clock: IReactorTime = reactor if reactor is not None else multiplex.reactor
        self._send = streaming.send_record
        self._table = CallTable(max_in_flight, secrets.randbits(32), retransmit)
        self._counters = Counters()
        self._life = ClientLife.OPEN
        self._reason: Failure | None = None
        self._output = _Output.FLOWING
        self._timer: IDelayedCall | None = None
        self._timer_at = NEVER
        self._closers: list[Deferred[None]] = []
        self._streaming = streaming
        # Replies already buffered are delivered before this returns, to a
        # client that is ready for them (none is known: they are strays).
        handle = streaming.receive_records(self)
        try:
            streaming.register_producer(_Valve(self))
        except BaseException:
            handle.stopProducing()
            raise

    # -- What users see -------------------------------------------------------

    @property
    def controller(self) -> IRpcMultiplexController:
        """
        The controller the client owns.
        """
        return self._controller

    @property
    def life(self) -> ClientLife:
        """
        Where the client is in its life (see L{ClientLife}).
        """
        return self._life

    @property
    def reason(self) -> Failure | None:
        """
        Why the client ended (or is ending), once it did: what calls fail
        with. L{None} while open.
        """
        return self._reason

    @property
    def in_flight(self) -> int:
        """
        How many calls are in flight (sent, not yet answered).
        """
        return len(self._table.in_flight)

    @property
    def waiting(self) -> int:
        """
        How many calls wait for a slot (or for the transport to drain).
        """
        return self._table.waiting

    @property
    def counters(self) -> Mapping[str, int]:
        """
        What the client counted, per reason, as a read-only mapping that
        follows the counts (the keys are in L{rpctransport.sansio.calls}):
        C{reply.unknown_xid}, C{reply.malformed}, C{reply.not_a_reply},
        C{call.timeout}, C{call.retransmit}. A key appears once its count
        is one. The controller counts its own refusals (L{controller}'s
        C{counters}).
        """
        return self._counters.view

    def call(
        self,
        program: int,
        version: int,
        procedure: int,
        args: bytes | Sequence[bytes] = b"",
        *,
        cred: OpaqueAuth | AuthSys = NULL_AUTH,
        verf: OpaqueAuth = NULL_AUTH,
        timeout: float | None = None,
    ) -> Deferred[bytes]:
        """
        Call a procedure.

        @param program: the program number.
        @param version: the program's version.
        @param procedure: the procedure number (0 is NULL).
        @param args: the procedure's arguments, already XDR-encoded:
            C{bytes}, or a sequence of pieces sent one after the other.
        @param cred: the credential: an L{OpaqueAuth}, or an L{AuthSys}
            (encoded here).
        @param verf: the verifier.
        @param timeout: seconds from the first send until the call fails
            with L{CallTimeout}; L{None}: the client's L{timeout}.
        @return: a Deferred that fires with the results (the bytes after an
            accepted SUCCESS reply's header), or fails with the
            L{RpcCallError <rpctransport.sansio.errors.RpcCallError>} the
            reply stands for (L{ProgramUnavailable
            <rpctransport.sansio.errors.ProgramUnavailable>},
            L{ProgramMismatch <rpctransport.sansio.errors.ProgramMismatch>}
            with the server's range, L{ProcedureUnavailable
            <rpctransport.sansio.errors.ProcedureUnavailable>},
            L{GarbageArguments
            <rpctransport.sansio.errors.GarbageArguments>},
            L{ServerSystemError
            <rpctransport.sansio.errors.ServerSystemError>},
            L{RpcVersionMismatch
            <rpctransport.sansio.errors.RpcVersionMismatch>}, L{AuthError
            <rpctransport.sansio.errors.AuthError>} with its C{auth_stat}),
            with L{CallTimeout}, with L{MalformedMessage} for a reply that
            cannot be decoded, with C{DatagramTooLarge} for a call too large
            for UDP, or with why the connection ended. Cancelling it frees
            the call's slot.
        @raise ValueError: a number does not fit in 32 bits, or C{timeout}
            is not positive.
        """
        if self._life is not ClientLife.OPEN:
            assert self._reason is not None
            return fail(self._reason)
        if isinstance(cred, AuthSys):
            cred = cred.as_credential()
        tail = header_tail(program, version, procedure, cred, verf)
        if timeout is None:
            timeout = self.timeout
        elif not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        body: bytes | list[bytes]
        if isinstance(args, bytes):
            body = args
        elif isinstance(args, (bytearray, memoryview)):
            body = bytes(args)
        else:
            body = list(args)
        call = _Call(self, program, version, procedure, tail, body, timeout)
        d: Deferred[bytes] = Deferred(call.cancel)
        call.waiter = d
        table = self._table
        if self._output is _Output.FLOWING and table.has_slot():
            table.admit(call)
            self._start(call, self._clock.seconds())
        else:
            table.enqueue(call)
        return d

    def null(
        self,
        program: int,
        version: int,
        *,
        cred: OpaqueAuth | AuthSys = NULL_AUTH,
        timeout: float | None = None,
    ) -> Deferred[None]:
        """
        Call procedure 0 (NULL) of C{program} and C{version}: does the
        server serve them? Its results, if any, are ignored.

        @return: a Deferred that fires with L{None}, or fails as L{call}'s.
        """
        d = self.call(program, version, 0, b"", cred=cred, timeout=timeout)
        return d.addCallback(_discard)

    def close(self, *, drain: bool = False) -> Deferred[None]:
        """
        End the client: inactivate the controller, fail what is pending
        with C{ConnectionDone}; later calls fail at once with it.

        @param drain: first let the calls in flight and waiting finish (no
            new calls are taken meanwhile: they fail with
            C{ConnectionDone}), then end.
        @return: a Deferred that fires with L{None} once the client ended.
        """
        life = self._life
        if life is ClientLife.ENDED:
            return succeed(None)
        if drain and len(self._table):
            if life is ClientLife.OPEN:
                self._life = ClientLife.ENDING
                self._reason = Failure(ConnectionDone("the RPC client is closing"))
            d: Deferred[None] = Deferred()
            self._closers.append(d)
            return d
        self._end(Failure(ConnectionDone("the RPC client was closed")))
        return succeed(None)

    # -- IRecordReceiver: the replies ---------------------------------------

    def record_received(self, message: bytes, peer: IAddress) -> None:
        """
        A reply: match its xid, fire its call. A SUCCESS reply with a null
        verifier is read without decoding; others go through
        L{reply_outcome}.
        """
        if not message.startswith(SUCCESS_AFTER_XID, 4):
            self._other_reply(message)
            return
        table = self._table
        call = table.take(_XID.unpack_from(message)[0])
        if call is None:
            self._counters.add(REPLY_UNKNOWN_XID)
            return
        cast(_Call, call).waiter.callback(message[_RESULTS_AT:])
        if table.waiting or self._life is not ClientLife.OPEN:
            self._slot_freed()

    def _other_reply(self, message: bytes) -> None:
        """
        A reply that is not a plain SUCCESS, or not a reply at all.
        """
        if len(message) < 8 or not is_reply(message):
            self._counters.add(REPLY_MALFORMED if len(message) < 8 else REPLY_NOT_A_REPLY)
            return
        call = self._table.take(_XID.unpack_from(message)[0])
        if call is None:
            self._counters.add(REPLY_UNKNOWN_XID)
            return
        d = cast(_Call, call).waiter
        try:
            outcome = reply_outcome(message, call.program, call.version, call.procedure)
        except MalformedMessage as e:
            self._counters.add(REPLY_MALFORMED)
            d.errback(e)
        else:
            if isinstance(outcome, int):
                d.callback(message[outcome:])
            else:
                d.errback(outcome)
        self._slot_freed()

    def record_refused(self, record: InRecord, peer: IAddress) -> None:
        """
        Never called: the client accepts every record (the controller's
        C{max_record_size} bounds them). Counted as malformed, should it be.
        """
        self._counters.add(REPLY_MALFORMED)

    def receiving_ended(self, reason: Failure) -> None:
        """
        The replies ended: end the client with C{reason}. On a datagram
        controller an error about the server (a C{ConnectError}, such as
        an ICMP port unreachable) fails only the calls in flight, and
        receiving goes on.
        """
        if self._life is ClientLife.ENDED:
            return
        if (
            self._protocol is RpcProtocol.UDP
            and reason.check(ConnectError)
            and self._controller.alive
        ):
            self._server_refused(reason)
            return
        self.log.debug("RPC client ends: {reason}", reason=reason.getErrorMessage())
        self._end(reason)

    # -- Inside ---------------------------------------------------------------

    def _server_refused(self, reason: Failure) -> None:
        """
        A datagram controller's server refused (ICMP): fail the calls in
        flight with C{reason}, receive again, send what waits.
        """
        table = self._table
        calls = [call for call in table.in_flight.values()]
        for call in calls:
            table.drop(call)
        try:
            self._streaming.receive_records(self)
        except Exception:
            self._end(reason)
        for call in calls:
            d = cast(_Call, call).waiter
            if not d.called:
                d.errback(reason)
        self._slot_freed()

    def _start(self, call: PendingCall, now: float) -> None:
        """
        Send a call just put in flight, for the first time, and arm the
        timer for it.
        """
        message = build_message(call.xid, call.tail, call.body)
        call.message = message
        due = self._table.sent(call, now)
        try:
            self._send(message)
        except DatagramTooLarge as e:
            # This call alone cannot go: nothing was sent.
            self._table.drop(call)
            cast(_Call, call).waiter.errback(e)
            return
        except Exception as e:
            self._end(Failure(e))
            return
        if call.state is CallState.IN_FLIGHT and due < self._timer_at:
            self._arm(due, now)

    def _arm(self, due: float, now: float) -> None:
        """
        Have the timer fire at C{due} (earlier than it is armed for).
        """
        self._timer_at = due
        delay = max(0.0, due - now)
        timer = self._timer
        if timer is None:
            self._timer = self._clock.callLater(delay, self._on_timer)
        else:
            timer.reset(delay)

    def _on_timer(self) -> None:
        """
        Fail the calls past their deadline, send again those due for it,
        and arm the timer for what is due next.
        """
        self._timer = None
        self._timer_at = NEVER
        clock = self._clock
        table = self._table
        expired, resend = table.due(clock.seconds())
        counters = self._counters
        for call in expired:
            counters.add(CALL_TIMED_OUT)
            d = cast(_Call, call).waiter
            if not d.called:
                d.errback(CallTimeout(call.timeout, call.xid, call.sent))
        for call in resend:
            if self._life is ClientLife.ENDED:
                return
            if call.state is not CallState.IN_FLIGHT:
                continue
            counters.add(CALL_RETRANSMITTED)
            try:
                self._send(call.message)
            except Exception as e:
                self._end(Failure(e))
                return
        if expired:
            self._slot_freed()
        if self._life is not ClientLife.ENDED:
            # Calls sent from _slot_freed may have armed the timer already,
            # for a later time than what else is due.
            due = table.next_due()
            if due < self._timer_at:
                self._arm(due, clock.seconds())

    def _slot_freed(self) -> None:
        """
        A call completed, or the transport drained: send the calls that
        wait, and end a draining client that has nothing left.
        """
        life = self._life
        if life is ClientLife.ENDED:
            return
        table = self._table
        if table.waiting and self._output is _Output.FLOWING:
            clock = self._clock
            while self._life is not ClientLife.ENDED and self._output is _Output.FLOWING:
                call = table.admit_next()
                if call is None:
                    break
                self._start(call, clock.seconds())
        if self._life is ClientLife.ENDING and not len(table):
            self._end(Failure(ConnectionDone("the RPC client was closed")))

    def _end(self, reason: Failure) -> None:
        """
        End the client for C{reason}: stop the timer, inactivate the
        controller, fail every call in flight or waiting, and fire the
        Deferreds of L{close}.
        """
        if self._life is ClientLife.ENDED:
            return
        self._life = ClientLife.ENDED
        self._reason = reason
        timer, self._timer = self._timer, None
        self._timer_at = NEVER
        if timer is not None and timer.active():
            timer.cancel()
        self._streaming.unregister_producer()
        self._controller.inactivate()
        for call in self._table.take_all():
            d = cast(_Call, call).waiter
            if not d.called:
                d.errback(reason)
        closers, self._closers = self._closers, []
        for closer in closers:
            closer.callback(None)

    def __repr__(self) -> str:
        return (
            f"<RpcClient {self._life.value} {self._protocol.value} "
            f"in_flight={self.in_flight} waiting={self.waiting}>"
        )


def _client_on(
    controller: IRpcMultiplexController,
    max_in_flight: int,
    timeout: float,
    retransmit: float | None,
    reactor: IReactorTime | None,
) -> RpcClient:
    """
    An L{RpcClient} on C{controller}; the controller is inactivated if the
    client cannot be made (a bad option).
    """
    try:
        return RpcClient(
            controller,
            max_in_flight=max_in_flight,
            timeout=timeout,
            retransmit=retransmit,
            reactor=reactor,
        )
    except BaseException:
        controller.inactivate()
        raise


def connect_rpc_client(
    endpoint: IStreamClientEndpoint | str,
    *,
    reactor: IReactorTime | None = None,
    tls: IOpenSSLClientConnectionCreator | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    timeout: float = DEFAULT_TIMEOUT,
    retransmit: float | None = None,
    **options: Any,
) -> Deferred[RpcClient]:
    """
    Connect a stream (TCP, UNIX, TLS) and make an L{RpcClient} on it.

    @param endpoint: a Twisted client endpoint, or a string for
        C{clientFromString} (C{"tcp:host=127.0.0.1:port=111"},
        C{"unix:path=/run/x.sock"}); see
        L{connect_stream <rpctransport.entry.stream.connect_stream>}.
    @param reactor: the reactor (the global one by default).
    @param tls: client TLS options (see L{rpctransport.client_tls_options}):
        TLS from the first byte.
    @param max_in_flight: as for L{RpcClient}.
    @param timeout: as for L{RpcClient}.
    @param retransmit: as for L{RpcClient} (never, by default, on a stream).
    @param options: limits and options for the controller
        (C{max_record_size}, ...).
    @return: a Deferred firing with the client once connected.
    """
    d: Deferred[StreamController] = connect_stream(
        endpoint, reactor=reactor, tls=tls, **options
    )
    return d.addCallback(_client_on, max_in_flight, timeout, retransmit, reactor)


def datagram_rpc_client(
    host: str,
    port: int,
    *,
    reactor: IReactorTime | None = None,
    interface: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    timeout: float = DEFAULT_TIMEOUT,
    retransmit: float | None = None,
    **limits: Any,
) -> RpcClient:
    """
    Bind a UDP client socket for the server at C{(host, port)} and make an
    L{RpcClient} on it (there is nothing to wait for: no handshake).

    @param host: the server's IP address, IPv4 or IPv6 (resolve names
        first).
    @param port: the server's UDP port.
    @param reactor: the reactor (the global one by default).
    @param interface: the local address to bind; see
        L{connect_datagram <rpctransport.entry.datagram.connect_datagram>}.
    @param max_in_flight: as for L{RpcClient}.
    @param timeout: as for L{RpcClient}.
    @param retransmit: as for L{RpcClient} (L{DEFAULT_UDP_RETRANSMIT}, by
        default).
    @param limits: limits and options for the controller
        (C{max_record_size}, ...).
    @raise InvalidAddressError: C{host} is not an IP address.
    @raise CannotListenError: the local address cannot be bound.
    """
    controller = connect_datagram(host, port, reactor, interface=interface, **limits)
    return _client_on(controller, max_in_flight, timeout, retransmit, reactor)
