# -*- test-case-name: rpctransport.test.test_interfaces -*-
"""
Layer 2: the controller contract, as a zope interface.

This is OCamlnet's C{Rpc_transport.rpc_multiplex_controller} in Python terms
(see C{docs/contract.rst}). Every controller of rpctransport provides
L{IRpcMultiplexController}, and the test suite checks it with
C{verifyObject}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Union

from twisted.internet.interfaces import IAddress
from zope.interface import Attribute, Interface

from .sansio.types import EndOfFile, Implied, InRecord, InRule

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IPushProducer
    from twisted.python.failure import Failure

__all__ = [
    "BeforeRecord",
    "IRecordReceiver",
    "IRecordStreaming",
    "IRpcMultiplexController",
    "Message",
    "ReadResult",
]

BeforeRecord = Callable[[int, IAddress], InRule]
"""
A C{before_record(size_so_far, peer)} hook: return the rule for the record.
C{peer} is the connection's peer on a stream, the datagram's source address
on UDP (an C{IPv4Address} or C{IPv6Address}).
"""

ReadResult = Union[tuple[InRecord, IAddress], EndOfFile]
"""
What a read's Deferred fires with: C{(record, peer)} for a record (C{peer}
as for L{BeforeRecord}), or L{END_OF_FILE <rpctransport.sansio.types.END_OF_FILE>}.
Narrow it with C{result is END_OF_FILE}, then C{isinstance(record,
Accepted)} and the like.
"""

Message = Union[bytes, bytearray, memoryview, Sequence[Union[bytes, bytearray, memoryview]]]
"""
What C{start_writing} takes: bytes-like, or a sequence of bytes-like pieces.
"""


class IRpcMultiplexController(Interface):
    """
    Owns one connection (stream) or one socket (datagram) and moves whole RPC
    records in and out of it: one read and one write at a time, each a
    one-shot L{Deferred}.

    Misuse (a second read while one is pending, a call after L{inactivate})
    raises at once; trouble from the network arrives as a failed Deferred.
    Errors on stream connections are fatal: close the connection and open a
    new one.
    """

    alive = Attribute(
        """
        C{bool}: the socket is not yet completely down (neither closed by both
        sides nor inactivated).
        """
    )

    reactor = Attribute(
        """
        The reactor the controller runs on (the seed's C{event_system}), an
        C{IReactorTime}.
        """
    )

    protocol = Attribute(
        """
        L{RpcProtocol.TCP <rpctransport.RpcProtocol.TCP>} for streams (TCP,
        UNIX sockets, TLS), L{RpcProtocol.UDP <rpctransport.RpcProtocol.UDP>}
        for datagrams.
        """
    )

    tls_session_props = Attribute(
        """
        L{None} when the connection has no TLS; otherwise a small frozen value
        object describing the session (version, cipher, ALPN protocol, peer
        certificates, server name).
        """
    )

    peer_user_name = Attribute(
        """
        C{str} or L{None}: the peer's identity when the transport
        authenticates it (the user name of the peer process on a UNIX socket;
        the identity in a TLS client certificate).
        """
    )

    file_descr = Attribute(
        """
        C{int} or L{None}: the file descriptor the controller works on, when
        there is one.
        """
    )

    counters = Attribute(
        """
        A read-only C{Mapping[str, int]}: what the controller refused, closed
        its connection for, or was told about its peers, counted per reason
        (the keys of L{rpctransport.sansio.counters}: C{refused.limit},
        C{deadline.record}, C{udp.ECONNREFUSED}, ...). A key appears once
        its count is 1.
        """
    )

    reading = Attribute("""C{bool}: a read is pending.""")

    writing = Attribute("""C{bool}: a write is pending.""")

    read_eof = Attribute(
        """
        C{bool}: the end of the input has been seen (the peer closed its side,
        or a shutdown completed).
        """
    )

    def getsockname() -> IAddress | Implied:
        """
        The local address of the socket (a Twisted C{IAddress}), or
        L{IMPLIED <rpctransport.sansio.types.IMPLIED>} when it has none to tell.
        """

    def getpeername() -> IAddress | Implied:
        """
        The address of the socket's peer (a Twisted C{IAddress}).

        @raise NotConnected: the socket has no fixed peer (an unconnected
            datagram socket).
        """

    def start_reading(
        peek: Callable[[], object] | None = None,
        before_record: BeforeRecord | None = None,
    ) -> Deferred[ReadResult]:
        """
        Start one read: a one-shot job for the next whole record.

        @param peek: called just before each chunk of incoming data is
            consumed.
        @param before_record: called as C{before_record(size_so_far, peer)}
            when each fragment header has been read (stream) or once per
            datagram, with the total size announced so far; called for every
            fragment as long as the answer is C{ACCEPT}, and at least once
            before the read completes. The last answer decides the record:
            C{ACCEPT} buffers it, C{REJECT}/C{RejectWith} keep its first 4
            bytes, C{DENY}/C{DROP} keep nothing. Without it, every record is
            accepted. It must not call L{cancel_rd_polling}. If it raises,
            the read fails with that exception and the connection is closed.

        @return: a L{Deferred} that fires with C{(record, peer)} for the next
            record (C{record} is C{Accepted}, C{Rejected}, C{RejectedWith},
            C{Denied} or C{Dropped}), or with C{END_OF_FILE} when the peer
            closed cleanly between records (again on every later read), or
            fails with a C{TransportError} or the transport's reason.
            Cancelling it is L{cancel_rd_polling}.

        @raise ControllerBusy: a read is already pending.
        @raise ControllerInactive: the controller was inactivated, or its
            reader aborted.
        """

    def start_writing(message: Message, addr: object = ...) -> Deferred[None]:
        """
        Start sending one record.

        @param message: bytes-like, or a sequence of bytes-like pieces that
            are not joined in Python.
        @param addr: where to send it: C{IMPLIED} (the default) for the peer
            of a connected socket, or an address; on a stream it must be
            C{IMPLIED} or the peer.

        @return: a L{Deferred} that fires with L{None} once the record has
            been accepted by the transport I{and} the transport is not pushing
            back (Twisted never tells when bytes reach the wire), or fails
            with the transport's reason.

        @raise ControllerBusy: a write is already pending.
        @raise ControllerInactive: the controller was inactivated, its writer
            aborted, or its writing side shut down.
        @raise AddressMismatch: C{addr} is not this connection's peer.
        """

    def cancel_rd_polling() -> None:
        """
        Stop the pending read, if any, without losing buffered data: its
        Deferred fails with C{CancelledError}. A later L{start_reading} goes
        on where this one stopped. Must not be called from C{before_record}.
        """

    def abort_rw() -> None:
        """
        End the reader and the writer for good: their Deferreds never fire,
        buffers are released. L{start_shutting_down} and L{inactivate} remain
        allowed.
        """

    def start_shutting_down() -> Deferred[None]:
        """
        Shut the connection down as a protocol handshake, not a close: on a
        stream, send EOF (TCP half-close; close_notify on TLS) and wait for
        the peer's EOF, at most a linger time, after which the shutdown still
        succeeds. Afterwards L{read_eof} is true. The descriptor stays open
        until L{inactivate}.

        @return: a L{Deferred} firing with L{None} when done; cancelling it is
            L{cancel_shutting_down}.
        """

    def cancel_shutting_down() -> None:
        """
        Cancel a shutdown in progress: its Deferred fails with
        C{CancelledError}. No error when no shutdown is in progress.
        """

    def set_timeout(notify: Callable[[], object], seconds: float) -> None:
        """
        Call C{notify()} once if no read, write or shutdown activity happens
        for C{seconds} while one of them is pending; activity re-arms it. A
        negative C{seconds} turns the timeout off. Time is the reactor's.
        """

    def inactivate() -> None:
        """
        Release everything now: cancel timers, drop buffers, and close the
        descriptor when the controller owns it (calling C{preclose()} first).
        No callback fires afterwards. Calling it again does nothing.
        """


class IRecordReceiver(Interface):
    """
    What a streaming read delivers to (L{IRecordStreaming.receive_records}):
    Twisted's C{stringReceived} style, a call per record in the reactor turn
    its bytes arrived, rather than a Deferred per record.
    """

    def record_received(message: bytes, peer: IAddress) -> None:
        """
        A whole record that C{before_record} accepted (or every record, when
        there is no C{before_record}).

        @param message: the record's bytes, record marks removed.
        @param peer: who sent it (the connection's peer on a stream, the
            datagram's source address on UDP).
        """

    def record_refused(record: InRecord, peer: IAddress) -> None:
        """
        A record that C{before_record} did not accept, reported as a
        one-shot read would report it: C{Rejected} or C{RejectedWith}
        (keeping the xid), C{Denied} or C{Dropped}.
        """

    def receiving_ended(reason: Failure) -> None:
        """
        The records ended: called once, and nothing is delivered afterwards.
        C{reason} is a C{ConnectionDone} failure when the peer closed cleanly
        between records (or a shutdown completed); otherwise the error the
        one-shot read would have failed with (a C{TransportError}, an
        exception C{before_record} or this receiver raised, or the
        transport's reason).
        """


class IRecordStreaming(Interface):
    """
    Records at the rate they arrive, beside the one-shot reads and writes of
    L{IRpcMultiplexController}: one receiver called for every record, sends
    without a Deferred each, and backpressure through Twisted's
    producer/consumer interfaces.

    A controller is in one read mode at a time: while records stream, a
    one-shot C{start_reading} raises C{ControllerBusy}, and
    C{receive_records} raises it while a one-shot read is pending. After
    the stream is stopped (L{stopProducing <twisted.internet.interfaces.IProducer.stopProducing>} on the handle),
    the records still buffered go to whichever read comes next.
    """

    def receive_records(
        receiver: IRecordReceiver, before_record: BeforeRecord | None = None
    ) -> IPushProducer:
        """
        Deliver every record to C{receiver} as it is decoded, under the same
        C{before_record} rules, limits, deadlines and refusals as
        C{start_reading}. Records already buffered are delivered before this
        returns.

        @return: the stream's handle, an C{IPushProducer}: C{pauseProducing}
            stops deliveries (the transport is paused once
            C{read_buffer_limit} bytes wait: bounded buffering, nothing
            lost), C{resumeProducing} delivers what waits and goes on,
            C{stopProducing} ends the stream without calling
            C{receiving_ended}. Register it with L{register_producer} to stop
            taking records while the transport pushes back on replies.
        @raise ControllerBusy: a read is pending, or records already stream.
        @raise ControllerInactive: the controller was inactivated, or its
            reader aborted or shut down.
        """

    def send_record(message: Message, addr: object = ...) -> None:
        """
        Send one record now, without a Deferred: it goes to the transport,
        which buffers what the peer does not take yet. Watch the
        backpressure with L{register_producer}. Once the connection (or the
        socket) is gone, what is sent is discarded, as Twisted's transports
        discard writes after their end; on UDP, a datagram one peer refuses
        is counted, not raised.

        @param addr: as for C{start_writing}.
        @raise ControllerInactive: the controller was inactivated, or its
            writer aborted or shut down.
        @raise AddressMismatch: as for C{start_writing}.
        """

    def send_records(messages: Sequence[Message], addr: object = ...) -> None:
        """
        Send several records at once (one C{writeSequence} on a stream), as
        L{send_record} does one.
        """

    def register_producer(producer: IPushProducer) -> None:
        """
        Have C{producer} paused while the transport pushes back on what was
        sent, and resumed when it drains (at most one at a time). While it
        stays paused past the C{write_deadline}, the connection is closed.

        @raise RuntimeError: another producer is registered.
        """

    def unregister_producer() -> None:
        """
        Forget the producer registered with L{register_producer}, if any.
        """
