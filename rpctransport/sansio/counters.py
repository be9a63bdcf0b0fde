# -*- test-case-name: rpctransport.test.test_counters -*-
"""
Counts per reason: what a controller or a listener refused, closed, evicted
or backed off from, as one read-only mapping.

A controller made by a listener counts into its own L{Counters} and into the
listener's (its I{parent}), so that a server's totals outlive the
connections that made them. Keys are short dotted strings (the constants
below); a key appears once its count is at least 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "ACCEPT_BACKOFF",
    "DEADLINE_FIRST_RECORD",
    "DEADLINE_HANDSHAKE",
    "DEADLINE_IDLE",
    "DEADLINE_PROXY_HEADER",
    "DEADLINE_RECORD",
    "DEADLINE_WRITE",
    "EVICTED_IDLE",
    "EVICTED_OLDEST",
    "EVICTED_UNPROVEN",
    "REFUSED_LIMIT",
    "REFUSED_MALFORMED",
    "REFUSED_PROXY_HEADER",
    "REFUSED_RULE",
    "REFUSED_SNIFF",
    "Counters",
    "udp_error_key",
]

REFUSED_RULE: Final = "refused.rule"
"""Records that C{before_record} rejected, denied or dropped."""
REFUSED_LIMIT: Final = "refused.limit"
"""
Records over C{max_record_size}: on a stream, L{RecordTooLarge} and the
connection closed; on UDP, the datagram dropped.
"""
REFUSED_SNIFF: Final = "refused.sniff"
"""Connections whose first bytes were not RPC (HTTP, TLS, text), closed."""
REFUSED_MALFORMED: Final = "refused.malformed"
"""Records that broke RFC 5531 or a fragment cap, connection closed."""
REFUSED_PROXY_HEADER: Final = "refused.proxy_header"
"""
Connections to a listener that expects a PROXY header that did not begin
with a valid one (or ended inside it), closed.
"""

DEADLINE_RECORD: Final = "deadline.record"
"""Connections closed because a record was not complete in time."""
DEADLINE_IDLE: Final = "deadline.idle"
"""Connections closed after their idle timeout."""
DEADLINE_FIRST_RECORD: Final = "deadline.first_record"
"""Connections closed idle before they ever sent a whole record."""
DEADLINE_WRITE: Final = "deadline.write"
"""Connections closed because the peer did not drain a reply in time."""
DEADLINE_HANDSHAKE: Final = "deadline.handshake"
"""Connections closed because their TLS handshake took too long."""
DEADLINE_PROXY_HEADER: Final = "deadline.proxy_header"
"""
Connections to a listener that expects a PROXY header closed because the
header was not whole within C{proxy_header_timeout}.
"""

EVICTED_UNPROVEN: Final = "evicted.unproven"
"""Connections evicted at C{max_connections} that never sent a whole record."""
EVICTED_IDLE: Final = "evicted.idle"
"""Connections evicted at C{max_connections} while idle."""
EVICTED_OLDEST: Final = "evicted.oldest"
"""Connections evicted at C{max_connections} for being the oldest."""

ACCEPT_BACKOFF: Final = "accept.backoff"
"""Times a listener stopped accepting for a while (C{EMFILE}, C{ENFILE})."""


def udp_error_key(kind: str) -> str:
    """
    The key counting one kind of per-destination UDP error: an error the
    socket reported about an earlier datagram. (Writes refused by C{sendto}
    count under C{udp.send.<ERRNO>}.)

    @param kind: the error's C{errno} name (C{"ECONNREFUSED"}), or another
        short word for it.
    @return: C{"udp.<kind>"}.
    """
    return f"udp.{kind}"


class Counters:
    """
    Counts per reason, with an optional parent that counts the same.

    @ivar view: the counts, as a read-only mapping that follows them.
    """

    __slots__ = ("_counts", "_parent", "view")

    def __init__(self, parent: Counters | None = None) -> None:
        """
        @param parent: also counts everything counted here (a listener's
            counters, for its connections).
        """
        self._counts: dict[str, int] = {}
        self._parent = parent
        self.view: Mapping[str, int] = MappingProxyType(self._counts)

    def add(self, reason: str, n: int = 1) -> None:
        """
        Count C{n} more for C{reason}, here and in the parent.
        """
        counts = self._counts
        counts[reason] = counts.get(reason, 0) + n
        if self._parent is not None:
            self._parent.add(reason, n)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in sorted(self._counts.items()))
        return f"<Counters {inner}>"
