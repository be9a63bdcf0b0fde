# -*- test-case-name: rpctransport.test.test_types -*-
"""
Tests for L{rpctransport.sansio.types}: rules, records, sentinels and server
errors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from rpctransport.sansio.types import (
    ACCEPT,
    DENY,
    DROP,
    END_OF_FILE,
    IMPLIED,
    REJECT,
    Accepted,
    Denied,
    Dropped,
    EndOfFile,
    Implied,
    Rejected,
    RejectedWith,
    RejectWith,
    RpcProtocol,
    Rule,
    ServerError,
)


def describe(value: Any) -> str:
    """
    Say what C{value} is with structural pattern matching, as users of the
    records and rules are expected to.
    """
    match value:
        case Accepted(message):
            return f"accepted {message!r}"
        case Rejected(head=head):
            return f"rejected {head!r}"
        case RejectedWith(head, ServerError.AUTH_TOOWEAK):
            return f"too weak {head!r}"
        case RejectedWith(head, error):
            return f"rejected {head!r} with {error.name}"
        case Denied():
            return "denied"
        case Dropped():
            return "dropped"
        case Rule.ACCEPT:
            return "rule accept"
        case Rule.REJECT | Rule.DENY | Rule.DROP:
            return f"rule {value.name.lower()}"
        case RejectWith(ServerError(kind="auth") as error):
            return f"rule reject with auth error {error.code}"
        case RejectWith(error):
            return f"rule reject with {error.name}"
        case EndOfFile.END_OF_FILE:
            return "end of file"
        case _:
            return "something else"


class RuleTests(SynchronousTestCase):
    """
    Tests for L{Rule} and L{RejectWith}.
    """

    def test_constants(self) -> None:
        """
        The module constants are the members of L{Rule}.
        """
        self.assertEqual(
            [ACCEPT, REJECT, DENY, DROP], [Rule.ACCEPT, Rule.REJECT, Rule.DENY, Rule.DROP]
        )
        self.assertEqual(len(Rule), 4)

    def test_repr(self) -> None:
        """
        A rule's repr is its name.
        """
        self.assertEqual([repr(r) for r in Rule], ["ACCEPT", "REJECT", "DENY", "DROP"])

    def test_rejectWithEquality(self) -> None:
        """
        L{RejectWith} values are equal when their errors are, and hash alike.
        """
        self.assertEqual(RejectWith(ServerError.GARBAGE_ARGS), RejectWith(ServerError.GARBAGE_ARGS))
        self.assertNotEqual(
            RejectWith(ServerError.GARBAGE_ARGS), RejectWith(ServerError.SYSTEM_ERR)
        )
        self.assertEqual(
            hash(RejectWith(ServerError.AUTH_FAILED)), hash(RejectWith(ServerError.AUTH_FAILED))
        )
        self.assertNotEqual(RejectWith(ServerError.GARBAGE_ARGS), REJECT)

    def test_rejectWithFrozen(self) -> None:
        """
        A L{RejectWith} cannot be changed.
        """
        rule = RejectWith(ServerError.GARBAGE_ARGS)
        self.assertRaises(
            dataclasses.FrozenInstanceError, setattr, rule, "error", ServerError.SYSTEM_ERR
        )
        self.assertIs(rule.error, ServerError.GARBAGE_ARGS)

    def test_match(self) -> None:
        """
        Rules can be told apart with C{match}, a L{RejectWith} by its error.
        """
        self.assertEqual(describe(ACCEPT), "rule accept")
        self.assertEqual(describe(REJECT), "rule reject")
        self.assertEqual(describe(DENY), "rule deny")
        self.assertEqual(describe(DROP), "rule drop")
        self.assertEqual(
            describe(RejectWith(ServerError.PROG_UNAVAIL)), "rule reject with PROG_UNAVAIL"
        )
        self.assertEqual(
            describe(RejectWith(ServerError.AUTH_BADVERF)), "rule reject with auth error 3"
        )


class RecordTests(SynchronousTestCase):
    """
    Tests for the records a read delivers.
    """

    def test_equality(self) -> None:
        """
        Records are equal when their type and fields are.
        """
        self.assertEqual(Accepted(b"abc"), Accepted(b"abc"))
        self.assertNotEqual(Accepted(b"abc"), Accepted(b"abd"))
        self.assertEqual(Rejected(b"xid1"), Rejected(b"xid1"))
        self.assertNotEqual(Rejected(b"xid1"), Accepted(b"xid1"))
        self.assertEqual(
            RejectedWith(b"xid1", ServerError.PROC_UNAVAIL),
            RejectedWith(b"xid1", ServerError.PROC_UNAVAIL),
        )
        self.assertNotEqual(
            RejectedWith(b"xid1", ServerError.PROC_UNAVAIL),
            RejectedWith(b"xid1", ServerError.PROG_UNAVAIL),
        )
        self.assertNotEqual(RejectedWith(b"xid1", ServerError.PROC_UNAVAIL), Rejected(b"xid1"))
        self.assertEqual(Denied(), Denied())
        self.assertEqual(Dropped(), Dropped())
        self.assertNotEqual(Denied(), Dropped())

    def test_hashable(self) -> None:
        """
        Equal records hash alike, so they can be kept in sets.
        """
        records = {Accepted(b"a"), Accepted(b"a"), Denied(), Denied(), Dropped()}
        self.assertEqual(len(records), 3)

    def test_frozen(self) -> None:
        """
        Records cannot be changed, nor given new attributes.
        """
        for record, field, value in [
            (Accepted(b"abc"), "message", b"xyz"),
            (Rejected(b"xid1"), "head", b"xid2"),
            (RejectedWith(b"xid1", ServerError.SYSTEM_ERR), "error", ServerError.GARBAGE_ARGS),
            (Denied(), "reason", "no"),
            (Dropped(), "reason", "no"),
        ]:
            self.assertRaises(
                (dataclasses.FrozenInstanceError, AttributeError, TypeError),
                setattr, record, field, value,
            )
        accepted = Accepted(b"abc")
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, accepted, "message", b"x")
        self.assertEqual(accepted.message, b"abc")

    def test_slots(self) -> None:
        """
        Records have no instance dictionary: one is made per message read.
        """
        for record in [Accepted(b""), Rejected(b""), RejectedWith(b"", ServerError.SYSTEM_ERR)]:
            self.assertFalse(hasattr(record, "__dict__"), record)

    def test_match(self) -> None:
        """
        Records can be taken apart with C{match}, by position and by keyword.
        """
        self.assertEqual(describe(Accepted(b"abc")), "accepted b'abc'")
        self.assertEqual(describe(Rejected(b"xid1")), "rejected b'xid1'")
        self.assertEqual(
            describe(RejectedWith(b"xid1", ServerError.GARBAGE_ARGS)),
            "rejected b'xid1' with GARBAGE_ARGS",
        )
        self.assertEqual(
            describe(RejectedWith(b"xid1", ServerError.AUTH_TOOWEAK)), "too weak b'xid1'"
        )
        self.assertEqual(describe(Denied()), "denied")
        self.assertEqual(describe(Dropped()), "dropped")
        self.assertEqual(describe(END_OF_FILE), "end of file")
        self.assertEqual(describe(b"abc"), "something else")

    def test_acceptedRepr(self) -> None:
        """
        The repr of L{Accepted} shows at most 32 bytes of the message and its
        length.
        """
        self.assertEqual(repr(Accepted(b"abc")), "Accepted(b'abc', 3 bytes)")
        big = Accepted(b"x" * 1_000_000)
        self.assertEqual(repr(big), f"Accepted({b'x' * 32!r}..., 1000000 bytes)")

    def test_otherReprs(self) -> None:
        """
        The other records show their fields.
        """
        self.assertEqual(repr(Rejected(b"xid1")), "Rejected(head=b'xid1')")
        self.assertIn("SYSTEM_ERR", repr(RejectedWith(b"x", ServerError.SYSTEM_ERR)))
        self.assertEqual(repr(Denied()), "Denied()")
        self.assertEqual(repr(Dropped()), "Dropped()")


class ServerErrorTests(SynchronousTestCase):
    """
    Tests for L{ServerError}.
    """

    def test_kindAndCode(self) -> None:
        """
        Each server error gives the reply it goes in and its number on the
        wire, as RFC 5531 (and RFC 2203 for RPCSEC_GSS) number them.
        """
        self.assertEqual(
            {e.name: (e.kind, e.code) for e in ServerError},
            {
                "PROG_UNAVAIL": ("accepted", 1),
                "PROG_MISMATCH": ("accepted", 2),
                "PROC_UNAVAIL": ("accepted", 3),
                "GARBAGE_ARGS": ("accepted", 4),
                "SYSTEM_ERR": ("accepted", 5),
                "RPC_MISMATCH": ("rpc_mismatch", 0),
                "AUTH_BADCRED": ("auth", 1),
                "AUTH_REJECTEDCRED": ("auth", 2),
                "AUTH_BADVERF": ("auth", 3),
                "AUTH_REJECTEDVERF": ("auth", 4),
                "AUTH_TOOWEAK": ("auth", 5),
                "AUTH_INVALIDRESP": ("auth", 6),
                "AUTH_FAILED": ("auth", 7),
                "RPCSEC_GSS_CREDPROBLEM": ("auth", 13),
                "RPCSEC_GSS_CTXPROBLEM": ("auth", 14),
            },
        )

    def test_distinct(self) -> None:
        """
        No two server errors share a kind and code (none is an alias).
        """
        self.assertEqual(len({e.value for e in ServerError}), len(ServerError))
        self.assertEqual(len(list(ServerError)), 15)

    def test_kinds(self) -> None:
        """
        The kinds are exactly C{"accepted"}, C{"rpc_mismatch"} and C{"auth"}.
        """
        self.assertEqual({e.kind for e in ServerError}, {"accepted", "rpc_mismatch", "auth"})

    def test_lookupByValue(self) -> None:
        """
        A server error can be found from its kind and code.
        """
        self.assertIs(ServerError(("auth", 5)), ServerError.AUTH_TOOWEAK)
        self.assertIs(ServerError(("accepted", 4)), ServerError.GARBAGE_ARGS)
        self.assertRaises(ValueError, ServerError, ("auth", 99))


class SentinelTests(SynchronousTestCase):
    """
    Tests for L{END_OF_FILE}, L{IMPLIED} and L{RpcProtocol}.
    """

    def test_endOfFile(self) -> None:
        """
        L{END_OF_FILE} is the only member of L{EndOfFile}, shown by name, and
        is not a record.
        """
        self.assertEqual(list(EndOfFile), [END_OF_FILE])
        self.assertEqual(repr(END_OF_FILE), "END_OF_FILE")
        self.assertNotEqual(END_OF_FILE, Accepted(b""))

    def test_implied(self) -> None:
        """
        L{IMPLIED} is the only member of L{Implied}, shown by name.
        """
        self.assertEqual(list(Implied), [IMPLIED])
        self.assertEqual(repr(IMPLIED), "IMPLIED")
        self.assertIsNot(IMPLIED, END_OF_FILE)

    def test_rpcProtocol(self) -> None:
        """
        L{RpcProtocol} has TCP and UDP, shown qualified.
        """
        self.assertEqual([p.value for p in RpcProtocol], ["tcp", "udp"])
        self.assertEqual(repr(RpcProtocol.TCP), "RpcProtocol.TCP")
        self.assertEqual(repr(RpcProtocol.UDP), "RpcProtocol.UDP")
