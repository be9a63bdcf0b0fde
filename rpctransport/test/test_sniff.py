# -*- test-case-name: rpctransport.test.test_sniff -*-
"""
Tests for L{rpctransport.sansio.sniff}: telling what bytes that are not ONC
RPC look like.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from rpctransport.sansio.sniff import describe_non_rpc


class DescribeNonRpcTests(SynchronousTestCase):
    """
    Tests for L{describe_non_rpc}.
    """

    def test_httpRequestLine(self) -> None:
        """
        An HTTP/1.x request is described as an HTTP request, quoting its
        request line without the line end.
        """
        self.assertEqual(
            describe_non_rpc(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
            "an HTTP request ('GET /index.html HTTP/1.1')",
        )

    def test_httpBareLineFeed(self) -> None:
        """
        A request line ended by a bare line feed is cut there too.
        """
        self.assertEqual(
            describe_non_rpc(b"GET / HTTP/1.0\nHost: x\n\n"),
            "an HTTP request ('GET / HTTP/1.0')",
        )

    def test_httpMethods(self) -> None:
        """
        Every common HTTP method, and the HTTP/2 connection preface, is
        recognised from its first 4 bytes.
        """
        for line in [
            b"GET / HTTP/1.1",
            b"POST /form HTTP/1.1",
            b"PUT /x HTTP/1.1",
            b"HEAD / HTTP/1.1",
            b"DELETE /x HTTP/1.1",
            b"OPTIONS * HTTP/1.1",
            b"PATCH /x HTTP/1.1",
            b"CONNECT host:443 HTTP/1.1",
            b"TRACE / HTTP/1.1",
            b"PRI * HTTP/2.0",
        ]:
            description = describe_non_rpc(line + b"\r\n\r\n")
            self.assertEqual(
                description, f"an HTTP request ({line.decode('ascii')!r})", line
            )

    def test_httpLongLine(self) -> None:
        """
        At most 40 bytes of the request line are quoted.
        """
        data = b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n"
        self.assertEqual(
            describe_non_rpc(data), f"an HTTP request ({data[:40].decode('ascii')!r})"
        )

    def test_httpNotAscii(self) -> None:
        """
        Bytes of the request line that are not ASCII are replaced, not an
        error.
        """
        description = describe_non_rpc(b"GET /\xff\xfe HTTP/1.1\r\n")
        self.assertIsNotNone(description)
        assert description is not None
        self.assertTrue(description.startswith("an HTTP request ('GET /"))
        self.assertIn("\ufffd", description)

    def test_tlsHandshake(self) -> None:
        """
        A TLS handshake record (a ClientHello) is described with its record
        type and version.
        """
        hello = bytes.fromhex("16030100f4010000f00303") + bytes(32)
        self.assertEqual(
            describe_non_rpc(hello), "a TLS handshake (TLS record type 22, version 3.1)"
        )
        self.assertEqual(
            describe_non_rpc(bytes.fromhex("1603030200")),
            "a TLS handshake (TLS record type 22, version 3.3)",
        )

    def test_tlsAlert(self) -> None:
        """
        A TLS alert record is described as such.
        """
        self.assertEqual(
            describe_non_rpc(bytes.fromhex("150303000202")),
            "a TLS alert (TLS record type 21, version 3.3)",
        )

    def test_tlsThreeBytes(self) -> None:
        """
        Three bytes are enough to recognise TLS.
        """
        self.assertEqual(
            describe_non_rpc(b"\x16\x03\x01"),
            "a TLS handshake (TLS record type 22, version 3.1)",
        )

    def test_notTls(self) -> None:
        """
        A handshake or alert type byte not followed by major version 3 is not
        TLS; other record types are not described as TLS.
        """
        self.assertIsNone(describe_non_rpc(b"\x16\x02\x01\x00"))
        self.assertIsNone(describe_non_rpc(b"\x15\x00\x00\x00"))
        self.assertIsNone(describe_non_rpc(b"\x17\x03\x03\x00"))

    def test_ssh(self) -> None:
        """
        An SSH banner is described as one.
        """
        self.assertEqual(describe_non_rpc(b"SSH-2.0-OpenSSH_9.6\r\n"), "an SSH banner")

    def test_text(self) -> None:
        """
        Four printable ASCII bytes not otherwise recognised are described as
        text, quoting them.
        """
        self.assertEqual(describe_non_rpc(b"helo there"), "text ('helo')")
        self.assertEqual(describe_non_rpc(b"    "), "text ('    ')")
        self.assertEqual(describe_non_rpc(b"~~~~"), "text ('~~~~')")

    def test_notText(self) -> None:
        """
        Bytes outside printable ASCII are not text.
        """
        for head in [b"abc\x7f", b"abc\x1f", b"\x80abc", b"ab\r\n"]:
            self.assertIsNone(describe_non_rpc(head), head)

    def test_rpcRecordMarks(self) -> None:
        """
        Ordinary record marks are not described.
        """
        for head in [
            b"\x80\x00\x00\x28\x12\x34\x56\x78",
            b"\x00\x00\x00\x00",
            b"\xff\xff\xff\xff",
            b"\x7f\xff\xff\xff",
        ]:
            self.assertIsNone(describe_non_rpc(head), head)

    def test_short(self) -> None:
        """
        Fewer than 4 bytes are described only when they are TLS.
        """
        for data in [b"", b"G", b"GE", b"GET", b"SSH", b"ab"]:
            self.assertIsNone(describe_non_rpc(data), data)

    def test_bufferTypes(self) -> None:
        """
        A C{bytearray} or C{memoryview} is described like C{bytes}.
        """
        data = b"GET / HTTP/1.1\r\n"
        expected = "an HTTP request ('GET / HTTP/1.1')"
        # The parameter is annotated bytes; Any lets the buffers through.
        buffers: list[Any] = [bytearray(data), memoryview(data)]
        for buffer in buffers:
            self.assertEqual(describe_non_rpc(buffer), expected)
        tls: Any = memoryview(b"\x16\x03\x01\x00")
        self.assertEqual(
            describe_non_rpc(tls),
            "a TLS handshake (TLS record type 22, version 3.1)",
        )
