# -*- test-case-name: rpctransport.test.test_connection -*-
"""
One record-marked stream connection, sans I/O: its state, in the manner of
h11's C{Connection}.

L{StreamConnection} owns what a stream connection I{is}: its life cycle,
its reader and writer sides, the flow of bytes in and out, the shutdown,
and where it is with TLS, each an enum whose moves are listed once, in
L{TRANSITIONS}; and the L{RecordReader}, the deadlines and the counters. It
takes bytes and local calls and returns events, bytes to send, and the next
time something may expire. It never calls user code and never touches a
transport or a clock: the stream controller
(L{rpctransport.adapters.stream}) runs the application's C{before_record}
when L{StreamConnection.next_event} returns a L{FragmentHeader}, and turns
what comes back into Deferreds, timers and transport calls.

Which Deferred is pending is the controller's business: the connection
knows the states that outlive one record.
"""

from __future__ import annotations

import enum
from typing import Final, Union

from .counters import (
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
from .deadlines import ConnectionDeadlines, Deadlines, Expiry
from .errors import (
    ControllerBusy,
    ControllerInactive,
    DeadlineExceeded,
    Evicted,
    HandshakeTimeout,
    IdleTimeout,
    LocalProtocolError,
    MalformedRecord,
    PlaintextInjection,
    RecordDeadlineExceeded,
    RecordTooLarge,
    WriteDeadlineExceeded,
)
from .record import NEED_DATA, FragmentHeader, NeedData, RecordReader
from .rpcmsg import TLSProbeAnswer, answer_tls_probe, looks_like_auth_tls
from .types import Accepted, EndOfFile, InRecord, InRule

__all__ = [
    "Input",
    "Life",
    "Move",
    "Output",
    "Reading",
    "Shutdown",
    "Side",
    "StreamConnection",
    "TLSState",
    "TRANSITIONS",
    "close_key",
]


class Life(enum.Enum):
    """
    A controller's life cycle (streams and datagrams alike).

    C{STARTING} -> C{OPEN} -> C{LOST} (the connection or socket is gone);
    any state -> C{INACTIVE} (C{inactivate()}, for good).
    """

    STARTING = "starting"
    OPEN = "open"
    LOST = "lost"
    INACTIVE = "inactive"


class Side(enum.Enum):
    """
    The state of one direction (reader or writer) as the application uses
    it. C{BUSY} is a write that waits for the transport; the writer goes to
    C{SHUT} on shutdown; either goes to C{ABORTED} on C{abort_rw()}.
    """

    IDLE = "idle"
    BUSY = "busy"
    SHUT = "shut"
    ABORTED = "aborted"


class Input(enum.Enum):
    """
    The bytes from the peer: flowing, paused (records pile up unread), or
    ended (the peer's EOF, or a shutdown's end).
    """

    FLOWING = "flowing"
    PAUSED = "paused"
    ENDED = "ended"


class Output(enum.Enum):
    """
    The bytes to the peer: flowing, pushed back by the transport, released
    (we stopped being the transport's producer, to close), closed (our
    half-close or TLS close went out).
    """

    FLOWING = "flowing"
    PUSHED_BACK = "pushed back"
    RELEASED = "released"
    CLOSED = "closed"


class Reading(enum.Enum):
    """
    How the application takes records: one-shot reads (C{start_reading},
    one Deferred each), or a stream to one receiver (C{receive_records}),
    delivering or paused. A stream stopped, or ended, goes back to one-shot
    reads.
    """

    ONE_SHOT = "one-shot reads"
    STREAMING = "streaming"
    PAUSED = "streaming, paused"


class Shutdown(enum.Enum):
    """
    A shutdown (C{start_shutting_down}): none, waiting for our side to close
    and the peer's EOF, or done (both came, or the linger time ran out:
    C{read_eof} is then true, while the input's flow control goes on).
    """

    NONE = "none"
    WAITING = "waiting"
    DONE = "done"


class TLSState(enum.Enum):
    """
    Where the connection is with TLS.

    C{PLAIN} -> C{PROBING} (our RFC 9289 probe is out) -> C{PLAIN} (refused
    or answered); C{PLAIN} -> C{HANDSHAKING} (implicit TLS, or STARTTLS) ->
    C{ESTABLISHED}.
    """

    PLAIN = "plain"
    PROBING = "probing"
    HANDSHAKING = "handshaking"
    ESTABLISHED = "established"


class Move(enum.Enum):
    """
    What moves a state: the inputs of L{TRANSITIONS}.
    """

    MADE = "connection made"
    LOST = "connection lost"
    INACTIVATE = "inactivate"
    ABORT = "abort_rw"
    WRITE_WAITS = "a write waits"
    WRITE_DONE = "a write is done"
    SHUT = "shut the writer"
    PAUSE = "pause input"
    RESUME = "resume input"
    EOF = "end of input"
    PUSH_BACK = "transport pushes back"
    DRAIN = "transport drained"
    RELEASE = "stop producing"
    CLOSED = "our side closed"
    START_SHUTDOWN = "start_shutting_down"
    END_SHUTDOWN = "shutdown cancelled or cut short"
    SHUTDOWN_DONE = "shutdown done"
    PROBE = "probe sent"
    PROBE_ANSWERED = "probe answered"
    HANDSHAKE = "handshake begins"
    HANDSHAKE_DONE = "handshake completed"
    STREAM = "receive_records"
    PAUSE_STREAM = "pause the stream"
    RESUME_STREAM = "resume the stream"
    STOP_STREAM = "stop or end the stream"


State = Union[Life, Side, Input, Output, Reading, Shutdown, TLSState]


def _all(states: type[enum.Enum], move: Move, to: enum.Enum) -> dict[tuple[object, Move], object]:
    return {(state, move): to for state in states}


TRANSITIONS: Final[dict[tuple[object, Move], object]] = {
    # Life.
    (Life.STARTING, Move.MADE): Life.OPEN,
    (Life.INACTIVE, Move.MADE): Life.INACTIVE,
    (Life.STARTING, Move.LOST): Life.LOST,
    (Life.OPEN, Move.LOST): Life.LOST,
    (Life.LOST, Move.LOST): Life.LOST,
    **_all(Life, Move.INACTIVATE, Life.INACTIVE),
    # The sides (reader and writer).
    (Side.IDLE, Move.WRITE_WAITS): Side.BUSY,
    (Side.BUSY, Move.WRITE_DONE): Side.IDLE,
    (Side.SHUT, Move.WRITE_DONE): Side.SHUT,
    (Side.IDLE, Move.SHUT): Side.SHUT,
    (Side.BUSY, Move.SHUT): Side.SHUT,
    (Side.SHUT, Move.SHUT): Side.SHUT,
    **_all(Side, Move.ABORT, Side.ABORTED),
    # Input.
    (Input.FLOWING, Move.PAUSE): Input.PAUSED,
    (Input.PAUSED, Move.RESUME): Input.FLOWING,
    (Input.FLOWING, Move.EOF): Input.ENDED,
    (Input.PAUSED, Move.EOF): Input.ENDED,
    (Input.ENDED, Move.EOF): Input.ENDED,
    # Reading.
    (Reading.ONE_SHOT, Move.STREAM): Reading.STREAMING,
    (Reading.STREAMING, Move.PAUSE_STREAM): Reading.PAUSED,
    (Reading.PAUSED, Move.PAUSE_STREAM): Reading.PAUSED,
    (Reading.PAUSED, Move.RESUME_STREAM): Reading.STREAMING,
    (Reading.STREAMING, Move.RESUME_STREAM): Reading.STREAMING,
    **_all(Reading, Move.STOP_STREAM, Reading.ONE_SHOT),
    # Output.
    (Output.FLOWING, Move.PUSH_BACK): Output.PUSHED_BACK,
    (Output.PUSHED_BACK, Move.PUSH_BACK): Output.PUSHED_BACK,
    (Output.PUSHED_BACK, Move.DRAIN): Output.FLOWING,
    (Output.FLOWING, Move.DRAIN): Output.FLOWING,
    (Output.RELEASED, Move.PUSH_BACK): Output.RELEASED,
    (Output.RELEASED, Move.DRAIN): Output.RELEASED,
    (Output.CLOSED, Move.PUSH_BACK): Output.CLOSED,
    (Output.CLOSED, Move.DRAIN): Output.CLOSED,
    (Output.FLOWING, Move.RELEASE): Output.RELEASED,
    (Output.PUSHED_BACK, Move.RELEASE): Output.RELEASED,
    (Output.RELEASED, Move.RELEASE): Output.RELEASED,
    (Output.CLOSED, Move.RELEASE): Output.CLOSED,
    **_all(Output, Move.CLOSED, Output.CLOSED),
    # Shutdown.
    (Shutdown.NONE, Move.START_SHUTDOWN): Shutdown.WAITING,
    (Shutdown.DONE, Move.START_SHUTDOWN): Shutdown.WAITING,
    (Shutdown.WAITING, Move.END_SHUTDOWN): Shutdown.NONE,
    (Shutdown.NONE, Move.END_SHUTDOWN): Shutdown.NONE,
    (Shutdown.DONE, Move.END_SHUTDOWN): Shutdown.DONE,
    (Shutdown.WAITING, Move.SHUTDOWN_DONE): Shutdown.DONE,
    (Shutdown.DONE, Move.SHUTDOWN_DONE): Shutdown.DONE,
    # TLS.
    (TLSState.PLAIN, Move.PROBE): TLSState.PROBING,
    (TLSState.PROBING, Move.PROBE_ANSWERED): TLSState.PLAIN,
    (TLSState.PLAIN, Move.HANDSHAKE): TLSState.HANDSHAKING,
    (TLSState.HANDSHAKING, Move.HANDSHAKE_DONE): TLSState.ESTABLISHED,
}
"""
Every legal move of every state of a L{StreamConnection}, as C{(state,
move): new state}. The states' types tell the machines apart; a move that is
not listed for the current state is a bug (L{LocalProtocolError}).
"""


def close_key(error: BaseException) -> str | None:
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


Event = Union[InRecord, EndOfFile, NeedData, FragmentHeader, TLSProbeAnswer]


class StreamConnection:
    """
    The state of one stream connection (see the module docstring).

    @ivar reader: the record reader the received bytes go to.
    @ivar track: the deadlines' bookkeeping.
    @ivar counters: what this connection refused or was closed for.
    @ivar life: see L{Life}.
    @ivar reader_side: the reader, see L{Side}.
    @ivar writer_side: the writer, see L{Side}.
    @ivar reading: see L{Reading}.
    @ivar input: see L{Input}.
    @ivar output: see L{Output}.
    @ivar shutdown: see L{Shutdown}.
    @ivar tls: see L{TLSState}.
    @ivar answers_probes: whether RFC 9289 probes are answered here (the
        server side) rather than delivered.
    @ivar offers_tls: whether a probe may be answered with C{STARTTLS}.
    """

    def __init__(
        self,
        reader: RecordReader,
        deadlines: Deadlines,
        counters: Counters,
        *,
        answers_probes: bool = False,
        offers_tls: bool = False,
    ) -> None:
        self.reader = reader
        self.deadlines = deadlines
        self.track = ConnectionDeadlines(deadlines, 0.0)
        self.counters = counters
        self.answers_probes = answers_probes or offers_tls
        self.offers_tls = offers_tls
        self.life = Life.STARTING
        self.reader_side = Side.IDLE
        self.writer_side = Side.IDLE
        self.reading = Reading.ONE_SHOT
        self.input = Input.FLOWING
        self.output = Output.FLOWING
        self.shutdown = Shutdown.NONE
        self.tls = TLSState.PLAIN

    def _move(self, name: str, move: Move) -> None:
        """
        Move the state called C{name} as L{TRANSITIONS} says.
        """
        state = getattr(self, name)
        new = TRANSITIONS.get((state, move))
        if new is None:
            raise LocalProtocolError(f"{move.value} is not possible while {name} is {state.value}")
        setattr(self, name, new)

    # -- Life ------------------------------------------------------------------

    def made(self, now: float) -> float | None:
        """
        The connection is made at C{now}; returns when to look at the
        deadlines first.
        """
        self._move("life", Move.MADE)
        self.track.connected_at = self.track.last_activity = now
        return self.track.next_check(now, False)

    def lost(self) -> None:
        """
        The connection is gone.
        """
        if self.life is not Life.INACTIVE:
            self._move("life", Move.LOST)

    def inactivate(self) -> None:
        """
        Everything ends now, for good.
        """
        self._move("life", Move.INACTIVATE)
        self.abort_rw()
        self.shutdown = Shutdown.NONE
        self.reader.close(ControllerInactive("the controller was inactivated"))

    def abort_rw(self) -> None:
        """
        End reader and writer for good.
        """
        self._move("reader_side", Move.ABORT)
        self._move("writer_side", Move.ABORT)

    @property
    def open(self) -> bool:
        """
        Whether the connection is open (made, not lost, not inactive).
        """
        return self.life is Life.OPEN

    # -- Reading ---------------------------------------------------------------

    def check_read(self, what: str = "start_reading") -> None:
        """
        Raise why a read may not start now (the controller has seen one is
        already pending, or this side is not usable).
        """
        if self.life is Life.INACTIVE:
            raise ControllerInactive(f"{what}: the controller is inactive")
        if self.reader_side is Side.ABORTED:
            raise ControllerInactive(f"{what}: the reader was aborted with abort_rw()")
        if self.reader_side is Side.SHUT:
            raise ControllerInactive(f"{what}: the controller was shut down")
        if self.reading is not Reading.ONE_SHOT and what != "receive_records":
            raise ControllerBusy(f"{what}: records are {self.reading.value} (receive_records)")

    def check_stream(self) -> None:
        """
        Raise why a stream of records may not start now (the controller
        checks that no one-shot read is pending).
        """
        self.check_read("receive_records")
        if self.reading is not Reading.ONE_SHOT:
            raise ControllerBusy(f"receive_records: records are already {self.reading.value}")

    def stream_moves(self, move: Move) -> None:
        """
        The stream of records starts, pauses, resumes, or stops or ends
        (C{move} is one of L{Move.STREAM}, L{Move.PAUSE_STREAM},
        L{Move.RESUME_STREAM}, L{Move.STOP_STREAM}).
        """
        self._move("reading", move)

    def take_records(self) -> list[bytes]:
        """
        The whole single-fragment records at the head of the input, taken at
        once and undecided (L{RecordReader.take_whole}); an RFC 9289 probe,
        on a side that answers them, and what follows it are left to
        L{next_event}. Nothing is taken at once while our own probe waits
        for its answer: whatever follows the answer must still be seen
        buffered (L{PlaintextInjection}) when it is handed out.
        """
        if self.tls is TLSState.PROBING:
            return []
        records = self.reader.take_whole()
        if self.answers_probes and records:
            n = 0
            for message in records:
                if looks_like_auth_tls(message):
                    self.reader.put_back(records[n:])
                    return records[:n]
                n += 1
        return records

    def refused(self) -> None:
        """
        A record the application's rule did not accept was handed out
        (taken by L{take_records}; L{next_event} counts its own).
        """
        self.counters.add(REFUSED_RULE)

    def receive(self, data: bytes, now: float) -> None:
        """
        Bytes arrived at C{now}.

        @raise RemoteProtocolError: they break a limit while being
            discarded.
        """
        self.track.last_activity = now
        self.reader.feed(data)

    def next_event(self) -> Event:
        """
        The next thing a pending read gets: a record,
        L{END_OF_FILE <rpctransport.sansio.types.END_OF_FILE>},
        L{NEED_DATA <rpctransport.sansio.record.NEED_DATA>}, a
        L{FragmentHeader} (answer it with
        C{reader.decide}), or a L{TLSProbeAnswer} to send (an RFC 9289 probe
        this side answers itself).

        @raise RemoteProtocolError: the input broke RFC 5531 or a limit, or
            a probe came with plaintext behind it.
        """
        event = self.reader.next_event()
        if type(event) is Accepted:
            if self.answers_probes and looks_like_auth_tls(event.message):
                return self._probe(event)
            return event
        if type(event) is FragmentHeader or event is NEED_DATA or type(event) is EndOfFile:
            return event
        self.counters.add(REFUSED_RULE)
        return event

    def decide(self, rule: InRule) -> Event:
        """
        Answer the L{FragmentHeader} L{next_event} returned with the rule
        the application gave; returns the next event (as L{next_event}
        would).
        """
        record = self.reader.decide(rule)
        if record is None:
            return self.next_event()
        if self.answers_probes and looks_like_auth_tls(record.message):
            return self._probe(record)
        return record

    def _probe(self, record: Accepted) -> Accepted | TLSProbeAnswer:
        """
        A call with an C{AUTH_TLS} credential on a side that answers probes:
        the answer to send, or the record when it is not a probe after all.
        """
        answer = answer_tls_probe(record.message, self.offers_tls, self.tls is not TLSState.PLAIN)
        if answer is None:
            return record
        if answer.upgrade and self.reader.buffered:
            raise PlaintextInjection(self.reader.buffered, "client's AUTH_TLS probe")
        return answer

    def after_delivery(self, delivered: bool, reading: bool) -> bool:
        """
        Records were handed out (C{delivered}), or not; C{reading}: a read
        is still pending. Returns whether a record is now half received
        while the application waits for it: its record deadline starts (the
        controller calls L{record_begun} with the time).
        """
        track = self.track
        if delivered:
            track.proven = True
        if reading and not self.reader.at_record_boundary:
            return delivered or track.record_since is None
        track.record_since = None
        return False

    def record_begun(self, now: float) -> float | None:
        """
        A record began at C{now}; returns when its deadline passes, if one
        is set.
        """
        self.track.record_since = now
        limit = self.deadlines.record_deadline
        return None if limit is None else now + limit

    def input_ended(self) -> None:
        """
        The peer's EOF (or the connection's end): no more bytes.
        """
        self._move("input", Move.EOF)
        self.reader.feed_eof()

    @property
    def eof_seen(self) -> bool:
        """
        Whether the input has ended, or a shutdown is done.
        """
        return self.input is Input.ENDED or self.shutdown is Shutdown.DONE

    def input_flow(self, reading: bool, limit: int) -> Move | None:
        """
        Whether to pause (L{Move.PAUSE}) or resume (L{Move.RESUME}) the
        transport, now that C{reading} says whether a read is pending: pause
        while none is and C{limit} bytes or more wait; the move is made.
        """
        if self.life is not Life.OPEN:
            return None
        full = not reading and self.reader.buffered >= limit
        if full and self.input is Input.FLOWING:
            self._move("input", Move.PAUSE)
            return Move.PAUSE
        if not full and self.input is Input.PAUSED:
            self._move("input", Move.RESUME)
            return Move.RESUME
        return None

    def resume_for_abort(self) -> bool:
        """
        The reader was aborted: keep reading (and discarding) so that a
        shutdown sees the EOF. Returns whether the transport must resume.
        """
        if self.input is Input.PAUSED and self.life is Life.OPEN:
            self._move("input", Move.RESUME)
            return True
        return False

    # -- Writing ---------------------------------------------------------------

    def check_write(self, what: str = "start_writing") -> None:
        """
        Raise why a write may not start now, for the writer's side (C{what}
        names the operation; only C{start_writing} waits on a write
        pending).
        """
        if self.life is Life.INACTIVE:
            raise ControllerInactive(f"{what}: the controller is inactive")
        if self.writer_side is Side.ABORTED:
            raise ControllerInactive(f"{what}: the writer was aborted with abort_rw()")
        if self.writer_side is Side.SHUT:
            raise ControllerInactive(f"{what}: the writing side was shut down")
        if self.writer_side is Side.BUSY and what == "start_writing":
            raise ControllerBusy("start_writing: a write is already pending")

    def write_waiting(self, size: int, now: float) -> float | None:
        """
        A write of C{size} bytes waits from C{now}; returns when its write
        deadline passes, if one is set.
        """
        self._move("writer_side", Move.WRITE_WAITS)
        limit = self.deadlines.write_deadline
        if limit is None:
            return None
        self.track.write_since = now
        self.track.write_bytes = size
        return now + limit

    def sends_waiting(self, size: int | None, now: float) -> float | None:
        """
        What was sent waits in the transport, which pushes back, from
        C{now} (C{size} bytes of it, when known); returns when the write
        deadline passes, if one is set and was not already running. A
        one-shot write that waits sets its own (L{write_waiting}).
        """
        limit = self.deadlines.write_deadline
        if limit is None or self.track.write_since is not None:
            return None
        self.track.write_since = now
        self.track.write_bytes = size
        return now + limit

    def write_done(self) -> None:
        """
        The waiting write completed, failed or was cancelled.
        """
        if self.writer_side is Side.BUSY or self.writer_side is Side.SHUT:
            self._move("writer_side", Move.WRITE_DONE)
        if self.output is not Output.PUSHED_BACK:
            # (Still pushed back, what else was sent still waits: a
            # cancelled write leaves the deadline running.)
            self.track.write_since = None

    def pushed_back(self) -> None:
        """
        The transport's buffer is full.
        """
        self._move("output", Move.PUSH_BACK)

    def drained(self) -> bool:
        """
        The transport drained; returns whether a waiting write may complete.
        """
        self._move("output", Move.DRAIN)
        if self.writer_side is not Side.BUSY:
            # Records sent without a Deferred no longer wait.
            self.track.write_since = None
        return self.tls is not TLSState.HANDSHAKING

    def release(self) -> bool:
        """
        Stop being the transport's producer (to close or half-close);
        returns whether we were one.
        """
        producing = self.output is Output.FLOWING or self.output is Output.PUSHED_BACK
        self._move("output", Move.RELEASE)
        # Closing: the transport is not asked to drain any more, and the
        # close has its own limit (the linger time), not the write deadline.
        self.track.write_since = None
        return producing

    # -- Shutting down -----------------------------------------------------------

    def start_shutdown(self) -> None:
        """
        A shutdown starts: the writer is shut.
        """
        self._move("shutdown", Move.START_SHUTDOWN)
        if self.writer_side is not Side.ABORTED:
            self._move("writer_side", Move.SHUT)

    def output_closed(self) -> None:
        """
        Our half-close (or TLS close) went out.
        """
        self._move("output", Move.CLOSED)

    @property
    def shutdown_complete(self) -> bool:
        """
        Whether a shutdown waits and both directions are closed.
        """
        return (
            self.shutdown is Shutdown.WAITING
            and self.output is Output.CLOSED
            and self.input is Input.ENDED
        )

    def end_shutdown(self, completed: bool) -> None:
        """
        The shutdown C{completed} (both sides closed, or the peer's EOF did
        not come within the linger time), or was cancelled or cut short by
        the connection's end.
        """
        self._move("shutdown", Move.SHUTDOWN_DONE if completed else Move.END_SHUTDOWN)

    # -- TLS ---------------------------------------------------------------------

    def check_start_tls(self) -> None:
        """
        Raise why C{start_tls} may not start now (a pending read or write is
        the controller's to check).
        """
        self.check_read("start_tls")
        if self.writer_side is Side.ABORTED:
            raise ControllerInactive("start_tls: the writer was aborted with abort_rw()")
        if self.tls is not TLSState.PLAIN:
            raise ControllerBusy(f"start_tls: TLS is already {self.tls.value}")

    def probe_sent(self) -> None:
        """
        Our RFC 9289 probe went out.
        """
        self._move("tls", Move.PROBE)

    def probe_answered(self) -> None:
        """
        The answer to our probe came (or the read failed).
        """
        if self.tls is TLSState.PROBING:
            self._move("tls", Move.PROBE_ANSWERED)

    def handshake_begins(self) -> None:
        """
        A TLS handshake begins.
        """
        self._move("tls", Move.HANDSHAKE)

    def handshake_done(self) -> None:
        """
        The TLS handshake completed.
        """
        self._move("tls", Move.HANDSHAKE_DONE)

    # -- Deadlines -----------------------------------------------------------------

    def waiting(self, reading: bool) -> bool:
        """
        Whether the application waits for the peer: a read is pending and no
        TLS handshake (which has its own timeout) is under way.
        """
        return reading and self.tls is not TLSState.HANDSHAKING

    def expired(self, now: float, reading: bool) -> DeadlineExceeded | float | None:
        """
        At C{now}: the deadline that passed, as the error to close with; or
        when to look again (L{None}: no deadline runs).
        """
        waiting = self.waiting(reading)
        track = self.track
        expiry = track.expired(now, waiting)
        if expiry is None:
            return track.next_check(now, waiting)
        d = self.deadlines
        if expiry is Expiry.RECORD:
            assert d.record_deadline is not None
            return RecordDeadlineExceeded(d.record_deadline, self.reader.record_progress)
        if expiry is Expiry.WRITE:
            assert d.write_deadline is not None
            return WriteDeadlineExceeded(d.write_deadline, track.write_bytes)
        limit = track.idle_limit()
        assert limit is not None
        first = not track.proven and d.first_record_timeout is not None
        return IdleTimeout(limit, track.proven, "first_record_timeout" if first else "idle_timeout")

    def closing_for(self, error: BaseException) -> None:
        """
        We close the connection because of C{error}: count it, and fail the
        reader with it.
        """
        key = close_key(error)
        if key is not None:
            self.counters.add(key)
        if self.reader.failed is None:
            self.reader.close(error)
