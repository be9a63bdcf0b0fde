# -*- test-case-name: rpctransport.test.test_stream_sockets -*-
"""
Sending a reply in the reactor turn that received its call.

Twisted's socket transports buffer what is written, ask the reactor to watch
the socket for writing, and send on a later turn. For a server answering one
call at a time that detour is a large part of the round trip
(C{docs/performance.rst} has the figures). So while a stream controller
handles received bytes, the L{SameTurnWrites} it holds sends:
  - the first record written, at once, when the transport holds nothing
    else, no more input is waiting, and the record is small
    (L{SEND_AT_ONCE_LIMIT});
  - everything else written meanwhile is held, then handed to the
    transport's buffer in one C{writeSequence} and flushed, every
    L{FLUSH_AFTER} seconds and before returning to the reactor, so that
    pipelined calls go out in one C{send} per chunk of input, or a few for a
    long chunk.

The socket work itself is L{DirectWrites <rpctransport.adapters._twisted.DirectWrites>},
which relies on Twisted's internals; transports it cannot drive (TLS, IOCP,
memory) get no L{SameTurnWrites} at all.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from typing import Any, Final

from ._twisted import DirectWrites, flush_tls

__all__ = ["FLUSH_AFTER", "SEND_AT_ONCE_LIMIT", "SameTurnWrites", "Turn"]

SEND_AT_ONCE_LIMIT: Final = 64 * 1024
"""
Records up to this size may be sent at once: they are joined into one
C{bytes} first, which is cheap for them; larger ones go through the
transport's buffer (Twisted joins them there anyway) and its flush.
"""

FLUSH_AFTER: Final = 0.0003
"""
Seconds of handling one chunk of input after which what the transport holds
is sent, before the chunk is done: no reply waits much longer for the ones
after it, and two pipelining peers overlap instead of working in lock step
(the benchmark's echo and pipelined-client cases chose the value).
"""


class Turn(enum.Enum):
    """
    Where the controller is with received bytes: outside
    L{dataReceived <twisted.internet.interfaces.IProtocol.dataReceived>},
    inside it, or inside it with records held to flush at its end (by us,
    or under TLS by Twisted's TLS layer, which gathers small writes).
    """

    OUTSIDE = "outside"
    RECEIVING = "receiving"
    HOLDING = "receiving, holding writes"
    HOLDING_TLS = "receiving, writes held by the TLS layer"


class SameTurnWrites:
    """
    Same-turn replies for one socket transport (see the module docstring).

    The controller that holds it says when it starts and ends handling
    received bytes (L{begin}, L{end}), and hands it every record written
    meanwhile (L{write}, while L{turn} is not C{OUTSIDE}).
    """

    def __init__(self, transport: object, direct: DirectWrites) -> None:
        self._transport: Any = transport
        self._direct = direct
        self.turn = Turn.OUTSIDE
        self._written = 0
        self._flushed_at = 0.0
        # Records written in this turn and not yet handed to the transport:
        # one writeSequence per flush, not one per record.
        self._held: list[bytes] = []

    @classmethod
    def for_transport(cls, transport: object) -> SameTurnWrites | None:
        """
        A L{SameTurnWrites} for C{transport}, or L{None} when it is not a
        socket transport whose writes can be driven.
        """
        direct = DirectWrites.for_transport(transport)
        return None if direct is None else cls(transport, direct)

    @classmethod
    def under_tls(cls, transport: object) -> SameTurnWrites | None:
        """
        A L{SameTurnWrites} for Twisted's TLS layer (C{TLSMemoryBIOProtocol})
        over a socket transport: records go through TLS as they are written,
        and the socket under it is flushed before the turn ends; L{None} when
        the transport under TLS cannot be driven.
        """
        direct = DirectWrites.for_transport(getattr(transport, "transport", None))
        return None if direct is None else cls(transport, direct)

    def begin(self) -> None:
        """
        Received bytes are about to be handled.
        """
        self.turn = Turn.RECEIVING
        self._flushed_at = time.monotonic()

    def end(self, may_flush: bool) -> None:
        """
        The received bytes are handled: hand what was held to the transport
        and flush it, if C{may_flush} (open, and plaintext or with TLS
        established).
        """
        turn = self.turn
        self.turn = Turn.OUTSIDE
        self._written = 0
        self.hand_over()
        if turn is Turn.HOLDING_TLS and may_flush:
            flush_tls(self._transport)
            self._direct.flush()
        elif turn is Turn.HOLDING and may_flush:
            self._direct.flush()

    def hand_over(self) -> None:
        """
        Hand what is held to the transport now, in order (before a write
        that must not overtake it: the answer to an RFC 9289 probe, which
        TLS follows).
        """
        if self._held:
            self._transport.writeSequence(self._held)
            self._held = []

    def write(self, transport: object, pieces: Sequence[bytes], plain: bool, more_input: bool) -> None:
        """
        Write one record while received bytes are being handled.

        @param plain: the connection is not TLS (TLS writes go through
            Twisted's TLS layer as they come; only the socket under it is
            flushed, at the end of the turn).
        @param more_input: more received bytes wait to be handled.
        """
        self._written += 1
        if not plain:
            transport.writeSequence(pieces)  # type: ignore[attr-defined]
            self.turn = Turn.HOLDING_TLS
            return
        if self._written == 1 and not more_input and self._direct.holds_nothing():
            size = 0
            for piece in pieces:
                size += len(piece)
            if size <= SEND_AT_ONCE_LIMIT:
                self._direct.send(b"".join(pieces))
                return
        self._held += pieces
        self.turn = Turn.HOLDING
        now = time.monotonic()
        if now - self._flushed_at >= FLUSH_AFTER:
            self._flushed_at = now
            self.turn = Turn.RECEIVING
            self._transport.writeSequence(self._held)
            self._held = []
            self._direct.flush()
