# -*- test-case-name: rpctransport.test.test_rpcmsg -*-
"""
Tests for L{rpctransport.sansio.rpcmsg} and its public home
L{rpctransport.rpcmsg}: RPC call and reply headers, rejection replies, and
the RFC 9289 probe.
"""

from __future__ import annotations

import ast
import inspect
import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from rpctransport import rpcmsg as public_rpcmsg
from rpctransport.sansio import rpcmsg
from rpctransport.sansio.errors import RemoteProtocolError
from rpctransport.sansio.rpcmsg import (
    AUTH_ERROR,
    AUTH_NONE,
    AUTH_SYS,
    AUTH_TLS,
    CALL,
    MAX_AUTH_BYTES,
    MSG_ACCEPTED,
    MSG_DENIED,
    NULL_AUTH,
    PROG_MISMATCH,
    REPLY,
    RPC_MISMATCH,
    RPC_VERSION,
    STARTTLS_VERIFIER,
    SUCCESS,
    AcceptedReply,
    AcceptStat,
    AuthStat,
    CallHeader,
    DeniedReply,
    MalformedMessage,
    OpaqueAuth,
    RejectStat,
    decode_call_header,
    decode_reply_header,
    encode_call_header,
    encode_reply_header,
    encode_tls_probe,
    is_tls_probe,
    peek_xid,
    reply_for_rejection,
    starttls_reply,
    success_reply_header,
)
from rpctransport.sansio.types import ServerError

# The NULL call libtirpc's clnt_call sends for program 0x20000099 version 1
# procedure 0 with AUTH_NONE, xid 0x12345678.
LIBTIRPC_NULL_CALL = bytes.fromhex(
    "12345678 00000000 00000002 20000099 00000001"
    " 00000000 00000000 00000000 00000000 00000000"
)

XID = 0x12345678
HEAD = struct.pack(">I", XID)

# Bytes standing for procedure arguments or results behind a header; the
# decoders must leave them alone.
TRAILER = b"\xde\xad\xbe\xef\x01\x02\x03\x04"


def u32(*values: int) -> bytes:
    """
    Encode XDR unsigned ints.
    """
    return struct.pack(f">{len(values)}I", *values)


def xdr_opaque(data: bytes) -> bytes:
    """
    Encode a variable-length XDR opaque (or string): length, bytes, zero
    padding.
    """
    return u32(len(data)) + data + b"\0" * (-len(data) % 4)


def authsys_parms(
    stamp: int, machinename: bytes, uid: int, gid: int, gids: list[int]
) -> bytes:
    """
    Encode an RFC 5531 C{authsys_parms} (the AUTH_SYS credential body).
    """
    return (
        u32(stamp)
        + xdr_opaque(machinename)
        + u32(uid, gid)
        + u32(len(gids))
        + u32(*gids)
    )


def sample_call() -> CallHeader:
    """
    A call header whose credential and verifier bodies both need padding.
    """
    return CallHeader(
        xid=XID,
        prog=100003,
        vers=3,
        proc=1,
        cred=OpaqueAuth(AUTH_SYS, b"\x01\x02\x03\x04\x05"),
        verf=OpaqueAuth(99, b"abc"),
    )


def sample_replies() -> list[AcceptedReply | DeniedReply]:
    """
    One reply header of each kind.
    """
    verf = OpaqueAuth(AUTH_SYS, b"xyz")
    replies: list[AcceptedReply | DeniedReply] = [
        AcceptedReply(XID, verf, stat)
        for stat in AcceptStat
        if stat is not AcceptStat.PROG_MISMATCH
    ]
    replies.append(AcceptedReply(XID, verf, PROG_MISMATCH, 2, 4))
    replies.append(DeniedReply(XID, RPC_MISMATCH, 2, 3))
    replies.extend(DeniedReply(XID, AUTH_ERROR, auth_stat=s) for s in AuthStat)
    return replies


class LibtirpcCompatibilityTests(SynchronousTestCase):
    """
    Byte-exact agreement with what libtirpc puts on the wire.
    """

    def test_encodeNullCall(self) -> None:
        """
        L{encode_call_header} produces exactly the bytes of libtirpc's NULL
        call with AUTH_NONE.
        """
        header = CallHeader(XID, 0x20000099, 1, 0, NULL_AUTH, NULL_AUTH)
        self.assertEqual(encode_call_header(header), LIBTIRPC_NULL_CALL)

    def test_decodeNullCall(self) -> None:
        """
        L{decode_call_header} reads libtirpc's NULL call back, and the
        arguments (none) begin at its end.
        """
        header, offset = decode_call_header(LIBTIRPC_NULL_CALL)
        self.assertEqual(
            header,
            CallHeader(
                xid=XID,
                prog=0x20000099,
                vers=1,
                proc=0,
                cred=NULL_AUTH,
                verf=NULL_AUTH,
                rpcvers=2,
            ),
        )
        self.assertEqual(offset, len(LIBTIRPC_NULL_CALL))

    def test_authSysCredential(self) -> None:
        """
        An AUTH_SYS credential (stamp, machine name padded to 4 bytes, uid,
        gid, supplementary gids) travels as an opaque body: it is encoded at
        the right place with its length, and decoded back byte for byte.
        """
        body = authsys_parms(0x5F5E100, b"host", 1000, 1000, [1000, 27])
        self.assertEqual(
            body,
            bytes.fromhex(
                "05f5e100 00000004 686f7374 000003e8 000003e8"
                " 00000002 000003e8 0000001b"
            ),
        )
        header = CallHeader(XID, 100003, 3, 1, OpaqueAuth(AUTH_SYS, body), NULL_AUTH)
        wire = encode_call_header(header)
        self.assertEqual(
            wire,
            LIBTIRPC_NULL_CALL[:12]
            + u32(100003, 3, 1)
            + u32(AUTH_SYS)
            + xdr_opaque(body)
            + u32(AUTH_NONE, 0),
        )
        decoded, offset = decode_call_header(wire + TRAILER)
        self.assertEqual(decoded, header)
        self.assertEqual(decoded.cred.body, body)
        self.assertEqual(offset, len(wire))

    def test_authSysOddMachineName(self) -> None:
        """
        A machine name whose length is not a multiple of 4 is padded inside
        the credential body, which stays a multiple of 4 bytes long.
        """
        body = authsys_parms(1, b"hosty", 0, 0, [])
        self.assertEqual(len(body) % 4, 0)
        header = CallHeader(XID, 1, 1, 1, OpaqueAuth(AUTH_SYS, body))
        self.assertEqual(decode_call_header(encode_call_header(header))[0], header)


class CallHeaderTests(SynchronousTestCase):
    """
    Tests for L{encode_call_header} and L{decode_call_header}.
    """

    def test_roundTripAllPaddings(self) -> None:
        """
        Credential and verifier bodies of every length modulo 4 survive a
        round trip, the padding is zero bytes, and the returned offset is
        where the arguments begin, with trailing bytes left untouched.
        """
        for cred_len in range(9):
            for verf_len in (0, 1, 2, 3, MAX_AUTH_BYTES):
                cred = OpaqueAuth(AUTH_SYS, bytes(range(1, cred_len + 1)))
                verf = OpaqueAuth(6, b"\xff" * verf_len)
                header = CallHeader(1, 2, 3, 4, cred, verf)
                wire = encode_call_header(header)
                expected = (
                    u32(1, CALL, 2, 2, 3, 4)
                    + u32(AUTH_SYS)
                    + xdr_opaque(cred.body)
                    + u32(6)
                    + xdr_opaque(verf.body)
                )
                self.assertEqual(wire, expected)
                self.assertEqual(len(wire) % 4, 0)
                decoded, offset = decode_call_header(wire + TRAILER)
                self.assertEqual((decoded, offset), (header, len(wire)))

    def test_extremeNumbers(self) -> None:
        """
        Every number of the header may be anything from 0 to 2**32 - 1.
        """
        top = 2**32 - 1
        header = CallHeader(top, top, top, top, OpaqueAuth(top), OpaqueAuth(0), top)
        self.assertEqual(decode_call_header(encode_call_header(header))[0], header)

    def test_buffers(self) -> None:
        """
        The decoder reads C{bytes}, C{bytearray}, C{memoryview}, a slice of a
        C{memoryview}, and a C{memoryview} of another format (offsets still
        count bytes); bodies come back as C{bytes}.
        """
        wire = encode_call_header(sample_call())
        framed = b"\0" * 4 + wire + TRAILER
        buffers: list[bytes | bytearray | memoryview] = [
            wire,
            bytearray(wire),
            memoryview(wire),
            memoryview(framed)[4:],
            memoryview(wire + TRAILER).cast("I"),
        ]
        for data in buffers:
            header, offset = decode_call_header(data)
            self.assertEqual(header, sample_call())
            self.assertEqual(offset, len(wire))
            self.assertIs(type(header.cred.body), bytes)

    def test_readsOnlyHeader(self) -> None:
        """
        The decoder stops at the end of the verifier: whatever follows (even
        garbage, or nothing) does not matter.
        """
        wire = encode_call_header(sample_call())
        self.assertEqual(decode_call_header(wire)[1], len(wire))
        self.assertEqual(decode_call_header(wire + b"\xff" * 3)[1], len(wire))

    def test_otherRpcVersionIsReported(self) -> None:
        """
        A call with C{rpcvers} other than 2 is not a decoding error: the
        header reports the version, so that the server can answer
        RPC_MISMATCH.
        """
        header = CallHeader(XID, 1, 1, 0, rpcvers=3)
        decoded, _ = decode_call_header(encode_call_header(header))
        self.assertEqual(decoded.rpcvers, 3)
        self.assertEqual(decoded, header)

    def test_nonZeroPaddingAccepted(self) -> None:
        """
        Non-zero padding bytes after an opaque body are accepted and
        ignored, as libtirpc does; the body is read without them.
        """
        wire = bytearray(encode_call_header(sample_call()))
        # The 5-byte credential body starts at 32; its padding is 37..39.
        self.assertEqual(wire[37:40], b"\0\0\0")
        wire[37:40] = b"\x01\x02\x03"
        # The 3-byte verifier body starts at 48; its padding is 51.
        self.assertEqual(wire[51:52], b"\0")
        wire[51:52] = b"\xff"
        self.assertEqual(decode_call_header(wire), (sample_call(), len(wire)))

    def test_defaults(self) -> None:
        """
        A L{CallHeader} built without credential, verifier or version has
        AUTH_NONE for both and RPC version 2.
        """
        header = CallHeader(1, 2, 3, 4)
        self.assertEqual(header.cred, NULL_AUTH)
        self.assertEqual(header.verf, NULL_AUTH)
        self.assertEqual(header.rpcvers, RPC_VERSION)

    def test_encodeRejectsBadNumbers(self) -> None:
        """
        Encoding a number that is not an unsigned 32-bit integer raises
        C{ValueError} naming the field and the value.
        """
        for field, header in [
            ("xid", CallHeader(-1, 1, 1, 1)),
            ("prog", CallHeader(1, 2**32, 1, 1)),
            ("proc", CallHeader(1, 1, 1, 2**40)),
            ("cred_flavor", CallHeader(1, 1, 1, 1, OpaqueAuth(-7))),
        ]:
            error = self.assertRaises(ValueError, encode_call_header, header)
            self.assertIn(field, str(error))


class MalformedCallTests(SynchronousTestCase):
    """
    Malformed and truncated call headers raise L{MalformedMessage}.
    """

    def test_isRemoteProtocolError(self) -> None:
        """
        L{MalformedMessage} belongs to the remote family of errors.
        """
        self.assertTrue(issubclass(MalformedMessage, RemoteProtocolError))

    def test_truncatedAtEveryCut(self) -> None:
        """
        Every proper prefix of a call header raises L{MalformedMessage}
        (never C{struct.error} or C{IndexError}), whose message gives the
        message length, and whose offset lies within the prefix.
        """
        wire = encode_call_header(sample_call())
        for cut in range(len(wire)):
            error = self.assertRaises(MalformedMessage, decode_call_header, wire[:cut])
            self.assertIn("truncated call header", str(error))
            self.assertIn(f"message is {cut} bytes long", str(error))
            self.assertLessEqual(error.offset, cut)

    def test_truncatedMessageNamesField(self) -> None:
        """
        The truncation message says which field did not fit, at which
        offset, and how many bytes it needed.
        """
        wire = encode_call_header(sample_call())
        error = self.assertRaises(MalformedMessage, decode_call_header, wire[:14])
        self.assertEqual(
            str(error),
            "truncated call header: 4 bytes needed at offset 12 for prog, "
            "but the message is 14 bytes long",
        )
        error = self.assertRaises(MalformedMessage, decode_call_header, wire[:38])
        self.assertEqual(error.offset, 32)
        self.assertIn("8 bytes needed at offset 32 for the credential body", str(error))

    def test_replyGivenAsCall(self) -> None:
        """
        A reply given to L{decode_call_header} is reported as a reply, not as
        a truncated call, even when it is shorter than a call header.
        """
        error = self.assertRaises(
            MalformedMessage, decode_call_header, success_reply_header(XID)
        )
        self.assertEqual(
            str(error),
            "expected a CALL (msg_type 0), got a REPLY (msg_type 1) at offset 4",
        )
        self.assertEqual(error.offset, 4)

    def test_unknownMsgType(self) -> None:
        """
        A C{msg_type} that is neither CALL nor REPLY is reported with its
        value.
        """
        wire = bytearray(LIBTIRPC_NULL_CALL)
        wire[4:8] = u32(2)
        error = self.assertRaises(MalformedMessage, decode_call_header, wire)
        self.assertIn("msg_type 2", str(error))

    def test_credentialBodyAtLimit(self) -> None:
        """
        A credential body of exactly L{MAX_AUTH_BYTES} bytes is accepted.
        """
        header = CallHeader(XID, 1, 1, 1, OpaqueAuth(AUTH_SYS, b"a" * MAX_AUTH_BYTES))
        self.assertEqual(decode_call_header(encode_call_header(header))[0], header)

    def test_oversizeCredentialBody(self) -> None:
        """
        A credential body length over L{MAX_AUTH_BYTES} raises
        L{MalformedMessage} on the length word alone, before the body is
        needed, naming the length, its offset and the limit.
        """
        wire = LIBTIRPC_NULL_CALL[:24] + u32(AUTH_SYS, MAX_AUTH_BYTES + 1)
        error = self.assertRaises(MalformedMessage, decode_call_header, wire)
        self.assertEqual(error.offset, 28)
        self.assertIn("credential body length 401 at offset 28", str(error))
        self.assertIn("limit of 400 bytes", str(error))

    def test_oversizeVerifierBody(self) -> None:
        """
        A verifier body length over L{MAX_AUTH_BYTES} (here, 2**32 - 1)
        raises L{MalformedMessage}.
        """
        wire = LIBTIRPC_NULL_CALL[:32] + u32(AUTH_NONE, 2**32 - 1) + b"\0" * 16
        error = self.assertRaises(MalformedMessage, decode_call_header, wire)
        self.assertEqual(error.offset, 36)
        self.assertIn(f"verifier body length {2**32 - 1}", str(error))


class OpaqueAuthTests(SynchronousTestCase):
    """
    Tests for L{OpaqueAuth}.
    """

    def test_bodyLimit(self) -> None:
        """
        A body over L{MAX_AUTH_BYTES} bytes is refused with C{ValueError}
        naming its length; one at the limit is fine.
        """
        OpaqueAuth(AUTH_SYS, b"x" * MAX_AUTH_BYTES)
        error = self.assertRaises(ValueError, OpaqueAuth, AUTH_SYS, b"x" * 401)
        self.assertIn("401", str(error))

    def test_bufferCopied(self) -> None:
        """
        A C{bytearray} body is copied into C{bytes}, so the value is hashable
        and does not change with the buffer.
        """
        buffer = bytearray(b"abcd")
        auth = OpaqueAuth(AUTH_SYS, buffer)  # type: ignore[arg-type]
        buffer[0:1] = b"z"
        self.assertEqual(auth.body, b"abcd")
        self.assertEqual(hash(auth), hash(OpaqueAuth(AUTH_SYS, b"abcd")))

    def test_nullAuth(self) -> None:
        """
        L{NULL_AUTH} is AUTH_NONE with an empty body, and equals a decoded
        one.
        """
        self.assertEqual((NULL_AUTH.flavor, NULL_AUTH.body), (0, b""))
        self.assertEqual(NULL_AUTH, OpaqueAuth(0, b""))


class ReplyHeaderTests(SynchronousTestCase):
    """
    Tests for L{encode_reply_header} and L{decode_reply_header}.
    """

    def test_roundTripEveryKind(self) -> None:
        """
        A reply of every kind (SUCCESS, each other C{accept_stat},
        PROG_MISMATCH with its range, RPC_MISMATCH with its range, AUTH_ERROR
        with each C{auth_stat}) survives a round trip; the offset is the end
        of the header and trailing bytes are left alone.
        """
        for reply in sample_replies():
            wire = encode_reply_header(reply)
            self.assertEqual(len(wire) % 4, 0)
            decoded, offset = decode_reply_header(wire + TRAILER)
            self.assertEqual(decoded, reply)
            self.assertEqual(offset, len(wire))
            self.assertIs(type(decoded), type(reply))

    def test_successLayout(self) -> None:
        """
        An accepted SUCCESS reply is xid, REPLY, MSG_ACCEPTED, the verifier,
        SUCCESS; the results begin after it.
        """
        reply = AcceptedReply(XID, OpaqueAuth(AUTH_SYS, b"v"), SUCCESS)
        wire = encode_reply_header(reply)
        self.assertEqual(
            wire, HEAD + u32(REPLY, MSG_ACCEPTED, AUTH_SYS, 1) + b"v\0\0\0" + u32(0)
        )
        self.assertEqual(decode_reply_header(wire + b"results"), (reply, 28))

    def test_acceptStatLayouts(self) -> None:
        """
        Each non-success C{accept_stat} other than PROG_MISMATCH ends the
        reply right after the stat; PROG_MISMATCH adds low and high.
        """
        for stat in AcceptStat:
            if stat is PROG_MISMATCH:
                reply = AcceptedReply(XID, NULL_AUTH, stat, 1, 3)
                tail = u32(1, 3)
            else:
                reply = AcceptedReply(XID, NULL_AUTH, stat)
                tail = b""
            self.assertEqual(
                encode_reply_header(reply),
                HEAD + u32(REPLY, MSG_ACCEPTED, AUTH_NONE, 0, stat) + tail,
            )

    def test_deniedLayouts(self) -> None:
        """
        A denied RPC_MISMATCH reply carries low and high; a denied
        AUTH_ERROR reply carries the C{auth_stat}.
        """
        self.assertEqual(
            encode_reply_header(DeniedReply(XID, RPC_MISMATCH, 2, 2)),
            HEAD + u32(REPLY, MSG_DENIED, RPC_MISMATCH, 2, 2),
        )
        for auth_stat in AuthStat:
            self.assertEqual(
                encode_reply_header(DeniedReply(XID, AUTH_ERROR, auth_stat=auth_stat)),
                HEAD + u32(REPLY, MSG_DENIED, AUTH_ERROR, auth_stat),
            )

    def test_decodedAuthStatIsEnum(self) -> None:
        """
        A known C{auth_stat} decodes to its L{AuthStat} member; an unknown
        one (the registry is open-ended) decodes to its number.
        """
        wire = HEAD + u32(REPLY, MSG_DENIED, AUTH_ERROR, 5)
        reply = decode_reply_header(wire)[0]
        assert isinstance(reply, DeniedReply)
        self.assertIs(reply.auth_stat, AuthStat.AUTH_TOOWEAK)
        wire = HEAD + u32(REPLY, MSG_DENIED, AUTH_ERROR, 99)
        self.assertEqual(
            decode_reply_header(wire), (DeniedReply(XID, AUTH_ERROR, auth_stat=99), 20)
        )

    def test_emptyRangeDecodedLeniently(self) -> None:
        """
        A mismatch reply whose low exceeds its high (a peer's bug) still
        decodes, so the caller learns of the mismatch.
        """
        wire = HEAD + u32(REPLY, MSG_DENIED, RPC_MISMATCH, 3, 2)
        self.assertEqual(
            decode_reply_header(wire)[0], DeniedReply(XID, RPC_MISMATCH, 3, 2)
        )

    def test_successReplyHeader(self) -> None:
        """
        L{success_reply_header} is the encoding of an accepted SUCCESS reply
        with the given verifier (AUTH_NONE by default).
        """
        self.assertEqual(
            success_reply_header(XID),
            HEAD + u32(REPLY, MSG_ACCEPTED, AUTH_NONE, 0, SUCCESS),
        )
        verf = OpaqueAuth(AUTH_SYS, b"12345")
        self.assertEqual(
            success_reply_header(XID, verf),
            encode_reply_header(AcceptedReply(XID, verf, SUCCESS)),
        )

    def test_buffers(self) -> None:
        """
        The decoder reads C{bytearray} and C{memoryview} as well as C{bytes}.
        """
        reply = AcceptedReply(XID, OpaqueAuth(1, b"ab"), PROG_MISMATCH, 1, 2)
        wire = encode_reply_header(reply)
        for data in (bytearray(wire), memoryview(wire), memoryview(wire).cast("I")):
            self.assertEqual(decode_reply_header(data), (reply, len(wire)))

    def test_encodeRejectsBadNumbers(self) -> None:
        """
        Encoding a reply with a number that does not fit in 32 bits raises
        C{ValueError} naming the field.
        """
        for field, reply in [
            ("xid", AcceptedReply(2**32, NULL_AUTH, SUCCESS)),
            ("high", AcceptedReply(1, NULL_AUTH, PROG_MISMATCH, 1, 2**33)),
            ("low", DeniedReply(1, RPC_MISMATCH, -2, 2)),
            ("auth_stat", DeniedReply(1, AUTH_ERROR, auth_stat=-1)),
        ]:
            error = self.assertRaises(ValueError, encode_reply_header, reply)
            self.assertIn(field, str(error))


class ReplyValueTests(SynchronousTestCase):
    """
    L{AcceptedReply} and L{DeniedReply} carry exactly the data their kind
    has.
    """

    def test_progMismatchNeedsRange(self) -> None:
        """
        An accepted PROG_MISMATCH reply without low and high is refused.
        """
        self.assertRaises(ValueError, AcceptedReply, XID, NULL_AUTH, PROG_MISMATCH)
        self.assertRaises(ValueError, AcceptedReply, XID, NULL_AUTH, PROG_MISMATCH, 1)

    def test_rangeOnlyForMismatch(self) -> None:
        """
        low and high on an accepted reply other than PROG_MISMATCH, or on an
        AUTH_ERROR reply, are refused.
        """
        self.assertRaises(ValueError, AcceptedReply, XID, NULL_AUTH, SUCCESS, 1, 2)
        self.assertRaises(
            ValueError, DeniedReply, XID, AUTH_ERROR, 1, 2, AuthStat.AUTH_BADCRED
        )

    def test_deniedData(self) -> None:
        """
        AUTH_ERROR needs an C{auth_stat}; RPC_MISMATCH needs a range and no
        C{auth_stat}.
        """
        self.assertRaises(ValueError, DeniedReply, XID, AUTH_ERROR)
        self.assertRaises(ValueError, DeniedReply, XID, RPC_MISMATCH)
        self.assertRaises(ValueError, DeniedReply, XID, RPC_MISMATCH, 2, 2, 1)

    def test_statCoerced(self) -> None:
        """
        A plain number for the stat is turned into its enum member; an
        unknown one is refused.
        """
        reply = AcceptedReply(XID, NULL_AUTH, 3)  # type: ignore[arg-type]
        self.assertIs(reply.stat, AcceptStat.PROC_UNAVAIL)
        denied = DeniedReply(XID, 0, 2, 2)  # type: ignore[arg-type]
        self.assertIs(denied.stat, RejectStat.RPC_MISMATCH)
        self.assertRaises(ValueError, AcceptedReply, XID, NULL_AUTH, 6)
        self.assertRaises(ValueError, DeniedReply, XID, 2)


class MalformedReplyTests(SynchronousTestCase):
    """
    Malformed and truncated reply headers raise L{MalformedMessage}.
    """

    def test_truncatedAtEveryCut(self) -> None:
        """
        Every proper prefix of a reply header of every kind raises
        L{MalformedMessage} (never C{struct.error} or C{IndexError}), with
        the message length in the message and an offset within the prefix.
        """
        for reply in sample_replies():
            wire = encode_reply_header(reply)
            for cut in range(len(wire)):
                error = self.assertRaises(
                    MalformedMessage, decode_reply_header, wire[:cut]
                )
                self.assertIn("truncated reply header", str(error))
                self.assertIn(f"message is {cut} bytes long", str(error))
                self.assertLessEqual(error.offset, cut)

    def test_callGivenAsReply(self) -> None:
        """
        A call given to L{decode_reply_header} is reported as a call.
        """
        error = self.assertRaises(
            MalformedMessage, decode_reply_header, LIBTIRPC_NULL_CALL
        )
        self.assertEqual(
            str(error),
            "expected a REPLY (msg_type 1), got a CALL (msg_type 0) at offset 4",
        )

    def test_unknownMsgType(self) -> None:
        """
        A C{msg_type} that is neither CALL nor REPLY is reported with its
        value.
        """
        wire = HEAD + u32(7, MSG_ACCEPTED, 0, 0, 0)
        error = self.assertRaises(MalformedMessage, decode_reply_header, wire)
        self.assertIn("msg_type 7, which is neither", str(error))

    def test_badReplyStat(self) -> None:
        """
        A C{reply_stat} other than MSG_ACCEPTED and MSG_DENIED is refused,
        with its value and offset.
        """
        wire = HEAD + u32(REPLY, 2, 0, 0, 0)
        error = self.assertRaises(MalformedMessage, decode_reply_header, wire)
        self.assertIn("unknown reply_stat 2 at offset 8", str(error))
        self.assertEqual(error.offset, 8)

    def test_badAcceptStat(self) -> None:
        """
        An C{accept_stat} over SYSTEM_ERR is refused, with its value and
        offset (after the verifier).
        """
        wire = HEAD + u32(REPLY, MSG_ACCEPTED, AUTH_SYS, 1) + b"v\0\0\0" + u32(6)
        error = self.assertRaises(MalformedMessage, decode_reply_header, wire)
        self.assertIn("unknown accept_stat 6 at offset 24", str(error))
        self.assertEqual(error.offset, 24)

    def test_badRejectStat(self) -> None:
        """
        A C{reject_stat} other than RPC_MISMATCH and AUTH_ERROR is refused.
        """
        wire = HEAD + u32(REPLY, MSG_DENIED, 2, 0, 0)
        error = self.assertRaises(MalformedMessage, decode_reply_header, wire)
        self.assertIn("unknown reject_stat 2 at offset 12", str(error))

    def test_oversizeVerifier(self) -> None:
        """
        A reply verifier body over L{MAX_AUTH_BYTES} is refused on its
        length word.
        """
        wire = HEAD + u32(REPLY, MSG_ACCEPTED, AUTH_NONE, 404)
        error = self.assertRaises(MalformedMessage, decode_reply_header, wire)
        self.assertIn("verifier body length 404 at offset 16", str(error))


class ArbitraryInputTests(SynchronousTestCase):
    """
    Whatever bytes arrive, the decoders either decode them or raise
    L{MalformedMessage}.
    """

    @given(st.binary(max_size=64))
    def test_arbitraryBytes(self, data: bytes) -> None:
        """
        Random bytes never make a decoder raise anything but
        L{MalformedMessage}.
        """
        for decode in (decode_call_header, decode_reply_header):
            try:
                decode(data)
            except MalformedMessage:
                pass

    @given(
        st.sampled_from(
            [encode_call_header(sample_call())]
            + [encode_reply_header(r) for r in sample_replies()]
        ),
        st.integers(min_value=0, max_value=63),
        st.integers(min_value=0, max_value=255),
    )
    def test_corruptedHeaders(self, wire: bytes, position: int, value: int) -> None:
        """
        A valid header with one byte changed either decodes (to a header
        that encodes to as many bytes as it was read from, and decodes back to
        itself) or raises L{MalformedMessage}.
        """
        corrupted = bytearray(wire)
        corrupted[position % len(wire)] = value
        try:
            call, offset = decode_call_header(corrupted)
        except MalformedMessage:
            pass
        else:
            again = encode_call_header(call)
            self.assertEqual(decode_call_header(again), (call, offset))
            self.assertEqual(len(again), offset)
        try:
            reply, offset = decode_reply_header(corrupted)
        except MalformedMessage:
            pass
        else:
            again = encode_reply_header(reply)
            self.assertEqual(decode_reply_header(again), (reply, offset))
            self.assertEqual(len(again), offset)


class PeekXidTests(SynchronousTestCase):
    """
    Tests for L{peek_xid}.
    """

    def test_callAndReply(self) -> None:
        """
        The xid of a call or a reply is its first 4 bytes, whatever follows.
        """
        self.assertEqual(peek_xid(LIBTIRPC_NULL_CALL), XID)
        self.assertEqual(peek_xid(success_reply_header(7)), 7)
        self.assertEqual(peek_xid(b"\xff\xff\xff\xfe"), 2**32 - 2)
        self.assertEqual(peek_xid(memoryview(b"\0\0\0\x09garbage")), 9)

    def test_short(self) -> None:
        """
        Fewer than 4 bytes raise L{MalformedMessage} naming the length.
        """
        for cut in range(4):
            error = self.assertRaises(MalformedMessage, peek_xid, HEAD[:cut])
            self.assertIn(f"message is {cut} bytes long", str(error))


class ReplyForRejectionTests(SynchronousTestCase):
    """
    Tests for L{reply_for_rejection}.
    """

    def test_everyServerError(self) -> None:
        """
        For every L{ServerError}, the reply decodes back to the xid of the
        head and the right kind of refusal, and is the whole message.
        """
        for error in ServerError:
            wire = reply_for_rejection(HEAD, error, low=1, high=3)
            reply, offset = decode_reply_header(wire)
            self.assertEqual(offset, len(wire), error)
            self.assertEqual(reply.xid, XID)
            if error.kind == "accepted":
                expected: AcceptedReply | DeniedReply
                if error is ServerError.PROG_MISMATCH:
                    expected = AcceptedReply(XID, NULL_AUTH, PROG_MISMATCH, 1, 3)
                else:
                    expected = AcceptedReply(XID, NULL_AUTH, AcceptStat(error.code))
            elif error.kind == "rpc_mismatch":
                expected = DeniedReply(XID, RPC_MISMATCH, 1, 3)
            else:
                expected = DeniedReply(XID, AUTH_ERROR, auth_stat=error.code)
                self.assertEqual(AuthStat(error.code).name, error.name)
            self.assertEqual(reply, expected, error)

    def test_acceptStatNamesMatch(self) -> None:
        """
        The accept_stat of each accepted-kind L{ServerError} has its name.
        """
        for error in ServerError:
            if error.kind == "accepted":
                self.assertEqual(AcceptStat(error.code).name, error.name)

    def test_garbageArgsBytes(self) -> None:
        """
        GARBAGE_ARGS gives the bytes of an accepted reply with an empty
        AUTH_NONE verifier and accept_stat 4; the xid bytes are copied as
        they are.
        """
        self.assertEqual(
            reply_for_rejection(b"\x01\x02\x03\x04", ServerError.GARBAGE_ARGS),
            b"\x01\x02\x03\x04" + u32(REPLY, MSG_ACCEPTED, AUTH_NONE, 0, 4),
        )

    def test_authErrorBytes(self) -> None:
        """
        An authentication error gives a denied AUTH_ERROR reply with the
        error's auth_stat, and no verifier.
        """
        self.assertEqual(
            reply_for_rejection(HEAD, ServerError.RPCSEC_GSS_CTXPROBLEM),
            HEAD + u32(REPLY, MSG_DENIED, AUTH_ERROR, 14),
        )

    def test_rpcMismatchDefault(self) -> None:
        """
        RPC_MISMATCH without a range announces version 2 to 2.
        """
        self.assertEqual(
            reply_for_rejection(HEAD, ServerError.RPC_MISMATCH),
            HEAD + u32(REPLY, MSG_DENIED, RPC_MISMATCH, 2, 2),
        )

    def test_progMismatchNeedsRange(self) -> None:
        """
        PROG_MISMATCH without low or high raises C{ValueError}.
        """
        for kwargs in ({}, {"low": 1}, {"high": 1}):
            self.assertRaises(
                ValueError,
                reply_for_rejection,
                HEAD,
                ServerError.PROG_MISMATCH,
                **kwargs,
            )

    def test_emptyRangeRefused(self) -> None:
        """
        A range whose low exceeds its high is refused for both mismatches.
        """
        for error in (ServerError.PROG_MISMATCH, ServerError.RPC_MISMATCH):
            exc = self.assertRaises(
                ValueError, reply_for_rejection, HEAD, error, low=4, high=3
            )
            self.assertIn("low 4 > high 3", str(exc))

    def test_outOfRangeVersion(self) -> None:
        """
        A version that does not fit in 32 bits raises C{ValueError} naming
        it.
        """
        exc = self.assertRaises(
            ValueError,
            reply_for_rejection,
            HEAD,
            ServerError.PROG_MISMATCH,
            low=0,
            high=2**32,
        )
        self.assertIn("high", str(exc))

    def test_shortHead(self) -> None:
        """
        A head shorter than 4 bytes (a record too short to carry an xid)
        raises C{ValueError} naming its length.
        """
        for cut in range(4):
            exc = self.assertRaises(
                ValueError, reply_for_rejection, HEAD[:cut], ServerError.SYSTEM_ERR
            )
            self.assertIn(f"record of {cut} bytes", str(exc))

    def test_longHead(self) -> None:
        """
        Bytes of the head past the fourth are ignored.
        """
        self.assertEqual(
            reply_for_rejection(LIBTIRPC_NULL_CALL, ServerError.PROC_UNAVAIL),
            reply_for_rejection(HEAD, ServerError.PROC_UNAVAIL),
        )

    def test_verifier(self) -> None:
        """
        The verifier goes into accepted replies.
        """
        verf = OpaqueAuth(AUTH_SYS, b"abcde")
        wire = reply_for_rejection(HEAD, ServerError.PROG_UNAVAIL, verf=verf)
        self.assertEqual(
            decode_reply_header(wire)[0],
            AcceptedReply(XID, verf, AcceptStat.PROG_UNAVAIL),
        )

    def test_extraArgumentsIgnored(self) -> None:
        """
        low and high are ignored for errors that carry no range, and the
        verifier for denied replies, so one call shape fits every error.
        """
        verf = OpaqueAuth(AUTH_SYS, b"abcde")
        self.assertEqual(
            reply_for_rejection(HEAD, ServerError.SYSTEM_ERR, low=1, high=2),
            reply_for_rejection(HEAD, ServerError.SYSTEM_ERR),
        )
        self.assertEqual(
            reply_for_rejection(
                HEAD, ServerError.AUTH_BADCRED, low=1, high=2, verf=verf
            ),
            reply_for_rejection(HEAD, ServerError.AUTH_BADCRED),
        )

    def test_bufferHead(self) -> None:
        """
        The head may be a C{bytearray} or a C{memoryview}.
        """
        expected = reply_for_rejection(HEAD, ServerError.GARBAGE_ARGS)
        for head in (bytearray(HEAD), memoryview(HEAD)):
            got = reply_for_rejection(head, ServerError.GARBAGE_ARGS)
            self.assertEqual(got, expected)


class TlsProbeTests(SynchronousTestCase):
    """
    Tests for the RFC 9289 (RPC-with-TLS) helpers.
    """

    def test_probeLayout(self) -> None:
        """
        The probe is, word by word: xid, CALL, rpcvers 2, prog, vers, proc 0
        (NULL), credential flavor AUTH_TLS (7) with length 0, verifier
        flavor AUTH_NONE (0) with length 0; and nothing more.
        """
        wire = encode_tls_probe(0xCAFEF00D, 100003, 4)
        self.assertEqual(
            wire,
            bytes.fromhex(
                "cafef00d"  # xid
                "00000000"  # msg_type CALL
                "00000002"  # rpcvers
                "000186a3"  # prog 100003
                "00000004"  # vers
                "00000000"  # proc NULL
                "00000007"  # cred flavor AUTH_TLS
                "00000000"  # cred length
                "00000000"  # verf flavor AUTH_NONE
                "00000000"  # verf length
            ),
        )

    def test_probeRecognised(self) -> None:
        """
        A decoded probe is recognised by L{is_tls_probe}; its arguments
        (none) begin at its end.
        """
        wire = encode_tls_probe(1, 100003, 4)
        header, offset = decode_call_header(wire)
        self.assertTrue(is_tls_probe(header))
        self.assertEqual(offset, len(wire))
        self.assertEqual(header.cred, OpaqueAuth(AUTH_TLS, b""))

    def test_notProbes(self) -> None:
        """
        Calls that use AUTH_TLS otherwise (another procedure, a credential
        body, a verifier other than empty AUTH_NONE, another RPC version),
        and ordinary calls, are not probes.
        """
        tls = OpaqueAuth(AUTH_TLS, b"")
        for header in [
            CallHeader(1, 2, 3, 0),
            CallHeader(1, 2, 3, 1, tls),
            CallHeader(1, 2, 3, 0, OpaqueAuth(AUTH_TLS, b"x")),
            CallHeader(1, 2, 3, 0, tls, OpaqueAuth(AUTH_SYS, b"")),
            CallHeader(1, 2, 3, 0, tls, OpaqueAuth(AUTH_NONE, b"STARTTLS")),
            CallHeader(1, 2, 3, 0, tls, rpcvers=3),
        ]:
            self.assertFalse(is_tls_probe(header), header)
        self.assertTrue(is_tls_probe(CallHeader(1, 2, 3, 0, tls)))

    def test_starttlsReplyLayout(self) -> None:
        """
        The answer is, word by word: xid, REPLY, MSG_ACCEPTED, verifier
        flavor AUTH_NONE, length 8, the body C{STARTTLS}, accept_stat
        SUCCESS; no results.
        """
        self.assertEqual(
            starttls_reply(0xCAFEF00D),
            bytes.fromhex(
                "cafef00d"  # xid
                "00000001"  # msg_type REPLY
                "00000000"  # reply_stat MSG_ACCEPTED
                "00000000"  # verf flavor AUTH_NONE
                "00000008"  # verf length
                "5354415254544c53"  # "STARTTLS", no padding needed
                "00000000"  # accept_stat SUCCESS
            ),
        )

    def test_starttlsReplyDecodes(self) -> None:
        """
        The answer decodes to an accepted SUCCESS reply whose verifier is
        L{STARTTLS_VERIFIER}, ending where the message ends.
        """
        wire = starttls_reply(5)
        self.assertEqual(
            decode_reply_header(wire),
            (AcceptedReply(5, STARTTLS_VERIFIER, SUCCESS), len(wire)),
        )
        self.assertEqual(STARTTLS_VERIFIER, OpaqueAuth(AUTH_NONE, b"STARTTLS"))


class ModuleTests(SynchronousTestCase):
    """
    The shape of the modules.
    """

    def test_publicModuleReexports(self) -> None:
        """
        L{rpctransport.rpcmsg} exports the same names and the same objects
        as L{rpctransport.sansio.rpcmsg}.
        """
        self.assertEqual(sorted(public_rpcmsg.__all__), sorted(rpcmsg.__all__))
        for name in rpcmsg.__all__:
            self.assertIs(getattr(public_rpcmsg, name), getattr(rpcmsg, name), name)

    def test_allExists(self) -> None:
        """
        Every name in C{__all__} exists, and every public function and class
        has a docstring.
        """
        for name in rpcmsg.__all__:
            obj = getattr(rpcmsg, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                self.assertTrue(obj.__doc__, name)

    def test_noTwisted(self) -> None:
        """
        Neither module imports Twisted.
        """
        for module in (rpcmsg, public_rpcmsg):
            source = inspect.getsource(module)
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                for name in names:
                    self.assertFalse(name.startswith("twisted"), module.__name__)
