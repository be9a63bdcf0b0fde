# -*- test-case-name: rpctransport.test.test_bench -*-
"""
The benchmark's cases (six from issue 6, TLS from issue 12), each measured against its references
in the same run:

  1. L{receive}: receive throughput of whole records, stream controller
     C{start_reading} loop, against a bare Twisted C{Protocol} (the ceiling)
     and Twisted's C{Int32StringReceiver};
  2. L{rate}: request/response rate over one TCP connection: C{rpctransport
     call} and the libtirpc client against C{rpctransport serve} and the
     libtirpc server; an echo with the controller API on both ends against
     C{Int32StringReceiver} on both ends;
  3. L{bulk}: bulk ECHO calls (MB/s), libtirpc client against both servers;
  4. L{udp}: NULL calls over UDP, libtirpc client against both servers;
  5. L{memory}: resident memory per idle connection, and the peak extra
     memory while one 16 MiB record is received;
  6. L{scaling}: one C{serve} process against C{serve --workers 2} and
     against HAProxy in front of two C{serve} processes, several pipelined
     clients;
  7. L{tls <rpctransport.bench.tlscase.tls>}: ECHO calls over implicit TLS
     and STARTTLS against the same server in plaintext.

Each returns a L{Case}; L{CASES} lists them in order.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._tirpc.process import Finished, ServerProcess
from .haproxy import HAProxyFailed, balancer_config, haproxy_missing, start_haproxy
from .report import Case, Comparison, Measurement, Target, Variant
from .tlscase import tls
from .runner import (
    BenchError,
    Lab,
    Sized,
    Skip,
    open_files,
    parse_call,
    parse_tirpc_client,
    proc_status,
    repeat,
    wait_for,
)

__all__ = ["CASES", "bulk", "memory", "rate", "receive", "scaling", "udp", "wire_size"]

KiB = 1024
MiB = 1024 * 1024

PROGRAM = "536871065"
VERSION = "1"
COUNT_CAP = "100000000"
"""The C client's COUNT when its runs are sized by time."""

BARE = "bare Protocol"
INT32 = "Int32StringReceiver"
CONTROLLER = "controller"
STREAMING = "controller, streaming"
SERVE = "rpctransport serve"
TIRPC_SERVER = "libtirpc server"


def wire_size(size: int, fragment: int | None) -> int:
    """
    The bytes on the wire of one record of C{size} bytes sent in fragments
    of C{fragment} bytes (L{None}: one fragment): payload and record marks.
    """
    fragments = 1 if not fragment or size <= fragment else math.ceil(size / fragment)
    return size + 4 * fragments


def _size_name(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    if size >= KiB and size % KiB == 0:
        return f"{size // KiB} KiB"
    return f"{size} B"


def _slug(size: int) -> str:
    return _size_name(size).replace(" ", "")


# ---------------------------------------------------------------------------
# 1. Receive throughput
# ---------------------------------------------------------------------------

RECEIVE_CONFIGS: tuple[tuple[int, int | None], ...] = (
    (64, None),
    (KiB, None),
    (64 * KiB, None),
    (MiB, None),
    (16 * MiB, None),
    (MiB, 64 * KiB),
    (16 * MiB, 64 * KiB),
)
"""(record size, fragment size or L{None} for one fragment) of case 1."""

RECEIVE_TARGETS: dict[tuple[int, int | None], list[tuple[str, str, Target]]] = {
    (64, None): [
        (STREAMING, INT32, Target(">=", 1.2)),
        (CONTROLLER, INT32, Target(">=", 0.3)),
    ],
    (KiB, None): [(STREAMING, INT32, Target(">=", 1.0))],
    (64 * KiB, None): [(CONTROLLER, BARE, Target(">=", 0.7))],
    (MiB, None): [(CONTROLLER, BARE, Target(">=", 0.7)), (CONTROLLER, INT32, Target(">=", 5.0))],
    (16 * MiB, None): [
        (CONTROLLER, BARE, Target(">=", 0.45)),
        (CONTROLLER, INT32, Target(">=", 25.0)),
    ],
    (MiB, 64 * KiB): [(CONTROLLER, BARE, Target(">=", 0.6))],
}
"""The targets of case 1: which variant, against which reference, how much."""

_RECEIVE_VARIANTS = {
    "bare": BARE,
    "int32": INT32,
    "controller": CONTROLLER,
    "stream": STREAMING,
}
_MEASURED = ("controller", "stream")

DEFERRED_FLOOR = "Deferred alone (bound)"
"""
The variant of the 64 B measurement that only makes and fires one Deferred
per record, in process: the most records/s any one-Deferred-per-record API
can reach on this machine (see L{rpctransport.bench.peer.deferred_floor}).
"""


def receive(lab: Lab) -> Case:
    """
    Case 1: a sender process streams records as fast as the kernel takes
    them; a receiver process times them from C{connectionMade} to the end of
    input. The receiver is the stream controller's C{start_reading} loop
    (one Deferred per record), its C{receive_records} (a call per record),
    a bare C{Protocol} that only counts bytes (the ceiling for anything on
    Twisted), or C{Int32StringReceiver} (same sizes, its C{MAX_LENGTH}
    raised; it has no fragments).
    """
    case = Case(
        "receive",
        1,
        "Receive throughput of whole records",
        notes=[
            "controller: StreamController, start_reading loop, one Deferred per record",
            "controller, streaming: StreamController.receive_records, a call per record",
            "bare Protocol: dataReceived only counts bytes (the ceiling on Twisted)",
            "Deferred alone: one Deferred made, hooked and fired per record, in process,"
            " no I/O: the bound of any API with one Deferred per record",
        ],
    )
    for size, fragment in RECEIVE_CONFIGS:
        case.measurements.append(_receive_measurement(lab, size, fragment))
    return case


def _receive_measurement(lab: Lab, size: int, fragment: int | None) -> Measurement:
    """
    Case 1 for records of C{size} bytes (in fragments of C{fragment} bytes
    if given): every receiver, then the comparisons.
    """
    kinds = ["bare", "controller", "stream"] + (["int32"] if fragment is None else [])
    small = size < 64 * KiB
    title = f"{_size_name(size)} records" + (
        f", {_size_name(fragment)} frags" if fragment else ""
    )
    measurement = Measurement(
        f"receive/{_slug(size)}" + (f"/frag{_slug(fragment)}" if fragment else ""),
        title,
        "records/s" if small else "MB/s",
        params={"size": size, "fragment": fragment},
    )
    settings = lab.settings
    servers = {kind: lab.spawn(lab.peer("receive", "--variant", kind)) for kind in kinds}
    try:
        for server in servers.values():
            lab.ready(server)
        runs: dict[str, Callable[[], float]] = {}
        for kind in ("controller", "stream", "bare", "int32"):
            if kind not in servers:
                continue
            name = _RECEIVE_VARIANTS[kind]
            measurement.variants.append(
                Variant(name, "measured" if kind in _MEASURED else "reference")
            )
            runs[name] = Sized(
                _receive_run(lab, servers[kind], kind, size, fragment, small),
                count=max(1, (2 * MiB if settings.quick else 8 * MiB) // size),
                run_time=settings.run_time,
                most=max(1, (4 << 30) // size),
            )
        if size == 64 and fragment is None:
            measurement.variants.append(Variant(DEFERRED_FLOOR, "reference"))
            runs[DEFERRED_FLOOR] = Sized(
                _deferred_floor_run(lab), count=100_000, run_time=settings.run_time
            )
        repeat(settings, measurement, runs)
    finally:
        for server in servers.values():
            lab.stop(server)
    _receive_comparisons(measurement, size, fragment)
    return measurement


def _receive_comparisons(measurement: Measurement, size: int, fragment: int | None) -> None:
    """
    Each way of reading against its targets (L{RECEIVE_TARGETS}) and
    against every reference measured; the Deferred floor against
    C{Int32StringReceiver}.
    """
    if measurement.variant(DEFERRED_FLOOR):
        measurement.comparisons.append(Comparison(DEFERRED_FLOOR, INT32))
    for variant, reference, target in RECEIVE_TARGETS.get((size, fragment), []):
        measurement.comparisons.append(Comparison(variant, reference, target))
    for variant in (STREAMING, CONTROLLER):
        for reference in (BARE, INT32):
            if measurement.variant(reference) and not any(
                c.variant == variant and c.reference == reference
                for c in measurement.comparisons
            ):
                measurement.comparisons.append(Comparison(variant, reference))
    order = [STREAMING, CONTROLLER, DEFERRED_FLOOR]
    measurement.comparisons.sort(
        key=lambda c: (order.index(c.variant) if c.variant in order else 9, c.reference != BARE)
    )


def _deferred_floor_run(lab: Lab) -> Callable[[int], tuple[float, float]]:
    def run(count: int) -> tuple[float, float]:
        result = _json_line(lab.run(lab.peer("deferred-floor", "--count", str(count))).stdout)
        if result.get("records") != count:
            raise BenchError(f"deferred floor: {result}")
        return float(result["elapsed"]), count / float(result["elapsed"])

    return run


def _stream_sender_args(
    port: str, kind: str, size: int, fragment: int | None, count: int
) -> list[str]:
    """
    The sender's arguments for C{count} records of C{size} bytes to the
    receiver of C{kind} on C{port}, in fragments of C{fragment} bytes if
    given, framed as that receiver reads them.
    """
    argv = ["stream", port, "--size", str(size), "--count", str(count)]
    if fragment:
        argv += ["--fragment", str(fragment)]
    if kind == "int32":
        argv += ["--framing", "int32"]
    return argv


def _receive_run(
    lab: Lab, server: Any, kind: str, size: int, fragment: int | None, small: bool
) -> Callable[[int], tuple[float, float]]:
    port = str(server.port("tcp"))

    def run(count: int) -> tuple[float, float]:
        lab.run(lab.sender(*_stream_sender_args(port, kind, size, fragment, count)))
        result = lab.result(server)
        if kind == "bare":
            expected = count * wire_size(size, fragment)
            if result["bytes"] != expected:
                raise BenchError(f"{kind}: {result['bytes']} bytes received, {expected} sent")
        elif result["records"] != count:
            raise BenchError(f"{kind}: {result['records']} records received, {count} sent")
        elapsed = float(result["elapsed"])
        figure = count / elapsed if small else count * size / elapsed / 1e6
        return elapsed, figure

    return run


# ---------------------------------------------------------------------------
# Servers of the echo program, for cases 2, 3 and 4
# ---------------------------------------------------------------------------


class _EchoServers:
    """
    C{rpctransport serve} and, where it can be built, the libtirpc server,
    both on loopback TCP and UDP.
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.tirpc_reason: str | None = None
        self.servers: dict[str, Any] = {}
        self.servers[SERVE] = lab.spawn(
            lab.rpctransport("serve", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0")
        )
        try:
            self.servers[TIRPC_SERVER] = lab.spawn([str(lab.tirpc("tirpc_server"))])
        except Skip as e:
            self.tirpc_reason = str(e)
        for server in self.servers.values():
            lab.ready(server, ("tcp", "udp"))
            lab.pin_server(server)

    def address(self, name: str, kind: str) -> tuple[str, int]:
        """
        The host and port of server C{name}'s C{kind} listener.

        @raise Skip: if that server is not there.
        """
        if name not in self.servers:
            raise Skip(self.tirpc_reason or f"{name} is not running")
        host, port = self.servers[name].host_port(kind)
        return str(host), int(port)

    def close(self) -> None:
        for server in self.servers.values():
            self.lab.stop(server)


def _tirpc_client_run(
    lab: Lab,
    servers: _EchoServers,
    name: str,
    kind: str,
    proc: str,
    size: int,
    figure: str,
    pipeline: int | None = None,
    duration: float | None = None,
) -> Callable[[], float]:
    """
    One run of the C client against server C{name}, sized by time; the
    figure is C{calls_per_s} or C{mb_per_s}.
    """

    def run() -> float:
        client = lab.tirpc("tirpc_client")
        host, port = servers.address(name, kind)
        argv = [str(client), "--duration", str(duration or lab.settings.duration)]
        if pipeline:
            argv += ["--pipeline", str(pipeline)]
        argv += [kind, host, str(port), PROGRAM, VERSION, proc, str(size), COUNT_CAP]
        with lab.client_cpu():
            finished = lab.run(argv)
        return parse_tirpc_client(finished)[figure]

    return run


def _server_pair(measurement: Measurement) -> None:
    measurement.variants += [Variant(SERVE), Variant(TIRPC_SERVER, "reference")]


def _tirpc_client_vs_servers(
    lab: Lab,
    servers: _EchoServers,
    measurement: Measurement,
    target: Target | None,
    kind: str,
    proc: str,
    size: int,
    figure: str,
    pipeline: int | None = None,
) -> Measurement:
    """
    Measure the libtirpc client against C{serve} and against the libtirpc
    server (L{_tirpc_client_run}'s arguments), and compare the two with
    C{target}.
    """
    _server_pair(measurement)
    runs = {
        name: _tirpc_client_run(lab, servers, name, kind, proc, size, figure, pipeline=pipeline)
        for name in (SERVE, TIRPC_SERVER)
    }
    repeat(lab.settings, measurement, runs)
    measurement.comparisons.append(Comparison(SERVE, TIRPC_SERVER, target))
    return measurement


def _pinning_note(lab: Lab, case: Case) -> None:
    if lab.pinning:
        case.notes.append(
            f"servers pinned to CPU {lab.cpus[0]}, clients to CPU {lab.cpus[1]} "
            "(sharing a core, a ping-pong skips the cross-core wake-up)"
        )
    else:
        case.notes.append("one CPU: servers and clients share it")


# ---------------------------------------------------------------------------
# 2. Request/response rate
# ---------------------------------------------------------------------------

RATE_SIZES = (64, KiB)
RATE_DEPTHS = (1, 100)


def rate(lab: Lab) -> Case:
    """
    Case 2: calls per second over one TCP connection, ECHO of 64 B and
    1 KiB arguments: C{rpctransport call} (1 and 100 calls in flight)
    against C{serve} and the libtirpc server; the libtirpc client (one call
    in flight: C{clnt_call} waits for each reply) against both; the C
    client's pipelined mode (calls encoded by hand, 100 in flight) against
    both. Then records echoed with the controller API on both ends (no RPC
    decoding) against C{Int32StringReceiver} on both ends.
    """
    settings = lab.settings
    case = Case(
        "rate",
        2,
        "Request/response rate over one TCP connection",
        notes=[
            "ECHO calls; size is the opaque argument's (the record adds a 40-byte call header)",
            "call: rpctransport call; tirpc client: libtirpc's clnt_call (one call in flight)",
            "pipelined: the C client's --pipeline mode, calls encoded by hand",
            "echo no RPC: records echoed, controller API (streaming, or one-shot) on both ends"
            " vs Int32StringReceiver",
        ],
    )
    _pinning_note(lab, case)
    servers = _EchoServers(lab)
    try:
        for depth in RATE_DEPTHS:
            for size in RATE_SIZES:
                measurement = Measurement(
                    f"rate/call/{_slug(size)}/x{depth}",
                    f"call, {_size_name(size)}, {depth} in flight",
                    "calls/s",
                    params={"client": "rpctransport call", "size": size, "in_flight": depth},
                )
                _server_pair(measurement)
                runs: dict[str, Callable[[], float]] = {
                    name: Sized(
                        _call_run(lab, servers, name, size, depth),
                        count=200 if depth == 1 else 1000,
                        run_time=max(settings.run_time, 0.1),
                    )
                    for name in (SERVE, TIRPC_SERVER)
                }
                repeat(settings, measurement, runs)
                measurement.comparisons.append(Comparison(SERVE, TIRPC_SERVER))
                case.measurements.append(measurement)
        for pipeline in (None, 100):
            for size in RATE_SIZES:
                case.measurements.append(_tirpc_client_rate(lab, servers, size, pipeline))
    finally:
        servers.close()
    case.measurements.append(_controller_echo(lab))
    return case


def _tirpc_client_rate(
    lab: Lab, servers: _EchoServers, size: int, pipeline: int | None
) -> Measurement:
    """
    The libtirpc client's rate against C{serve} and the libtirpc server:
    C{clnt_call}, one call in flight, or (with C{pipeline}) the C client's
    pipelined mode with that many in flight.
    """
    if pipeline is None:
        measurement = Measurement(
            f"rate/tirpc/{_slug(size)}/x1",
            f"tirpc client, {_size_name(size)}, 1 in flight",
            "calls/s",
            params={"client": "libtirpc clnt_call", "size": size, "in_flight": 1},
        )
        target: Target | None = Target(">=", 0.8)
    else:
        measurement = Measurement(
            f"rate/pipelined/{_slug(size)}/x{pipeline}",
            f"pipelined, {_size_name(size)}, {pipeline} in flight",
            "calls/s",
            params={"client": "tirpc_client --pipeline", "size": size, "in_flight": pipeline},
        )
        target = Target(">=", 0.5) if size == 64 else None
    return _tirpc_client_vs_servers(
        lab, servers, measurement, target, "tcp", "echo", size, "calls_per_s", pipeline
    )


def _call_run(
    lab: Lab, servers: _EchoServers, name: str, size: int, depth: int
) -> Callable[[int], tuple[float, float]]:
    def run(count: int) -> tuple[float, float]:
        host, port = servers.address(name, "tcp")
        argv = lab.rpctransport(
            "call", f"tcp:{host}:{port}", "--proc", "echo", "--size", str(size),
            "--count", str(count), "--concurrency", str(depth),
        )
        with lab.client_cpu():
            finished = lab.run(argv)
        summary = parse_call(finished)
        return summary["elapsed"], summary["calls"] / summary["elapsed"]

    return run


ECHO_SIZE = 64
ECHO_DEPTH = 100


def _controller_echo(lab: Lab) -> Measurement:
    """
    Records of 64 B echoed over one connection, 100 in flight, with the
    controller's streaming API on both ends, its one-shot API on both ends,
    and with C{Int32StringReceiver} on both.
    """
    measurement = Measurement(
        f"rate/echo/{_slug(ECHO_SIZE)}/x{ECHO_DEPTH}",
        f"echo no RPC, {_size_name(ECHO_SIZE)}, {ECHO_DEPTH} in flight",
        "records/s",
        params={"size": ECHO_SIZE, "in_flight": ECHO_DEPTH},
    )
    measurement.variants += [
        Variant(STREAMING),
        Variant(CONTROLLER),
        Variant(INT32, "reference"),
    ]
    kinds = ((STREAMING, "stream"), (CONTROLLER, "controller"), (INT32, "int32"))
    servers = {name: lab.spawn(lab.peer("echo-server", "--variant", kind)) for name, kind in kinds}
    try:
        for server in servers.values():
            lab.ready(server)
            lab.pin_server(server)
        runs: dict[str, Callable[[], float]] = {}
        for name, kind in kinds:
            runs[name] = Sized(
                _echo_run(lab, servers[name], kind),
                count=2000,
                run_time=max(lab.settings.run_time, 0.1),
            )
        repeat(lab.settings, measurement, runs)
    finally:
        for server in servers.values():
            lab.stop(server)
    measurement.comparisons.append(Comparison(STREAMING, INT32, Target(">=", 1.0)))
    measurement.comparisons.append(Comparison(CONTROLLER, INT32))
    return measurement


def _echo_run(lab: Lab, server: Any, kind: str) -> Callable[[int], tuple[float, float]]:
    port = str(server.port("tcp"))

    def run(count: int) -> tuple[float, float]:
        with lab.client_cpu():
            finished = lab.run(
                lab.peer(
                    "echo-client", "--variant", kind, "--port", port, "--size", str(ECHO_SIZE),
                    "--count", str(count), "--depth", str(ECHO_DEPTH),
                )
            )
        result = _json_line(finished.stdout)
        if result.get("records") != count:
            raise BenchError(f"echo client: {result}")
        return float(result["elapsed"]), count / float(result["elapsed"])

    return run


def _json_line(text: str) -> dict[str, Any]:
    for line in text.splitlines():
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            if "error" in result:
                raise BenchError(str(result["error"]))
            return result
    raise BenchError(f"no result in {text!r}")


# ---------------------------------------------------------------------------
# 3. Bulk echo, 4. UDP
# ---------------------------------------------------------------------------

BULK_SIZES = (64 * KiB, MiB)


def _needs_tirpc(lab: Lab, case: Case) -> bool:
    """
    Mark C{case} skipped, saying why, if the C client cannot be built.
    """
    try:
        lab.tirpc("tirpc_client")
    except Skip as e:
        case.skipped = str(e)
        return False
    return True


def bulk(lab: Lab) -> Case:
    """
    Case 3: ECHO of 64 KiB and 1 MiB, one call in flight, libtirpc client
    against C{rpctransport serve} and against the libtirpc server, in MB/s
    of argument echoed (each way).
    """
    case, servers = _with_tirpc(lab, Case("bulk", 3, "Bulk echo, libtirpc client, one call in flight"))
    if servers is None:
        return case
    try:
        for size in BULK_SIZES:
            measurement = Measurement(
                f"bulk/{_slug(size)}", f"ECHO {_size_name(size)}", "MB/s", params={"size": size}
            )
            target = Target(">=", 0.6) if size == MiB else None
            case.measurements.append(
                _tirpc_client_vs_servers(
                    lab, servers, measurement, target, "tcp", "echo", size, "mb_per_s"
                )
            )
    finally:
        servers.close()
    return case


def _with_tirpc(lab: Lab, case: Case) -> tuple[Case, _EchoServers | None]:
    """
    C{case} and the echo servers it compares, or no servers when libtirpc's
    peers cannot be built here (C{case} then says why).
    """
    if not _needs_tirpc(lab, case):
        return case, None
    _pinning_note(lab, case)
    return case, _EchoServers(lab)


def udp(lab: Lab) -> Case:
    """
    Case 4: NULL calls over UDP, one in flight, libtirpc client against
    C{rpctransport serve} and against the libtirpc server.
    """
    case, servers = _with_tirpc(lab, Case("udp", 4, "UDP NULL calls, libtirpc client, one call in flight"))
    if servers is None:
        return case
    try:
        measurement = Measurement("udp/null", "NULL over UDP", "calls/s")
        case.measurements.append(
            _tirpc_client_vs_servers(
                lab, servers, measurement, Target(">=", 0.8), "udp", "null", 0, "calls_per_s"
            )
        )
    finally:
        servers.close()
    return case


# ---------------------------------------------------------------------------
# 5. Memory
# ---------------------------------------------------------------------------

IDLE_LIMIT_KIB = 16.0
RECORD_PEAK_LIMIT = 2.0


def memory(lab: Lab) -> Case:
    """
    Case 5: resident memory per idle connection, C{rpctransport serve}
    holding N idle loopback connections from a client process (and a bare
    Twisted C{Protocol} server, for what Twisted itself costs); and the
    extra peak resident memory while one 16 MiB record is received by the
    stream controller (C{Int32StringReceiver} and the bare C{Protocol} for
    reference), each run in a fresh process.
    """
    settings = lab.settings
    n = settings.idle_connections
    case = Case(
        "memory",
        5,
        "Memory",
        notes=[
            f"idle: (VmRSS at {n} connections - VmRSS at {n // 10}) / {n - n // 10}, "
            "so that fixed costs do not count",
            "16 MiB: VmHWM after the record - VmRSS before it (VmHWM reset through "
            "/proc/self/clear_refs), a fresh receiver each run",
        ],
    )
    idle = Measurement(
        "memory/idle",
        f"{n:,} idle connections",
        "KiB/conn",
        params={"connections": n},
        higher_is_better=False,
    )
    idle.variants += [Variant(SERVE), Variant(BARE, "reference")]
    commands = {
        # serve's deadlines stay on (each connection's timer counts in its
        # memory), but the silent connections must outlive the measurement.
        SERVE: lab.rpctransport("serve", "--tcp", "127.0.0.1:0", "--first-record-timeout", "600"),
        BARE: lab.peer("receive", "--variant", "bare"),
    }
    repeat(
        settings,
        idle,
        {name: _idle_run(lab, argv, n) for name, argv in commands.items()},
        warmup=0,
    )
    idle.comparisons.append(
        Comparison(SERVE, "1 KiB", Target("<=", IDLE_LIMIT_KIB), reference_value=1.0)
    )
    case.measurements.append(idle)

    for fragment in (None, 64 * KiB):
        record = 16 * MiB
        measurement = Measurement(
            "memory/record16MiB" + (f"/frag{_slug(fragment)}" if fragment else ""),
            "one 16 MiB record" + (f", {_size_name(fragment)} frags" if fragment else ""),
            "MiB",
            params={"size": record, "fragment": fragment},
            higher_is_better=False,
        )
        kinds = ["controller", "bare"] + (["int32"] if fragment is None else [])
        for kind in kinds:
            name = _RECEIVE_VARIANTS[kind]
            measurement.variants.append(
                Variant(name, "measured" if kind == "controller" else "reference")
            )
        repeat(
            settings,
            measurement,
            {
                _RECEIVE_VARIANTS[kind]: _peak_run(lab, kind, record, fragment)
                for kind in kinds
            },
            warmup=0,
        )
        measurement.comparisons.append(
            Comparison(
                CONTROLLER,
                "record size",
                Target("<=", RECORD_PEAK_LIMIT),
                reference_value=record / MiB,
            )
        )
        case.measurements.append(measurement)
    return case


def _idle_run(lab: Lab, argv: list[str], n: int) -> Callable[[], float]:
    def run() -> float:
        server = lab.start(argv)
        holders = []
        try:
            pid = server.process.pid
            port = str(server.port("tcp"))
            base = open_files(pid)
            first = n // 10
            kib = []
            for count, total in ((first, first), (n - first, n)):
                holder = lab.spawn(
                    lab.sender("idle", port, "--connections", str(count), "--server-pid", str(pid))
                )
                holders.append(holder)
                try:
                    holder.wait_line(r"^connected ", 120)
                except Exception as e:
                    raise BenchError(f"the idle connections were not opened: {e}") from None
                wait_for(
                    lambda: open_files(pid) >= base + total,
                    120,
                    f"the server to accept {total} connections",
                )
                time.sleep(0.2)
                kib.append(proc_status(pid)["VmRSS"] / KiB)
            return (kib[1] - kib[0]) / (n - first)
        finally:
            lab.stop(server)
            for holder in holders:
                lab.stop(holder)

    return run


def _peak_run(lab: Lab, kind: str, size: int, fragment: int | None) -> Callable[[], float]:
    def run() -> float:
        server = lab.start(lab.peer("receive", "--variant", kind, "--memory"))
        try:
            port = str(server.port("tcp"))
            lab.run(lab.sender(*_stream_sender_args(port, kind, size, fragment, 1)))
            result = lab.result(server)
        finally:
            lab.stop(server)
        if not result.get("peak_reset"):
            raise Skip("the peak resident size cannot be reset here (/proc/self/clear_refs)")
        return float(result["hwm"] - result["rss_before"]) / MiB

    return run


# ---------------------------------------------------------------------------
# 6. Scaling across cores
# ---------------------------------------------------------------------------

SCALING_SIZE = 64
SCALING_DEPTH = 32
SCALING_TIRPC_DEPTH = 100
"""
Calls in flight per client when C{--workers 2} is set against the libtirpc
server (the issue's pipelined figure: 100 calls of 64 B).
"""
ONE_PROCESS = "one serve process"
WORKERS_2 = "serve --workers 2"
BEHIND_HAPROXY = "HAProxy, 2 serve processes"
CPU_BACKENDS = "2 serve processes behind HAProxy"
CPU_HAPROXY = "HAProxy itself"
CPU_CLIENTS = "C clients"
"""
What the CPU time per call is counted for, beside the one C{serve} process
and C{--workers 2}: the C{serve} processes behind HAProxy together,
HAProxy, and the C clients (in the runs against the one process).
"""
SCALING_BALANCE = "leastconn"
"""
HAProxy's balancing in the scaling case: the backend with the fewest
connections, which spreads long-lived connections evenly (the clients open
one each, all at once).
"""


def scaling(lab: Lab) -> Case:
    """
    Case 6: the same C client load against one C{rpctransport serve}
    process, against C{serve --workers 2}, and against HAProxy (C{mode tcp},
    C{leastconn}, no PROXY header) in front of two separate C{serve}
    processes: several C client processes at once, each on its own
    connection with pipelined ECHO calls of 64 B in flight; the figure is
    their calls per second together, and both ways of using two processes
    are compared with the one process. Then C{--workers 2} against the
    (single-threaded) libtirpc server under the same clients, 100 calls in
    flight each. Without C{haproxy} its variant is skipped, saying why.
    """
    settings = lab.settings
    clients = settings.scaling_clients
    case = Case(
        "scaling",
        6,
        "Scaling across cores",
        notes=[
            f"{clients} C pipelined clients at once, {SCALING_DEPTH} ECHO calls of "
            f"{SCALING_SIZE} B in flight each",
            f"HAProxy: mode tcp, balance {SCALING_BALANCE}, plain TCP to two serve "
            "processes (no PROXY header), its own threads as it starts by default",
            "nothing pinned: servers, HAProxy and the clients share every core",
        ],
    )
    if not _needs_tirpc(lab, case):
        return case
    measurement = Measurement(
        "scaling/processes",
        f"{clients} clients, {SCALING_DEPTH} in flight each",
        "calls/s",
        params={"clients": clients, "in_flight": SCALING_DEPTH, "size": SCALING_SIZE},
    )
    measurement.variants += [
        Variant(WORKERS_2),
        Variant(BEHIND_HAPROXY),
        Variant(ONE_PROCESS, "reference"),
    ]
    against_tirpc = Measurement(
        "scaling/tirpc",
        f"{clients} clients, {SCALING_TIRPC_DEPTH} in flight each",
        "calls/s",
        params={"clients": clients, "in_flight": SCALING_TIRPC_DEPTH, "size": SCALING_SIZE},
    )
    against_tirpc.variants += [Variant(WORKERS_2), Variant(TIRPC_SERVER, "reference")]
    with tempfile.TemporaryDirectory(prefix="rpctransport-bench-") as directory:
        servers = _ScalingServers(lab, Path(directory))
        try:
            meters = servers.meters()
            runs = {
                name: _scaling_run(
                    lab, servers.addresses[name], clients, SCALING_DEPTH, meters.get(name)
                )
                for name in (WORKERS_2, BEHIND_HAPROXY, ONE_PROCESS)
                if name in servers.addresses
            }
            variant = measurement.variant(BEHIND_HAPROXY)
            assert variant is not None
            variant.skipped, variant.error = servers.haproxy_skipped, servers.haproxy_error
            repeat(settings, measurement, runs)
            repeat(
                settings,
                against_tirpc,
                {
                    name: _scaling_run(
                        lab, servers.addresses[name], clients, SCALING_TIRPC_DEPTH
                    )
                    for name in (WORKERS_2, TIRPC_SERVER)
                },
            )
        finally:
            servers.close()
    cpu = _cpu_measurement(measurement, meters, settings.warmup)
    measurement.comparisons += [
        Comparison(WORKERS_2, ONE_PROCESS, Target(">=", 1.6)),
        Comparison(BEHIND_HAPROXY, ONE_PROCESS),
    ]
    against_tirpc.comparisons.append(Comparison(WORKERS_2, TIRPC_SERVER, Target(">=", 1.0)))
    case.measurements += [measurement, cpu, against_tirpc]
    return case


def _cpu_measurement(
    processes: Measurement, meters: dict[str, _CpuMeter], warmup: int
) -> Measurement:
    """
    The CPU time per call that the runs of C{processes} cost each party
    (the warm-up runs left out): the one C{serve} process, C{--workers 2}
    (its parent and workers), the two C{serve} processes behind HAProxy,
    HAProxy, and the C clients against the one process; compared with the
    one process.
    """
    cpu = Measurement(
        "scaling/cpu",
        "CPU time per call, same runs",
        "µs/call",
        params=dict(processes.params),
        higher_is_better=False,
    )
    cpu.variants += [
        Variant(WORKERS_2),
        Variant(CPU_BACKENDS),
        Variant(CPU_HAPROXY),
        Variant(CPU_CLIENTS),
        Variant(ONE_PROCESS, "reference"),
    ]
    sources = {
        WORKERS_2: WORKERS_2,
        CPU_BACKENDS: BEHIND_HAPROXY,
        CPU_HAPROXY: BEHIND_HAPROXY,
        CPU_CLIENTS: ONE_PROCESS,
        ONE_PROCESS: ONE_PROCESS,
    }
    for variant in cpu.variants:
        source = processes.variant(sources[variant.name])
        assert source is not None
        meter = meters.get(source.name)
        if source.runs and meter is not None:
            variant.runs = meter.runs[variant.name][warmup:]
        else:
            variant.skipped = source.skipped or f"no runs of {source.name} (see its calls/s)"
    cpu.comparisons += [
        Comparison(WORKERS_2, ONE_PROCESS),
        Comparison(CPU_BACKENDS, ONE_PROCESS),
        Comparison(CPU_HAPROXY, ONE_PROCESS),
        Comparison(CPU_CLIENTS, ONE_PROCESS),
    ]
    return cpu


class _ScalingServers:
    """
    The servers of the scaling case, each a TCP address on loopback: one
    C{serve} process, C{serve --workers 2}, HAProxy in front of two more
    C{serve} processes (where C{haproxy} is installed), and the libtirpc
    server.

    @ivar addresses: the host and port each is reached at, by variant name.
    @ivar haproxy_skipped: why there is no HAProxy variant here (no
        C{haproxy}), if there is none.
    @ivar haproxy_error: how HAProxy failed to start, if it did.
    """

    def __init__(self, lab: Lab, directory: Path) -> None:
        self.lab = lab
        self.addresses: dict[str, tuple[str, int]] = {}
        self.haproxy_skipped = haproxy_missing()
        self.haproxy_error: str | None = None
        self._processes: list[ServerProcess] = []
        serve = lab.rpctransport("serve", "--tcp", "127.0.0.1:0")
        started = {
            WORKERS_2: self._spawn(
                lab.rpctransport("serve", "--workers", "2", "--tcp", "127.0.0.1:0")
            ),
            ONE_PROCESS: self._spawn(serve),
            TIRPC_SERVER: self._spawn([str(lab.tirpc("tirpc_server"))]),
        }
        backends = [self._spawn(serve) for _ in range(2)] if self.haproxy_skipped is None else []
        # The parent of --workers prints its listening line once every
        # worker serves.
        for server in [*started.values(), *backends]:
            lab.ready(server)
        for name, server in started.items():
            host, port = server.host_port("tcp")
            self.addresses[name] = (str(host), int(port))
        self.pids = {name: [server.process.pid] for name, server in started.items()}
        if backends:
            self.pids[CPU_BACKENDS] = [b.process.pid for b in backends]
            self._start_haproxy(directory, [b.host_port("tcp") for b in backends])

    def meters(self) -> dict[str, _CpuMeter]:
        """
        What each variant's runs count the CPU time of: its server
        processes (HAProxy's: the C{serve} processes behind it, and HAProxy
        apart); the C clients too against the one process.
        """
        meters = {
            ONE_PROCESS: _CpuMeter(
                {ONE_PROCESS: self.pids[ONE_PROCESS], CPU_CLIENTS: None}
            ),
            WORKERS_2: _CpuMeter({WORKERS_2: self.pids[WORKERS_2]}),
        }
        if BEHIND_HAPROXY in self.pids:
            meters[BEHIND_HAPROXY] = _CpuMeter(
                {CPU_BACKENDS: self.pids[CPU_BACKENDS], CPU_HAPROXY: self.pids[BEHIND_HAPROXY]}
            )
        return meters

    def _spawn(self, argv: list[str]) -> ServerProcess:
        server = self.lab.spawn(argv)
        self._processes.append(server)
        return server

    def _start_haproxy(self, directory: Path, backends: list[tuple[str, int]]) -> None:
        try:
            haproxy, port = start_haproxy(
                lambda port: balancer_config(port, backends, SCALING_BALANCE),
                directory,
                env=self.lab.env,
            )
        except HAProxyFailed as e:
            self.haproxy_error = str(e)
            return
        self._processes.append(haproxy)
        self.addresses[BEHIND_HAPROXY] = ("127.0.0.1", port)
        self.pids[BEHIND_HAPROXY] = [haproxy.process.pid]

    def close(self) -> None:
        """
        Stop every process started here.
        """
        for process in self._processes:
            self.lab.stop(process)


def _scaling_run(
    lab: Lab,
    address: tuple[str, int],
    clients: int,
    depth: int,
    meter: _CpuMeter | None = None,
) -> Callable[[], float]:
    """
    One run of C{clients} C client processes at once against C{address},
    C{depth} calls in flight each, for twice the settings' duration; the
    figure is their calls per second together. C{meter}, if given, takes
    the CPU time its processes spent on the run's calls.
    """

    def run() -> float:
        client = lab.tirpc("tirpc_client")
        host, port = address
        argv = [
            str(client), "--duration", str(max(lab.settings.duration, 0.2) * 2),
            "--pipeline", str(depth), "tcp", host, str(port), PROGRAM, VERSION,
            "echo", str(SCALING_SIZE), COUNT_CAP,
        ]
        if meter is not None:
            meter.start()
        processes = [
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(clients)
        ]
        rate = calls = 0.0
        problems = []
        for process in processes:
            try:
                out, err = process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            finished = Finished(argv, process.returncode, out, err, 0.0)
            try:
                summary = parse_tirpc_client(finished)
            except BenchError as e:
                problems.append(str(e))
            else:
                rate += summary["calls_per_s"]
                calls += summary["calls"]
        if problems:
            raise BenchError("\n".join(problems))
        if meter is not None:
            meter.stop(calls)
        return rate

    return run


def cpu_seconds(pid: int) -> float:
    """
    The CPU time (user and system, every thread) process C{pid} and its
    children have spent so far, in seconds, from C{/proc}.
    """
    pids = [pid] + [child for child, parent in _parents().items() if parent == pid]
    total = 0
    for one in pids:
        try:
            fields = _stat_fields(one)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """
    The fields of C{/proc/PID/stat} after the command name (the state is
    the first).
    """
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def _parents() -> dict[int, int]:
    """
    Every process's parent, by process id.
    """
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                found[int(entry)] = int(_stat_fields(int(entry))[1])
            except (OSError, IndexError, ValueError):
                continue
    return found


class _CpuMeter:
    """
    The CPU time some processes spend per call during the runs of one
    variant, in microseconds: each account is a list of processes (with
    their children), or L{None} for the C clients of the run (this
    process's children that ended).

    @ivar runs: the figures of each account, a run each, warm-up runs too.
    """

    def __init__(self, accounts: dict[str, list[int] | None]) -> None:
        self.accounts = accounts
        self.runs: dict[str, list[float]] = {name: [] for name in accounts}
        self._before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        clients = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            name: clients.ru_utime + clients.ru_stime
            if pids is None
            else sum(cpu_seconds(pid) for pid in pids)
            for name, pids in self.accounts.items()
        }

    def start(self) -> None:
        """
        A run begins.
        """
        self._before = self._now()

    def stop(self, calls: float) -> None:
        """
        The run ended, having made C{calls} calls.
        """
        after = self._now()
        for name in self.accounts:
            spent = after[name] - self._before[name]
            self.runs[name].append(spent / calls * 1e6 if calls else math.nan)


CASES: dict[str, Callable[[Lab], Case]] = {
    "receive": receive,
    "rate": rate,
    "bulk": bulk,
    "udp": udp,
    "memory": memory,
    "scaling": scaling,
    "tls": tls,
}
"""The cases by id, in order; C{--case} picks some of them."""
