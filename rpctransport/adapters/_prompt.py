# -*- test-case-name: rpctransport.test.test_stream_sockets -*-
"""
Sending a reply in the reactor turn that received its call.

Twisted's socket transports buffer what is written, ask the reactor to watch
the socket for writing (an C{epoll_ctl}), and send on a later turn, when the
reactor finds it writable (then another C{epoll_ctl} to stop watching). For
a server answering one call at a time, that detour is a large part of the
round trip: the benchmark's "tirpc client, 1 in flight" case measured about
8,400 calls/s through it and 10,500 to 11,700 with the reply sent at once,
where the libtirpc server made 12,400, on a 2-core machine.

So while a stream controller handles received bytes, L{PromptWrites} lets it
send:
  - the first record it writes, at once, when the transport holds nothing
    else, no more input is waiting, and the record is small
    (L{SEND_AT_ONCE_LIMIT}): with C{writeSomeData}, the call the transport
    itself makes, and what the socket did not take goes to the transport's
    buffer as usual;
  - everything else written meanwhile through the transport's buffer, which
    it flushes (C{doWrite}, L{IWriteDescriptor}'s method, the call the
    reactor would make) every L{FLUSH_AFTER} seconds and before returning to
    the reactor: pipelined calls go out in one C{send} per chunk of input,
    or a few for a long chunk, so that the peer starts on the first replies
    while the rest are being made.

This relies on attributes of Twisted's L{FileDescriptor} beyond its
interfaces: C{connected}, C{disconnecting}, C{_writeDisconnecting},
C{dataBuffer}, C{offset} and C{_tempDataLen}. A transport that lacks any of
them, or is not a L{FileDescriptor} (TLS, IOCP, memory transports), is left
to the reactor, as is a transport that is closing: its C{doWrite} would end
the connection through a return value only the reactor acts on. Any send
error is left to the reactor too, which meets it again on its own write.
"""

from __future__ import annotations

from typing import Any, Final

from twisted.internet.abstract import FileDescriptor

SEND_AT_ONCE_LIMIT: Final = 64 * 1024
"""
Records up to this size may be sent at once: they are joined into one
C{bytes} first, which is cheap for them; larger ones go through the
transport's buffer (Twisted joins them there anyway) and its flush.
"""

FLUSH_AFTER: Final = 0.0003
"""
Seconds of handling one chunk of input after which what the transport holds
is sent, before the chunk is done: no reply waits much longer than this for
the ones after it. Without it, two Python peers echoing 64 B records with
100 in flight work in lock step, each idle while the other handles the
whole window (70,000 records/s in the benchmark's echo case, on 2 cores);
with it, they overlap (140,000). 0.1 ms cost the libtirpc pipelined client
(never the bottleneck) a quarter of its calls/s, one C{send} per few
records; 0.3 ms cost nothing measurable; 1 ms no longer split the echo's
windows.
"""

_NEEDED: Final = (
    "connected",
    "disconnecting",
    "_writeDisconnecting",
    "dataBuffer",
    "offset",
    "_tempDataLen",
    "writeSomeData",
    "doWrite",
)


class PromptWrites:
    """
    Sends at once, or flushes, what one socket transport holds.
    """

    def __init__(self, transport: FileDescriptor) -> None:
        self._transport: Any = transport

    @classmethod
    def for_transport(cls, transport: object) -> PromptWrites | None:
        """
        A L{PromptWrites} for C{transport}, or L{None} when it is not a socket
        transport this can drive safely.
        """
        if not isinstance(transport, FileDescriptor):
            return None
        if not all(hasattr(transport, name) for name in _NEEDED):
            return None
        return cls(transport)

    def _open(self) -> bool:
        transport = self._transport
        return bool(
            transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnecting
        )

    def holds_nothing(self) -> bool:
        """
        Whether the transport is open and has nothing waiting to be sent, so
        that a record sent now keeps its place in the stream.
        """
        transport = self._transport
        return (
            not transport._tempDataLen
            and transport.offset == len(transport.dataBuffer)
            and self._open()
        )

    def send(self, data: bytes) -> None:
        """
        Send C{data} now, as far as the socket takes it; buffer the rest in
        the transport. Only when L{holds_nothing}.
        """
        transport = self._transport
        sent = transport.writeSomeData(data)
        if not isinstance(sent, int) or sent < 0:
            # The connection broke: the reactor finds out on its own write.
            transport.write(data)
        elif sent < len(data):
            transport.write(data[sent:])

    def flush(self) -> None:
        """
        Send what the transport holds now, as far as the socket takes it; the
        rest is left to the reactor, as is any error.
        """
        if self._open():
            self._transport.doWrite()
