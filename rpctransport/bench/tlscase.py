# -*- test-case-name: rpctransport.test.test_bench_tls -*-
"""
Case 7 of the benchmark, L{tls}: the request/response rate of C{rpctransport
call} over TLS, implicit (TLS from the first byte) and RFC 9289 STARTTLS,
against the same C{rpctransport serve} process in plaintext, in the same run.

One server process listens on loopback TCP, plaintext, answering STARTTLS
probes (C{--starttls}), and on loopback TCP with TLS from the first byte
(C{--tls}). The plaintext and the STARTTLS clients connect to the same TCP
listener: C{--starttls} applies to every plaintext listener, and a plaintext
client on it takes the same path as on a listener without it (a probe is
looked for in every case). Its certificates are made for the run
(L{rpctransport.testing.pki}) in a temporary directory, removed afterwards.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._tirpc.process import ServerProcess
from .report import Case, Comparison, Measurement, Target, Variant
from .runner import BenchError, Lab, Sized, parse_call, repeat

__all__ = ["tls", "tls_missing"]

TLS_CASE_NUMBER = 7
"""The case's number: cases 1 to 6 are in L{rpctransport.bench.cases}."""

TLS_SIZE = 64
"""
Bytes of each ECHO argument: small, so that the per-record cost of TLS (a
record's encryption, the extra layer's calls) shows, not the copying.
"""

TLS_DEPTHS = (1, 100)
"""Calls in flight: a ping-pong, and a pipeline (as case 2)."""

TLS_TARGETS = {1: Target(">=", 0.7), 100: Target(">=", 0.5)}
"""
Either TLS against plaintext, by calls in flight. The bound is lower with
100 in flight, where plaintext replies go out many to a C{send} and each
record's encryption is what is left to pay.
"""

FIRST_COUNTS = {1: 1000, 100: 5000}
"""
Calls in the first run of each variant, by calls in flight. Runs are then
sized by time (L{Sized}), but a quick run has no warm-up and reports its
first runs: they must already be long beside the handshake that implicit
TLS counts in its elapsed time (a few milliseconds on loopback).
"""

RUN_TIME_FLOOR = 0.25
"""
Seconds a run takes at least, even in a quick run: implicit TLS counts its
handshake in the elapsed time (C{rpctransport call} starts timing once
connected, before the handshake), which should cost it a percent or so,
not several.
"""

HOST = "127.0.0.1"
SERVER_NAME = "localhost"
"""The name the clients check in the server's certificate (C{--server-name})."""

PLAIN = "plaintext"
IMPLICIT = "implicit TLS"
STARTTLS = "STARTTLS"


def tls_missing() -> str | None:
    """
    Why TLS cannot be measured here (the C{tls} extra is not installed), or
    L{None} when it can. The clients and the server run with this Python,
    so what it imports, they import.
    """
    for module in ("OpenSSL", "service_identity", "cryptography"):
        try:
            importlib.import_module(module)
        except ImportError as e:
            return f"TLS needs the tls extra ({e}): pip install 'rpctransport[tls]'"
    return None


@dataclass(frozen=True)
class _Files:
    """
    The PEM files of one run, in its temporary directory.

    @ivar ca: the certificate of the CA that issued the server's.
    @ivar certificate: the server's certificate.
    @ivar key: the server's private key.
    """

    ca: Path
    certificate: Path
    key: Path


def _write_certificates(directory: Path) -> _Files:
    """
    Make a throwaway CA and a server certificate for C{localhost} and
    C{127.0.0.1}, and write them into C{directory}.
    """
    from ..testing.pki import CertificateAuthority

    ca = CertificateAuthority("rpctransport bench CA")
    issued = ca.issue("rpctransport bench server", dns=(SERVER_NAME,), ips=(HOST,))
    files = _Files(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.certificate)
    files.certificate.write_bytes(issued.certificate)
    files.key.touch(mode=0o600)
    files.key.write_bytes(issued.key)
    return files


def tls(lab: Lab) -> Case:
    """
    Case 7: calls per second over one connection, ECHO of 64 B, 1 and 100
    calls in flight, C{rpctransport call} against one C{rpctransport serve}:
    over implicit TLS and over STARTTLS, against plaintext.
    """
    case = Case(
        "tls",
        TLS_CASE_NUMBER,
        "Request/response rate over TLS",
        notes=[
            f"ECHO calls of {TLS_SIZE} B, rpctransport call against one rpctransport serve:"
            " plaintext TCP (with --starttls), implicit TLS (--tls), STARTTLS on the TCP listener",
            "implicit TLS: the handshake counts in the elapsed time (call times from the"
            " connection); STARTTLS: the probe and the handshake come before the timing",
        ],
    )
    missing = tls_missing()
    if missing is not None:
        case.skipped = missing
        return case
    _pinning_note(lab, case)
    sessions: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="rpctransport-bench-tls-") as directory:
        files = _write_certificates(Path(directory))
        server = lab.spawn(
            lab.rpctransport(
                "serve", "--tcp", f"{HOST}:0", "--tls", f"{HOST}:0", "--starttls",
                "--tls-cert", str(files.certificate), "--tls-key", str(files.key),
            )
        )
        try:
            lab.ready(server, ("tcp", "tls"))
            lab.pin_server(server)
            for depth in TLS_DEPTHS:
                case.measurements.append(_measure(lab, server, files, depth, sessions))
        finally:
            lab.stop(server)
    for session in sorted(sessions):
        case.notes.append(f"session: {session}")
    return case


def _pinning_note(lab: Lab, case: Case) -> None:
    if lab.pinning:
        case.notes.append(f"server pinned to CPU {lab.cpus[0]}, clients to CPU {lab.cpus[1]}")
    else:
        case.notes.append("one CPU: the server and the clients share it")


def _measure(
    lab: Lab, server: ServerProcess, files: _Files, depth: int, sessions: set[str]
) -> Measurement:
    """
    The three variants with C{depth} calls in flight, and both TLS variants
    against plaintext.
    """
    measurement = Measurement(
        f"tls/x{depth}",
        f"call, {TLS_SIZE} B, {depth} in flight",
        "calls/s",
        params={"client": "rpctransport call", "size": TLS_SIZE, "in_flight": depth},
    )
    measurement.variants += [Variant(IMPLICIT), Variant(STARTTLS), Variant(PLAIN, "reference")]
    tcp_port = server.port("tcp")
    tls_port = server.port("tls")
    trust = ["--tls-ca", str(files.ca), "--server-name", SERVER_NAME]
    addresses = {
        IMPLICIT: [f"tls:{HOST}:{tls_port}", *trust],
        STARTTLS: [f"tcp:{HOST}:{tcp_port}", "--starttls", *trust],
        PLAIN: [f"tcp:{HOST}:{tcp_port}"],
    }
    runs: dict[str, Callable[[], float]] = {
        name: Sized(
            _call_run(lab, address, depth, name != PLAIN, sessions),
            count=FIRST_COUNTS[depth],
            run_time=max(lab.settings.run_time, RUN_TIME_FLOOR),
        )
        for name, address in addresses.items()
    }
    repeat(lab.settings, measurement, runs)
    for name in (IMPLICIT, STARTTLS):
        measurement.comparisons.append(Comparison(name, PLAIN, TLS_TARGETS[depth]))
    return measurement


def _call_run(
    lab: Lab, address: list[str], depth: int, secure: bool, sessions: set[str]
) -> Callable[[int], tuple[float, float]]:
    """
    One run of C{rpctransport call} on C{address} (the address and its TLS
    options), C{count} calls; with C{secure}, its session must be TLS (its
    C{tls} line goes into C{sessions}).
    """

    def run(count: int) -> tuple[float, float]:
        argv = lab.rpctransport(
            "call", *address, "--proc", "echo", "--size", str(TLS_SIZE),
            "--count", str(count), "--concurrency", str(depth),
        )
        with lab.client_cpu():
            finished = lab.run(argv)
        summary = parse_call(finished)
        session = _session(finished.stdout)
        if secure != (session is not None):
            raise BenchError(
                f"expected {'a TLS' if secure else 'a plaintext'} session:\n{finished.describe()}"
            )
        if session is not None:
            sessions.add(session)
        return summary["elapsed"], summary["calls"] / summary["elapsed"]

    return run


def _session(stdout: str) -> str | None:
    """
    What C{rpctransport call} says of its TLS session (C{tls TLSv1.3 CIPHER
    ALPN sunrpc; ...}): version, cipher and ALPN; L{None} if it says
    nothing (plaintext).
    """
    for line in stdout.splitlines():
        if line.startswith("tls "):
            return line[len("tls "):].partition(";")[0]
    return None
