# -*- test-case-name: rpctransport.test.test_bench -*-
"""
C{rpctransport bench} and C{python -m rpctransport.bench}: run the cases,
print the table, write the JSON file, the reStructuredText tables and the
plot; or write the tables of a run measured before (C{--from-json}).
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence

from .cases import CASES
from .report import (
    FORMAT,
    Case,
    PlotUnavailable,
    Report,
    machine,
    plot,
    rst_tables,
    versions,
    write_table,
)
from .runner import Lab, Settings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpctransport bench",
        description="Measure rpctransport against Twisted's ceiling, Twisted's own "
        "framing and libtirpc, side by side; senders and receivers run in separate "
        "processes over loopback. Every figure is the median of several runs (with "
        "min and max); every target is a ratio against a reference measured in the "
        "same run. The cases that need libtirpc's C client or server are skipped, "
        "saying why, where gcc or libtirpc-dev is missing.",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="a smoke run: fewer runs, smaller counts (well under a minute)",
    )
    parser.add_argument(
        "--runs", type=int, default=None, metavar="N",
        help="runs per figure (default 5, 3 with --quick)",
    )
    parser.add_argument(
        "--case", action="append", choices=list(CASES), default=None, metavar="CASE",
        help=f"run only this case (may be repeated): {', '.join(CASES)}",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument(
        "--rst", metavar="FILE",
        help="write the results as reStructuredText tables, for a chapter to include "
        "(docs/scaling.rst includes docs/scaling-table.inc, written this way)",
    )
    parser.add_argument(
        "--from-json", metavar="FILE",
        help="measure nothing: read a run's JSON file (written by --json) and write "
        "its tables with --rst",
    )
    parser.add_argument(
        "--plot", metavar="FILE.png",
        help="draw the results (needs matplotlib: pip install 'rpctransport[plot]')",
    )
    return parser


def _raise_open_files() -> None:
    """
    Raise the soft limit on open files to the hard limit: the memory case
    holds thousands of connections (the children inherit the limit).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _libtirpc_version() -> str | None:
    """
    The version of Debian's libtirpc package, if dpkg knows it.
    """
    if shutil.which("dpkg-query") is None:
        return None
    for package in ("libtirpc3t64", "libtirpc3", "libtirpc-dev"):
        try:
            found = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", package],
                capture_output=True, text=True, timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    return None


def _on_terminate(signum: int, frame: object) -> None:
    # Unwind normally, so that every process started is stopped.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the benchmark with C{argv} (C{sys.argv[1:]} by default).

    @return: the exit status: 0, or 1 when a run failed (a missed target is
        a finding, not a failure), 2 on a usage error.
    """
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.runs is not None and args.runs < 1:
        _parser().error("--runs must be at least 1")
    if args.from_json is not None:
        return _from_json(args)
    if args.plot and not _can_plot():
        return 2
    signal.signal(signal.SIGTERM, _on_terminate)
    _raise_open_files()
    settings = Settings.make(args.quick, args.runs)
    report = Report(
        quick=settings.quick,
        runs=settings.runs,
        warmup=settings.warmup,
        started=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=[sys.executable, "-m", "rpctransport.bench", *argv],
        machine=machine(),
        versions=versions(_libtirpc_version),
    )
    began = time.monotonic()
    lab = Lab(settings)
    try:
        for case_id, run_case in CASES.items():
            if not args.case or case_id in args.case:
                report.cases.append(_run_case(lab, case_id, run_case))
    finally:
        lab.close()
    report.elapsed = time.monotonic() - began
    return _finish(report, args)


def _from_json(args: argparse.Namespace) -> int:
    """
    C{--from-json FILE --rst OUT}: write the tables of a run measured
    before; return the exit status.
    """
    if args.rst is None:
        _parser().error("--from-json needs --rst FILE: what to write from it")
    try:
        with open(args.from_json, encoding="utf-8") as source:
            data = json.load(source)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {FORMAT!r}")
        text = rst_tables(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(
            f"rpctransport bench: {args.from_json} is not a benchmark's JSON file: {e}",
            file=sys.stderr,
        )
        return 2
    _write_rst(args.rst, text)
    return 0


def _write_rst(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


def _can_plot() -> bool:
    """
    Whether matplotlib is there for C{--plot}; say so when it is not.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "rpctransport bench: --plot needs matplotlib: pip install 'rpctransport[plot]'",
            file=sys.stderr,
        )
        return False
    return True


def _run_case(lab: Lab, case_id: str, run_case: Callable[[Lab], Case]) -> Case:
    """
    Run one case and compute its comparisons; a case that raises is
    reported as an error of that case, and the next one runs.
    """
    print(f"== {case_id} ...", file=sys.stderr, flush=True)
    case_began = time.monotonic()
    try:
        case = run_case(lab)
    except Exception as e:
        case = Case(case_id, list(CASES).index(case_id) + 1, case_id)
        case.error = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    finally:
        lab.close()
    for measurement in case.measurements:
        measurement.compute()
    print(f"   {case_id}: {time.monotonic() - case_began:.1f} s", file=sys.stderr, flush=True)
    return case


def _finish(report: Report, args: argparse.Namespace) -> int:
    """
    Print the table, write the JSON file and the plot asked for; return the
    exit status.
    """
    write_table(report)
    print(f"\n{report.elapsed:.0f} s; machine: {report.machine['cpu']}, "
          f"{report.machine['cores']} cores; Python {report.versions['python']}, "
          f"Twisted {report.versions['twisted']}", flush=True)
    if args.json:
        report.write_json(args.json)
    if args.rst:
        # From the JSON form, as --from-json does: the same run gives the
        # same text either way.
        _write_rst(args.rst, rst_tables(json.loads(json.dumps(report.to_json()))))
    if args.plot:
        try:
            plot(report, args.plot)
        except PlotUnavailable as e:
            print(f"rpctransport bench: {e}", file=sys.stderr)
            return 2
    errors = report.errors
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0
