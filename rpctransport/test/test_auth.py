# -*- test-case-name: rpctransport.test.test_auth -*-
"""
Tests for L{rpctransport.sansio.auth}: AUTH_SYS credentials.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from rpctransport.sansio.auth import (
    MAX_GIDS,
    MAX_MACHINE_NAME,
    AuthSys,
    decode_auth_sys,
    encode_auth_sys,
)
from rpctransport.sansio.errors import MalformedMessage
from rpctransport.sansio.rpcmsg import AuthFlavor

_U32 = st.integers(0, 0xFFFFFFFF)


class AuthSysTests(SynchronousTestCase):
    """
    AUTH_SYS bodies, as RFC 5531 appendix A lays them out.
    """

    def test_known_bytes(self) -> None:
        """
        The encoding is the XDR of C{authsys_parms}: stamp, the machine name
        as a padded string, uid, gid, then the counted gids.
        """
        value = AuthSys(7, "host", 1000, 100, (4, 24))
        expected = struct.pack(">II", 7, 4) + b"host" + struct.pack(">IIIII", 1000, 100, 2, 4, 24)
        self.assertEqual(encode_auth_sys(value), expected)
        self.assertEqual(decode_auth_sys(expected), value)
        padded = encode_auth_sys(AuthSys(0, "abcde"))
        self.assertEqual(padded[8:16], b"abcde\0\0\0")
        credential = value.as_credential()
        self.assertEqual((credential.flavor, credential.body), (AuthFlavor.AUTH_SYS, expected))

    @given(
        _U32,
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=255),
        _U32,
        _U32,
        st.lists(_U32, max_size=MAX_GIDS),
    )
    def test_round_trip(self, stamp: int, name: str, uid: int, gid: int, gids: list[int]) -> None:
        """
        Any credential within the bounds decodes to itself.
        """
        value = AuthSys(stamp, name, uid, gid, tuple(gids))
        self.assertEqual(decode_auth_sys(encode_auth_sys(value)), value)

    def test_bounds(self) -> None:
        """
        Values over RFC 5531's bounds are refused when made and when
        decoded, with the numbers.
        """
        with self.assertRaises(ValueError):
            AuthSys(machine_name="x" * (MAX_MACHINE_NAME + 1))
        with self.assertRaises(ValueError):
            AuthSys(gids=tuple(range(MAX_GIDS + 1)))
        for bad in ({"uid": -1}, {"gid": 2**32}, {"stamp": -5}, {"gids": (1, 2**32)}):
            with self.assertRaises(ValueError):
                AuthSys(**bad)  # type: ignore[arg-type]
        long_name = struct.pack(">II", 0, MAX_MACHINE_NAME + 1) + b"x" * 260
        self.assertIn("256 bytes", str(self.assertRaises(MalformedMessage, decode_auth_sys, long_name)))
        many = struct.pack(">IIIII", 0, 0, 0, 0, MAX_GIDS + 1) + b"\0" * 4 * (MAX_GIDS + 1)
        self.assertIn("17 gids", str(self.assertRaises(MalformedMessage, decode_auth_sys, many)))

    def test_malformed(self) -> None:
        """
        A truncated body, or one with bytes left over, is refused.
        """
        good = encode_auth_sys(AuthSys(1, "host", 2, 3, (4,)))
        for cut in (0, 3, 8, 11, len(good) - 1):
            with self.assertRaises(MalformedMessage):
                decode_auth_sys(good[:cut])
        error = self.assertRaises(MalformedMessage, decode_auth_sys, good + b"\0\0\0\0")
        self.assertIn("4 bytes after", str(error))
