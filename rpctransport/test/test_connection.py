# -*- test-case-name: rpctransport.test.test_connection -*-
"""
Tests for L{rpctransport.sansio.connection}: the state of a stream
connection without any I/O.
"""

from __future__ import annotations

import struct

from twisted.trial.unittest import SynchronousTestCase

from rpctransport.sansio.connection import (
    TRANSITIONS,
    Input,
    Life,
    Move,
    Output,
    Shutdown,
    Side,
    StreamConnection,
    TLSState,
)
from rpctransport.sansio.counters import REFUSED_RULE, Counters
from rpctransport.sansio.deadlines import Deadlines
from rpctransport.sansio.errors import (
    ControllerBusy,
    ControllerInactive,
    LocalProtocolError,
    PlaintextInjection,
    RecordDeadlineExceeded,
)
from rpctransport.sansio.record import NEED_DATA, FragmentHeader, RecordReader
from rpctransport.sansio.rpcmsg import TLSProbeAnswer, encode_tls_probe
from rpctransport.sansio.types import DROP, Accepted, Dropped


def framed(message: bytes) -> bytes:
    """
    C{message} as one record of one fragment.
    """
    return struct.pack(">I", 0x80000000 | len(message)) + message


def connection(**options: object) -> StreamConnection:
    """
    An open connection with default limits.
    """
    conn = StreamConnection(
        RecordReader(), Deadlines(**options), Counters(None)  # type: ignore[arg-type]
    )
    conn.made(0.0)
    return conn


class TransitionTableTests(SynchronousTestCase):
    """
    The one transition table.
    """

    def test_every_state_moves(self) -> None:
        """
        Every state of every machine has at least one move out of it or
        into it in L{TRANSITIONS}, and every move leads to a state of the
        same machine.
        """
        listed = {state for state, _ in TRANSITIONS} | set(TRANSITIONS.values())
        for machine in (Life, Side, Input, Output, Shutdown, TLSState):
            for state in machine:
                self.assertIn(state, listed, state)
        for (state, _), new in TRANSITIONS.items():
            self.assertIs(type(state), type(new))

    def test_illegal_move(self) -> None:
        """
        A move the table does not list for the current state is a local
        error that names both, and changes nothing.
        """
        conn = connection()
        error = self.assertRaises(LocalProtocolError, conn.handshake_done)
        self.assertEqual(
            str(error), "handshake completed is not possible while tls is plain"
        )
        self.assertIs(conn.tls, TLSState.PLAIN)

    def test_misuse(self) -> None:
        """
        A second waiting write is refused as busy; after C{inactivate} both
        sides are refused as inactive.
        """
        conn = connection()
        conn.write_waiting(10, 1.0)
        self.assertRaises(ControllerBusy, conn.check_write)
        conn.inactivate()
        self.assertRaises(ControllerInactive, conn.check_write)
        self.assertRaises(ControllerInactive, conn.check_read)
        self.assertIs(conn.life, Life.INACTIVE)


class EventTests(SynchronousTestCase):
    """
    What the connection returns for the bytes it is fed.
    """

    def test_rule_is_an_input(self) -> None:
        """
        A record whose rule must be asked for comes as a L{FragmentHeader};
        the answer goes in through the reader, and a refusal is counted.
        """
        conn = connection()
        conn.receive(framed(b"abcd") + framed(b"efgh"), 1.0)
        header = conn.next_event()
        self.assertEqual(header, FragmentHeader(4))
        conn.reader.decide(DROP)
        self.assertEqual(conn.next_event(), Dropped())
        self.assertEqual(conn.counters.view[REFUSED_RULE], 1)
        conn.reader.accept_all = True
        self.assertEqual(conn.next_event(), Accepted(b"efgh"))
        self.assertIs(conn.next_event(), NEED_DATA)

    def test_probe_answered(self) -> None:
        """
        On a server that offers TLS, an RFC 9289 probe is not delivered: it
        comes as the C{STARTTLS} answer to send.
        """
        conn = StreamConnection(RecordReader(), Deadlines(), Counters(None), offers_tls=True)
        conn.made(0.0)
        conn.reader.accept_all = True
        conn.receive(framed(encode_tls_probe(7, 100003, 4)), 1.0)
        answer = conn.next_event()
        assert isinstance(answer, TLSProbeAnswer)
        self.assertTrue(answer.upgrade)
        self.assertEqual(answer.reply[:4], b"\0\0\0\x07")

    def test_probe_with_plaintext_behind(self) -> None:
        """
        Bytes behind a probe that asks for TLS would be read as plaintext:
        refused.
        """
        conn = StreamConnection(RecordReader(), Deadlines(), Counters(None), offers_tls=True)
        conn.made(0.0)
        conn.reader.accept_all = True
        conn.receive(framed(encode_tls_probe(7, 100003, 4)) + b"more", 1.0)
        self.assertRaises(PlaintextInjection, conn.next_event)

    def test_flow(self) -> None:
        """
        The input pauses while no read is pending and the limit is reached,
        and resumes when a read is.
        """
        conn = connection()
        conn.receive(b"x" * 10, 1.0)
        self.assertIs(conn.input_flow(False, 10), Move.PAUSE)
        self.assertIsNone(conn.input_flow(False, 10))
        self.assertIs(conn.input_flow(True, 10), Move.RESUME)

    def test_shutdown(self) -> None:
        """
        A shutdown is complete once our side closed and the input ended.
        """
        conn = connection()
        conn.start_shutdown()
        self.assertIs(conn.writer_side, Side.SHUT)
        conn.output_closed()
        self.assertFalse(conn.shutdown_complete)
        conn.input_ended()
        self.assertTrue(conn.shutdown_complete)

    def test_record_deadline(self) -> None:
        """
        A record half received while a read waits has C{record_deadline}
        seconds; past them, the error to close with says how far it got.
        """
        conn = connection(record_deadline=5.0)
        conn.reader.accept_all = True
        conn.receive(b"\x80\0\0\x10abc", 1.0)
        self.assertIs(conn.next_event(), NEED_DATA)
        self.assertTrue(conn.after_delivery(False, True))
        self.assertEqual(conn.record_begun(1.0), 6.0)
        self.assertIsInstance(conn.expired(5.0, True), float)
        error = conn.expired(6.0, True)
        assert isinstance(error, RecordDeadlineExceeded)
        self.assertIn("7", str(error))
