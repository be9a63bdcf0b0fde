# -*- test-case-name: rpctransport.test.test_record -*-
"""
Tests for L{rpctransport.sansio.record}: the record-marking reader and
encoder (RFC 5531 section 11).

Most examples go through L{ReaderScenarios}, which feeds each one three ways:
whole, one byte at a time, and followed by a trailing record that must stay
untouched. Limits are tested at the limit and one past it. A hypothesis test
compares the reader with a small reference model over random records,
fragmentation, segmentation and rules.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from rpctransport.sansio.errors import (
    IncompleteRecord,
    MalformedRecord,
    RecordTooLarge,
    RemoteProtocolError,
)
from rpctransport.sansio.record import (
    DEFAULT_MAX_EMPTY_FRAGMENTS,
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_RECORD_SIZE,
    MAX_FRAGMENT_LENGTH,
    NEED_DATA,
    RecordReader,
    _split,
    encode_record,
)
from rpctransport.sansio.types import (
    ACCEPT,
    DENY,
    DROP,
    END_OF_FILE,
    REJECT,
    Accepted,
    Denied,
    Dropped,
    InRule,
    Rejected,
    RejectedWith,
    RejectWith,
    ServerError,
)
from rpctransport.test.helpers import LAST, fragment, next_event, record
# This module's record marks are not the last of their record unless told:
# mark(n) is a continued fragment's mark, mark(n, True) the last one's.
from rpctransport.test.helpers import fragment_mark as mark

TRAILER_PAYLOAD = b"the trailing record"
TRAILER = record(TRAILER_PAYLOAD)
"""A whole record fed after each example, which must come out intact."""

SERVER_ERROR_RULES = [RejectWith(e) for e in ServerError]


class Script:
    """
    A decision callback that answers from a list of rules, one per call, then
    C{then}; it logs the sizes it was called with.

    @ivar calls: the sizes passed to each call, in order.
    """

    def __init__(self, *rules: InRule, then: InRule = ACCEPT) -> None:
        self.rules = list(rules)
        self.then = then
        self.calls: list[int] = []

    def __call__(self, size: int) -> InRule:
        index = len(self.calls)
        self.calls.append(size)
        if index < len(self.rules):
            return self.rules[index]
        return self.then


def drain(
    reader: RecordReader,
    decide: Callable[[int], InRule],
    events: list[Any] | None = None,
) -> list[Any]:
    """
    Call C{next_event} until it returns L{NEED_DATA} or L{END_OF_FILE}; the
    events returned, L{END_OF_FILE} included, L{NEED_DATA} not.

    @param events: the list to append the events to (so that the events
        before an exception are kept), by default a new one.
    """
    if events is None:
        events = []
    while True:
        event = next_event(reader, decide)
        if event is NEED_DATA:
            return events
        events.append(event)
        if event is END_OF_FILE:
            return events


class ReaderScenarios(SynchronousTestCase):
    """
    Run a reader scenario whole, one byte at a time, and with trailing bytes.
    """

    def assertScenario(
        self,
        stream: bytes,
        expected: Sequence[Any],
        rules: Sequence[InRule] = (),
        calls: Sequence[int] | None = None,
        **limits: int,
    ) -> None:
        """
        Feed C{stream} three ways and check the records that come out.

          - whole: fed in one call, then the end of input;
          - one byte at a time, asking for events after each byte;
          - in one call followed by L{TRAILER}: after the C{expected} records
            the trailer must still be buffered whole (unless the last record
            was denied, whose rest is discarded only later) and come out
            intact, and nothing may remain after it.

        The first two ways must end with L{END_OF_FILE}, given twice.

        @param rules: what the decision callback answers, call after call
            (then L{ACCEPT}).
        @param calls: the sizes the callback must be called with, if given.
            In every way the callback must be called with the same sizes.
        @param limits: keyword arguments for L{RecordReader}.
        """
        expected = list(expected)
        calls = None if calls is None else list(calls)
        for way in ("whole", "bytewise"):
            script = Script(*rules)
            reader = RecordReader(**limits)
            if way == "whole":
                reader.feed(stream)
                events = drain(reader, script)
            else:
                events = []
                for i in range(len(stream)):
                    reader.feed(stream[i : i + 1])
                    events += drain(reader, script)
            reader.feed_eof()
            events += drain(reader, script)
            self.assertEqual(events, expected + [END_OF_FILE], way)
            self.assertIs(next_event(reader, script), END_OF_FILE, way)
            self.assertEqual(reader.buffered, 0, way)
            self.assertTrue(reader.at_record_boundary, way)
            self.assertIsNone(reader.failed, way)
            if calls is None:
                calls = list(script.calls)
            self.assertEqual(script.calls, list(calls), way)

        # The trailer must fit a small max_record_size.
        payload = TRAILER_PAYLOAD[: limits.get("max_record_size", len(TRAILER_PAYLOAD))]
        trailer = record(payload)
        script = Script(*rules)
        reader = RecordReader(**limits)
        reader.feed(stream + trailer)
        events = [next_event(reader, script) for _ in expected]
        self.assertEqual(events, expected, "trailing")
        if not (expected and expected[-1] == Denied()):
            self.assertEqual(reader.buffered, len(trailer), "trailing")
        self.assertEqual(next_event(reader, script), Accepted(payload), "trailing")
        self.assertEqual(reader.buffered, 0, "trailing")
        self.assertTrue(reader.at_record_boundary, "trailing")
        self.assertIs(next_event(reader, script), NEED_DATA, "trailing")
        assert calls is not None
        self.assertEqual(script.calls, calls + [len(payload)], "trailing")

    def assertScenarioFails(
        self,
        stream: bytes,
        error: type[BaseException],
        expected: Sequence[Any] = (),
        rules: Sequence[InRule] = (),
        eof: bool = False,
        raised_at: int | None = None,
        **limits: int,
    ) -> list[Any]:
        """
        Feed C{stream} whole, one byte at a time and (unless C{eof}) followed
        by L{TRAILER}; each time the C{expected} records must come out, then
        C{error} must be raised, and raised again by every later call: the
        reader is failed.

        @param eof: end the input after the stream; the error is about the
            end (the trailing way is skipped: a trailer would complete it).
        @param raised_at: when given, in the byte-at-a-time way the error
            must be raised as soon as this many bytes have been fed (from
            C{feed} or from C{next_event}), which shows it was raised before
            any later byte was needed.
        @return: the errors raised, one per way.
        """
        expected = list(expected)
        errors = []
        ways = ["whole", "bytewise"] if eof else ["whole", "bytewise", "trailing"]
        for way in ways:
            script = Script(*rules)
            reader = RecordReader(**limits)
            events: list[Any] = []
            fed = 0
            caught: BaseException | None = None
            try:
                if way == "bytewise":
                    for i in range(len(stream)):
                        fed = i + 1
                        reader.feed(stream[i : i + 1])
                        drain(reader, script, events)
                else:
                    reader.feed(stream + TRAILER if way == "trailing" else stream)
                    fed = len(stream)
                    drain(reader, script, events)
                if eof:
                    reader.feed_eof()
                    drain(reader, script, events)
            except error as e:
                caught = e
            self.assertIsNotNone(caught, f"{way}: no {error.__name__}; {events}")
            assert caught is not None
            self.assertEqual(events, expected, way)
            self.assertIs(reader.failed, caught, way)
            again = self.assertRaises(error, next_event, reader, script)
            self.assertIs(again, caught, way)
            self.assertEqual(reader.buffered, 0, way)
            if way == "bytewise" and raised_at is not None:
                self.assertEqual(fed, raised_at, "raised after the wrong byte")
            errors.append(caught)
        return errors


class ScenarioHelperTests(ReaderScenarios):
    """
    Tests that L{ReaderScenarios} fails when it should, so that the tests
    built on it can fail.
    """

    def test_wrongRecord(self) -> None:
        """
        L{ReaderScenarios.assertScenario} fails when the records differ.
        """
        self.assertRaises(
            self.failureException,
            self.assertScenario,
            record(b"abc"),
            [Accepted(b"abd")],
        )

    def test_wrongCalls(self) -> None:
        """
        L{ReaderScenarios.assertScenario} fails when the decision callback is
        called with other sizes.
        """
        self.assertRaises(
            self.failureException,
            self.assertScenario,
            record(b"abc"),
            [Accepted(b"abc")],
            calls=[4],
        )

    def test_noError(self) -> None:
        """
        L{ReaderScenarios.assertScenarioFails} fails when nothing is raised.
        """
        self.assertRaises(
            self.failureException,
            self.assertScenarioFails,
            record(b"abc"),
            MalformedRecord,
        )


class RecordMarkingTests(ReaderScenarios):
    """
    Tests for reassembling records from fragments with L{RecordReader}.
    """

    def test_oneFragment(self) -> None:
        """
        A record of one (last) fragment is delivered as L{Accepted} with its
        payload; the decision callback is called once, with its size.
        """
        self.assertScenario(record(b"hello"), [Accepted(b"hello")], calls=[5])

    def test_severalFragments(self) -> None:
        """
        The fragments of a record are joined into one message.
        """
        self.assertScenario(
            record(b"abc", b"defg", b"h"), [Accepted(b"abcdefgh")], calls=[3, 7, 8]
        )

    def test_severalRecords(self) -> None:
        """
        Records that follow each other come out one per L{next_event} call,
        in order.
        """
        stream = record(b"one") + record(b"t", b"wo") + record(b"three")
        self.assertScenario(
            stream,
            [Accepted(b"one"), Accepted(b"two"), Accepted(b"three")],
            calls=[3, 1, 3, 5],
        )

    def test_loneLastEmptyFragment(self) -> None:
        """
        A lone C{80000000} is one empty record, delivered as soon as its mark
        is read, without waiting for more bytes or the end of input.
        """
        self.assertScenario(mark(0, True), [Accepted(b"")], calls=[0])
        reader = RecordReader()
        reader.feed(mark(0, True))
        self.assertEqual(next_event(reader, Script()), Accepted(b""))
        self.assertTrue(reader.at_record_boundary)

    def test_emptyFragmentThenLast(self) -> None:
        """
        C{00000000} followed by a last fragment is one record, not two.
        """
        self.assertScenario(
            mark(0) + fragment(b"abc", True), [Accepted(b"abc")], calls=[0, 3]
        )

    def test_emptyLastFragment(self) -> None:
        """
        A record may end with an empty last fragment.
        """
        self.assertScenario(
            fragment(b"abc") + mark(0, True), [Accepted(b"abc")], calls=[3, 3]
        )

    def test_emptyRecords(self) -> None:
        """
        Empty records between other records are delivered each as one empty
        record.
        """
        stream = mark(0, True) + record(b"x") + mark(0) + mark(0, True)
        self.assertScenario(
            stream, [Accepted(b""), Accepted(b"x"), Accepted(b"")], calls=[0, 1, 0, 0]
        )

    def test_fragmentsOfEverySize(self) -> None:
        """
        Fragments of sizes around the reader's small-piece and coalescing
        thresholds are joined correctly.
        """
        payloads = [bytes([i % 251]) * n for i, n in enumerate((1, 1023, 1024, 1025, 7))]
        self.assertScenario(record(*payloads), [Accepted(b"".join(payloads))])

    def test_hundredRecordsAndPartialHeader(self) -> None:
        """
        A hundred records in one chunk followed by two bytes of a record mark
        come out one per call; the two bytes stay buffered, and the record
        they begin parses once the rest arrives.
        """
        messages = [b"record %d" % i for i in range(100)]
        reader = RecordReader()
        script = Script()
        tail = record(b"the next one")
        reader.feed(b"".join(record(m) for m in messages) + tail[:2])
        events = drain(reader, script)
        self.assertEqual(events, [Accepted(m) for m in messages])
        self.assertEqual(reader.buffered, 2)
        self.assertFalse(reader.at_record_boundary)
        self.assertEqual(script.calls, [len(m) for m in messages])
        reader.feed(tail[2:])
        self.assertEqual(next_event(reader, script), Accepted(b"the next one"))
        self.assertTrue(reader.at_record_boundary)

    def test_buffered(self) -> None:
        """
        L{RecordReader.buffered} counts the bytes fed and not yet consumed,
        record marks included.
        """
        reader = RecordReader()
        self.assertEqual(reader.buffered, 0)
        reader.feed(record(b"abc") + b"\x80")
        self.assertEqual(reader.buffered, 8)
        self.assertEqual(next_event(reader, Script()), Accepted(b"abc"))
        self.assertEqual(reader.buffered, 1)

    def test_feedBytesLike(self) -> None:
        """
        L{RecordReader.feed} takes C{bytearray} and C{memoryview} as well as
        C{bytes}, and counts bytes, not items, of a memoryview whose items
        are wider than a byte.
        """
        stream = record(b"abcd")  # 8 bytes: two 4-byte items
        reader = RecordReader()
        reader.feed(bytearray(stream[:2]))
        reader.feed(memoryview(stream)[2:4])
        self.assertEqual(reader.buffered, 4)
        reader.feed(memoryview(stream[4:]).cast("I"))
        self.assertEqual(reader.buffered, 8)
        self.assertEqual(next_event(reader, Script()), Accepted(b"abcd"))
        self.assertEqual(reader.buffered, 0)

        words = array("I", [0, 0])
        words_view = memoryview(words)
        reader = RecordReader()
        reader.feed(mark(8, True))
        reader.feed(words_view)
        self.assertEqual(reader.buffered, 12)
        self.assertEqual(next_event(reader, Script()), Accepted(bytes(8)))

    def test_fedBufferMayChange(self) -> None:
        """
        The reader keeps its own copy of a mutable buffer it was fed: changing
        the buffer afterwards does not change the record.
        """
        buf = bytearray(record(b"original"))
        reader = RecordReader()
        reader.feed(buf)
        buf[4:] = b"XXXXXXXX"
        self.assertEqual(next_event(reader, Script()), Accepted(b"original"))

    def test_feedEmpty(self) -> None:
        """
        Feeding no bytes changes nothing.
        """
        reader = RecordReader()
        reader.feed(b"")
        self.assertEqual(reader.buffered, 0)
        self.assertIs(next_event(reader, Script()), NEED_DATA)
        self.assertTrue(reader.at_record_boundary)

    def test_needData(self) -> None:
        """
        L{next_event} returns L{NEED_DATA} while a record is incomplete, and
        does not call the decision callback before a whole mark is there.
        """
        reader = RecordReader()
        script = Script()
        reader.feed(b"\x80\x00\x00")
        self.assertIs(next_event(reader, script), NEED_DATA)
        self.assertEqual(script.calls, [])
        reader.feed(b"\x02a")
        self.assertIs(next_event(reader, script), NEED_DATA)
        self.assertEqual(script.calls, [2])
        reader.feed(b"b")
        self.assertEqual(next_event(reader, script), Accepted(b"ab"))
        self.assertEqual(script.calls, [2])

    def test_atRecordBoundary(self) -> None:
        """
        L{RecordReader.at_record_boundary} is true only when the input so far
        ends exactly between records.
        """
        reader = RecordReader()
        self.assertTrue(reader.at_record_boundary)
        reader.feed(fragment(b"ab"))
        self.assertFalse(reader.at_record_boundary)
        self.assertIs(next_event(reader, Script()), NEED_DATA)
        self.assertFalse(reader.at_record_boundary)
        reader.feed(mark(0, True))
        self.assertEqual(next_event(reader, Script()), Accepted(b"ab"))
        self.assertTrue(reader.at_record_boundary)

    def test_limitsValidated(self) -> None:
        """
        L{RecordReader} refuses limits out of range with L{ValueError}, and
        takes the lowest ones in range.
        """
        self.assertRaises(ValueError, RecordReader, max_record_size=-1)
        self.assertRaises(ValueError, RecordReader, max_fragments=0)
        self.assertRaises(ValueError, RecordReader, max_empty_fragments=-1)
        reader = RecordReader(max_record_size=0, max_fragments=1, max_empty_fragments=0)
        self.assertEqual(
            (reader.max_record_size, reader.max_fragments, reader.max_empty_fragments),
            (0, 1, 0),
        )

    def test_defaults(self) -> None:
        """
        The default limits are 16 MiB, 8192 fragments and 16 empty fragments.
        """
        reader = RecordReader()
        self.assertEqual(
            (reader.max_record_size, reader.max_fragments, reader.max_empty_fragments),
            (16 * 1024 * 1024, 8192, 16),
        )
        self.assertEqual(
            (DEFAULT_MAX_RECORD_SIZE, DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_EMPTY_FRAGMENTS),
            (16 * 1024 * 1024, 8192, 16),
        )


class RecordSizeLimitTests(ReaderScenarios):
    """
    Tests for C{max_record_size}.
    """

    def test_atLimit(self) -> None:
        """
        A record of exactly C{max_record_size} bytes is accepted.
        """
        payload = b"x" * 100
        self.assertScenario(record(payload), [Accepted(payload)], max_record_size=100)

    def test_pastLimit(self) -> None:
        """
        A record of C{max_record_size} + 1 bytes is refused with
        L{RecordTooLarge} as soon as its mark is read, with the size and the
        limit in the error.
        """
        errors = self.assertScenarioFails(
            record(b"x" * 101), RecordTooLarge, raised_at=4, max_record_size=100
        )
        for e in errors:
            self.assertEqual((e.size, e.limit, e.looks_like), (101, 100, None))
            self.assertIn("101", str(e))
            self.assertIn("100", str(e))

    def test_pastLimitOnHeaderAlone(self) -> None:
        """
        L{RecordTooLarge} is raised from the record mark alone: no byte of the
        payload has been fed.
        """
        reader = RecordReader(max_record_size=100)
        reader.feed(mark(101, True))
        self.assertRaises(RecordTooLarge, next_event, reader, Script())

    def test_defaultLimit(self) -> None:
        """
        With the default limit, a record of exactly 16 MiB is accepted and a
        mark announcing one byte more is refused on its own.
        """
        payload = bytes(DEFAULT_MAX_RECORD_SIZE)
        reader = RecordReader()
        reader.feed(mark(len(payload), True))
        reader.feed(payload)
        event = next_event(reader, Script())
        assert isinstance(event, Accepted)
        self.assertEqual(len(event.message), DEFAULT_MAX_RECORD_SIZE)

        reader = RecordReader()
        reader.feed(mark(DEFAULT_MAX_RECORD_SIZE + 1, True))
        e = self.assertRaises(RecordTooLarge, next_event, reader, Script())
        self.assertEqual(e.size, DEFAULT_MAX_RECORD_SIZE + 1)
        self.assertEqual(e.limit, DEFAULT_MAX_RECORD_SIZE)

    def test_sumAtLimit(self) -> None:
        """
        Fragments whose sizes add up to exactly C{max_record_size} make an
        accepted record.
        """
        self.assertScenario(
            record(b"a" * 60, b"b" * 40),
            [Accepted(b"a" * 60 + b"b" * 40)],
            calls=[60, 100],
            max_record_size=100,
        )

    def test_sumPastLimit(self) -> None:
        """
        A record whose fragments add up to more than C{max_record_size} is
        refused at the mark that crosses the limit, before its payload.
        """
        stream = record(b"a" * 60, b"b" * 41)
        errors = self.assertScenarioFails(
            stream, RecordTooLarge, raised_at=4 + 60 + 4, max_record_size=100
        )
        for e in errors:
            self.assertEqual((e.size, e.limit), (101, 100))

    def test_zeroLimit(self) -> None:
        """
        With C{max_record_size} 0 only empty records are accepted.
        """
        self.assertScenario(mark(0) + mark(0, True), [Accepted(b"")], max_record_size=0)
        self.assertScenarioFails(record(b"x"), RecordTooLarge, max_record_size=0)

    def test_limitOnlyForAccepted(self) -> None:
        """
        Records that are rejected, denied or dropped may be larger than
        C{max_record_size}: it bounds what is buffered.
        """
        payload = b"0123456789" * 100
        stream = record(payload)
        cases: list[tuple[InRule, Any]] = [
            (REJECT, Rejected(b"0123")),
            (RejectWith(ServerError.SYSTEM_ERR), RejectedWith(b"0123", ServerError.SYSTEM_ERR)),
            (DENY, Denied()),
            (DROP, Dropped()),
        ]
        for rule, expected in cases:
            self.assertScenario(stream, [expected], rules=[rule], max_record_size=10)

    def test_limitAfterRuleChange(self) -> None:
        """
        A record accepted at first and then rejected or dropped may go past
        C{max_record_size} after the change.
        """
        stream = record(b"abcdefgh", b"x" * 50)
        self.assertScenario(
            stream, [Rejected(b"abcd")], rules=[ACCEPT, REJECT], calls=[8, 58],
            max_record_size=10,
        )
        self.assertScenario(
            stream, [Dropped()], rules=[ACCEPT, DROP], calls=[8, 58], max_record_size=10
        )


class FragmentLimitTests(ReaderScenarios):
    """
    Tests for C{max_fragments} and C{max_empty_fragments}.
    """

    def test_defaultFragmentsAtLimit(self) -> None:
        """
        A record of 8192 fragments (the default C{max_fragments}) is
        accepted.
        """
        stream = fragment(b"x") * (DEFAULT_MAX_FRAGMENTS - 1) + fragment(b"y", True)
        self.assertScenario(stream, [Accepted(b"x" * 8191 + b"y")])

    def test_defaultFragmentsPastLimit(self) -> None:
        """
        The 8193rd fragment of a record is refused with L{MalformedRecord} at
        its mark, and the error says which limit.
        """
        stream = fragment(b"x") * DEFAULT_MAX_FRAGMENTS + fragment(b"y", True)
        errors = self.assertScenarioFails(
            stream, MalformedRecord, raised_at=DEFAULT_MAX_FRAGMENTS * 5 + 4
        )
        self.assertIn("8192", str(errors[0]))
        self.assertIn("max_fragments", str(errors[0]))

    def test_smallFragmentLimit(self) -> None:
        """
        With C{max_fragments} 3, three fragments make a record and four are
        refused; empty fragments count.
        """
        self.assertScenario(
            record(b"a", b"", b"c"), [Accepted(b"ac")], max_fragments=3
        )
        self.assertScenarioFails(
            record(b"a", b"", b"c", b""), MalformedRecord, raised_at=4 + 1 + 4 + 4 + 1 + 4,
            max_fragments=3,
        )

    def test_oneFragmentLimit(self) -> None:
        """
        With C{max_fragments} 1 each record must be a single fragment; the
        count starts again with each record.
        """
        self.assertScenario(
            record(b"a") + record(b"b"), [Accepted(b"a"), Accepted(b"b")], max_fragments=1
        )
        self.assertScenarioFails(
            record(b"a") + record(b"b", b"c"), MalformedRecord,
            expected=[Accepted(b"a")], max_fragments=1,
        )

    def test_fragmentLimitForDroppedRecords(self) -> None:
        """
        C{max_fragments} applies to dropped and denied records too: it bounds
        work, not memory.
        """
        stream = record(*[b"z"] * 4)
        self.assertScenarioFails(stream, MalformedRecord, rules=[DROP], max_fragments=3)
        self.assertScenarioFails(
            stream, MalformedRecord, expected=[Denied()], rules=[DENY], max_fragments=3
        )

    def test_defaultEmptyRunAtLimit(self) -> None:
        """
        Sixteen consecutive empty fragments that are not last (the default
        C{max_empty_fragments}) are accepted.
        """
        stream = mark(0) * DEFAULT_MAX_EMPTY_FRAGMENTS + fragment(b"end", True)
        self.assertScenario(stream, [Accepted(b"end")])

    def test_defaultEmptyRunPastLimit(self) -> None:
        """
        The seventeenth consecutive empty non-last fragment is refused with
        L{MalformedRecord} at its mark.
        """
        stream = mark(0) * (DEFAULT_MAX_EMPTY_FRAGMENTS + 1) + fragment(b"end", True)
        errors = self.assertScenarioFails(
            stream, MalformedRecord, raised_at=4 * (DEFAULT_MAX_EMPTY_FRAGMENTS + 1)
        )
        self.assertIn("16", str(errors[0]))
        self.assertIn("max_empty_fragments", str(errors[0]))

    def test_emptyRunBrokenByPayload(self) -> None:
        """
        A fragment with payload ends a run of empty fragments: two runs of
        sixteen separated by one byte are accepted.
        """
        stream = mark(0) * 16 + fragment(b"x") + mark(0) * 16 + mark(0, True)
        self.assertScenario(stream, [Accepted(b"x")])

    def test_emptyRunPerRecord(self) -> None:
        """
        Runs of empty fragments are counted per record.
        """
        one = mark(0) * 16 + fragment(b"1", True)
        two = mark(0) * 16 + fragment(b"2", True)
        self.assertScenario(one + two, [Accepted(b"1"), Accepted(b"2")])

    def test_emptyLastNotCounted(self) -> None:
        """
        An empty last fragment is not part of a run: with
        C{max_empty_fragments} 0, C{80000000} is still an empty record, and
        C{00000000} is refused.
        """
        self.assertScenario(mark(0, True), [Accepted(b"")], max_empty_fragments=0)
        self.assertScenarioFails(
            mark(0) + mark(0, True), MalformedRecord, raised_at=4, max_empty_fragments=0
        )

    def test_emptyRunLimitForDroppedRecords(self) -> None:
        """
        C{max_empty_fragments} applies to dropped records too.
        """
        stream = fragment(b"x") + mark(0) * 3 + mark(0, True)
        self.assertScenarioFails(
            stream, MalformedRecord, rules=[DROP], max_empty_fragments=2
        )


class DecideTests(ReaderScenarios):
    """
    Tests for the decision callback of L{RecordReader.next_event}.
    """

    def test_cumulativeSize(self) -> None:
        """
        The callback is called at each fragment mark with the sum of the
        fragment lengths announced so far: 10, 30 and 60 for fragments of 10,
        20 and 30 bytes.
        """
        stream = record(b"a" * 10, b"b" * 20, b"c" * 30)
        self.assertScenario(
            stream, [Accepted(b"a" * 10 + b"b" * 20 + b"c" * 30)], calls=[10, 30, 60]
        )

    def test_sizeBeforePayload(self) -> None:
        """
        The callback learns a fragment's size from its mark, before any of its
        payload is fed.
        """
        reader = RecordReader()
        script = Script()
        reader.feed(mark(10))
        self.assertIs(next_event(reader, script), NEED_DATA)
        self.assertEqual(script.calls, [10])

    def test_notCalledAfterChange(self) -> None:
        """
        The callback is called for every fragment while it answers L{ACCEPT},
        and not after it answers something else: the last rule decides.
        """
        stream = record(b"a" * 10, b"b" * 20, b"c" * 30, b"d" * 40)
        cases: list[tuple[InRule, Any]] = [
            (REJECT, Rejected(b"aaaa")),
            (RejectWith(ServerError.PROG_UNAVAIL), RejectedWith(b"aaaa", ServerError.PROG_UNAVAIL)),
            (DENY, Denied()),
            (DROP, Dropped()),
        ]
        for rule, expected in cases:
            self.assertScenario(
                stream, [expected], rules=[ACCEPT, rule, ACCEPT], calls=[10, 30]
            )

    def test_calledForEmptyRecord(self) -> None:
        """
        The callback is called at least once per record, even an empty one.
        """
        self.assertScenario(
            mark(0, True) + mark(0, True), [Dropped(), Accepted(b"")],
            rules=[DROP], calls=[0, 0],
        )

    def test_raises(self) -> None:
        """
        An exception raised by the callback propagates from
        L{RecordReader.next_event}; the reader is failed with it and raises
        it again on every later call, whatever is fed.
        """
        class Oops(Exception):
            pass

        def decide(size: int) -> InRule:
            raise Oops(size)

        reader = RecordReader()
        reader.feed(record(b"abc"))
        e = self.assertRaises(Oops, next_event, reader, decide)
        self.assertEqual(e.args, (3,))
        self.assertIs(reader.failed, e)
        self.assertIs(self.assertRaises(Oops, next_event, reader, Script()), e)
        reader.feed(record(b"more"))
        self.assertEqual(reader.buffered, 0)
        self.assertIs(self.assertRaises(Oops, next_event, reader, Script()), e)

    def test_raisesLater(self) -> None:
        """
        An exception raised by the callback at a later fragment fails the
        reader too.
        """
        def decide(size: int) -> InRule:
            if size > 3:
                raise ZeroDivisionError(size)
            return ACCEPT

        reader = RecordReader()
        reader.feed(record(b"abc") + record(b"a", b"bcd"))
        self.assertEqual(next_event(reader, decide), Accepted(b"abc"))
        e = self.assertRaises(ZeroDivisionError, next_event, reader, decide)
        self.assertEqual(e.args, (4,))
        self.assertIs(reader.failed, e)

    def test_notARule(self) -> None:
        """
        A callback that returns something other than a rule makes
        L{RecordReader.next_event} raise L{TypeError} naming it, and fails
        the reader, whether or not the answer is hashable.
        """
        answers: list[Any] = [None, "accept", True, 1, ServerError.GARBAGE_ARGS, [ACCEPT], {}]
        for answer in answers:
            reader = RecordReader()
            reader.feed(record(b"abc"))
            e = self.assertRaises(TypeError, next_event, reader, lambda size: answer)
            self.assertIn(repr(answer), str(e))
            self.assertIs(reader.failed, e)
            self.assertIs(self.assertRaises(TypeError, next_event, reader, Script()), e)


class RuleTests(ReaderScenarios):
    """
    Tests for what each rule delivers.
    """

    def test_accept(self) -> None:
        """
        L{ACCEPT} delivers L{Accepted} with the whole message.
        """
        self.assertScenario(
            record(b"ab", b"cdef"), [Accepted(b"abcdef")], rules=[ACCEPT, ACCEPT]
        )

    def test_reject(self) -> None:
        """
        L{REJECT} delivers L{Rejected} with the record's first 4 bytes.
        """
        self.assertScenario(record(b"XIDXrest of it"), [Rejected(b"XIDX")], rules=[REJECT])

    def test_rejectShort(self) -> None:
        """
        A rejected record shorter than 4 bytes gives the bytes there are.
        """
        for payload in [b"", b"a", b"ab", b"abc", b"abcd"]:
            self.assertScenario(record(payload), [Rejected(payload)], rules=[REJECT])

    def test_rejectHeadAcrossFragments(self) -> None:
        """
        The head of a rejected record is taken from the first 4 bytes of the
        record even when they are spread over several fragments.
        """
        self.assertScenario(
            record(b"X", b"", b"I", b"DXyz", b"more"), [Rejected(b"XIDX")], rules=[REJECT]
        )

    def test_rejectWith(self) -> None:
        """
        L{RejectWith} delivers L{RejectedWith} with the first 4 bytes and the
        error, for every server error.
        """
        stream = record(b"\x00\x00\x00\x2a", b"call body")
        for rule in SERVER_ERROR_RULES:
            self.assertScenario(
                stream, [RejectedWith(b"\x00\x00\x00\x2a", rule.error)], rules=[rule]
            )

    def test_rejectKeepsFourBytes(self) -> None:
        """
        The payload of a rejected record is discarded as it is fed, except
        the first 4 bytes.
        """
        reader = RecordReader()
        reader.feed(mark(100_000, True))
        self.assertIs(next_event(reader, Script(REJECT)), NEED_DATA)
        for _ in range(10):
            reader.feed(b"xidx" + bytes(9_996))
            self.assertEqual(reader.buffered, 0)
        self.assertEqual(next_event(reader, Script()), Rejected(b"xidx"))

    def test_deny(self) -> None:
        """
        L{DENY} delivers L{Denied}; the next record is intact.
        """
        self.assertScenario(
            record(b"denied", b"record") + record(b"next"),
            [Denied(), Accepted(b"next")], rules=[DENY], calls=[6, 4],
        )

    def test_denyEmpty(self) -> None:
        """
        An empty record can be denied.
        """
        self.assertScenario(
            mark(0, True) + record(b"next"), [Denied(), Accepted(b"next")], rules=[DENY]
        )

    def test_denyAtOnce(self) -> None:
        """
        L{Denied} is delivered as soon as the mark that denies the record is
        read, before its payload is fed; the rest of the record is discarded
        as it arrives, even while nobody asks for the next record, and the
        next record is intact.
        """
        reader = RecordReader()
        reader.feed(fragment(b"head")[:4])
        self.assertEqual(next_event(reader, Script(DENY)), Denied())
        self.assertEqual(reader.buffered, 0)
        self.assertFalse(reader.at_record_boundary)
        reader.feed(b"head")
        reader.feed(fragment(b"tail", True))
        self.assertEqual(reader.buffered, 0)
        reader.feed(record(b"next"))
        self.assertEqual(reader.buffered, 8)
        self.assertEqual(next_event(reader, Script()), Accepted(b"next"))
        self.assertTrue(reader.at_record_boundary)

    def test_denyAtLaterFragment(self) -> None:
        """
        A record accepted at its first mark and denied at its second is
        reported L{Denied} as soon as the second mark is read.
        """
        reader = RecordReader()
        script = Script(ACCEPT, DENY)
        reader.feed(fragment(b"first") + mark(5, True))
        self.assertEqual(next_event(reader, script), Denied())
        self.assertEqual(script.calls, [5, 10])
        reader.feed(b"rest!" + record(b"next"))
        self.assertEqual(next_event(reader, script), Accepted(b"next"))

    def test_drop(self) -> None:
        """
        L{DROP} delivers L{Dropped}; the next record is intact.
        """
        self.assertScenario(
            record(b"dropped") + record(b"next"), [Dropped(), Accepted(b"next")],
            rules=[DROP],
        )

    def test_dropWhenRecordEnds(self) -> None:
        """
        L{Dropped} is delivered when the record ends, not before; its bytes
        are discarded as they are fed.
        """
        reader = RecordReader()
        reader.feed(mark(6) + b"abcd")
        self.assertIs(next_event(reader, Script(DROP)), NEED_DATA)
        self.assertEqual(reader.buffered, 0)
        reader.feed(b"ef" + mark(2, True) + b"g")
        self.assertEqual(reader.buffered, 0)
        self.assertIs(next_event(reader, Script()), NEED_DATA)
        reader.feed(b"h" + record(b"next"))
        self.assertEqual(next_event(reader, Script()), Dropped())
        self.assertEqual(next_event(reader, Script()), Accepted(b"next"))

    def test_dropMultiFragmentThenRecord(self) -> None:
        """
        Dropping a record of several fragments, empty ones included, leaves
        the stream in sync: the next record is intact, and no spurious empty
        record comes out between them.
        """
        dropped = record(b"one", b"", b"three", b"", b"")
        self.assertScenario(
            dropped + record(b"next"), [Dropped(), Accepted(b"next")], rules=[DROP],
            calls=[3, 4],
        )

    def test_acceptThenDrop(self) -> None:
        """
        A record accepted at its first fragment and dropped at its second is
        L{Dropped}; the stream stays in sync and the next record is intact.
        """
        self.assertScenario(
            record(b"first", b"second", b"third") + record(b"next"),
            [Dropped(), Accepted(b"next")],
            rules=[ACCEPT, DROP],
            calls=[5, 11, 4],
        )

    def test_acceptThenReject(self) -> None:
        """
        A record accepted at its first fragment and rejected at its second
        keeps the xid read in the first fragment.
        """
        self.assertScenario(
            record(b"XIDXfirst", b"second") + record(b"next"),
            [Rejected(b"XIDX"), Accepted(b"next")],
            rules=[ACCEPT, REJECT],
            calls=[9, 15, 4],
        )

    def test_acceptThenRejectShortFirst(self) -> None:
        """
        When the first accepted fragment is shorter than 4 bytes, the rest of
        the xid is taken from the fragments after the rule changed.
        """
        self.assertScenario(
            record(b"XI", b"DXsecond"),
            [RejectedWith(b"XIDX", ServerError.AUTH_TOOWEAK)],
            rules=[ACCEPT, RejectWith(ServerError.AUTH_TOOWEAK)],
        )

    def test_mixedRules(self) -> None:
        """
        Each record gets its own rules; every kind of record can follow every
        other.
        """
        stream = b"".join(record(b"rec%d" % i) for i in range(6))
        self.assertScenario(
            stream,
            [
                Accepted(b"rec0"),
                Rejected(b"rec1"),
                Denied(),
                RejectedWith(b"rec3", ServerError.RPC_MISMATCH),
                Dropped(),
                Accepted(b"rec5"),
            ],
            rules=[ACCEPT, REJECT, DENY, RejectWith(ServerError.RPC_MISMATCH), DROP, ACCEPT],
        )


class DiscardMemoryTests(SynchronousTestCase):
    """
    Tests that denied and dropped records keep nothing.
    """

    CHUNK = bytes(64 * 1024)
    SIZE = 64 * 1024 * 1024

    def feedDiscarded(self, rule: InRule, fragments: int) -> None:
        """
        Feed a record of 64 MiB in 64 KiB chunks under C{rule}, without
        asking for events, and check that nothing is kept; the next record is
        intact.

        @param fragments: how many fragments the record is cut into.
        """
        size = self.SIZE // fragments
        reader = RecordReader()
        reader.feed(mark(size, fragments == 1))
        first = next_event(reader, Script(rule))
        if rule is DENY:
            self.assertEqual(first, Denied())
        else:
            self.assertIs(first, NEED_DATA)
        for n in range(fragments):
            for _ in range(size // len(self.CHUNK)):
                reader.feed(self.CHUNK)
                self.assertEqual(reader.buffered, 0)
            if n < fragments - 1:
                reader.feed(mark(size, n == fragments - 2))
                self.assertEqual(reader.buffered, 0)
        reader.feed(record(b"next"))
        events = drain(reader, Script())
        if rule is DENY:
            self.assertEqual(events, [Accepted(b"next")])
        else:
            self.assertEqual(events, [Dropped(), Accepted(b"next")])

    def test_deny(self) -> None:
        """
        Feeding 64 MiB of a denied record in 64 KiB chunks keeps
        L{RecordReader.buffered} at 0, even though L{RecordReader.next_event}
        is not called.
        """
        self.feedDiscarded(DENY, 1)

    def test_drop(self) -> None:
        """
        Feeding 64 MiB of a dropped record in 64 KiB chunks keeps
        L{RecordReader.buffered} at 0.
        """
        self.feedDiscarded(DROP, 1)

    def test_denyFragments(self) -> None:
        """
        The fragment marks of a denied record are read and discarded in
        C{feed} too.
        """
        self.feedDiscarded(DENY, 64)

    def test_dropFragments(self) -> None:
        """
        The fragment marks of a dropped record are read and discarded in
        C{feed} too.
        """
        self.feedDiscarded(DROP, 64)

    def test_dropUnaligned(self) -> None:
        """
        A dropped record whose marks straddle chunk boundaries keeps at most
        the 3 bytes of a partial mark.
        """
        stream = b"".join(fragment(bytes(1000 + i)) for i in range(50)) + mark(0, True)
        reader = RecordReader()
        reader.feed(stream[:4])
        self.assertIs(next_event(reader, Script(DROP)), NEED_DATA)
        for i in range(4, len(stream), 333):
            reader.feed(stream[i : i + 333])
            self.assertLessEqual(reader.buffered, 3)
        self.assertEqual(next_event(reader, Script()), Dropped())
        self.assertTrue(reader.at_record_boundary)


class EndOfInputTests(ReaderScenarios):
    """
    Tests for L{RecordReader.feed_eof}.
    """

    def test_noInput(self) -> None:
        """
        The end of input before any byte is L{END_OF_FILE}, again on every
        later call.
        """
        reader = RecordReader()
        reader.feed_eof()
        self.assertIs(next_event(reader, Script()), END_OF_FILE)
        self.assertIs(next_event(reader, Script()), END_OF_FILE)

    def test_betweenRecords(self) -> None:
        """
        The end of input between records is L{END_OF_FILE} once the records
        before it are delivered, and again on the next call.
        """
        reader = RecordReader()
        reader.feed(record(b"one") + record(b"two"))
        reader.feed_eof()
        self.assertEqual(
            [next_event(reader, Script()) for _ in range(4)],
            [Accepted(b"one"), Accepted(b"two"), END_OF_FILE, END_OF_FILE],
        )

    def test_insideFirstMark(self) -> None:
        """
        The end of input inside a record's first mark is L{IncompleteRecord},
        with the bytes received and expected in the message.
        """
        errors = self.assertScenarioFails(
            record(b"one") + b"\x80\x00", IncompleteRecord,
            expected=[Accepted(b"one")], eof=True,
        )
        for e in errors:
            self.assertEqual((e.received, e.expected), (2, 4))
            self.assertIn("received 2 of at least 4 bytes", str(e))
            self.assertIn("first record mark", str(e))

    def test_insidePayload(self) -> None:
        """
        The end of input inside a fragment's payload is L{IncompleteRecord},
        counting the record marks.
        """
        errors = self.assertScenarioFails(
            mark(16, True) + b"12345", IncompleteRecord, eof=True
        )
        for e in errors:
            self.assertEqual((e.received, e.expected), (9, 20))
            self.assertIn("received 9 of at least 20 bytes", str(e))
            self.assertIn("fragment 1", str(e))

    def test_insideLaterMark(self) -> None:
        """
        The end of input inside the mark after a fragment is
        L{IncompleteRecord}.
        """
        errors = self.assertScenarioFails(
            fragment(b"0123456789") + b"\x80\x00", IncompleteRecord, eof=True
        )
        for e in errors:
            self.assertEqual((e.received, e.expected), (16, 18))
            self.assertIn("received 16 of at least 18 bytes", str(e))
            self.assertIn("after fragment 1", str(e))

    def test_afterMarkBeforePayload(self) -> None:
        """
        The end of input right after a mark that announces bytes is
        L{IncompleteRecord}, even when the mark is not the first.
        """
        errors = self.assertScenarioFails(
            fragment(b"abc") + mark(5, True), IncompleteRecord, eof=True
        )
        for e in errors:
            self.assertEqual((e.received, e.expected), (11, 16))
            self.assertIn("fragment 2", str(e))

    def test_insideDroppedRecord(self) -> None:
        """
        The end of input before a dropped or rejected record ends is
        L{IncompleteRecord}: those are reported only when the record ends.
        """
        rules: list[InRule] = [DROP, REJECT, RejectWith(ServerError.AUTH_FAILED)]
        for rule in rules:
            self.assertScenarioFails(
                fragment(b"abcdef") + mark(3, True) + b"x", IncompleteRecord,
                rules=[rule], eof=True,
            )

    def test_completeRecordsFirst(self) -> None:
        """
        Records that were complete before the input ended inside a later one
        are delivered before the error.
        """
        reader = RecordReader()
        reader.feed(record(b"one") + record(b"two", b"!") + mark(10, True) + b"x")
        reader.feed_eof()
        self.assertEqual(next_event(reader, Script()), Accepted(b"one"))
        self.assertEqual(next_event(reader, Script()), Accepted(b"two!"))
        e = self.assertRaises(IncompleteRecord, next_event, reader, Script())
        self.assertIs(self.assertRaises(IncompleteRecord, next_event, reader, Script()), e)

    def test_droppedCompleteFirst(self) -> None:
        """
        A dropped record that ended while being discarded in C{feed} is
        delivered before the end of input is reported.
        """
        reader = RecordReader()
        reader.feed(mark(3, True))
        self.assertIs(next_event(reader, Script(DROP)), NEED_DATA)
        reader.feed(b"abc")
        reader.feed_eof()
        self.assertEqual(next_event(reader, Script()), Dropped())
        self.assertIs(next_event(reader, Script()), END_OF_FILE)

    def test_close(self) -> None:
        """
        L{RecordReader.close} releases the buffers and fails the reader with
        the reason given.
        """
        reader = RecordReader()
        reader.feed(record(b"abc") + b"\x80")
        reason = ConnectionError("gone")
        reader.close(reason)
        self.assertEqual(reader.buffered, 0)
        self.assertIs(reader.failed, reason)
        self.assertFalse(reader.at_record_boundary)
        self.assertIs(self.assertRaises(ConnectionError, next_event, reader, Script()), reason)


class AdversarialTests(ReaderScenarios):
    """
    Tests with input a hostile or confused peer could send.
    """

    def test_hugeMark(self) -> None:
        """
        A C{FFFFFFFF} mark with no payload is refused on the mark alone with
        L{RecordTooLarge}.
        """
        errors = self.assertScenarioFails(b"\xff\xff\xff\xff", RecordTooLarge, raised_at=4)
        for e in errors:
            self.assertEqual(e.size, MAX_FRAGMENT_LENGTH)
            self.assertEqual(e.limit, DEFAULT_MAX_RECORD_SIZE)
            self.assertIn(str(MAX_FRAGMENT_LENGTH), str(e))

    def test_sumOfFragments(self) -> None:
        """
        Fragments each under the limit whose sum crosses it are refused at
        the mark that crosses it.
        """
        half = DEFAULT_MAX_RECORD_SIZE // 2
        reader = RecordReader()
        script = Script()
        reader.feed(mark(half) + bytes(half) + mark(half))
        self.assertIs(next_event(reader, script), NEED_DATA)
        self.assertEqual(reader.buffered, 0)
        self.assertEqual(script.calls, [half, 2 * half])
        reader.feed(bytes(half) + mark(1, True))
        e = self.assertRaises(RecordTooLarge, next_event, reader, script)
        self.assertEqual(e.size, DEFAULT_MAX_RECORD_SIZE + 1)
        self.assertEqual(script.calls, [half, 2 * half, 2 * half + 1])

    def test_megabyteIn4098ByteFragments(self) -> None:
        """
        A 1 MiB record in 4098-byte fragments is reassembled, fed whole and in
        1460-byte segments.
        """
        message = bytes(range(256)) * 4096
        stream = b"".join(encode_record(message, max_fragment_size=4098))
        self.assertEqual(len(stream), len(message) + 4 * 256)
        for segment in (len(stream), 1460):
            reader = RecordReader()
            events = []
            for i in range(0, len(stream), segment):
                reader.feed(stream[i : i + segment])
                events += drain(reader, Script())
            self.assertEqual(events, [Accepted(message)])
            self.assertTrue(reader.at_record_boundary)

    def test_megabyteIn1ByteFragments(self) -> None:
        """
        A 1 MiB record in 1-byte fragments is reassembled when
        C{max_fragments} allows it (and refused by the default limit).
        """
        message = bytes(range(256)) * 4096
        stream = b"".join(encode_record(message, max_fragment_size=1))
        self.assertEqual(len(stream), 5 * len(message))
        reader = RecordReader(max_fragments=len(message))
        events = []
        for i in range(0, len(stream), 65536):
            reader.feed(stream[i : i + 65536])
            events += drain(reader, lambda size: ACCEPT)
        self.assertEqual(events, [Accepted(message)])
        self.assertTrue(reader.at_record_boundary)

        reader = RecordReader()
        reader.feed(stream[: 5 * (DEFAULT_MAX_FRAGMENTS + 1)])
        self.assertRaises(MalformedRecord, next_event, reader, Script())

    def test_manyEmptyFragments(self) -> None:
        """
        10,000 zero-length fragments are refused by the cap on runs of empty
        fragments, at the first one past it.
        """
        stream = mark(0) * 10_000 + mark(0, True)
        errors = self.assertScenarioFails(stream, MalformedRecord, raised_at=4 * 17)
        self.assertIn("consecutive empty fragments", str(errors[0]))

    def test_manyEmptyFragmentsDropped(self) -> None:
        """
        The cap on runs of empty fragments holds for a dropped record, whose
        marks are read in C{feed}.
        """
        reader = RecordReader()
        reader.feed(fragment(b"x"))
        self.assertIs(next_event(reader, Script(DROP)), NEED_DATA)
        self.assertRaises(MalformedRecord, reader.feed, mark(0) * 10_000)
        self.assertIsInstance(reader.failed, MalformedRecord)
        self.assertEqual(reader.buffered, 0)

    def test_http(self) -> None:
        """
        An HTTP request read as a record mark announces about a gigabyte; it
        is refused with L{RecordTooLarge} whose message says it looks like an
        HTTP request, quoting the request line.
        """
        request = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
        errors = self.assertScenarioFails(request, RecordTooLarge)
        # One byte at a time the request line is not there yet: only whole.
        e = errors[0]
        self.assertIsNotNone(e.looks_like)
        self.assertIn("an HTTP request", str(e))
        self.assertIn("'GET / HTTP/1.1'", str(e))
        self.assertIn("not ONC RPC", str(e))
        for e in errors:
            self.assertIn("HTTP request", str(e))

    def test_tlsClientHello(self) -> None:
        """
        A TLS ClientHello is refused with L{RecordTooLarge} whose message says
        it looks like a TLS handshake.
        """
        hello = bytes.fromhex("16030100f4010000f00303") + bytes(32) + b"\x00\x02\x13\x01"
        errors = self.assertScenarioFails(hello, RecordTooLarge, raised_at=4)
        for e in errors:
            self.assertIn("TLS handshake", str(e))
            self.assertIn("version 3.1", str(e))

    def test_binaryNotDescribed(self) -> None:
        """
        Bytes that look like nothing known give a L{RecordTooLarge} without a
        guess.
        """
        errors = self.assertScenarioFails(b"\x7f\x00\x00\x00", RecordTooLarge)
        for e in errors:
            self.assertIsNone(e.looks_like)
            self.assertNotIn("look like", str(e))

    def test_onlyFirstMarkDescribed(self) -> None:
        """
        Only a record's first mark is described: a later mark is not the
        start of what the peer sent.
        """
        stream = fragment(b"abc") + b"GET / HTTP/1.1\r\n"
        errors = self.assertScenarioFails(stream, RecordTooLarge)
        for e in errors:
            self.assertIsNone(e.looks_like)


class LinearTimeTests(SynchronousTestCase):
    """
    Tests that large records in small segments are reassembled without
    re-buffering (no timing assertions).
    """

    def test_fourMegabytesIn1460ByteSegments(self) -> None:
        """
        A 4 MiB record fed in 1460-byte segments, asking for an event after
        each, comes out whole; nothing stays buffered between segments, so
        no segment is copied into a growing buffer.
        """
        message = bytes(range(256)) * (4 * 4096)
        stream = b"".join(encode_record(message))
        reader = RecordReader()
        events = []
        for i in range(0, len(stream), 1460):
            reader.feed(stream[i : i + 1460])
            events += drain(reader, Script())
            self.assertEqual(reader.buffered, 0)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0], Accepted(message))

    def test_fourMegabytesQueued(self) -> None:
        """
        A 4 MiB record fed in 1460-byte segments before any event is asked
        for is buffered as fed and comes out whole on the first call.
        """
        message = bytes(range(256)) * (4 * 4096)
        stream = b"".join(encode_record(message))
        reader = RecordReader()
        for i in range(0, len(stream), 1460):
            reader.feed(stream[i : i + 1460])
        self.assertEqual(reader.buffered, len(stream))
        self.assertEqual(next_event(reader, Script()), Accepted(message))
        self.assertEqual(reader.buffered, 0)

    def test_oneByteSegments(self) -> None:
        """
        A 256 KiB record fed one byte at a time comes out whole, whether
        events are asked for after each byte or only at the end.
        """
        message = bytes(range(256)) * 1024
        stream = b"".join(encode_record(message))
        for poll in (True, False):
            reader = RecordReader()
            events = []
            for i in range(len(stream)):
                reader.feed(stream[i : i + 1])
                if poll:
                    events += drain(reader, Script())
            events += drain(reader, Script())
            self.assertEqual(events, [Accepted(message)])


class EncodeRecordTests(SynchronousTestCase):
    """
    Tests for L{encode_record}.
    """

    def test_oneFragment(self) -> None:
        """
        By default a message is one last fragment: its mark then the message.
        """
        self.assertEqual(encode_record(b"hello"), [mark(5, True), b"hello"])

    def test_bytesIdentity(self) -> None:
        """
        A C{bytes} message is passed through as it is, not copied.
        """
        payload = b"x" * 1000
        out = encode_record(payload)
        self.assertIs(out[1], payload)

    def test_piecesNotJoined(self) -> None:
        """
        A sequence of C{bytes} pieces is passed through piece by piece, by
        identity, under one mark announcing their total.
        """
        pieces = [b"head" * 10, b"body" * 100, b"tail"]
        out = encode_record(pieces)
        self.assertEqual(len(out), 4)
        self.assertEqual(out[0], mark(444, True))
        for got, piece in zip(out[1:], pieces):
            self.assertIs(got, piece)

    def test_piecesIterable(self) -> None:
        """
        The pieces may be any iterable, a generator or a tuple.
        """
        self.assertEqual(
            encode_record(p for p in (b"a", b"bc")), [mark(3, True), b"a", b"bc"]
        )
        self.assertEqual(encode_record((b"a", b"bc")), [mark(3, True), b"a", b"bc"])

    def test_otherBuffersConverted(self) -> None:
        """
        C{bytearray} and C{memoryview} messages and pieces are converted to
        C{bytes}, counting bytes rather than items.
        """
        messages: list[bytearray | memoryview] = [bytearray(b"abc"), memoryview(b"abc")]
        for message in messages:
            out = encode_record(message)
            self.assertEqual(out, [mark(3, True), b"abc"])
            self.assertIs(type(out[1]), bytes)
        out = encode_record([bytearray(b"ab"), memoryview(b"cd"), b"e"])
        self.assertEqual(out, [mark(5, True), b"ab", b"cd", b"e"])
        self.assertEqual([type(p) for p in out], [bytes] * 4)
        words = memoryview(array("I", [1, 2]))
        self.assertEqual(encode_record(words)[0], mark(8, True))

    def test_emptyRecord(self) -> None:
        """
        An empty message is a lone C{80000000}; empty pieces are left out.
        """
        self.assertEqual(encode_record(b""), [mark(0, True)])
        self.assertEqual(encode_record([]), [mark(0, True)])
        self.assertEqual(encode_record([b"", b""]), [mark(0, True)])
        self.assertEqual(encode_record(b"", max_fragment_size=1), [mark(0, True)])
        self.assertEqual(encode_record([b"", b"a", b""]), [mark(1, True), b"a"])

    def test_maxFragmentSize(self) -> None:
        """
        With C{max_fragment_size} the message is split into fragments of at
        most that many bytes, only the last flagged last, none empty.
        """
        message = bytes(range(100))
        for n in [1, 2, 3, 7, 10, 33, 99]:
            out = encode_record(message, max_fragment_size=n)
            fragments = self.parse(out)
            self.assertEqual(b"".join(p for p, _ in fragments), message)
            self.assertTrue(all(0 < len(p) <= n for p, _ in fragments), n)
            self.assertEqual([last for _, last in fragments][-1], True)
            self.assertFalse(any(last for _, last in fragments[:-1]))
            self.assertEqual(len(fragments), -(-100 // n))

    def test_maxFragmentSizeExact(self) -> None:
        """
        A message of exactly a multiple of C{max_fragment_size} ends with a
        full last fragment, not an empty one.
        """
        self.assertEqual(
            encode_record(b"abcdef", max_fragment_size=3),
            [mark(3), b"abc", mark(3, True), b"def"],
        )
        self.assertEqual(
            encode_record(b"abc", max_fragment_size=3), [mark(3, True), b"abc"]
        )

    def test_splitPieces(self) -> None:
        """
        Split pieces keep their order; a piece that fits whole in a fragment
        is still passed by identity.
        """
        big = b"0123456789"
        out = encode_record([b"ab", big, b"c"], max_fragment_size=10)
        self.assertEqual(out, [mark(10), b"ab", b"01234567", mark(3, True), b"89", b"c"])
        out = encode_record([big, big], max_fragment_size=10)
        self.assertIs(out[1], big)
        self.assertIs(out[3], big)
        self.assertEqual(out, [mark(10), big, mark(10, True), big])

    def test_badMaxFragmentSize(self) -> None:
        """
        A C{max_fragment_size} under 1 raises L{ValueError}.
        """
        for n in [0, -1]:
            e = self.assertRaises(ValueError, encode_record, b"abc", max_fragment_size=n)
            self.assertIn(str(n), str(e))

    def test_split(self) -> None:
        """
        L{_split} (used above 2**31 - 1 bytes by default) cuts pieces into
        fragments of the limit, the last one holding the rest.
        """
        self.assertEqual(
            _split([b"abcdefgh"], 8, 3),
            [mark(3), b"abc", mark(3), b"def", mark(2, True), b"gh"],
        )
        self.assertEqual(
            _split([b"ab", b"", b"cdef"], 6, 4),
            [mark(4), b"ab", b"cd", mark(2, True), b"ef"],
        )

    def test_roundTrip(self) -> None:
        """
        What L{encode_record} writes, L{RecordReader} reads back.
        """
        reader = RecordReader(max_fragments=100_000)
        messages = [b"", b"a", bytes(range(256)) * 40, b"xyz" * 1000]
        for m in messages:
            for n in (None, 1, 100, 4096):
                reader.feed(b"".join(encode_record(m, max_fragment_size=n)))
                self.assertEqual(next_event(reader, Script()), Accepted(m))

    @staticmethod
    def parse(out: list[bytes]) -> list[tuple[bytes, bool]]:
        """
        Parse encoded output into C{(payload, last)} pairs.
        """
        wire = b"".join(out)
        fragments = []
        while wire:
            (word,) = struct.unpack(">I", wire[:4])
            length = word & MAX_FRAGMENT_LENGTH
            fragments.append((wire[4 : 4 + length], bool(word & LAST)))
            wire = wire[4 + length :]
        return fragments


# The property test: random records, fragmentation, segmentation and rules,
# compared with a reference model.

RULE_CHOICES: list[InRule] = [
    ACCEPT,
    REJECT,
    RejectWith(ServerError.GARBAGE_ARGS),
    RejectWith(ServerError.AUTH_BADCRED),
    DENY,
    DROP,
]


def reference_model(
    records: list[list[bytes]],
    scripts: list[list[InRule]],
    limits: dict[str, int],
    delivered: int,
) -> tuple[list[Any], list[tuple[int, int]], Any]:
    """
    What a reader should do with C{records}, of which the first C{delivered}
    wire bytes arrive before the end of input, when the decision callback
    answers the rules of C{scripts[k][j]} at the mark of fragment C{j} of
    record C{k}.

    @return: the records delivered, the decision calls as C{(record index,
        size)}, and how it ends: L{END_OF_FILE}, or a tuple of an error class
        and, for L{IncompleteRecord}, its C{(received, expected)}.
    """
    max_record_size = limits["max_record_size"]
    max_fragments = limits["max_fragments"]
    max_empty = limits["max_empty_fragments"]
    events: list[Any] = []
    calls: list[tuple[int, int]] = []
    pos = 0
    for k, fragments in enumerate(records):
        start = pos
        rule: InRule = ACCEPT
        size = 0
        empty_run = 0
        for j, payload in enumerate(fragments):
            last = j == len(fragments) - 1
            if pos + 4 > delivered:
                if j == 0 and pos == delivered:
                    return events, calls, END_OF_FILE
                if j == 0:
                    return events, calls, (IncompleteRecord, (delivered - start, 4))
                return events, calls, (IncompleteRecord, (delivered - start, pos + 4 - start))
            if j + 1 > max_fragments:
                return events, calls, (MalformedRecord, None)
            empty_run = 0 if payload or last else empty_run + 1
            if empty_run > max_empty:
                return events, calls, (MalformedRecord, None)
            size += len(payload)
            if rule is ACCEPT:
                rule = scripts[k][j]
                calls.append((k, size))
                if rule is ACCEPT and size > max_record_size:
                    return events, calls, (RecordTooLarge, None)
                if rule is DENY:
                    events.append(Denied())
            pos += 4
            if pos + len(payload) > delivered:
                return events, calls, (
                    IncompleteRecord,
                    (delivered - start, pos + len(payload) - start),
                )
            pos += len(payload)
        message = b"".join(fragments)
        if rule is ACCEPT:
            events.append(Accepted(message))
        elif rule is REJECT:
            events.append(Rejected(message[:4]))
        elif rule is DROP:
            events.append(Dropped())
        elif isinstance(rule, RejectWith):
            events.append(RejectedWith(message[:4], rule.error))
    if pos == delivered:
        return events, calls, END_OF_FILE
    raise AssertionError("delivered past the end of the stream")


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """
    Random records cut into random fragments (zero-length ones included),
    a script of rules for each record (one per fragment, mostly L{ACCEPT}),
    limits, how much of the stream is delivered, its segmentation and when
    events are asked for.
    """
    fragments = st.lists(
        st.one_of(st.just(b""), st.binary(min_size=1, max_size=12)),
        min_size=1,
        max_size=6,
    )
    records = draw(st.lists(fragments, max_size=8))
    rule = st.one_of(st.just(ACCEPT), st.just(ACCEPT), st.sampled_from(RULE_CHOICES))
    scripts = [
        draw(st.lists(rule, min_size=len(r), max_size=len(r))) for r in records
    ]

    def limit(default: int, low: int, high: int) -> int:
        # A tight limit one time in four, so that most scenarios run through.
        if not (draw(st.booleans()) and draw(st.booleans())):
            return default
        return draw(st.integers(low, high))

    limits = {
        "max_record_size": limit(DEFAULT_MAX_RECORD_SIZE, 0, 24),
        "max_fragments": limit(DEFAULT_MAX_FRAGMENTS, 1, 6),
        "max_empty_fragments": limit(DEFAULT_MAX_EMPTY_FRAGMENTS, 0, 3),
    }
    stream = b"".join(
        b"".join(fragment(p, j == len(r) - 1) for j, p in enumerate(r)) for r in records
    )
    delivered = draw(st.one_of(st.just(len(stream)), st.integers(0, len(stream))))
    cuts = sorted(set(draw(st.lists(st.integers(0, delivered), max_size=12))))
    bounds = [0] + cuts + [delivered]
    segments = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    polls = [draw(st.booleans()) for _ in segments]
    return {
        "records": records,
        "scripts": scripts,
        "limits": limits,
        "delivered": delivered,
        "segments": segments,
        "polls": polls,
    }


class PropertyTests(SynchronousTestCase):
    """
    Tests of L{RecordReader} against a reference model.
    """

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scenarios())
    def test_model(self, scenario: dict[str, Any]) -> None:
        """
        Whatever the records, fragmentation, segmentation, limits and rules,
        the reader delivers what the reference model says, calls the
        decision callback with the sizes it says, and ends as it says: with
        L{END_OF_FILE} (nothing left buffered) or with the right error,
        raised again afterwards.
        """
        records = scenario["records"]
        scripts = scenario["scripts"]
        limits = scenario["limits"]
        want_events, want_calls, want_end = reference_model(
            records, scripts, limits, scenario["delivered"]
        )

        reader = RecordReader(**limits)
        events: list[Any] = []
        calls: list[tuple[int, int]] = []

        def decide(size: int) -> InRule:
            # Every record gives one event, and its calls come before it.
            k = len(events)
            j = sum(1 for c in calls if c[0] == k)
            calls.append((k, size))
            rule: InRule = scripts[k][j]
            return rule

        def poll() -> Any:
            while True:
                event = next_event(reader, decide)
                if event is NEED_DATA or event is END_OF_FILE:
                    return event
                events.append(event)

        end: Any = None
        try:
            for segment, polled in zip(scenario["segments"], scenario["polls"]):
                reader.feed(segment)
                self.assertGreaterEqual(reader.buffered, 0)
                if polled:
                    poll()
            reader.feed_eof()
            end = poll()
            self.assertIs(end, END_OF_FILE)
            self.assertIs(next_event(reader, decide), END_OF_FILE)
            self.assertEqual(reader.buffered, 0)
            self.assertTrue(reader.at_record_boundary)
        except RemoteProtocolError as e:
            end = e
            self.assertIs(reader.failed, e)
            self.assertIs(self.assertRaises(type(e), next_event, reader, decide), e)

        self.assertEqual(events, want_events)
        self.assertEqual(calls, want_calls)
        if want_end is END_OF_FILE:
            self.assertIs(end, END_OF_FILE)
        else:
            error, numbers = want_end
            self.assertIsInstance(end, error)
            if numbers is not None:
                self.assertEqual((end.received, end.expected), numbers)
