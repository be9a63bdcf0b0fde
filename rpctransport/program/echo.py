# -*- test-case-name: rpctransport.test.test_echo -*-
"""
The echo test program, server and client: what C{rpctransport serve} serves
and C{rpctransport call} calls.

The program (number L{ECHO_PROGRAM}, version L{ECHO_VERSION} by default) has
two procedures:

  - 0, NULL: no arguments, no results;
  - 1, ECHO: the argument is an XDR C{opaque data<>}, returned as it came.

The server is an L{RpcServer} with one handler, L{echo}: the RPC layer
answers NULL, the RFC 5531 rejections (PROG_UNAVAIL, PROG_MISMATCH,
PROC_UNAVAIL) and oversized calls (refused on their header, answered
GARBAGE_ARGS from the xid alone).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from ..interfaces import IRpcMultiplexController
from ..rpc.client import ClientLife, RpcClient
from ..rpc.server import CallInfo, RpcServer
from ..sansio.calls import CALL_RETRANSMITTED
from ..sansio.errors import GarbageArguments
from ..sansio.record import DEFAULT_MAX_RECORD_SIZE

__all__ = [
    "ECHO_PROGRAM",
    "ECHO_VERSION",
    "PROC_ECHO",
    "PROC_NULL",
    "CallStats",
    "EchoServer",
    "echo",
    "encode_opaque",
    "run_calls",
]

ECHO_PROGRAM: Final = 0x20000099
"""
The echo program's default number, in the range RFC 5531 leaves to users
(0x20000000-0x3fffffff).
"""

ECHO_VERSION: Final = 1
"""The echo program's default version."""

PROC_NULL: Final = 0
PROC_ECHO: Final = 1

_OPAQUE_LENGTH = struct.Struct(">I")


def encode_opaque(data: bytes) -> list[bytes]:
    """
    C{data} as an XDR C{opaque<>}: length, bytes, padding (as pieces).
    """
    pad = -len(data) % 4
    return [_OPAQUE_LENGTH.pack(len(data)), data, b"\0" * pad] if pad else [
        _OPAQUE_LENGTH.pack(len(data)),
        data,
    ]


def echo(arguments: bytes, call: CallInfo) -> bytes:
    """
    The ECHO procedure: its C{opaque<>} argument, returned as it came
    (length word, bytes and padding: the result is the argument's XDR).

    @raise GarbageArguments: when the argument does not fit in the call.
    """
    if len(arguments) < 4:
        raise GarbageArguments(f"an opaque<> needs 4 bytes, the call has {len(arguments)}")
    (length,) = _OPAQUE_LENGTH.unpack_from(arguments)
    end = 4 + length + (-length % 4)
    if end > len(arguments):
        raise GarbageArguments(
            f"an opaque<> of {length} bytes does not fit in the call's {len(arguments)}"
        )
    return arguments if end == len(arguments) else arguments[:end]


class EchoServer(RpcServer):
    """
    Serves the echo program (an L{RpcServer} with L{echo} registered) on any
    number of controllers.

    @ivar program: the program number served.
    @ivar version: the version served.
    """

    def __init__(
        self,
        program: int = ECHO_PROGRAM,
        version: int = ECHO_VERSION,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
        **options: Any,
    ) -> None:
        """
        @param max_record_size: calls larger than this are refused on their
            header (C{GARBAGE_ARGS}, answered from the xid alone).
        @param options: more options for L{RpcServer}.
        """
        super().__init__(max_record_size=max_record_size, **options)
        self.program = program
        self.version = version
        self.register(program, version, PROC_ECHO, echo)


@dataclass
class CallStats:
    """
    What a run of calls gave.

    @ivar calls: calls completed (with a good reply or a failure).
    @ivar failures: calls that failed, and why (the first few reasons).
    @ivar latencies: seconds from first send to reply, per good call.
    @ivar elapsed: seconds for the whole run.
    @ivar retransmissions: UDP calls sent again.
    @ivar connection_error: what ended the connection under the calls
        (when a read failed), or L{None}.
    """

    calls: int = 0
    failures: int = 0
    reasons: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    retransmissions: int = 0
    connection_error: BaseException | None = None

    def fail(self, reason: str) -> None:
        """
        Count a failed call and keep its reason (the first ten).
        """
        self.calls += 1
        self.failures += 1
        if len(self.reasons) < 10:
            self.reasons.append(reason)

    def percentile(self, p: float) -> float:
        """
        The C{p}-th percentile of the latencies, in seconds (0 if none).
        """
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    @property
    def ok(self) -> bool:
        """
        Whether every call succeeded.
        """
        return self.failures == 0


_PATTERN = bytes(range(251))
"""What ECHO arguments are made of, repeated."""


def run_calls(
    target: IRpcMultiplexController | RpcClient,
    clock: IReactorTime,
    *,
    program: int = ECHO_PROGRAM,
    version: int = ECHO_VERSION,
    proc: int = PROC_NULL,
    size: int = 0,
    count: int = 1,
    concurrency: int = 1,
    timeout: float = 25.0,
    retry: float | None = None,
    progress: Callable[[int], object] | None = None,
) -> Deferred[CallStats]:
    """
    Make C{count} calls of C{proc} through an L{RpcClient}, C{concurrency}
    at a time, and check every reply (the RPC layer checks the xid and the
    accept_stat; this checks the echoed bytes).

    @param target: a client, or a connected controller (a stream
        controller, or a datagram controller whose peer is the server) for
        a client made here, which owns it and is closed at the end (the
        controller with it).
    @param clock: the reactor (C{IReactorTime}) for timeouts, retransmission
        and latencies.
    @param retry: on datagrams, seconds before a call is sent again, the
        interval doubling (L{None}: the client's default; streams never).
    @param timeout: seconds from a call's first send before it fails.
    @param progress: called with the number of calls done, now and then.
    @return: a Deferred firing with the L{CallStats} when all calls are done
        (or the connection failed: the calls left count as failures).
    """
    owned = not isinstance(target, RpcClient)
    if isinstance(target, RpcClient):
        client = target
    else:
        client = RpcClient(
            target, max_in_flight=concurrency, timeout=timeout, retransmit=retry, reactor=clock
        )
    stats = CallStats()
    done: Deferred[CallStats] = Deferred()
    # A pattern that is not all zeros, built at C speed.
    payload = (_PATTERN * (size // len(_PATTERN) + 1))[:size] if proc == PROC_ECHO else b""
    arguments = b"".join(encode_opaque(payload)) if proc == PROC_ECHO else b""
    retransmitted = client.counters.get(CALL_RETRANSMITTED, 0)
    started = clock.seconds()
    # Calls made, calls finished, and whether the loop that makes them runs
    # (a reply may come within client.call, on an in-memory transport, or
    # a call fail at once, on a connection that ended: the loop, not the
    # callbacks, makes the next calls, so the stack stays flat).
    state = {"made": 0, "finished": 0, "pumping": False}

    def finish() -> None:
        stats.elapsed = clock.seconds() - started
        stats.retransmissions = client.counters.get(CALL_RETRANSMITTED, 0) - retransmitted
        if owned:
            client.close()
        done.callback(stats)

    def replied(results: bytes, began: float) -> None:
        if results != arguments:
            stats.fail(f"the results differ from the arguments sent ({len(results)} bytes back)")
        else:
            stats.calls += 1
            stats.latencies.append(clock.seconds() - began)

    def failed(failure: Failure) -> None:
        error = failure.value
        reason = client.reason
        if client.life is ClientLife.ENDED and reason is not None and error is reason.value:
            # The connection's end, not this call's own failure.
            stats.connection_error = error
        stats.fail(str(error))

    def one_done(_: object) -> None:
        state["finished"] += 1
        if progress is not None and stats.calls % 256 == 0:
            progress(stats.calls)
        pump()

    def pump() -> None:
        if state["pumping"]:
            return
        state["pumping"] = True
        try:
            while state["made"] < count and state["made"] - state["finished"] < concurrency:
                state["made"] += 1
                began = clock.seconds()
                d = client.call(program, version, proc, arguments, timeout=timeout)
                d.addCallbacks(replied, failed, callbackArgs=(began,))
                d.addCallback(one_done)
        finally:
            state["pumping"] = False
        if state["finished"] >= count and not done.called:
            finish()

    if count <= 0:
        done.callback(stats)
        return done
    pump()
    return done
