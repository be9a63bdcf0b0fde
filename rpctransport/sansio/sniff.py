# -*- test-case-name: rpctransport.test.test_sniff -*-
"""
Tell what bytes that are not ONC RPC look like.

A record mark whose length is absurd is often not a record mark at all: a
browser, a TLS client or an SSH client has connected to the RPC port. Saying
so in the error saves the operator a packet capture.
"""

from __future__ import annotations

__all__ = ["describe_non_rpc"]

# Request lines of HTTP/1.x methods and the HTTP/2 preface: each is read as a
# record mark with a length of about a gigabyte.
_HTTP_STARTS = (
    b"GET ",
    b"POST",
    b"PUT ",
    b"HEAD",
    b"DELE",
    b"OPTI",
    b"PATC",
    b"CONN",
    b"TRAC",
    b"PRI ",
)

# TLS record types a client or server opens with (RFC 8446 section 5.1).
_TLS_HANDSHAKE = 0x16
_TLS_ALERT = 0x15


def describe_non_rpc(data: bytes) -> str | None:
    """
    Say what C{data}, the first bytes of a record, look like when they are not
    ONC RPC.

    @param data: at least the 4 bytes of a record mark; more helps.
    @return: a phrase such as C{"an HTTP request ('GET /index.html')"} to put
        in an error message, or L{None} when nothing is recognised.
    """
    head = bytes(data[:4])
    if head in _HTTP_STARTS:
        line = bytes(data[:40]).split(b"\r\n", 1)[0].split(b"\n", 1)[0]
        return f"an HTTP request ({line.decode('ascii', 'replace')!r})"
    if len(head) >= 3 and head[0] in (_TLS_HANDSHAKE, _TLS_ALERT) and head[1] == 3:
        what = "handshake" if head[0] == _TLS_HANDSHAKE else "alert"
        return f"a TLS {what} (TLS record type {head[0]}, version 3.{head[2]})"
    if head.startswith(b"SSH-"):
        return "an SSH banner"
    if len(head) == 4 and all(32 <= b < 127 for b in head):
        return f"text ({head.decode('ascii')!r})"
    return None
