# -*- test-case-name: rpctransport.test.test_sniff -*-
"""
Tell what bytes that are not ONC RPC look like.

A record mark whose length is absurd is often not a record mark at all: a
browser, a TLS client or an SSH client has connected to the RPC port, or a
proxy sends its PROXY protocol header to a listener that does not expect
one. Saying so in the error saves the operator a packet capture.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PROXY_V1_PREFIX", "PROXY_V2_SIGNATURE", "describe_non_rpc", "proxy_header_version"]

PROXY_V1_PREFIX: Final = b"PROXY "
"""How a PROXY protocol v1 header begins (L{rpctransport.sansio.proxyheader})."""

PROXY_V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
"""
The 12 bytes a PROXY protocol v2 header begins with: read as a record mark,
a fragment of about 200 MB.
"""

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
    version = proxy_header_version(data)
    if version is not None:
        # A proxy (HAProxy's send-proxy) in front of a listener that was not
        # told to expect its header (listen_stream's proxy_protocol).
        if version == "v1":
            text = bytes(data[:64]).split(b"\r", 1)[0].decode("ascii", "replace")
            shown = f" ({text!r})"
        else:
            shown = ""
        return (
            f"a PROXY protocol {version} header{shown}, which this listener does not "
            "expect (proxy_protocol is off)"
        )
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


def proxy_header_version(data: bytes) -> str | None:
    """
    Whether C{data}, the first bytes of a connection, begin a PROXY
    protocol header, and of which version.

    @param data: the bytes received so far.
    @return: C{"v1"} or C{"v2"} when there are at least 4 bytes and each is
        where a header's would be; L{None} otherwise.
    """
    if len(data) < 4:
        return None
    if PROXY_V2_SIGNATURE.startswith(bytes(data[: len(PROXY_V2_SIGNATURE)])):
        return "v2"
    if PROXY_V1_PREFIX.startswith(bytes(data[: len(PROXY_V1_PREFIX)])):
        return "v1"
    return None
