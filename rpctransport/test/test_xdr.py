# -*- test-case-name: rpctransport.test.test_xdr -*-
"""
Tests for L{rpctransport.sansio.xdr}: the minimal XDR codec.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from rpctransport.sansio.errors import MalformedMessage
from rpctransport.sansio.xdr import (
    MAX_UINT,
    XdrReader,
    pack_bool,
    pack_opaque,
    pack_string,
    pack_uint,
)

_ITEMS = st.one_of(
    st.tuples(st.just("uint"), st.integers(0, MAX_UINT)),
    st.tuples(st.just("bool"), st.booleans()),
    st.tuples(st.just("opaque"), st.binary(max_size=40)),
    st.tuples(st.just("string"), st.text(max_size=20)),
)


def _pack(item: tuple[str, Any]) -> bytes:
    kind, value = item
    if kind == "uint":
        return pack_uint(value)
    if kind == "bool":
        return pack_bool(value)
    if kind == "opaque":
        return pack_opaque(value)
    return pack_string(value)


def _read(reader: XdrReader, kind: str) -> object:
    if kind == "uint":
        return reader.uint()
    if kind == "bool":
        return reader.boolean()
    if kind == "opaque":
        return reader.opaque(1000)
    return reader.string(1000)


class PackTests(SynchronousTestCase):
    """
    What the packers write, byte for byte (RFC 4506 sections 4.2, 4.4,
    4.10, 4.11).
    """

    def test_uint(self) -> None:
        """
        An unsigned int is four big-endian bytes, 0 to 2**32-1; outside
        that, C{ValueError}.
        """
        self.assertEqual(pack_uint(0), b"\0\0\0\0")
        self.assertEqual(pack_uint(0x20000099), b"\x20\x00\x00\x99")
        self.assertEqual(pack_uint(MAX_UINT), b"\xff\xff\xff\xff")
        self.assertRaises(ValueError, pack_uint, MAX_UINT + 1)
        self.assertRaises(ValueError, pack_uint, -1)

    def test_bool(self) -> None:
        """
        A bool is the unsigned int 1 or 0.
        """
        self.assertEqual(pack_bool(True), b"\0\0\0\1")
        self.assertEqual(pack_bool(False), b"\0\0\0\0")

    def test_opaque_padding(self) -> None:
        """
        Opaque data is its length, its bytes, and zero bytes up to a
        multiple of four.
        """
        self.assertEqual(pack_opaque(b""), b"\0\0\0\0")
        self.assertEqual(pack_opaque(b"a"), b"\0\0\0\1a\0\0\0")
        self.assertEqual(pack_opaque(b"abc"), b"\0\0\0\3abc\0")
        self.assertEqual(pack_opaque(b"abcd"), b"\0\0\0\4abcd")
        self.assertEqual(pack_opaque(b"abcde"), b"\0\0\0\5abcde\0\0\0")

    def test_string(self) -> None:
        """
        A string is its UTF-8 bytes as opaque data; bytes that are not
        UTF-8 survive a round trip (C{surrogateescape}).
        """
        self.assertEqual(pack_string("tcp"), b"\0\0\0\3tcp\0")
        self.assertEqual(pack_string("é"), b"\0\0\0\2\xc3\xa9\0\0")
        odd = b"\xff\xfe".decode("utf-8", "surrogateescape")
        self.assertEqual(pack_string(odd), b"\0\0\0\2\xff\xfe\0\0")
        self.assertEqual(XdrReader(pack_string(odd)).string(10), odd)


class ReaderTests(SynchronousTestCase):
    """
    L{XdrReader}: values back, bounds checked on the length word, and every
    refusal a L{MalformedMessage} with its offset.
    """

    @given(st.lists(_ITEMS, max_size=8), st.binary(max_size=8))
    def test_round_trip(self, items: list[Any], prefix: bytes) -> None:
        """
        Any sequence of items, packed one after the other behind any
        prefix, reads back as itself from the prefix's end, and the reader
        ends exactly at the end.
        """
        data = prefix + b"".join(_pack(item) for item in items)
        reader = XdrReader(data, len(prefix))
        self.assertEqual([_read(reader, kind) for kind, _ in items], [v for _, v in items])
        reader.done()
        self.assertEqual(reader.offset, len(data))

    @given(st.lists(_ITEMS, min_size=1, max_size=6))
    def test_every_prefix_truncated(self, items: list[Any]) -> None:
        """
        Every proper prefix of the items' bytes (the bytes arriving one at a
        time) is refused as truncated, at an offset within the prefix.
        """
        data = b"".join(_pack(item) for item in items)
        for n in range(len(data)):
            reader = XdrReader(data[:n])
            with self.assertRaises(MalformedMessage) as caught:
                for kind, _ in items:
                    _read(reader, kind)
            self.assertIn("truncated", str(caught.exception))
            self.assertLessEqual(caught.exception.offset, n)

    def test_trailing_bytes_untouched(self) -> None:
        """
        Reading stops after the item: the bytes after it are left for the
        next read, and L{XdrReader.done} refuses them with their offset.
        """
        data = pack_opaque(b"abcde") + b"\0\0\0\7rest"
        reader = XdrReader(data)
        self.assertEqual(reader.opaque(5), b"abcde")
        self.assertEqual(reader.offset, 12)
        self.assertEqual(data[reader.offset :], b"\0\0\0\7rest")
        with self.assertRaises(MalformedMessage) as caught:
            reader.done()
        self.assertEqual(caught.exception.offset, 12)
        self.assertIn("8 bytes after its 12 bytes", str(caught.exception))
        self.assertEqual(reader.uint(), 7)

    def test_limit(self) -> None:
        """
        Opaque data and strings at their limit are read; one byte over is
        refused at the offset of its length word.
        """
        data = b"\0\0\0\0" + pack_opaque(b"x" * 9)
        self.assertEqual(XdrReader(data, 4).opaque(9), b"x" * 9)
        self.assertEqual(XdrReader(data, 4).string(9), "x" * 9)
        with self.assertRaises(MalformedMessage) as caught:
            XdrReader(data, 4, "the reply").opaque(8, "r_addr")
        self.assertEqual(caught.exception.offset, 4)
        self.assertEqual(
            str(caught.exception),
            "the reply: r_addr at offset 4 announces 9 bytes, over its limit of 8",
        )

    def test_limit_before_bytes(self) -> None:
        """
        A length over the limit is refused as such even when its bytes are
        not there: the bound is checked on the length word, before the
        reader asks for the bytes.
        """
        with self.assertRaises(MalformedMessage) as caught:
            XdrReader(struct.pack(">I", MAX_UINT)).string(9000)
        self.assertIn("over its limit of 9000", str(caught.exception))

    def test_padding_needed(self) -> None:
        """
        Opaque data without its padding is truncated.
        """
        reader = XdrReader(b"\0\0\0\1a")
        self.assertRaises(MalformedMessage, reader.opaque, 10)

    def test_padding_not_checked(self) -> None:
        """
        Padding bytes are skipped whatever they are, as libtirpc does.
        """
        reader = XdrReader(b"\0\0\0\1aXYZ\0\0\0\5")
        self.assertEqual(reader.opaque(1), b"a")
        self.assertEqual(reader.uint(), 5)

    def test_bool_values(self) -> None:
        """
        A bool other than 0 or 1 is refused at its offset.
        """
        reader = XdrReader(b"\0\0\0\1\0\0\0\0\0\0\0\2")
        self.assertIs(reader.boolean(), True)
        self.assertIs(reader.boolean(), False)
        with self.assertRaises(MalformedMessage) as caught:
            reader.boolean("the result")
        self.assertEqual(caught.exception.offset, 8)
        self.assertIn("the result at offset 8 is 2, not 0 or 1", str(caught.exception))

    def test_truncated_message(self) -> None:
        """
        A truncated item's error says what it is, where, and how many bytes
        were left.
        """
        reader = XdrReader(b"\0\0\0\1\0\0", 0, "the reply")
        self.assertEqual(reader.uint("r_prog"), 1)
        with self.assertRaises(MalformedMessage) as caught:
            reader.uint("r_vers")
        self.assertEqual(caught.exception.offset, 4)
        self.assertEqual(
            str(caught.exception),
            "the reply is truncated: r_vers needs 4 bytes at offset 4, 2 are left",
        )
