# -*- test-case-name: rpctransport.test.test_bench -*-
"""
The benchmark's byte sources, run as a script (C{python -I _sender.py ...}),
standard library only: it imports neither Twisted nor C{rpctransport}, so
that it starts in a few milliseconds and sends at the speed of the kernel.

  - C{stream PORT --size S --count N [--fragment F] [--framing rm|int32]}:
    connect to 127.0.0.1:PORT, send C{N} records of C{S} bytes, record
    marked (in fragments of C{F} bytes) or with Twisted's 32-bit length
    prefix, half-close, and wait for the receiver to close;
  - C{idle PORT --connections N [--server-pid PID]}: open C{N} connections
    and keep them open and silent; print C{connected N} and wait for
    SIGTERM. With the server's pid, never run more than L{AHEAD}
    connections ahead of what it has accepted (counted in
    C{/proc/PID/fd}): past its listen backlog, the kernel drops the
    handshake and a connect waits a second for the retransmission.

Exit status 0 when all went as asked, 1 otherwise (the reason on standard
error).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import struct
import sys
import time

_MARK = struct.Struct(">I")
_LAST = 0x80000000

UNIT = 1 << 20
"""Small records are sent in batches of at least this many bytes."""

AHEAD = 32
"""
Connections opened and not yet accepted, at most: under the listen backlog
of a Twisted server (50 by default).
"""


def record(size: int, fragment: int | None, framing: str) -> bytes:
    """
    One record of C{size} zero bytes as it goes on the wire.
    """
    if framing == "int32":
        return _MARK.pack(size) + bytes(size)
    if not fragment or size <= fragment:
        return _MARK.pack(_LAST | size) + bytes(size)
    pieces = []
    left = size
    while left:
        take = min(fragment, left)
        left -= take
        pieces.append(_MARK.pack(take | (0 if left else _LAST)))
        pieces.append(bytes(take))
    return b"".join(pieces)


def _large(sock: socket.socket, args: argparse.Namespace) -> None:
    """
    Send records larger than L{UNIT} from blocks of at most L{UNIT} bytes
    built once, which stay in the CPU's cache: the receiver, not the sender's
    memory, must be what limits the rate. A record goes out as whole
    non-last fragments, several per block, then its last fragment.
    """
    zeros = memoryview(bytes(UNIT))
    if args.framing == "int32":
        step, head = args.size, _MARK.pack(args.size)
    else:
        step = min(args.fragment or args.size, args.size)
        head = _MARK.pack(_LAST | (args.size - step * (-(-args.size // step) - 1)))
    full = -(-args.size // step) - 1
    last = args.size - step * full
    per_block = max(1, UNIT // (4 + step)) if step <= UNIT else 0
    block = (_MARK.pack(step) + bytes(step)) * per_block if per_block else b""
    for _ in range(args.count):
        if per_block:
            blocks, rest = divmod(full, per_block)
            for _ in range(blocks):
                sock.sendall(block)
            if rest:
                sock.sendall(memoryview(block)[: rest * (4 + step)])
        else:
            for _ in range(full):
                _send_fragment(sock, _MARK.pack(step), step, zeros)
        _send_fragment(sock, head, last, zeros)


def _send_fragment(sock: socket.socket, mark: bytes, length: int, zeros: memoryview) -> None:
    # The mark and the payload in one system call: a 4-byte write of its own
    # would go out as a segment of its own.
    take = min(length, UNIT)
    _send_both(sock, mark, zeros[:take])
    length -= take
    while length:
        take = min(length, UNIT)
        sock.sendall(zeros[:take])
        length -= take


def _send_both(sock: socket.socket, head: bytes, body: memoryview) -> None:
    sent = sock.sendmsg([head, body])
    if sent < len(head):
        sock.sendall(head[sent:])
        sent = len(head)
    if sent - len(head) < len(body):
        sock.sendall(body[sent - len(head) :])


def stream(args: argparse.Namespace) -> int:
    with socket.create_connection(("127.0.0.1", args.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if args.size > UNIT:
            _large(sock, args)
        else:
            one = record(args.size, args.fragment, args.framing)
            per_unit = max(1, UNIT // len(one))
            unit = one * per_unit
            units, rest = divmod(args.count, per_unit)
            for _ in range(units):
                sock.sendall(unit)
            if rest:
                sock.sendall(one * rest)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(600)
        while sock.recv(65536):
            pass
    return 0


def raise_nofile() -> int:
    """
    Raise the soft limit on open files to the hard limit; return it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def idle(args: argparse.Namespace) -> int:
    limit = raise_nofile()
    if args.connections + 16 > limit:
        print(
            f"_sender: {args.connections} connections need more open files than the "
            f"limit of {limit}",
            file=sys.stderr,
        )
        return 1
    stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    fds = f"/proc/{args.server_pid}/fd" if args.server_pid else None
    base = len(os.listdir(fds)) if fds else 0
    held = []
    for i in range(args.connections):
        if fds and i % (AHEAD // 2) == 0:
            deadline = time.monotonic() + 60
            while i - (len(os.listdir(fds)) - base) > AHEAD // 2:
                if time.monotonic() > deadline:
                    print("_sender: the server stopped accepting", file=sys.stderr)
                    return 1
                time.sleep(0.001)
        held.append(socket.create_connection(("127.0.0.1", args.port)))
    print(f"connected {len(held)}", flush=True)
    while not stop:
        time.sleep(0.2)
    for sock in held:
        sock.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="_sender.py")
    modes = parser.add_subparsers(dest="mode", required=True)
    send = modes.add_parser("stream")
    send.add_argument("port", type=int)
    send.add_argument("--size", type=int, required=True)
    send.add_argument("--count", type=int, required=True)
    send.add_argument("--fragment", type=int, default=None)
    send.add_argument("--framing", choices=("rm", "int32"), default="rm")
    hold = modes.add_parser("idle")
    hold.add_argument("port", type=int)
    hold.add_argument("--connections", type=int, required=True)
    hold.add_argument("--server-pid", type=int, default=None)
    args = parser.parse_args()
    try:
        return stream(args) if args.mode == "stream" else idle(args)
    except OSError as e:
        print(f"_sender: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
