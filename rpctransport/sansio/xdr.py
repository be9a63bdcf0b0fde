# -*- test-case-name: rpctransport.test.test_xdr -*-
"""
A minimal XDR codec (RFC 4506): unsigned integers, booleans, and
variable-length opaque data and strings, bytes in and values out.

It is what the project's own small structures need (rpcbind's, in
L{rpctransport.rpc.rpcbind}); users' programs pair the RPC layer with the
XDR library of their choice (C{xdrlib3}). Every variable-length item is
read against a bound given by the caller, checked on its length word
before its bytes are taken, and every refusal is a L{MalformedMessage}
carrying the offset where it was found.
"""

from __future__ import annotations

import struct
from typing import Final

from .errors import MalformedMessage

__all__ = [
    "MAX_UINT",
    "XdrReader",
    "pack_bool",
    "pack_opaque",
    "pack_string",
    "pack_uint",
]

MAX_UINT: Final = 0xFFFFFFFF
"""The largest XDR C{unsigned int}."""

_U32: Final = struct.Struct(">I")


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def pack_uint(value: int) -> bytes:
    """
    An XDR C{unsigned int}: four bytes, big-endian.

    @raise ValueError: C{value} is not in M{[0, 2**32)}.
    """
    if not 0 <= value <= MAX_UINT:
        raise ValueError(f"{value} is not an XDR unsigned int (0 to {MAX_UINT})")
    return _U32.pack(value)


def pack_bool(value: bool) -> bytes:
    """
    An XDR C{bool}: the C{unsigned int} 1 or 0.
    """
    return _U32.pack(1 if value else 0)


def pack_opaque(data: bytes) -> bytes:
    """
    XDR variable-length opaque data (C{opaque<>}): its length, its bytes,
    and zero bytes up to a multiple of four.

    @raise ValueError: C{data} is longer than an XDR length can say.
    """
    length = len(data)
    if length > MAX_UINT:
        raise ValueError(f"{length} bytes do not fit in XDR opaque data")
    return b"".join((_U32.pack(length), bytes(data), b"\0" * _pad(length)))


def pack_string(text: str) -> bytes:
    """
    An XDR C{string<>}: C{text} as UTF-8 (undecodable bytes kept by
    C{surrogateescape}), laid out as opaque data.
    """
    return pack_opaque(text.encode("utf-8", "surrogateescape"))


class XdrReader:
    """
    Reads XDR items one after the other from C{data}.

    Padding bytes are skipped without being checked, as libtirpc's
    C{xdr_opaque} does: RFC 4506 says they are zero, and a peer that sends
    other bytes there loses nothing of the value.

    @ivar offset: where the next item starts, in bytes from the start of
        C{data}.
    """

    def __init__(self, data: bytes, offset: int = 0, what: str = "XDR data") -> None:
        """
        @param data: the bytes to read.
        @param offset: where the first item starts.
        @param what: what the bytes are, for error messages (C{"the
            rpcbind reply"}).
        """
        self._data = data
        self.offset = offset
        self._what = what

    def _need(self, n: int, item: str) -> int:
        """
        Take C{n} bytes for C{item}; return where they start.
        """
        start = self.offset
        if len(self._data) - start < n:
            raise MalformedMessage(
                f"{self._what} is truncated: {item} needs {n} bytes at offset {start}, "
                f"{max(0, len(self._data) - start)} are left",
                start,
            )
        self.offset = start + n
        return start

    def uint(self, item: str = "an unsigned int") -> int:
        """
        Read an C{unsigned int}.

        @param item: what it is, for error messages.
        @raise MalformedMessage: it is truncated.
        """
        return int(_U32.unpack_from(self._data, self._need(4, item))[0])

    def boolean(self, item: str = "a bool") -> bool:
        """
        Read a C{bool}.

        @raise MalformedMessage: it is truncated, or neither 0 nor 1.
        """
        value = self.uint(item)
        if value > 1:
            raise MalformedMessage(
                f"{self._what}: {item} at offset {self.offset - 4} is {value}, not 0 or 1",
                self.offset - 4,
            )
        return value == 1

    def opaque(self, limit: int, item: str = "opaque data") -> bytes:
        """
        Read variable-length opaque data of at most C{limit} bytes.

        @raise MalformedMessage: it is truncated, or its length is over
            C{limit} (checked before its bytes are read).
        """
        at = self.offset
        length = self.uint(item)
        if length > limit:
            raise MalformedMessage(
                f"{self._what}: {item} at offset {at} announces {length} bytes, "
                f"over its limit of {limit}",
                at,
            )
        start = self._need(length + _pad(length), f"{item} of {length} bytes")
        return bytes(self._data[start : start + length])

    def string(self, limit: int, item: str = "a string") -> str:
        """
        Read a C{string} of at most C{limit} bytes, decoded as UTF-8
        (undecodable bytes kept by C{surrogateescape}).

        @raise MalformedMessage: as for L{opaque}.
        """
        return self.opaque(limit, item).decode("utf-8", "surrogateescape")

    def done(self) -> None:
        """
        Check that nothing follows the last item read.

        @raise MalformedMessage: bytes are left over.
        """
        left = len(self._data) - self.offset
        if left:
            raise MalformedMessage(
                f"{self._what} has {left} bytes after its {self.offset} bytes", self.offset
            )
