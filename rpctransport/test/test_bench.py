# -*- test-case-name: rpctransport.test.test_bench -*-
"""
Tests for L{rpctransport.bench}: the benchmark runs in its short form and
produces a well-formed table and JSON file; its report computes ratios and
verdicts as documented.

Benchmarks are not timed tests: nothing here checks a figure or a target,
only that the figures are there and consistent.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from rpctransport.bench.cases import CASES, wire_size
from rpctransport.bench.report import (
    FORMAT,
    Case,
    Comparison,
    Measurement,
    Report,
    Target,
    Variant,
    plot,
    table,
)
from rpctransport.bench.runner import Settings
from rpctransport.program.cli import parse_args
from rpctransport.test.interop.build import rpctransport_env

SMOKE_TIMEOUT = 300
"""
Seconds the smoke run may take before the test fails. Generous: it takes
well under a minute on two cores, but CI machines are shared.
"""


def sample_report() -> Report:
    """
    A small report: one case with a measured variant, a reference, a
    variant that could not run, and a skipped case.
    """
    measurement = Measurement("m/1", "one", "MB/s")
    measurement.variants += [
        Variant("ours", runs=[3.0, 1.0, 2.0]),
        Variant("theirs", "reference", runs=[4.0, 4.0, 2.0]),
        Variant("absent", "reference", skipped="not built here"),
    ]
    measurement.comparisons += [
        Comparison("ours", "theirs", Target(">=", 0.5)),
        Comparison("ours", "absent", Target(">=", 1.0)),
        Comparison("ours", "a unit", Target("<=", 1.5), reference_value=1.0),
    ]
    measurement.compute()
    case = Case("first", 1, "First", [measurement])
    return Report(
        quick=True,
        runs=3,
        warmup=0,
        started="2026-01-01T00:00:00Z",
        command=["bench"],
        cases=[case, Case("second", 2, "Second", skipped="no compiler")],
        machine={"cpu": "test", "cores": 2},
        versions={"python": "3", "twisted": "26"},
    )


class ReportTests(SynchronousTestCase):
    """
    The report's figures, ratios, verdicts, table and JSON.
    """

    def test_figures(self) -> None:
        """
        A variant's median, min and max come from its runs; without runs
        they are L{None}.
        """
        variant = Variant("v", runs=[3.0, 1.0, 2.0])
        self.assertEqual((variant.median, variant.min, variant.max), (2.0, 1.0, 3.0))
        self.assertEqual(Variant("w").median, None)

    def test_ratios(self) -> None:
        """
        A comparison's ratio is the medians' quotient; its range pairs the
        worst run of one with the best of the other; a missing reference
        leaves it unknown, and a fixed reference value stands for a
        variant.
        """
        [measurement] = sample_report().cases[0].measurements
        versus, absent, fixed = measurement.comparisons
        self.assertEqual(versus.ratio, 2.0 / 4.0)
        self.assertEqual((versus.ratio_min, versus.ratio_max), (1.0 / 4.0, 3.0 / 2.0))
        self.assertTrue(versus.met)
        self.assertIsNone(absent.ratio)
        self.assertIsNone(absent.met)
        self.assertEqual(fixed.ratio, 2.0)
        self.assertFalse(fixed.met)

    def test_targets(self) -> None:
        """
        C{>=} and C{<=} targets are met at their bound.
        """
        self.assertTrue(Target(">=", 0.7).met(0.7))
        self.assertFalse(Target(">=", 0.7).met(0.69))
        self.assertTrue(Target("<=", 2.0).met(2.0))
        self.assertFalse(Target("<=", 2.0).met(2.01))

    def test_summary(self) -> None:
        """
        The summary counts targets met, missed and unknown.
        """
        self.assertEqual(
            sample_report().summary(), {"targets": 3, "met": 1, "missed": 1, "unknown": 1}
        )

    def test_table(self) -> None:
        """
        The table has a line per variant with its figures, ratio, target and
        verdict, says why what was skipped was skipped, and sums up.
        """
        text = table(sample_report())
        self.assertIn("case", text.splitlines()[0])
        self.assertIn("1. First", text)
        self.assertIn("2. Second: SKIPPED: no compiler", text)
        self.assertIn("skipped: not built here", text)
        ours = next(line for line in text.splitlines() if " ours " in line)
        for cell in ("2.00", "1.00", "3.00", "MB/s", "0.5", "theirs", ">= 0.5", "met"):
            self.assertIn(cell, ours)
        self.assertIn("MISSED", text)
        self.assertIn("targets: 3, met 1, missed 1, unknown 1", text)

    def test_json(self) -> None:
        """
        The JSON form has the documented structure and survives a round
        trip through C{json}.
        """
        data = json.loads(json.dumps(sample_report().to_json()))
        self.assertEqual(data["format"], FORMAT)
        [first, second] = data["cases"]
        self.assertEqual(second["skipped"], "no compiler")
        variants = first["measurements"][0]["variants"]
        self.assertEqual(variants[0]["median"], 2.0)
        comparison = first["measurements"][0]["comparisons"][0]
        self.assertEqual(comparison["target"], {"op": ">=", "value": 0.5})
        self.assertIs(comparison["met"], True)

    def test_plot(self) -> None:
        """
        With matplotlib, the plot is written as a PNG file.
        """
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SkipTest("matplotlib is not installed (pip install 'rpctransport[plot]')")
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "plot.png")
            plot(sample_report(), path)
            with open(path, "rb") as png:
                self.assertEqual(png.read(8), b"\x89PNG\r\n\x1a\n")


class OptionsTests(SynchronousTestCase):
    """
    How the benchmark is invoked.
    """

    def test_rpctransport_bench(self) -> None:
        """
        C{rpctransport bench} hands everything after it, options included,
        to the benchmark.
        """
        args = parse_args(["bench", "--quick", "--json", "x.json"])
        self.assertEqual(args.command, "bench")
        self.assertEqual(args.bench_args, ["--quick", "--json", "x.json"])

    def test_settings(self) -> None:
        """
        The quick run makes fewer, shorter runs than the full one.
        """
        quick, full = Settings.make(True), Settings.make(False)
        self.assertLess(quick.runs, full.runs)
        self.assertLess(quick.run_time, full.run_time)
        self.assertLess(quick.idle_connections, full.idle_connections)
        self.assertEqual(full.idle_connections, 10_000)
        self.assertEqual(Settings.make(False, 9).runs, 9)

    def test_wire_size(self) -> None:
        """
        A record's wire size counts one 4-byte mark per fragment.
        """
        self.assertEqual(wire_size(64, None), 68)
        self.assertEqual(wire_size(1 << 20, 1 << 16), (1 << 20) + 4 * 16)
        self.assertEqual(wire_size(100, 64), 108)


class SmokeTests(SynchronousTestCase):
    """
    C{python -m rpctransport.bench --quick --json FILE}, in a subprocess.
    """

    def run_quick(self) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "bench.json")
            done = subprocess.run(
                [sys.executable, "-m", "rpctransport.bench", "--quick", "--json", path],
                capture_output=True,
                text=True,
                timeout=SMOKE_TIMEOUT,
                env=rpctransport_env(),
                stdin=subprocess.DEVNULL,
            )
            self.assertEqual(done.returncode, 0, f"{done.stdout}\n{done.stderr}")
            with open(path) as data:
                return done, json.load(data)

    def test_quick(self) -> None:
        """
        The quick run exits 0 and prints the table; its JSON file has every
        case, each measured or skipped with a reason; every figure's median
        lies between its min and max over the runs asked for; every ratio
        whose variants were measured is computed, and every target has a
        verdict. (No figure or target is checked: this is not a timed
        test.)
        """
        done, data = self.run_quick()
        self.assertEqual(data["format"], FORMAT)
        self.assertTrue(data["quick"])
        self.assertEqual([case["id"] for case in data["cases"]], list(CASES))
        for key in ("cpu", "cores"):
            self.assertIn(key, data["machine"])
        for key in ("python", "twisted", "rpctransport"):
            self.assertTrue(data["versions"][key])
        for case in data["cases"]:
            self.assertIsNone(case["error"], case["id"])
            self.assertIn(case["title"], done.stdout)
            if case["skipped"] is not None:
                self.assertTrue(case["skipped"].strip(), case["id"])
                self.assertIn(f"SKIPPED: {case['skipped']}", done.stdout)
                continue
            self.assertTrue(case["measurements"], case["id"])
            for measurement in case["measurements"]:
                self.check_measurement(measurement, data["runs"])
        summary = data["summary"]
        self.assertEqual(summary["targets"], summary["met"] + summary["missed"] + summary["unknown"])
        self.assertIn("median", done.stdout.splitlines()[0])
        self.assertIn(f"targets: {summary['targets']}", done.stdout)

    def check_measurement(self, measurement: dict[str, Any], runs: int) -> None:
        where = measurement["id"]
        measured = set()
        for variant in measurement["variants"]:
            self.assertIsNone(variant["error"], f"{where} {variant['name']}")
            if variant["skipped"] is not None:
                self.assertTrue(variant["skipped"].strip(), where)
                continue
            self.assertEqual(len(variant["runs"]), runs, where)
            self.assertTrue(all(math.isfinite(r) and r >= 0 for r in variant["runs"]), where)
            self.assertLessEqual(variant["min"], variant["median"], where)
            self.assertLessEqual(variant["median"], variant["max"], where)
            measured.add(variant["name"])
        for comparison in measurement["comparisons"]:
            if comparison["variant"] in measured and (
                comparison["reference"] in measured or comparison["reference_value"] is not None
            ):
                self.assertIsNotNone(comparison["ratio"], where)
                self.assertLessEqual(comparison["ratio_min"], comparison["ratio"], where)
                self.assertLessEqual(comparison["ratio"], comparison["ratio_max"], where)
                if comparison["target"] is not None:
                    self.assertIsInstance(comparison["met"], bool, where)
            else:
                self.assertIsNone(comparison["met"], where)


class ScalingCaseTests(SynchronousTestCase):
    """
    The scaling case (L{rpctransport.bench.cases.scaling}) in its short
    form, in process, on a L{Lab}: one C{serve} process, C{serve --workers
    2}, and HAProxy in front of two C{serve} processes, under the same C
    clients.
    """

    def run_case(self) -> Case:
        from rpctransport.bench.cases import scaling
        from rpctransport.bench.runner import Lab

        lab = Lab(Settings.make(True, 1))
        self.addCleanup(lab.close)
        case = scaling(lab)
        for measurement in case.measurements:
            measurement.compute()
        if case.skipped is not None:
            raise SkipTest(case.skipped)
        return case

    def test_quick(self) -> None:
        """
        Every way of serving is measured once (HAProxy's where C{haproxy}
        is installed; otherwise its variant says why it is not), each of
        the two ways of using two processes is compared with the one
        process, and C{--workers 2} with the libtirpc server; the same runs
        give the CPU time per call of each party (the servers, HAProxy, the
        C clients), compared with the one process's; nothing the case
        started is left running.
        """
        from rpctransport.bench import cases
        from rpctransport.bench.haproxy import haproxy_missing

        case = self.run_case()
        self.assertIsNone(case.error)
        processes, cpu, against_tirpc = case.measurements
        self.assertEqual(
            [v.name for v in processes.variants],
            [cases.WORKERS_2, cases.BEHIND_HAPROXY, cases.ONE_PROCESS],
        )
        self.assertEqual(
            [v.name for v in cpu.variants],
            [
                cases.WORKERS_2, cases.CPU_BACKENDS, cases.CPU_HAPROXY, cases.CPU_CLIENTS,
                cases.ONE_PROCESS,
            ],
        )
        missing = haproxy_missing()
        behind = (cases.BEHIND_HAPROXY, cases.CPU_BACKENDS, cases.CPU_HAPROXY)
        for variant in [*processes.variants, *cpu.variants, *against_tirpc.variants]:
            self.assertIsNone(variant.error, variant.name)
            if variant.name in behind and missing is not None:
                self.assertEqual(variant.skipped, missing)
                continue
            self.assertIsNone(variant.skipped, variant.name)
            self.assertEqual(len(variant.runs), 1, variant.name)
            self.assertTrue(all(math.isfinite(r) and r > 0 for r in variant.runs), variant.name)
        self.assertEqual(
            [(c.variant, c.reference) for c in processes.comparisons],
            [(cases.WORKERS_2, cases.ONE_PROCESS), (cases.BEHIND_HAPROXY, cases.ONE_PROCESS)],
        )
        self.assertEqual(
            [c.reference for c in cpu.comparisons], [cases.ONE_PROCESS] * 4
        )
        for comparison in processes.comparisons + cpu.comparisons + against_tirpc.comparisons:
            if comparison.variant in behind and missing is not None:
                self.assertIsNone(comparison.ratio)
            else:
                self.assertIsNotNone(comparison.ratio, comparison)
        self.assertTrue(any("HAProxy" in note for note in case.notes))
        self.assertEqual(_haproxy_processes(), [])

    def test_without_haproxy(self) -> None:
        """
        Without C{haproxy} the HAProxy variant, and its CPU times, are
        skipped with the reason, no process is started for it, and the
        other ways of serving are still measured and compared.
        """
        from rpctransport.bench import cases

        reason = "haproxy not found (on PATH, /usr/sbin or /sbin): install it"
        self.patch(cases, "haproxy_missing", lambda: reason)
        started: list[Any] = []
        self.patch(cases, "start_haproxy", lambda *a, **k: started.append(a))
        case = self.run_case()
        processes = case.measurements[0]
        behind = processes.variant(cases.BEHIND_HAPROXY)
        assert behind is not None
        self.assertEqual((behind.skipped, behind.runs), (reason, []))
        self.assertEqual(started, [])
        one, workers = processes.variant(cases.ONE_PROCESS), processes.variant(cases.WORKERS_2)
        assert one is not None and workers is not None
        self.assertEqual((len(one.runs), len(workers.runs)), (1, 1))
        self.assertIsNotNone(processes.comparisons[0].ratio)
        self.assertIsNone(processes.comparisons[1].ratio)
        cpu = case.measurements[1]
        for name in (cases.CPU_BACKENDS, cases.CPU_HAPROXY):
            variant = cpu.variant(name)
            assert variant is not None
            self.assertEqual((variant.skipped, variant.runs), (reason, []))


def _haproxy_processes() -> list[str]:
    """
    The command lines of the HAProxy processes this process started and
    that still run (the benchmark's, with their temporary configuration).
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and argv and argv[0].endswith(b"haproxy"):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found
