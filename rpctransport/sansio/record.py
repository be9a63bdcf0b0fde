# -*- test-case-name: rpctransport.test.test_record -*-
"""
Record marking (RFC 5531 section 11), sans I/O.

On a stream, each RPC message is sent as a I{record}: one or more
I{fragments}, each preceded by a 4-byte big-endian I{record mark} whose top
bit says "last fragment of this record" and whose low 31 bits give the
fragment's length. Zero-length fragments are legal.

L{RecordReader} is fed bytes as they arrive and hands out whole records, one
per L{RecordReader.next_event} call, asking a decision callback for a rule
(L{ACCEPT}, L{REJECT}, L{DENY}, L{DROP} or L{RejectWith}) at each fragment
header, before any payload byte is kept. L{encode_record} is the way back.

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
from collections.abc import Callable, Iterable
from typing import Final, Union

from .errors import IncompleteRecord, MalformedRecord, RecordTooLarge
from .sniff import describe_non_rpc
from .types import (
    ACCEPT,
    DENY,
    DROP,
    END_OF_FILE,
    REJECT,
    Accepted,
    Denied,
    Dropped,
    EndOfFile,
    InRecord,
    InRule,
    Rejected,
    RejectedWith,
    RejectWith,
    Rule,
)

__all__ = [
    "DEFAULT_MAX_EMPTY_FRAGMENTS",
    "DEFAULT_MAX_FRAGMENTS",
    "DEFAULT_MAX_RECORD_SIZE",
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


class NeedData(enum.Enum):
    """
    The type of L{NEED_DATA}.
    """

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = NeedData.NEED_DATA
"""
Returned by L{RecordReader.next_event} when it cannot say more until more
bytes (or the end of input) arrive.
"""


class _State(enum.Enum):
    HEADER = "header"
    PAYLOAD = "payload"
    FAILED = "failed"


Decide = Callable[[int], InRule]
"""
The per-fragment decision callback: given the record's size known so far,
return a rule.
"""

Event = Union[InRecord, EndOfFile, NeedData]


class RecordReader:
    """
    Reassemble records from a byte stream, under limits, as rules decide.

    Feed it with L{feed} and L{feed_eof}; ask for records with
    L{next_event}. Each call of L{next_event} returns one record
    (L{Accepted}, L{Rejected}, L{RejectedWith}, L{Denied}, L{Dropped}),
    L{END_OF_FILE} once the input has ended cleanly between records, or
    L{NEED_DATA}; or it raises a L{RemoteProtocolError
    <rpctransport.sansio.errors.RemoteProtocolError>} (or the exception the
    decision callback raised), after which the reader is failed and raises
    the same error again.

    Limits are checked when a record mark arrives, before any of its payload
    is kept:
      - C{max_record_size} bounds the bytes of a record that is being
        accepted (the sum of its fragments);
      - C{max_fragments} bounds the fragments of any record;
      - C{max_empty_fragments} bounds a run of zero-length fragments that are
        not the last of their record.

    Records whose rule is L{DENY} or L{DROP} keep nothing: their bytes are
    discarded as they are fed, even while nobody asks for the next record.

    @ivar max_record_size: see above.
    @ivar max_fragments: see above.
    @ivar max_empty_fragments: see above.
    """

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
        if max_record_size < 0:
            raise ValueError(f"max_record_size must be >= 0, not {max_record_size}")
        if max_fragments < 1:
            raise ValueError(f"max_fragments must be >= 1, not {max_fragments}")
        if max_empty_fragments < 0:
            raise ValueError(
                f"max_empty_fragments must be >= 0, not {max_empty_fragments}"
            )
        self.max_record_size = max_record_size
        self.max_fragments = max_fragments
        self.max_empty_fragments = max_empty_fragments
        self.refuse_non_rpc = refuse_non_rpc

        # Input not yet consumed: the chunks as fed, and how far into the
        # first one we are.
        self._chunks: deque[bytes | bytearray] = deque()
        self._offset = 0
        self._buffered = 0
        self._eof = False

        # The record being read. _rule is None between records.
        self._state = _State.HEADER
        self._rule: InRule | None = None
        self._size = 0
        self._fragments = 0
        self._empty_run = 0
        self._remaining = 0
        self._last = False
        self._wire_bytes = 0
        self._parts: list[bytes | bytearray | memoryview] = []
        self._head = b""
        # An at-once rejection was handed out before the record ended.
        self._reported = False

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

        Bytes of a record being discarded (L{DENY} or L{DROP}) are discarded
        at once; a discarded record that ends here is kept for the next
        L{next_event}.

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
        chunks = self._chunks
        if chunks and n < _COALESCE_BELOW:
            tail = chunks[-1]
            if type(tail) is bytearray and len(tail) < _COALESCE_LIMIT:
                tail += data
            else:
                chunks.append(bytearray(data))
        else:
            chunks.append(data)
        self._buffered += n
        rule = self._rule
        if rule is not None and rule is not ACCEPT and self._ready is None:
            event = self._run(None)
            if event is not NEED_DATA:
                self._ready = event

    def feed_eof(self) -> None:
        """
        Say that the input has ended. Records already complete are still
        handed out; then L{next_event} returns L{END_OF_FILE}, or raises
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
        self._state = _State.FAILED
        self._error = reason

    def next_event(self, decide: Decide) -> Event:
        """
        Hand out the next record, if the bytes fed so far allow it.

        @param decide: called with the record's size known so far at each
            fragment header, as long as the record's rule is L{ACCEPT}; it
            returns the rule for the record. The last rule decides.
        @return: a record, L{END_OF_FILE} or L{NEED_DATA}.
        @raise RemoteProtocolError: the input broke RFC 5531 or a limit.
        @raise BaseException: whatever C{decide} raised.
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
                    try:
                        rule = decide(stop - start)
                    except Exception as e:
                        raise self._fail(e)
                    if rule is ACCEPT:
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
                    # Another rule: the general path takes it from here,
                    # without asking again.
                    decide = lambda size: rule  # noqa: E731
        elif self._state is _State.FAILED:
            assert self._error is not None
            raise self._error
        event = self._run(decide)
        if event is NEED_DATA and self._eof:
            return self._end_of_input()
        return event

    def _end_of_input(self) -> EndOfFile:
        if self.at_record_boundary:
            return END_OF_FILE
        if self._state is _State.PAYLOAD:
            where = f"inside fragment {self._fragments}"
            expected = self._wire_bytes + self._remaining
        elif self._rule is None:
            where = "inside the first record mark"
            expected = 4
        else:
            where = f"inside the record mark after fragment {self._fragments}"
            expected = self._wire_bytes + 4
        received = self._wire_bytes + self._buffered
        raise self._fail(IncompleteRecord(received, expected, where))

    def _fail(self, error: BaseException) -> BaseException:
        self.close(error)
        return error

    def _gather(self, n: int) -> bytes:
        """
        The next C{n} bytes of input, not consumed; fewer if fewer are there.
        """
        out = bytearray()
        start = self._offset
        for chunk in self._chunks:
            out += chunk[start : start + n - len(out)]
            if len(out) >= n:
                break
            start = 0
        return bytes(out)

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

    def _header(self, decide: Decide | None) -> InRecord | NeedData | None:
        """
        Read one record mark, if it is there. Returns L{NEED_DATA} when it
        cannot, L{Denied} when the mark denies the record, L{None} when the
        payload follows.
        """
        chunk = self._chunks[0]
        off = self._offset
        if len(chunk) - off >= 4:
            mark = _MARK.unpack_from(chunk, off)[0]
        else:
            mark = _MARK.unpack(self._gather(4))[0]
        length = mark & MAX_FRAGMENT_LENGTH
        last = mark >= _LAST_FRAGMENT

        fragments = self._fragments + 1
        if fragments > self.max_fragments:
            raise self._fail(
                MalformedRecord(
                    f"record has more than {self.max_fragments} fragments "
                    f"(max_fragments) after {self._size} bytes"
                )
            )
        if length or last:
            empty_run = 0
        else:
            empty_run = self._empty_run + 1
            if empty_run > self.max_empty_fragments:
                raise self._fail(
                    MalformedRecord(
                        f"record has more than {self.max_empty_fragments} "
                        f"consecutive empty fragments (max_empty_fragments)"
                    )
                )
        size = self._size + length

        rule = self._rule
        if rule is None or rule is ACCEPT:
            if decide is None:
                return NEED_DATA
            if rule is None and size > self.max_record_size and self.refuse_non_rpc:
                # A first mark announcing more than we would ever buffer: if
                # the bytes are another protocol's (a browser, a TLS client),
                # no rule can make sense of what follows.
                looks_like = describe_non_rpc(self._gather(_SNIFF_BYTES))
                if looks_like is not None:
                    raise self._fail(RecordTooLarge(size, self.max_record_size, looks_like))
            try:
                rule = decide(size)
            except Exception as e:
                raise self._fail(e)
            # A type test, not a set lookup: an unhashable answer (a list)
            # must fail the reader with this TypeError too.
            if type(rule) is not Rule and type(rule) is not RejectWith:
                raise self._fail(
                    TypeError(f"before_record must return a rule, not {rule!r}")
                )
            if rule is ACCEPT and size > self.max_record_size:
                looks_like = None
                if self._rule is None:
                    looks_like = describe_non_rpc(self._gather(_SNIFF_BYTES))
                raise self._fail(RecordTooLarge(size, self.max_record_size, looks_like))
            if rule is not ACCEPT:
                if rule is not DENY and rule is not DROP:
                    # REJECT or RejectWith: keep the xid of what was buffered.
                    self._head = b"".join(self._parts)[:4] if self._parts else b""
                self._parts = []

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

    def _reset(self) -> None:
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

    def _run(self, decide: Decide | None) -> InRecord | NeedData:
        """
        Consume input until a record can be handed out or more input is
        needed. With C{decide} of L{None} (from L{feed}), stop where a rule
        would have to be asked for or accepted payload would be taken.
        """
        chunks = self._chunks
        while True:
            if self._state is _State.HEADER:
                if self._buffered < 4:
                    return self._early() if self._rule is not None else NEED_DATA
                denied = self._header(decide)
                if denied is not None:
                    return denied
            # PAYLOAD
            rule = self._rule
            remaining = self._remaining
            if rule is ACCEPT and remaining:
                if decide is None:
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
        denied record, already reported) and get ready for the next one.
        """
        rule = self._rule
        record: InRecord | None
        if rule is ACCEPT:
            parts = self._parts
            record = Accepted(b"".join(parts) if parts else b"")
        elif rule is DROP:
            record = Dropped()
        elif rule is REJECT:
            record = Rejected(self._head)
        elif type(rule) is RejectWith and not self._reported:
            record = RejectedWith(self._head, rule.error)
        else:
            record = None
        self._reset()
        return record


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
        # The common cases first: one fragment of bytes, or of bytes pieces.
        if type(message) is bytes:
            if len(message) <= MAX_FRAGMENT_LENGTH:
                return [_pack_mark(_LAST_FRAGMENT | len(message)), message] if message else [
                    _pack_mark(_LAST_FRAGMENT)
                ]
        elif type(message) is list:
            total = 0
            for p in message:
                if type(p) is not bytes:
                    break
                total += len(p)
            else:
                if total <= MAX_FRAGMENT_LENGTH:
                    out = [_pack_mark(_LAST_FRAGMENT | total)]
                    out.extend(p for p in message if p)
                    return out
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
