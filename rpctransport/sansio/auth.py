# -*- test-case-name: rpctransport.test.test_auth -*-
"""
Credentials as values: C{AUTH_SYS} (RFC 5531 appendix A) encoded and
decoded, bytes in and values out.

An RPC server decodes a call's C{AUTH_SYS} credential into an L{AuthSys}
for its handlers; a client encodes one into the L{OpaqueAuth} it sends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from .errors import MalformedMessage
from .rpcmsg import AuthFlavor, OpaqueAuth

__all__ = ["MAX_GIDS", "MAX_MACHINE_NAME", "AuthSys", "decode_auth_sys", "encode_auth_sys"]

MAX_MACHINE_NAME: Final = 255
"""RFC 5531 appendix A: C{string machinename<255>}."""

MAX_GIDS: Final = 16
"""RFC 5531 appendix A: C{unsigned int gids<16>}."""

_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class AuthSys:
    """
    An C{AUTH_SYS} credential (C{authsys_parms}): who the caller says it is.

    @ivar stamp: an arbitrary id the caller's machine chose.
    @ivar machine_name: the caller's host name, at most
        L{MAX_MACHINE_NAME} bytes.
    @ivar uid: the caller's effective user id.
    @ivar gid: the caller's effective group id.
    @ivar gids: the other groups it is in, at most L{MAX_GIDS}.
    """

    stamp: int = 0
    machine_name: str = ""
    uid: int = 0
    gid: int = 0
    gids: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        """
        @raise ValueError: when a field is over its RFC 5531 bound, or a
            number is not an unsigned 32-bit one.
        """
        if len(self.machine_name.encode("utf-8", "surrogateescape")) > MAX_MACHINE_NAME:
            raise ValueError(
                f"AUTH_SYS machine name of {len(self.machine_name)} bytes exceeds the "
                f"RFC 5531 limit of {MAX_MACHINE_NAME}"
            )
        if len(self.gids) > MAX_GIDS:
            raise ValueError(
                f"AUTH_SYS with {len(self.gids)} gids exceeds the RFC 5531 limit of {MAX_GIDS}"
            )
        object.__setattr__(self, "gids", tuple(self.gids))
        for name, value in (("stamp", self.stamp), ("uid", self.uid), ("gid", self.gid)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"AUTH_SYS {name} {value} is not an unsigned 32-bit number")
        for value in self.gids:
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"AUTH_SYS gid {value} is not an unsigned 32-bit number")

    def as_credential(self) -> OpaqueAuth:
        """
        The credential to send: flavor C{AUTH_SYS} with this body.
        """
        return OpaqueAuth(AuthFlavor.AUTH_SYS, encode_auth_sys(self))


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def encode_auth_sys(value: AuthSys) -> bytes:
    """
    The XDR C{authsys_parms} of C{value}.
    """
    name = value.machine_name.encode("utf-8", "surrogateescape")
    parts = [
        _U32.pack(value.stamp),
        _U32.pack(len(name)),
        name,
        b"\0" * _pad(len(name)),
        _U32.pack(value.uid),
        _U32.pack(value.gid),
        _U32.pack(len(value.gids)),
    ]
    parts.extend(_U32.pack(gid) for gid in value.gids)
    return b"".join(parts)


def decode_auth_sys(body: bytes) -> AuthSys:
    """
    Decode an C{AUTH_SYS} credential's body.

    @raise MalformedMessage: when it is truncated, over a bound, or has
        bytes left over.
    """
    try:
        stamp, length = struct.unpack_from(">II", body, 0)
        if length > MAX_MACHINE_NAME:
            raise MalformedMessage(
                f"AUTH_SYS machine name of {length} bytes exceeds the RFC 5531 limit of "
                f"{MAX_MACHINE_NAME}",
                4,
            )
        offset = 8 + length + _pad(length)
        name = bytes(body[8 : 8 + length])
        if len(name) != length:
            raise struct.error("truncated machine name")
        uid, gid, count = struct.unpack_from(">III", body, offset)
        offset += 12
        if count > MAX_GIDS:
            raise MalformedMessage(
                f"AUTH_SYS with {count} gids exceeds the RFC 5531 limit of {MAX_GIDS}",
                offset - 4,
            )
        gids = struct.unpack_from(f">{count}I", body, offset)
        offset += 4 * count
    except struct.error:
        raise MalformedMessage(f"AUTH_SYS credential of {len(body)} bytes is truncated", len(body))
    if offset != len(body):
        raise MalformedMessage(
            f"AUTH_SYS credential has {len(body) - offset} bytes after its {offset} bytes",
            offset,
        )
    return AuthSys(stamp, name.decode("utf-8", "surrogateescape"), uid, gid, gids)
