# -*- test-case-name: rpctransport.test.test_demo -*-
"""
The demo: a record echo server on loopback TCP and a UNIX socket, and a
client that round-trips a few records through each and says what happened.

It needs nothing but Python, Twisted and a loopback interface.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks

from ..adapters.stream import StreamController
from ..sansio.types import END_OF_FILE, Accepted
from .stream import connect_stream, listen_stream

__all__ = ["DEMO_SIZES", "echo_records", "run_demo"]

DEMO_SIZES = (0, 4, 1000, 65536, 1024 * 1024)
"""Record sizes the demo sends: empty, an xid, small, 64 KiB, 1 MiB."""

_DEMO_FRAGMENT = 64 * 1024
"""The client splits records into 64 KiB fragments, as libtirpc would."""


@inlineCallbacks
def echo_records(controller: StreamController) -> Any:
    """
    Read records and write each back until the peer closes, then let go.
    """
    try:
        while True:
            result = yield controller.start_reading()
            if result is END_OF_FILE:
                break
            record, _peer = result
            if isinstance(record, Accepted):
                yield controller.start_writing(record.message)
    except Exception:
        pass
    finally:
        controller.inactivate()


def _pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


@inlineCallbacks
def _round_trips(endpoint: str, reactor: Any) -> Any:
    client = yield connect_stream(endpoint, reactor=reactor, max_fragment_size=_DEMO_FRAGMENT)
    rows = []
    try:
        for size in DEMO_SIZES:
            message = _pattern(size)
            started = time.perf_counter()
            reading = client.start_reading()
            yield client.start_writing(message)
            record, _peer = yield reading
            elapsed = time.perf_counter() - started
            ok = isinstance(record, Accepted) and record.message == message
            rows.append((size, ok, elapsed))
        yield client.start_shutting_down()
    finally:
        client.inactivate()
    return rows


@inlineCallbacks
def run_demo(reactor: Any, write: Callable[[str], object] = print) -> Any:
    """
    Run the demo on C{reactor}; return C{True} when every round trip came
    back intact.
    """
    ports = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="rpctransport-demo-") as directory:
        path = os.path.join(directory, "echo.sock")
        tcp = yield listen_stream("tcp:0:interface=127.0.0.1", echo_records, reactor=reactor)
        ports.append(tcp)
        unix = yield listen_stream(f"unix:{path}", echo_records, reactor=reactor)
        ports.append(unix)
        tcp_port = tcp.getHost().port
        targets = [
            ("tcp", f"127.0.0.1:{tcp_port}", f"tcp:host=127.0.0.1:port={tcp_port}"),
            ("unix", path, f"unix:path={path}"),
        ]
        write(f"{'transport':<10} {'address':<48} {'record':>9} {'result':<7} {'ms':>8}")
        try:
            for kind, address, endpoint in targets:
                rows = yield _round_trips(endpoint, reactor)
                for size, good, elapsed in rows:
                    ok = ok and good
                    result = "ok" if good else "WRONG"
                    write(
                        f"{kind:<10} {address:<48} {size:>9} {result:<7} "
                        f"{elapsed * 1000:>8.2f}"
                    )
        finally:
            for port in ports:
                yield port.stopListening()
    write("all records came back intact" if ok else "some records came back wrong")
    return ok


def main(reactor: Any) -> Deferred[None]:
    """
    The demo as a C{task.react} main; exits 1 when a round trip failed.
    """
    d: Deferred[Any] = run_demo(reactor)

    def done(ok: bool) -> None:
        if not ok:
            raise SystemExit(1)

    return d.addCallback(done)
