# -*- test-case-name: rpctransport.test.test_record -*-
"""
Record marking (RFC 5531 section 11), sans I/O.

On a stream, each RPC message is sent as a I{record}: one or more
I{fragments}, each preceded by a 4-byte big-endian I{record mark} whose top
bit says "last fragment of this record" and whose low 31 bits give the
fragment's length. Zero-length fragments are legal.

L{RecordReader} is fed bytes as they arrive and hands out whole records, one
per L{RecordReader.next_event} call. At each fragment header of a record
still being accepted it returns a L{FragmentHeader} event with the record's
size so far, and waits for the rule (L{ACCEPT <Rule.ACCEPT>},
L{REJECT <Rule.REJECT>}, L{DENY <Rule.DENY>}, L{DROP <Rule.DROP>} or
L{RejectWith}) through L{RecordReader.decide}, before any payload byte is
kept; it never calls out (in the manner of h11's C{next_event}), so the
caller runs the application's hook and an exception from it never passes
through the codec. L{encode_record} is the way back.

Nothing here imports Twisted: the stream controller feeds this codec and acts
on what it returns (in the style of h11 and wsproto).

Cost model, for the curious. Incoming chunks are kept as they came (no
copying into a growing buffer). A record that lies whole in one chunk is cut
out of it with one slice. A record spread over chunks is kept as a list of
views into them and joined once when it ends, so each payload byte is copied
once into the delivered message whatever the segmentation; only pieces under
L{_SMALL_PIECE} bytes are first gathered into a small buffer (a second copy of
those bytes), so that a peer sending one-byte fragments costs us bytes, not
one Python object per fragment.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Union

from .errors import IncompleteRecord, LocalProtocolError, MalformedRecord, RecordTooLarge
from .sniff import describe_non_rpc
from .types import (
    ACCEPT,
    DENY,
    DROP,
    END_OF_FILE,
    Accepted,
    Denied,
    EndOfFile,
    InRecord,
    InRule,
    RejectedWith,
    RejectWith,
    Rule,
    Sentinel,
    check_rule,
    record_for_rule,
)

__all__ = [
    "DEFAULT_MAX_EMPTY_FRAGMENTS",
    "DEFAULT_MAX_FRAGMENTS",
    "DEFAULT_MAX_RECORD_SIZE",
    "FragmentHeader",
    "MAX_FRAGMENT_LENGTH",
    "NEED_DATA",
    "NeedData",
    "RecordReader",
    "encode_record",
]

DEFAULT_MAX_RECORD_SIZE: Final = 16 * 1024 * 1024
"""
Default limit on the bytes of one accepted record. It bounds the memory one
connection's peer can make us hold: an NFS WRITE of 1 MiB (the common maximum
of Linux clients) fits with room to spare, a 2 GiB record mark does not.
"""

DEFAULT_MAX_FRAGMENTS: Final = 8192
"""
Default limit on the fragments of one record. Large NFS writes use over 1024
fragments (libtirpc sends fragments of its send size); the limit bounds the
work a peer can cause with tiny fragments, not memory.
"""

DEFAULT_MAX_EMPTY_FRAGMENTS: Final = 16
"""
Default limit on consecutive zero-length fragments that are not the last of
their record. They are legal and carry nothing; a long run of them is only
work for us.
"""

MAX_FRAGMENT_LENGTH: Final = 0x7FFFFFFF
"""The largest fragment a record mark can announce (31 bits)."""

_LAST_FRAGMENT: Final = 0x80000000
_MARK = struct.Struct(">I")
_unpack_mark = _MARK.unpack_from
_pack_mark = _MARK.pack

_SMALL_PIECE: Final = 1024
"""
Pieces of a record shorter than this are copied into a gathering buffer
instead of being kept as views: a view costs about 200 bytes of Python
object, which for one-byte fragments would be 200 times the payload.
"""

_COALESCE_BELOW: Final = 1024
_COALESCE_LIMIT: Final = 64 * 1024
"""
Incoming chunks shorter than C{_COALESCE_BELOW} are appended to the previous
queued chunk (up to C{_COALESCE_LIMIT} bytes) when bytes are already waiting,
for the same reason as C{_SMALL_PIECE}: a peer trickling one-byte segments
must cost bytes, not objects.
"""

_SNIFF_BYTES: Final = 64

_BATCH_FIRST: Final = 16
_BATCH_MOST: Final = 4096
"""
L{RecordReader.take_whole} takes at most this many records at once. The
bound starts at C{_BATCH_FIRST} and doubles while batches are used up; when
records are given back, it falls to the number the consumer took. A consumer
that takes one record at a time (a read loop that does not start the next
read from the callback, a receiver that pauses after each record) then costs
one record's work per record, not a chunk's.
"""


class NeedData(Sentinel):
    """
    The type of L{NEED_DATA}.
    """

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA
"""
Returned by L{RecordReader.next_event} when it cannot say more until more
bytes (or the end of input) arrive.
"""


class _State(enum.Enum):
    HEADER = "header"
    PAYLOAD = "payload"
    FAILED = "failed"


@dataclass(slots=True)
class FragmentHeader:
    """
    Returned by L{RecordReader.next_event} at a fragment header of a record
    that is still being accepted: the reader waits for
    L{RecordReader.decide} before it keeps any of the fragment. (Not frozen:
    one is made per record a hook decides, and a frozen dataclass takes
    several times longer to make.)

    @ivar size: the record's size known so far, this fragment included.
    """

    size: int


Event = Union[InRecord, EndOfFile, NeedData, FragmentHeader]


class RecordReader:
    """
    Reassemble records from a byte stream, under limits, as rules decide.

    Feed it with L{feed} and L{feed_eof}; ask for records with
    L{next_event}. Each call of L{next_event} returns one record
    (L{Accepted}, L{Rejected}, L{RejectedWith}, L{Denied}, L{Dropped}),
    L{END_OF_FILE <rpctransport.sansio.types.END_OF_FILE>} once the input
    has ended cleanly between records, or L{NEED_DATA}, or a
    L{FragmentHeader} that L{decide} answers; or it
    raises a L{RemoteProtocolError
    <rpctransport.sansio.errors.RemoteProtocolError>}, after which the
    reader is failed and raises the same error again (as after L{close}:
    the caller fails it so with what its own hook raised).

    Limits (C{max_record_size} on an accepted record's bytes,
    C{max_fragments}, C{max_empty_fragments} on a run of empty fragments)
    are checked when a record mark arrives, before any of its payload is
    kept. Records whose rule is L{DENY <Rule.DENY>} or L{DROP <Rule.DROP>}
    keep nothing: their bytes are discarded as they are fed, even while
    nobody asks for the next one.

    @ivar accept_all: take every record as if L{decide} answered
        L{ACCEPT <Rule.ACCEPT>},
        without returning L{FragmentHeader} (set while the reader's consumer
        has no C{before_record} of its own: no question per record).
    """

    # The record being read (see _reset).
    _state: _State
    _rule: InRule | None
    _size: int
    _fragments: int
    _empty_run: int
    _remaining: int
    _last: bool
    _wire_bytes: int
    _parts: list[bytes | bytearray | memoryview]
    _head: bytes
    _reported: bool

    def __init__(
        self,
        *,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        max_empty_fragments: int = DEFAULT_MAX_EMPTY_FRAGMENTS,
        refuse_non_rpc: bool = True,
    ) -> None:
        """
        @param max_record_size: the limit on an accepted record, in bytes.
        @param max_fragments: the limit on fragments in one record (at least 1).
        @param max_empty_fragments: the limit on consecutive empty non-last
            fragments.
        @param refuse_non_rpc: fail with L{RecordTooLarge}, before asking for
            a rule, when a record's first mark announces more than
            C{max_record_size} and the bytes look like another protocol (an
            HTTP request, a TLS handshake, text): whatever the rule, such a
            stream is not RPC.
        @raise ValueError: if a limit is out of range.
        """
        _check_limits(max_record_size, max_fragments, max_empty_fragments)
        self.max_record_size = max_record_size
        self.max_fragments = max_fragments
        self.max_empty_fragments = max_empty_fragments
        self.refuse_non_rpc = refuse_non_rpc
        self.accept_all = False

        # Input not yet consumed: the chunks as fed, and how far into the
        # first one we are.
        self._chunks: deque[bytes | bytearray] = deque()
        self._offset = 0
        self._buffered = 0
        self._eof = False

        # The record being read (see _reset).
        self._reset()
        # The rule decide() gave for the header at hand, and the size that
        # header asked about (None: no question is open).
        self._given: InRule | None = None
        self._asked: int | None = None
        # Where the record asked about ends in the first chunk, when it lies
        # whole there (next_event's common case).
        self._whole_at: int | None = None

        # The bound on take_whole's batches (see _BATCH_MOST), how many the
        # last one took, and where it ended in the first chunk when that
        # chunk is still there (-1: it was used up).
        self._batch_limit = _BATCH_FIRST
        self._taken = 0
        self._rewind = -1

        # A record that ended while it was being discarded in feed().
        self._ready: InRecord | None = None
        self._error: BaseException | None = None

    @property
    def buffered(self) -> int:
        """
        Bytes fed and not yet consumed (record marks included); the bytes of
        an accepted record already taken into the message are not counted.
        """
        return self._buffered

    @property
    def at_record_boundary(self) -> bool:
        """
        Whether nothing of a record has been consumed or is waiting: the input
        so far ends exactly between records.
        """
        return (
            self._rule is None
            and self._state is _State.HEADER
            and self._buffered == 0
            and self._ready is None
        )

    @property
    def record_progress(self) -> int:
        """
        Bytes of the record in progress received so far, record marks
        included (with what is buffered beyond it, if anything).
        """
        return self._wire_bytes + self._buffered

    @property
    def failed(self) -> BaseException | None:
        """
        The error that failed this reader, or L{None}.
        """
        return self._error

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """
        Add bytes that arrived.

        Bytes of a record being discarded (L{DENY <Rule.DENY>} or
        L{DROP <Rule.DROP>}) are discarded at once; a discarded record that
        ends here is kept for the next L{next_event}.

        @raise RemoteProtocolError: when the bytes break a limit while being
            discarded; the reader is failed.
        """
        if self._state is _State.FAILED:
            return
        if type(data) is not bytes:
            # Before len(): a memoryview's len() counts items, not bytes.
            data = bytes(data)
        n = len(data)
        if not n:
            return
        _queue(self._chunks, data)
        self._buffered += n
        rule = self._rule
        if rule is not None and rule is not ACCEPT and self._ready is None:
            event = self._run(False)
            if event is not NEED_DATA:
                self._ready = event  # type: ignore[assignment]

    def feed_eof(self) -> None:
        """
        Say that the input has ended. Records already complete are still
        handed out; then L{next_event} returns
        L{END_OF_FILE <rpctransport.sansio.types.END_OF_FILE>}, or raises
        L{IncompleteRecord} if the input ended inside a record.
        """
        self._eof = True

    def close(self, reason: BaseException) -> None:
        """
        Release every buffer now and fail the reader with C{reason}.
        """
        self._chunks.clear()
        self._buffered = 0
        self._offset = 0
        self._parts = []
        self._ready = None
        self._given = self._asked = self._whole_at = None
        self._state = _State.FAILED
        self._error = reason

    def next_event(self) -> Event:
        """
        Hand out the next record, if the bytes fed so far allow it.

        @return: a record,
            L{END_OF_FILE <rpctransport.sansio.types.END_OF_FILE>},
            L{NEED_DATA}, or a L{FragmentHeader} to answer with L{decide}
            (never while L{accept_all} is set).
        @raise RemoteProtocolError: the input broke RFC 5531 or a limit.
        """
        ready = self._ready
        if ready is not None:
            self._ready = None
            return ready
        if self._rule is None and self._chunks:
            # The common case first, in one go: between records, a whole
            # single-fragment record at the head of the first chunk.
            chunk = self._chunks[0]
            start = self._offset + 4
            if len(chunk) >= start:
                mark = _unpack_mark(chunk, start - 4)[0]
                stop = start + mark - _LAST_FRAGMENT
                if (
                    mark >= _LAST_FRAGMENT
                    and stop <= len(chunk)
                    and stop - start <= self.max_record_size
                ):
                    rule = ACCEPT if self.accept_all else self._given
                    if rule is ACCEPT:
                        self._given = self._asked = None
                        return self._whole(chunk, start, stop)
                    if rule is None:
                        self._asked = stop - start
                        self._whole_at = stop
                        return FragmentHeader(stop - start)
                    # Another rule: the general path takes it from here.
        return self._general_event()

    def _general_event(self) -> Event:
        """
        L{next_event} beyond its common case: the record marks and rules in
        full, a failed reader, the end of input.
        """
        if self._state is _State.FAILED:
            assert self._error is not None
            raise self._error
        event = self._run(True)
        if event is NEED_DATA and self._eof:
            return self._end_of_input()
        return event

    def decide(self, rule: InRule) -> Accepted | None:
        """
        Answer the L{FragmentHeader} that L{next_event} returned with the
        rule for the record (the last rule given for a record decides).

        @return: the record, when the answer accepts one that lies whole in
            what was fed (the common case, in one step); else L{None}, and
            L{next_event} goes on.
        @raise TypeError: C{rule} is not a rule; the reader is failed.
        @raise LocalProtocolError: no fragment header is waiting for a rule.
        """
        if self._asked is None:
            raise LocalProtocolError("decide: no fragment header is waiting for a rule")
        if type(rule) is not Rule and type(rule) is not RejectWith:
            try:
                check_rule(rule)
            except TypeError as e:
                raise self._fail(e)
        stop = self._whole_at
        if stop is not None and rule is ACCEPT:
            # The question came from next_event's common case: the record
            # lies whole in the first chunk, and is handed out next.
            start = stop - self._asked
            self._asked = self._whole_at = None
            return self._whole(self._chunks[0], start, stop)
        self._given = rule
        self._whole_at = None
        return None

    def take_whole(self) -> list[bytes]:
        """
        Take every whole single-fragment record, of at most
        C{max_record_size} bytes, that lies back to back at the head of the
        first chunk, in one loop (mark, length, slice: no event per record).
        The rest (fragmented records, records split across chunks or over
        the limit, the end of input) is left to L{next_event}.

        The records are taken undecided: the caller applies its rule to each
        (L{record_for_rule <rpctransport.sansio.types.record_for_rule>}), and
        gives back with L{put_back} those it stops before. Nothing of the
        batch is kept here.

        @return: the records' bytes, in order; empty when none is there
            (between records only).
        """
        if self._rule is not None or self._ready is not None or not self._chunks:
            return []
        first = self._chunks[0]
        # A gathered chunk (small pieces appended) is sliced as bytes.
        chunk = first if type(first) is bytes else bytes(first)
        base = pos = self._offset
        end = len(chunk)
        largest = self.max_record_size
        batch = left = self._batch_limit
        unpack = _unpack_mark
        out: list[bytes] = []
        append = out.append
        while left and pos + 4 <= end:
            size = unpack(chunk, pos)[0] - _LAST_FRAGMENT
            stop = pos + 4 + size
            if size < 0 or stop > end or size > largest:
                break
            append(chunk[pos + 4 : stop])
            pos = stop
            left -= 1
        if pos == base:
            return out
        self._buffered -= pos - base
        if pos == end:
            self._chunks.popleft()
            self._offset = 0
            self._rewind = -1
        else:
            self._offset = self._rewind = pos
        self._taken = batch - left
        if not left and batch < _BATCH_MOST:
            self._batch_limit = batch * 2
        self._given = self._asked = self._whole_at = None
        return out

    def put_back(self, records: list[bytes]) -> None:
        """
        Give back C{records}, the last ones the last L{take_whole} returned,
        unread: they are handed out again first, as if never taken (the
        caller stopped before them). Nothing else may have been taken since
        (bytes may have been fed).

        @raise LocalProtocolError: a record is in progress, so these cannot
            be the ones just taken.
        """
        if not records or self._state is _State.FAILED:
            return
        if self._rule is not None or self._ready is not None:
            raise LocalProtocolError("put_back: a record was taken since these")
        size = 0
        for message in records:
            size += 4 + len(message)
        self._batch_limit = max(1, self._taken - len(records))
        if self._rewind >= size and self._offset == self._rewind:
            # They lie just before where the batch stopped, in the chunk
            # still at the head.
            self._offset -= size
        else:
            # The batch used its chunk up: mark them again, in front.
            chunks = self._chunks
            if self._offset:
                chunks[0] = chunks[0][self._offset :]
                self._offset = 0
            marked = [_pack_mark(_LAST_FRAGMENT | len(m)) + m for m in records]
            chunks.appendleft(b"".join(marked))
        self._rewind = -1
        self._buffered += size

    def _whole(self, chunk: bytes | bytearray, start: int, stop: int) -> Accepted:
        """
        Consume the single-fragment record at C{start:stop} of the first
        chunk (its mark just before it) and return it.
        """
        message = chunk[start:stop]
        if type(message) is not bytes:
            message = bytes(message)
        self._buffered -= stop - start + 4
        if stop == len(chunk):
            self._chunks.popleft()
            self._offset = 0
        else:
            self._offset = stop
        return Accepted(message)

    def _end_of_input(self) -> EndOfFile:
        if self.at_record_boundary:
            return END_OF_FILE
        raise self._fail(_incomplete(self))

    def _fail(self, error: BaseException) -> BaseException:
        self.close(error)
        return error

    def _skip(self, n: int) -> None:
        """
        Consume C{n} bytes of input (at most what is there).
        """
        chunks = self._chunks
        self._buffered -= n
        while n:
            chunk = chunks[0]
            avail = len(chunk) - self._offset
            if n < avail:
                self._offset += n
                return
            n -= avail
            chunks.popleft()
            self._offset = 0

    def _header(self, ask: bool) -> InRecord | NeedData | FragmentHeader | None:
        """
        Read one record mark, if it is there. Returns L{NEED_DATA} when it
        cannot (or, without C{ask}, when a rule would be needed), a
        L{FragmentHeader} when the rule must be asked for first, L{Denied}
        when the mark denies the record, L{None} when the payload follows.
        """
        chunk = self._chunks[0]
        off = self._offset
        if len(chunk) - off >= 4:
            mark = _MARK.unpack_from(chunk, off)[0]
        else:
            mark = _MARK.unpack(_peek(self._chunks, self._offset, 4))[0]
        length = mark & MAX_FRAGMENT_LENGTH
        last = mark >= _LAST_FRAGMENT
        try:
            fragments, empty_run = _count_fragment(self, length, last)
        except MalformedRecord as e:
            raise self._fail(e)
        size = self._size + length

        rule = self._rule
        if rule is None or rule is ACCEPT:
            if not ask:
                return NEED_DATA
            asked = self._ask(size)
            if asked is None:
                return FragmentHeader(size)
            rule = asked

        self._skip(4)
        self._wire_bytes += 4
        self._fragments = fragments
        self._empty_run = empty_run
        self._size = size
        self._remaining = length
        self._last = last
        self._state = _State.PAYLOAD
        if rule is not self._rule:
            self._rule = rule
            if rule is DENY:
                if last and not length:
                    self._reset()
                return Denied()
        return None

    def _ask(self, size: int) -> InRule | None:
        """
        The rule for a record being accepted, at a fragment header that
        makes it C{size} bytes: L{None} while it must be asked for; the
        limit checked against what was answered.
        """
        first = self._rule is None
        if first and size > self.max_record_size and self.refuse_non_rpc:
            # A first mark announcing more than we would ever buffer: if the
            # bytes are another protocol's (a browser, a TLS client), no rule
            # can make sense of what follows.
            looks_like = describe_non_rpc(_peek(self._chunks, self._offset, _SNIFF_BYTES))
            if looks_like is not None:
                raise self._fail(RecordTooLarge(size, self.max_record_size, looks_like))
        if self.accept_all:
            rule: InRule = ACCEPT
        elif self._given is None:
            self._asked = size
            return None
        else:
            rule, self._given, self._asked = self._given, None, None
        if rule is ACCEPT and size > self.max_record_size:
            looks_like = describe_non_rpc(_peek(self._chunks, self._offset, _SNIFF_BYTES)) if first else None
            raise self._fail(RecordTooLarge(size, self.max_record_size, looks_like))
        if rule is not ACCEPT:
            if rule is not DENY and rule is not DROP:
                # REJECT or RejectWith: keep the xid of what was buffered.
                self._head = b"".join(self._parts)[:4] if self._parts else b""
            self._parts = []
        return rule

    def _reset(self) -> None:
        """
        Between records: C{_rule} is L{None}, nothing of a record is
        counted, and no at-once rejection was handed out (C{_reported}).
        """
        self._state = _State.HEADER
        self._rule = None
        self._size = 0
        self._fragments = 0
        self._empty_run = 0
        self._remaining = 0
        self._last = False
        self._wire_bytes = 0
        self._parts = []
        self._head = b""
        self._reported = False

    def _early(self) -> InRecord | NeedData:
        """
        L{NEED_DATA}, or the at-once rejection of the record being discarded
        once its xid is in (once per record).
        """
        rule = self._rule
        if (
            type(rule) is RejectWith
            and rule.at_once
            and not self._reported
            and len(self._head) >= 4
        ):
            self._reported = True
            return RejectedWith(self._head, rule.error)
        return NEED_DATA

    def _run(self, ask: bool) -> InRecord | NeedData | FragmentHeader:
        """
        Consume input until a record can be handed out, a rule is needed or
        more input is. Without C{ask} (from L{feed}), stop where a rule would
        have to be asked for or accepted payload would be taken.
        """
        chunks = self._chunks
        while True:
            if self._state is _State.HEADER:
                if self._buffered < 4:
                    return self._early() if self._rule is not None else NEED_DATA
                event = self._header(ask)
                if event is not None:
                    return event
            # PAYLOAD
            rule = self._rule
            remaining = self._remaining
            if rule is ACCEPT and remaining:
                if not ask:
                    return NEED_DATA
                # Accepted payload: keep views of the chunks (or the chunks
                # themselves), joined once when the record ends.
                parts = self._parts
                while remaining:
                    if not chunks:
                        self._remaining = remaining
                        return NEED_DATA
                    chunk = chunks[0]
                    off = self._offset
                    end = len(chunk)
                    if end - off > remaining:
                        take = remaining
                        end = off + take
                        self._offset = end
                    else:
                        take = end - off
                        chunks.popleft()
                        self._offset = 0
                    self._buffered -= take
                    self._wire_bytes += take
                    remaining -= take
                    if not remaining and not parts and self._last:
                        # The rest of the record lay in this chunk: one slice.
                        message = chunk[off:end]
                        if type(message) is not bytes:
                            message = bytes(message)
                        self._reset()
                        return Accepted(message)
                    if take < _SMALL_PIECE:
                        if parts and type(parts[-1]) is bytearray:
                            parts[-1] += chunk[off:end]
                        else:
                            parts.append(bytearray(chunk[off:end]))
                    elif type(chunk) is bytes:
                        parts.append(chunk if take == len(chunk) else memoryview(chunk)[off:end])
                    else:
                        # Never a view of a bytearray: it may still grow in
                        # feed().
                        parts.append(chunk[off:end])
            while remaining:
                if not self._buffered:
                    self._remaining = remaining
                    return self._early()
                chunk = chunks[0]
                off = self._offset
                avail = len(chunk) - off
                take = avail if avail < remaining else remaining
                if rule is not DENY and rule is not DROP and len(self._head) < 4:
                    self._head += bytes(chunk[off : off + min(take, 4 - len(self._head))])
                self._skip(take)
                self._wire_bytes += take
                remaining -= take
            self._remaining = 0
            if not self._last:
                self._state = _State.HEADER
                continue
            record = self._finish()
            if record is not None:
                return record

    def _finish(self) -> InRecord | None:
        """
        The record has ended: build what the read delivers (L{None} for a
        denied record, or one rejected at once, already reported) and get
        ready for the next one.
        """
        rule = self._rule
        assert rule is not None
        record: InRecord | None
        if rule is DENY or self._reported:
            record = None
        elif rule is ACCEPT:
            parts = self._parts
            record = Accepted(b"".join(parts) if parts else b"")
        else:
            record = record_for_rule(rule, self._head)
        self._reset()
        return record


def _queue(chunks: deque[bytes | bytearray], data: bytes) -> None:
    """
    Queue a chunk of input as it came, or, when it is small and bytes are
    already waiting, append it to the last queued chunk (see
    L{_COALESCE_BELOW}).
    """
    if chunks and len(data) < _COALESCE_BELOW:
        tail = chunks[-1]
        if type(tail) is bytearray and len(tail) < _COALESCE_LIMIT:
            tail += data
            return
        chunks.append(bytearray(data))
        return
    chunks.append(data)


def _check_limits(max_record_size: int, max_fragments: int, max_empty_fragments: int) -> None:
    """
    Raise L{ValueError} if a limit of a L{RecordReader} is out of range.
    """
    if max_record_size < 0:
        raise ValueError(f"max_record_size must be >= 0, not {max_record_size}")
    if max_fragments < 1:
        raise ValueError(f"max_fragments must be >= 1, not {max_fragments}")
    if max_empty_fragments < 0:
        raise ValueError(f"max_empty_fragments must be >= 0, not {max_empty_fragments}")


def _count_fragment(reader: RecordReader, length: int, last: bool) -> tuple[int, int]:
    """
    Check a fragment header of C{length} bytes against the reader's
    C{max_fragments} and C{max_empty_fragments}; return the record's
    fragment count and run of empty fragments with it.

    @raise MalformedRecord: a limit is broken.
    """
    fragments = reader._fragments + 1
    if fragments > reader.max_fragments:
        raise MalformedRecord(
            f"record has more than {reader.max_fragments} fragments "
            f"(max_fragments) after {reader._size} bytes"
        )
    if length or last:
        return fragments, 0
    empty_run = reader._empty_run + 1
    if empty_run > reader.max_empty_fragments:
        raise MalformedRecord(
            f"record has more than {reader.max_empty_fragments} "
            f"consecutive empty fragments (max_empty_fragments)"
        )
    return fragments, empty_run


def _incomplete(reader: RecordReader) -> IncompleteRecord:
    """
    The error of an input that ended inside a record, saying where.
    """
    if reader._state is _State.PAYLOAD:
        where = f"inside fragment {reader._fragments}"
        expected = reader._wire_bytes + reader._remaining
    elif reader._rule is None:
        where = "inside the first record mark"
        expected = 4
    else:
        where = f"inside the record mark after fragment {reader._fragments}"
        expected = reader._wire_bytes + 4
    return IncompleteRecord(reader._wire_bytes + reader.buffered, expected, where)


def _peek(chunks: Iterable[bytes | bytearray], offset: int, n: int) -> bytes:
    """
    The first C{n} bytes of C{chunks} from C{offset} in the first one
    (fewer if fewer are there), not consumed.
    """
    out = bytearray()
    start = offset
    for chunk in chunks:
        out += chunk[start : start + n - len(out)]
        if len(out) >= n:
            break
        start = 0
    return bytes(out)


def encode_record(
    message: bytes | bytearray | memoryview | Iterable[bytes | bytearray | memoryview],
    *,
    max_fragment_size: int | None = None,
) -> list[bytes]:
    """
    Record-mark a message for a stream.

    The result is a list of C{bytes} for C{ITransport.writeSequence}: record
    marks and the message's pieces. C{bytes} pieces are passed through
    as they are (the message is not joined); other bytes-like pieces are
    converted once. Only when the message is split into several fragments are
    pieces cut, which copies them.

    @param message: the record: bytes-like, or a sequence of bytes-like
        pieces (scatter-gather).
    @param max_fragment_size: split into fragments of at most this many bytes;
        by default one fragment, split only above L{MAX_FRAGMENT_LENGTH}.
    @return: the pieces to write, in order.
    @raise ValueError: if C{max_fragment_size} is less than 1.
    """
    if max_fragment_size is None:
        if type(message) is bytes and 0 < len(message) <= MAX_FRAGMENT_LENGTH:
            # The most common case of all, without a call.
            return [_pack_mark(_LAST_FRAGMENT | len(message)), message]
        whole = _one_fragment(message)
        if whole is not None:
            return whole
    if isinstance(message, (bytes, bytearray, memoryview)):
        sources: Iterable[bytes | bytearray | memoryview] = (message,)
    else:
        sources = message
    pieces = [p if isinstance(p, bytes) else bytes(p) for p in sources]
    total = 0
    for p in pieces:
        total += len(p)
    limit = MAX_FRAGMENT_LENGTH
    if max_fragment_size is not None:
        if max_fragment_size < 1:
            raise ValueError(f"max_fragment_size must be >= 1, not {max_fragment_size}")
        limit = min(limit, max_fragment_size)
    if total <= limit:
        out = [_MARK.pack(_LAST_FRAGMENT | total)]
        out.extend(p for p in pieces if p)
        return out
    return _split(pieces, total, limit)


def _one_fragment(
    message: bytes | bytearray | memoryview | Iterable[bytes | bytearray | memoryview],
) -> list[bytes] | None:
    """
    The common cases of L{encode_record}, in one go: one fragment of
    C{bytes}, or of a list of C{bytes} pieces; L{None} for anything else.
    """
    if type(message) is bytes:
        if not message:
            return [_pack_mark(_LAST_FRAGMENT)]
        if len(message) <= MAX_FRAGMENT_LENGTH:
            return [_pack_mark(_LAST_FRAGMENT | len(message)), message]
        return None
    if type(message) is not list:
        return None
    total = 0
    empty = False
    for p in message:
        if type(p) is not bytes:
            return None
        if not p:
            empty = True
        total += len(p)
    if total > MAX_FRAGMENT_LENGTH:
        return None
    out = [_pack_mark(_LAST_FRAGMENT | total)]
    if empty:
        out.extend(p for p in message if p)
    else:
        out += message
    return out


def _split(pieces: list[bytes], total: int, limit: int) -> list[bytes]:
    out: list[bytes] = []
    left = total
    fragment_left = 0
    for piece in pieces:
        view = memoryview(piece)
        pos = 0
        while pos < len(piece):
            if not fragment_left:
                fragment_left = min(limit, left)
                left -= fragment_left
                out.append(_MARK.pack(fragment_left | (0 if left else _LAST_FRAGMENT)))
            take = min(fragment_left, len(piece) - pos)
            out.append(piece if (pos == 0 and take == len(piece)) else bytes(view[pos : pos + take]))
            pos += take
            fragment_left -= take
    return out
