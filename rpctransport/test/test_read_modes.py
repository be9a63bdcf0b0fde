# -*- test-case-name: rpctransport.test.test_read_modes -*-
"""
One contract, two read modes: the stream controller's one-shot reads
(C{start_reading}, a Deferred per record) and its stream of records
(C{receive_records}, a receiver called per record) must deliver the same
records under the same C{before_record} rules, limits, deadlines and
refusals. L{ReadModeContract} is written once against a L{Taker}; it runs
as L{OneShotReadTests} and L{StreamedReadTests}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from rpctransport import (
    ACCEPT,
    DENY,
    DROP,
    END_OF_FILE,
    REJECT,
    Accepted,
    Denied,
    Dropped,
    IncompleteRecord,
    MalformedRecord,
    RecordDeadlineExceeded,
    RecordTooLarge,
    Rejected,
    RejectedWith,
    RejectWith,
    ServerError,
)
from rpctransport.test.helpers import PEER, connected, echo_call, mark, record

XID = b"\x00\x00\x00\x2a"


class Taker:
    """
    Takes every record from a controller in one read mode and writes down
    what came, in one form for both: C{records} (each a record value, as a
    one-shot read gives it) and C{ended} (L{None} while records may come;
    C{END_OF_FILE}; or the failure it ended with).
    """

    def __init__(self, controller: Any, before_record: Any = None) -> None:
        self.controller = controller
        self.before_record = before_record
        self.records: list[Any] = []
        self.peers: list[object] = []
        self.ended: Any = None

    def start(self) -> None:
        raise NotImplementedError


class OneShotTaker(Taker):
    """
    A C{start_reading} loop: the next read starts from each read's callback.
    """

    def start(self) -> None:
        self._next()

    def _next(self) -> None:
        d = self.controller.start_reading(before_record=self.before_record)
        d.addCallbacks(self._got, self._failed)

    def _got(self, result: Any) -> None:
        if result is END_OF_FILE:
            self.ended = END_OF_FILE
            return
        self.records.append(result[0])
        self.peers.append(result[1])
        self._next()

    def _failed(self, failure: Failure) -> None:
        self.ended = failure


class StreamTaker(Taker):
    """
    A receiver of C{receive_records}.
    """

    def start(self) -> None:
        self.handle = self.controller.receive_records(self, self.before_record)

    def record_received(self, message: bytes, peer: object) -> None:
        self.records.append(Accepted(message))
        self.peers.append(peer)

    def record_refused(self, record: Any, peer: object) -> None:
        self.records.append(record)
        self.peers.append(peer)

    def receiving_ended(self, reason: Failure) -> None:
        assert self.ended is None, "receiving_ended called twice"
        self.ended = END_OF_FILE if reason.check(ConnectionDone) else reason


class ReadModeContract:
    """
    What either read mode must do; L{make_taker} picks the mode.
    """

    taker_class: type[Taker]

    # Provided by SynchronousTestCase.
    assertEqual: Any
    assertIsNone: Any
    assertIs: Any
    assertTrue: Any
    assertFalse: Any
    assertIsInstance: Any

    def take(self, before_record: Any = None, **options: Any) -> tuple[Taker, Any, Any]:
        controller, transport, clock = connected(**options)
        taker = self.taker_class(controller, before_record)
        taker.start()
        return taker, transport, clock

    def test_records_in_order(self) -> None:
        """
        Whole records in one chunk, across chunks, fragmented and empty come
        in order, each with the peer.
        """
        taker, _, _ = self.take()
        c = taker.controller
        data = (
            record(b"one")
            + record(b"")
            + mark(2, last=False)
            + b"tw"
            + mark(1)
            + b"o"
            + record(b"three" * 100)
        )
        c.dataReceived(data[:7])
        c.dataReceived(data[7:20])
        c.dataReceived(data[20:])
        self.assertEqual(
            taker.records,
            [Accepted(b"one"), Accepted(b""), Accepted(b"two"), Accepted(b"three" * 100)],
        )
        self.assertEqual(taker.peers, [PEER] * 4)
        self.assertIsNone(taker.ended)

    def test_many_records_one_chunk(self) -> None:
        """
        A thousand small records in one chunk are all delivered, byte for
        byte.
        """
        taker, _, _ = self.take()
        messages = [bytes([i % 251]) * (i % 70) for i in range(1000)]
        taker.controller.dataReceived(b"".join(record(m) for m in messages))
        self.assertEqual(taker.records, [Accepted(m) for m in messages])

    def test_rules(self) -> None:
        """
        Each rule gives the same record in both modes, whole records in one
        chunk or not.
        """
        rules = iter(
            [ACCEPT, REJECT, RejectWith(ServerError.GARBAGE_ARGS), DENY, DROP, ACCEPT, ACCEPT]
        )
        sizes: list[int] = []

        def before(size: int, peer: object) -> Any:
            sizes.append(size)
            return next(rules)

        taker, _, _ = self.take(before)
        data = b"".join(record(XID + bytes([n]) * n) for n in range(1, 6))
        taker.controller.dataReceived(data)
        taker.controller.dataReceived(mark(4, last=False) + XID + mark(2) + b"zz")
        self.assertEqual(
            taker.records,
            [
                Accepted(XID + b"\x01"),
                Rejected(XID),
                RejectedWith(XID, ServerError.GARBAGE_ARGS),
                Denied(),
                Dropped(),
                Accepted(XID + b"zz"),
            ],
        )
        self.assertEqual(sizes, [5, 6, 7, 8, 9, 4, 6])
        self.assertEqual(taker.controller.counters.get("refused.rule"), 4)

    def test_hook_sees_fragments(self) -> None:
        """
        The hook is asked at each fragment header with the size so far; a
        record it rejects after its first fragment keeps only the xid.
        """
        seen: list[int] = []

        def before(size: int, peer: object) -> Any:
            seen.append(size)
            return ACCEPT if size < 10 else REJECT

        taker, _, _ = self.take(before)
        taker.controller.dataReceived(mark(8, last=False) + XID + b"abcd" + mark(8) + b"efghijkl")
        self.assertEqual(seen, [8, 16])
        self.assertEqual(taker.records, [Rejected(XID)])

    def test_too_large(self) -> None:
        """
        A record over C{max_record_size} ends the reads with
        L{RecordTooLarge} and closes the connection, before its payload is
        kept; the records before it are delivered.
        """
        taker, transport, _ = self.take(max_record_size=100)
        taker.controller.dataReceived(record(b"ok") + mark(101) + b"x" * 10)
        self.assertEqual(taker.records, [Accepted(b"ok")])
        self.assertIsInstance(taker.ended, Failure)
        self.assertTrue(taker.ended.check(RecordTooLarge))
        self.assertTrue(transport.disconnecting or transport.disconnected)
        self.assertEqual(taker.controller.counters.get("refused.limit"), 1)

    def test_malformed(self) -> None:
        """
        Too many empty fragments end the reads with L{MalformedRecord}.
        """
        taker, _, _ = self.take(max_empty_fragments=2)
        taker.controller.dataReceived(mark(0, last=False) * 3)
        self.assertTrue(taker.ended.check(MalformedRecord))

    def test_hook_raises(self) -> None:
        """
        What C{before_record} raises ends the reads and closes the
        connection.
        """

        def before(size: int, peer: object) -> Any:
            raise ZeroDivisionError(size)

        taker, transport, _ = self.take(before)
        taker.controller.dataReceived(record(b"abc"))
        self.assertTrue(taker.ended.check(ZeroDivisionError))
        self.assertEqual(taker.records, [])
        self.assertFalse(taker.controller.alive and not transport.disconnecting)

    def test_bad_rule(self) -> None:
        """
        A hook that returns something other than a rule fails the reads
        with C{TypeError}.
        """
        taker, _, _ = self.take(lambda size, peer: "yes")
        taker.controller.dataReceived(record(b"abc"))
        self.assertTrue(taker.ended.check(TypeError))

    def test_end_between_records(self) -> None:
        """
        A clean end between records: the records, then the end of file.
        """
        taker, _, _ = self.take()
        c = taker.controller
        c.dataReceived(record(b"a") + record(b"b"))
        c.readConnectionLost()
        self.assertEqual(taker.records, [Accepted(b"a"), Accepted(b"b")])
        self.assertIs(taker.ended, END_OF_FILE)

    def test_end_inside_record(self) -> None:
        """
        The end inside a record fails with L{IncompleteRecord}.
        """
        taker, _, _ = self.take()
        c = taker.controller
        c.dataReceived(record(b"a") + mark(10) + b"abc")
        c.readConnectionLost()
        self.assertEqual(taker.records, [Accepted(b"a")])
        self.assertTrue(taker.ended.check(IncompleteRecord))

    def test_connection_lost(self) -> None:
        """
        A broken connection fails with the transport's reason.
        """
        taker, _, _ = self.take()
        c = taker.controller
        c.dataReceived(mark(10) + b"abc")
        c.connectionLost(Failure(ConnectionLost("reset")))
        self.assertTrue(taker.ended.check(ConnectionLost))

    def test_record_deadline(self) -> None:
        """
        A record trickled past C{record_deadline} closes the connection with
        L{RecordDeadlineExceeded}.
        """
        taker, transport, clock = self.take(record_deadline=5.0)
        c = taker.controller
        c.dataReceived(record(b"a") + mark(10) + b"ab")
        clock.advance(3)
        c.dataReceived(b"c")
        clock.advance(3)
        self.assertTrue(taker.ended.check(RecordDeadlineExceeded))
        self.assertEqual(c.counters.get("deadline.record"), 1)

    def test_idle_timeout(self) -> None:
        """
        A peer that sends nothing while records are awaited is closed at
        the idle timeout.
        """
        taker, _, clock = self.take(idle_timeout=10.0)
        taker.controller.dataReceived(record(b"a"))
        clock.advance(9)
        self.assertIsNone(taker.ended)
        clock.advance(2)
        self.assertIsInstance(taker.ended, Failure)
        self.assertEqual(taker.controller.counters.get("deadline.idle"), 1)

    def test_probe_answered_not_delivered(self) -> None:
        """
        On a server, an RFC 9289 probe is answered by the controller and
        never delivered; the records around it are.
        """
        from rpctransport.sansio.rpcmsg import AuthFlavor, CallHeader, OpaqueAuth, encode_call_header

        probe = encode_call_header(
            CallHeader(7, 100003, 3, 0, cred=OpaqueAuth(AuthFlavor.AUTH_TLS, b""))
        )
        taker, transport, _ = self.take(recognise_probes=True)
        taker.controller.dataReceived(record(b"a") + record(probe) + record(b"b"))
        self.assertEqual(taker.records, [Accepted(b"a"), Accepted(b"b")])
        self.assertIn(probe[:4], transport.value())

    def test_echo_calls(self) -> None:
        """
        Calls of the echo program, pipelined, come whole.
        """
        taker, _, _ = self.take()
        calls = [echo_call(i, argument=b"p" * i) for i in range(50)]
        taker.controller.dataReceived(b"".join(record(c) for c in calls))
        self.assertEqual(taker.records, [Accepted(c) for c in calls])


class OneShotReadTests(ReadModeContract, SynchronousTestCase):
    """
    The contract, with C{start_reading}.
    """

    taker_class = OneShotTaker


class StreamedReadTests(ReadModeContract, SynchronousTestCase):
    """
    The contract, with C{receive_records}.
    """

    taker_class = StreamTaker
