# -*- test-case-name: rpctransport.test.test_soak -*-
"""
Soak tests of C{rpctransport serve}: many connections at once, each sending
ECHO calls of random sizes in random fragments and random writes, every
reply checked byte for byte, and the server's memory bounded at the end.

The server is the real program, run as a subprocess and listening on
loopback TCP and a UNIX socket. The clients are plain non-blocking sockets
driven by one C{selectors} loop in the test process. They build the record
marking themselves (L{fragment}) and parse the replies' record marking
themselves (L{_Client._received}), so that a bug in the library's framing
cannot hide behind the same bug on both sides; only the call header and the
XDR opaque come from the project's codecs. The expected reply is written out
here word by word (L{expected_reply}).

The short form runs by default (it is what CI runs); the full form is
marked C{slow}: C{python -m pytest -m slow rpctransport/test/test_soak.py}.
Both start from a fixed seed, printed in every failure; set
C{RPCTRANSPORT_SOAK_SEED} to try others.
"""

from __future__ import annotations

import os
import random
import selectors
import shutil
import socket
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from rpctransport.program.echo import ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, PROC_NULL, encode_opaque
from rpctransport.sansio.rpcmsg import CallHeader, encode_call_header
from rpctransport.test.interop.build import (
    ServerProcess,
    rpctransport_command,
    rpctransport_env,
    start_server,
)

SEED: Final = int(os.environ.get("RPCTRANSPORT_SOAK_SEED", "20240611"))
"""The seed of every random choice the clients make."""

MAX_RECORD: Final = 256 * 1024
"""
The largest call record sent (record mark excluded): large enough to cross
many socket reads and the server's write buffering, small enough that 256
connections with a few such records in flight stay within a few hundred MB.
"""

MAX_FRAGMENTS: Final = 8192
"""
The server's limit on the fragments of a record (C{DEFAULT_MAX_FRAGMENTS}
in L{rpctransport.sansio.record}), written out here rather than imported,
as is the next: the clients go up to them exactly, and never past them.
"""

MAX_EMPTY_RUN: Final = 16
"""
The server's limit on empty fragments in a row, the last fragment excepted
(C{DEFAULT_MAX_EMPTY_FRAGMENTS}).
"""

BATCH_BYTES: Final = 1024 * 1024
"""Calls pipelined in one batch stop adding up past this many bytes."""

MEMORY_GROWTH: Final = 16 * 1024 * 1024
"""
How much the server's resident memory may grow from the end of the warm-up
to the end of the soak. The warm-up has every connection pipeline records of
the largest size first, so that the server's buffers and the heap glibc
keeps (C{keep_large_allocations}) reach about their peak before the first
measure; what remains is heap fragmentation and the soak's random peaks:
under 1 MB measured, on 256 connections. A server that kept every reply
grew 22 MB in the short form's 3,000 calls (measured); one that kept 200
bytes per call would pass the bound within the full form's 100,000.
"""

EDGES: Final = (
    "one fragment",
    "1-byte fragments",
    f"{MAX_EMPTY_RUN} empty fragments in a row",
    "an empty last fragment",
    f"{MAX_FRAGMENTS} fragments",
)
"""What every soak round must have sent at least once (L{Tally.reached})."""

_LAST: Final = 0x80000000
_REPLY_HEADER: Final = struct.Struct(">6I")
_ACCEPT_STATS: Final = {
    0: "SUCCESS",
    1: "PROG_UNAVAIL",
    2: "PROG_MISMATCH",
    3: "PROC_UNAVAIL",
    4: "GARBAGE_ARGS",
    5: "SYSTEM_ERR",
}


def payload_size(rng: random.Random, max_record: int) -> int:
    """
    A random size for an ECHO argument: mostly small, some of a few pages,
    a few up to C{max_record} (counting the call header and opaque length),
    and now and then the largest possible.
    """
    largest = max_record - 44  # 40 bytes of call header, 4 of opaque length
    roll = rng.random()
    if roll < 0.60:
        return rng.randint(0, 256)
    if roll < 0.85:
        return rng.randint(257, 4096)
    if roll < 0.97:
        return rng.randint(4097, min(65536, largest))
    if roll < 0.99:
        return rng.randint(min(65537, largest), largest)
    return largest - rng.randint(0, 3)


def split(rng: random.Random, length: int, parts: int) -> list[int]:
    """
    C{length} cut into C{parts} positive lengths at random points
    (C{1 <= parts <= length}), or C{[0]} for an empty message.
    """
    if length == 0:
        return [0]
    cuts = sorted(rng.sample(range(1, length), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, length])]


def fragment(rng: random.Random, message: bytes) -> tuple[bytes, list[int]]:
    """
    C{message} as one record of RFC 5531 record marking, in fragments of
    random sizes: one fragment, a few, many, fragments of 1 to 3 bytes, or
    exactly L{MAX_FRAGMENTS}; then, sometimes, runs of up to
    L{MAX_EMPTY_RUN} empty fragments between them, and an empty last
    fragment.

    @return: the record, and the length of each fragment.
    """
    length = len(message)
    roll = rng.random()
    if length >= MAX_FRAGMENTS and roll < 0.02:
        # Rare, as they cost the client 8,192 pieces each.
        sizes = split(rng, length, MAX_FRAGMENTS)
    elif roll < 0.35 or length < 2:
        sizes = [length]
    elif roll < 0.60:
        sizes = split(rng, length, rng.randint(2, min(8, length)))
    elif roll < 0.80:
        sizes = split(rng, length, rng.randint(2, min(512, length)))
    elif roll < 0.95 and length <= 1024:
        sizes = []
        left = length
        while left:
            size = min(left, rng.randint(1, 3))
            sizes.append(size)
            left -= size
    else:
        sizes = split(rng, length, rng.randint(1, min(64, length)))
    if rng.random() < 0.3 and len(sizes) < MAX_FRAGMENTS - 100:
        # Empty fragments before some fragment, each run within the limit
        # (the boundary itself now and then).
        with_empty: list[int] = []
        for size in sizes:
            if rng.random() < 0.2:
                with_empty.extend([0] * rng.choice((1, 2, 5, MAX_EMPTY_RUN)))
            with_empty.append(size)
        sizes = with_empty[: MAX_FRAGMENTS - 1] if len(with_empty) >= MAX_FRAGMENTS else with_empty
        if sum(sizes) != length:
            sizes.append(length - sum(sizes))
    if rng.random() < 0.05 and sizes[-1] != 0 and len(sizes) < MAX_FRAGMENTS:
        sizes.append(0)  # an empty last fragment
    assert sum(sizes) == length and len(sizes) <= MAX_FRAGMENTS, sizes
    pieces = []
    offset = 0
    view = memoryview(message)
    for i, size in enumerate(sizes):
        mark = size | (_LAST if i == len(sizes) - 1 else 0)
        pieces.append(mark.to_bytes(4, "big"))
        pieces.append(view[offset : offset + size])
        offset += size
    return b"".join(pieces), sizes


def expected_reply(xid: int, results: bytes) -> bytes:
    """
    The whole reply record the server owes to a call: C{xid}, REPLY (1),
    MSG_ACCEPTED (0), an AUTH_NONE verifier (flavor 0, length 0), SUCCESS
    (0), then C{results} as they are.
    """
    return _REPLY_HEADER.pack(xid, 1, 0, 0, 0, 0) + results


def describe_mismatch(got: bytes, expected: bytes) -> str:
    """
    Say how a reply differs from the one expected: its header words and
    accept status, or the first byte that differs.
    """
    if len(got) >= 24 and got[:24] != expected[:24]:
        words = _REPLY_HEADER.unpack_from(got)
        stat = _ACCEPT_STATS.get(words[5], "?") if words[1:5] == (1, 0, 0, 0) else "?"
        return f"reply header words {words} (accept_stat {stat}), {len(got)} bytes"
    first = next(
        (i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected))
    )
    return f"{len(got)} bytes instead of {len(expected)}, first difference at byte {first}"


@dataclass
class Tally:
    """
    What a soak round gave.

    @ivar calls: calls sent.
    @ivar replies: replies that matched their call byte for byte.
    @ivar failures: how many things went wrong (bad, unknown or duplicate
        replies, connections lost, calls left unanswered).
    @ivar reasons: the first few failures, described.
    @ivar record_bytes: bytes of call records sent, marks included.
    @ivar fragments: fragments sent.
    @ivar most_open: the most connections open at once.
    @ivar reached: how many records reached each of the edges of the
        server's limits and of record marking (L{EDGES}).
    """

    calls: int = 0
    replies: int = 0
    failures: int = 0
    reasons: list[str] = field(default_factory=list)
    record_bytes: int = 0
    fragments: int = 0
    most_open: int = 0
    reached: Counter[str] = field(default_factory=Counter)

    def count_fragments(self, sizes: Sequence[int]) -> None:
        """
        Count the fragments of a record sent, and the edges it reached.
        """
        self.fragments += len(sizes)
        run = longest = 0
        for size in sizes[:-1]:
            run = run + 1 if size == 0 else 0
            longest = max(longest, run)
        for edge, reached in (
            ("one fragment", len(sizes) == 1),
            ("1-byte fragments", 1 in sizes),
            (f"{MAX_EMPTY_RUN} empty fragments in a row", longest == MAX_EMPTY_RUN),
            ("an empty last fragment", sizes[-1] == 0),
            (f"{MAX_FRAGMENTS} fragments", len(sizes) == MAX_FRAGMENTS),
        ):
            self.reached[edge] += reached

    def fail(self, reason: str, count: int = 1) -> None:
        """
        Count C{count} failures and keep the first twenty reasons.
        """
        self.failures += count
        if len(self.reasons) < 20:
            self.reasons.append(reason)


class _Client:
    """
    One client connection: sends batches of ECHO calls, reads and checks
    the replies.
    """

    def __init__(
        self, name: str, sock: socket.socket, rng: random.Random, calls: int,
        max_record: int, tally: Tally, large_first: int = 0,
    ) -> None:
        self.name = name
        self.sock = sock
        self.rng = rng
        # Write sizes come from their own generator: how many writes a batch
        # takes depends on the sockets, and must not change what is sent.
        self.writes = random.Random(rng.getrandbits(64))
        self.left = calls
        self.max_record = max_record
        self.tally = tally
        self.large_first = large_first
        self.xid = rng.getrandbits(32)
        self.out = memoryview(b"")
        self.sent = 0
        self.write_style = "whole"
        self.overlap = False
        self.pending: dict[int, bytes] = {}
        self.inbox = bytearray()
        self.parts: list[bytes] = []
        self.size = 0
        self.open = True

    @property
    def done(self) -> bool:
        """
        Whether this connection has nothing more to send or to receive.
        """
        return not self.open or (self.left == 0 and not self.pending and self.sent == len(self.out))

    @property
    def wants_write(self) -> bool:
        """
        Whether the connection has something to write now.
        """
        return self.open and (self.sent < len(self.out) or self._may_start_batch())

    def _may_start_batch(self) -> bool:
        """
        Whether to send the next batch now: once the last is answered, or,
        for a batch drawn to overlap, as soon as it is written.
        """
        return self.left > 0 and (not self.pending or (self.overlap and len(self.pending) < 8))

    def _batch(self) -> None:
        """
        Make the next batch: 1 to 16 calls (mostly 1), written as one byte
        stream.
        """
        rng = self.rng
        count = min(self.left, rng.choice((1, 1, 1, 1, 2, 3, 4, 8, 16)))
        records = []
        total = 0
        while count and total < BATCH_BYTES:
            if self.large_first:
                self.large_first -= 1
                size = self.max_record - 44
            else:
                size = payload_size(rng, self.max_record)
            xid = self.xid = (self.xid + 1) & 0xFFFFFFFF
            argument = b"".join(encode_opaque(rng.randbytes(size)))
            message = encode_call_header(CallHeader(xid, ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO)) + argument
            record, sizes = fragment(rng, message)
            self.tally.count_fragments(sizes)
            self.pending[xid] = expected_reply(xid, argument)
            records.append(record)
            total += len(record)
            count -= 1
            self.left -= 1
            self.tally.calls += 1
            self.tally.record_bytes += len(record)
        self.out = memoryview(b"".join(records))
        self.sent = 0
        self.overlap = rng.random() < 0.3
        if total <= 2048 and rng.random() < 0.3:
            self.write_style = "tiny"
        else:
            self.write_style = rng.choice(("whole", "whole", "random", "small"))

    def write(self) -> None:
        """
        Write some of the batch: one C{send} of a size the batch's style
        picks (everything, a random part, up to 1460 bytes, or 1 to 7 bytes).
        """
        if self.sent == len(self.out):
            if not self._may_start_batch():
                return
            self._batch()
        left = len(self.out) - self.sent
        style = self.write_style
        if style == "whole":
            size = left
        elif style == "random":
            size = self.writes.randint(1, left)
        elif style == "small":
            size = self.writes.randint(1, 1460)
        else:
            size = self.writes.randint(1, 7)
        try:
            self.sent += self.sock.send(self.out[self.sent : self.sent + size])
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            self.lost(f"send failed: {e}")

    def read(self) -> None:
        """
        Read what the server sent and check each whole reply.
        """
        try:
            data = self.sock.recv(1024 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.lost(f"recv failed: {e}")
            return
        if not data:
            self.lost("the server closed the connection")
            return
        self._received(data)

    def _received(self, data: bytes) -> None:
        """
        Parse the record marking of the replies ourselves, fragment by
        fragment, and check each whole record.
        """
        buf = self.inbox
        buf += data
        pos = 0
        limit = self.max_record + 64
        while len(buf) - pos >= 4:
            mark = int.from_bytes(buf[pos : pos + 4], "big")
            length = mark & ~_LAST
            if self.size + length > limit:
                self.lost(f"a reply's record mark announces {self.size + length} bytes")
                return
            if len(buf) - pos - 4 < length:
                break
            self.parts.append(bytes(buf[pos + 4 : pos + 4 + length]))
            self.size += length
            pos += 4 + length
            if mark & _LAST:
                record = b"".join(self.parts)
                self.parts = []
                self.size = 0
                self.check(record)
        del buf[:pos]

    def check(self, record: bytes) -> None:
        """
        Check one reply: it must answer a call of ours still waiting, and be
        exactly the reply that call is owed.
        """
        if len(record) < 4:
            self.tally.fail(f"{self.name}: a reply of {len(record)} bytes")
            return
        xid = int.from_bytes(record[:4], "big")
        expected = self.pending.pop(xid, None)
        if expected is None:
            self.tally.fail(f"{self.name}: a reply to xid {xid:#010x}, not awaited")
        elif record != expected:
            self.tally.fail(f"{self.name}: xid {xid:#010x}: {describe_mismatch(record, expected)}")
        else:
            self.tally.replies += 1

    def lost(self, reason: str) -> None:
        """
        The connection failed: the calls still waiting count as lost.
        """
        if not self.open:
            return
        self.open = False
        unanswered = len(self.pending) + self.left
        self.tally.fail(f"{self.name}: {reason}, {unanswered} calls unanswered", max(unanswered, 1))
        self.pending.clear()
        self.left = 0


def connect(sock: socket.socket, address: object, deadline: float) -> None:
    """
    Connect C{sock} to C{address}, then make it non-blocking.

    A UNIX socket whose listener's backlog is full refuses at once
    (C{EAGAIN}) rather than waiting, as a TCP one does: a burst of
    connections is the normal case here, so try again until C{deadline}.
    """
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            sock.connect(address)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    sock.setblocking(False)


def run_clients(
    server: ServerProcess,
    *,
    connections: int,
    calls: int,
    seed: int,
    timeout: float,
    max_record: int = MAX_RECORD,
    large_first: int = 0,
) -> Tally:
    """
    Open C{connections} connections at once (every other one on the UNIX
    socket), make C{calls} ECHO calls over them in all, check every reply,
    and close them.

    @param large_first: calls of the largest size each connection makes
        first (in one pipelined batch if the batch draws that many).
    @param timeout: seconds the whole round may take; what is still
        unanswered then counts as failed.
    """
    tally = Tally()
    master = random.Random(seed)
    host, port = server.host_port("tcp")
    clients: list[_Client] = []
    selector = selectors.DefaultSelector()
    deadline = time.monotonic() + timeout
    writing: dict[_Client, bool] = {}
    active = 0

    def open_one(i: int) -> None:
        if i % 2:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: object = server.addresses["unix"]
            name = f"unix#{i}"
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            address = (host, port)
            name = f"tcp#{i}"
        try:
            connect(sock, address, deadline)
        except BaseException:
            sock.close()
            raise
        share = calls // connections + (1 if i < calls % connections else 0)
        client = _Client(
            name, sock, random.Random(master.getrandbits(64)), share, max_record, tally,
            large_first,
        )
        clients.append(client)
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        writing[client] = True

    try:
        # Connections open a few at a time while the first ones already
        # call, so that none waits long for its first record (a server may
        # close such a connection early).
        while active or len(clients) < connections:
            if time.monotonic() > deadline:
                for client in clients:
                    if not client.done:
                        client.lost(f"not done within {timeout:g} s")
                if len(clients) < connections:
                    tally.fail(f"{connections - len(clients)} connections never opened")
                break
            for i in range(len(clients), min(len(clients) + 16, connections)):
                open_one(i)
                active += 1
            tally.most_open = max(tally.most_open, active)
            for key, events in selector.select(0.5 if len(clients) == connections else 0):
                client = key.data
                if events & selectors.EVENT_READ:
                    client.read()
                if client.open and events & selectors.EVENT_WRITE:
                    client.write()
                if client.done:
                    selector.unregister(client.sock)
                    client.sock.close()
                    active -= 1
                elif client.wants_write != writing[client]:
                    writing[client] = client.wants_write
                    selector.modify(
                        client.sock,
                        selectors.EVENT_READ | (selectors.EVENT_WRITE if writing[client] else 0),
                        client,
                    )
    finally:
        selector.close()
        for client in clients:
            client.sock.close()
    return tally


def null_call(server: ServerProcess, timeout: float = 10.0) -> bytes:
    """
    Make one NULL call on a new TCP connection; return its reply record.
    """
    xid = 0x5A5A0001
    call = encode_call_header(CallHeader(xid, ECHO_PROGRAM, ECHO_VERSION, PROC_NULL))
    with socket.create_connection(server.host_port("tcp"), timeout=timeout) as sock:
        sock.sendall((len(call) | _LAST).to_bytes(4, "big") + call)
        data = b""
        record = b""
        while True:
            while len(data) < 4:
                more = sock.recv(4096)
                if not more:
                    return record + b"<EOF>"
                data += more
            mark = int.from_bytes(data[:4], "big")
            while len(data) < 4 + (mark & ~_LAST):
                more = sock.recv(4096)
                if not more:
                    return record + b"<EOF>"
                data += more
            record += data[4 : 4 + (mark & ~_LAST)]
            data = data[4 + (mark & ~_LAST) :]
            if mark & _LAST:
                return record


def resident_memory(pid: int) -> tuple[int, int]:
    """
    The resident memory of process C{pid} and its peak, in bytes
    (C{VmRSS}, C{VmHWM} in C{/proc/PID/status}).
    """
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


@dataclass
class SoakResult:
    """
    What L{SoakTests.soak} measured.

    @ivar warmup: the warm-up round.
    @ivar soak: the soak round.
    @ivar rss: the server's resident memory after the warm-up and after the
        soak, and its peak.
    @ivar null_reply: the reply to the NULL call made after the soak.
    @ivar elapsed: seconds the soak round took.
    """

    warmup: Tally
    soak: Tally
    rss: tuple[int, int, int]
    null_reply: bytes
    elapsed: float

    def summary(self, seed: int) -> str:
        """
        The figures, for failure messages and C{-s} output.
        """
        mb = 1024 * 1024
        before, after, peak = self.rss
        return (
            f"seed {seed}: {self.soak.calls} calls, {self.soak.replies} exact replies, "
            f"{self.soak.failures} failures on {self.soak.most_open} connections at once, "
            f"{self.soak.fragments} fragments, "
            f"{self.soak.record_bytes / mb:.0f} MB of records in {self.elapsed:.1f} s; "
            f"server RSS {before / mb:.1f} MB after warm-up, {after / mb:.1f} MB after "
            f"the soak (peak {peak / mb:.1f} MB); records with "
            + ", ".join(f"{edge}: {self.soak.reached[edge]}" for edge in EDGES)
        )


def unframe(stream: bytes) -> tuple[bytes, list[int]]:
    """
    Read one record of record marking from C{stream}, which must hold
    exactly that record.

    @return: the message, and the length of each fragment.
    """
    message = []
    sizes = []
    pos = 0
    while True:
        mark = int.from_bytes(stream[pos : pos + 4], "big")
        size = mark & ~_LAST
        message.append(stream[pos + 4 : pos + 4 + size])
        sizes.append(size)
        pos += 4 + size
        if mark & _LAST:
            assert pos == len(stream), (pos, len(stream))
            return b"".join(message), sizes


class FragmentTests(SynchronousTestCase):
    """
    The clients' own record marking, which the soak relies on to be right.
    """

    def test_fragment(self) -> None:
        """
        L{fragment} keeps the message intact and its fragments within the
        server's limits (L{MAX_FRAGMENTS}, runs of L{MAX_EMPTY_RUN} empty
        fragments) and says which lengths it used. (That the soak reaches
        those limits is checked on the soak itself.)
        """
        rng = random.Random(SEED)
        for _ in range(500):
            message = rng.randbytes(payload_size(rng, MAX_RECORD) + 44)
            record, sizes = fragment(rng, message)
            self.assertEqual(unframe(record), (message, sizes))
            self.assertLessEqual(len(sizes), MAX_FRAGMENTS)
            self.assertLessEqual(len(message), MAX_RECORD)
            run = 0
            for size in sizes[:-1]:
                run = run + 1 if size == 0 else 0
                self.assertLessEqual(run, MAX_EMPTY_RUN)


class SoakTests(SynchronousTestCase):
    """
    C{rpctransport serve} answers every call of many concurrent, randomly
    fragmented and segmented connections exactly once and exactly right, and
    its memory does not grow with the number of calls served.
    """

    def setUp(self) -> None:
        if not Path("/proc/self/status").exists():
            raise SkipTest("measuring the server's memory needs /proc")

    def start(self, *options: str) -> ServerProcess:
        """
        Start C{rpctransport serve} on loopback TCP and a UNIX socket, with
        C{options}.
        """
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        path = os.path.join(directory, "s.sock")
        return start_server(
            self,
            rpctransport_command("serve", "--tcp", "127.0.0.1:0", "--unix", path, *options),
            ["tcp", "unix"],
            env=rpctransport_env(),
        )

    def soak(
        self, server: ServerProcess, connections: int, calls: int, warmup_calls: int,
        timeout: float,
    ) -> SoakResult:
        """
        Warm up (every connection pipelining largest records first), measure
        the server's memory, soak, measure again, then make a NULL call.
        """
        warmup = run_clients(
            server, connections=connections, calls=warmup_calls, seed=SEED - 1,
            timeout=timeout, large_first=4,
        )
        self.assertEqual(null_call(server), expected_reply(0x5A5A0001, b""), server.describe())
        before, _ = resident_memory(server.process.pid)
        started = time.monotonic()
        tally = run_clients(
            server, connections=connections, calls=calls, seed=SEED, timeout=timeout
        )
        elapsed = time.monotonic() - started
        reply = null_call(server)
        after, peak = resident_memory(server.process.pid)
        return SoakResult(warmup, tally, (before, after, peak), reply, elapsed)

    def assertSoaked(self, result: SoakResult, connections: int, calls: int) -> None:
        """
        Fail unless every call of both rounds got its exact reply, all
        C{connections} were open at once, the soak's records reached every
        one of L{EDGES}, the server's memory grew less than L{MEMORY_GROWTH}
        across the soak, and the NULL call after it succeeded.
        """
        summary = result.summary(SEED)
        print(summary)
        for tally in (result.warmup, result.soak):
            self.assertEqual(
                (tally.failures, tally.replies), (0, tally.calls),
                "\n".join([summary, *tally.reasons]),
            )
        self.assertEqual(result.soak.calls, calls)
        self.assertEqual(result.soak.most_open, connections, "not all connections at once")
        self.assertNotIn(0, [result.soak.reached[edge] for edge in EDGES], result.soak.reached)
        before, after, _ = result.rss
        self.assertLess(after - before, MEMORY_GROWTH, summary)
        self.assertEqual(result.null_reply, expected_reply(0x5A5A0001, b""), summary)

    def test_short(self) -> None:
        """
        32 connections at once, half TCP and half UNIX, make 3,000 ECHO
        calls of up to 256 KiB in random fragments (tiny ones, empty ones up
        to the server's limits) and random writes, some pipelined: each gets
        exactly one reply, identical byte for byte to the one it is owed;
        the server's memory grows less than L{MEMORY_GROWTH} from the end of
        a warm-up round to the end, and it still answers a NULL call.
        """
        server = self.start()
        self.assertSoaked(self.soak(server, 32, 3000, 200, timeout=60), 32, 3000)

    @pytest.mark.slow
    def test_full(self) -> None:
        """
        The same with 256 connections at once and 100,000 calls, within
        five minutes: zero loss, every reply exact, memory bounded.
        """
        server = self.start()
        self.assertSoaked(self.soak(server, 256, 100_000, 2000, timeout=300), 256, 100_000)

    def test_checker_fails(self) -> None:
        """
        The checks can fail: against a server that refuses records over
        1000 bytes, the calls over it get GARBAGE_ARGS, and the round
        reports them by xid and accept status.
        """
        server = self.start("--max-record-size", "1000")
        tally = run_clients(server, connections=4, calls=200, seed=SEED, timeout=60)
        self.assertGreater(tally.failures, 0)
        self.assertLess(tally.replies, tally.calls)
        self.assertTrue(
            any("accept_stat GARBAGE_ARGS" in reason for reason in tally.reasons), tally.reasons
        )
