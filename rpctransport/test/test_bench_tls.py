# -*- test-case-name: rpctransport.test.test_bench_tls -*-
"""
Tests for L{rpctransport.bench.tlscase}: the TLS case runs in its short form
in process, on a L{Lab}, and gives a well-formed case; without the C{tls}
extra it is skipped, saying why.

Benchmarks are not timed tests: nothing here checks a figure or a target,
only that the figures are there and consistent.
"""

from __future__ import annotations

import math

import pytest
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from rpctransport.bench import tlscase
from rpctransport.bench.report import Case, Measurement
from rpctransport.bench.runner import Lab, Settings
from rpctransport.bench.tlscase import IMPLICIT, PLAIN, STARTTLS, TLS_DEPTHS, tls

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

RUNS = 1
"""
Runs per figure: one keeps the test within seconds (each run starts an
C{rpctransport call} process and lasts a quarter of a second); the
figures' consistency is checked all the same.
"""


class TLSCaseTests(SynchronousTestCase):
    """
    L{tls} on a L{Lab} with quick settings.
    """

    def run_case(self) -> Case:
        lab = Lab(Settings.make(True, RUNS))
        self.addCleanup(lab.close)
        case = tls(lab)
        for measurement in case.measurements:
            measurement.compute()
        return case

    def test_quick(self) -> None:
        """
        The case measures implicit TLS, STARTTLS and plaintext with 1 and
        100 calls in flight, one figure per run asked for; both TLS
        variants are compared with plaintext and have a verdict; the TLS
        session is noted.
        """
        missing = tlscase.tls_missing()
        if missing is not None:
            raise SkipTest(missing)
        case = self.run_case()
        self.assertEqual((case.id, case.number), ("tls", tlscase.TLS_CASE_NUMBER))
        self.assertIsNone(case.error)
        self.assertIsNone(case.skipped)
        self.assertEqual(
            [m.params["in_flight"] for m in case.measurements], list(TLS_DEPTHS)
        )
        for measurement in case.measurements:
            self.check_measurement(measurement)
        self.assertTrue(any(note.startswith("session: TLSv1.") for note in case.notes))

    def check_measurement(self, measurement: Measurement) -> None:
        where = measurement.id
        self.assertEqual(
            [v.name for v in measurement.variants], [IMPLICIT, STARTTLS, PLAIN], where
        )
        for variant in measurement.variants:
            self.assertIsNone(variant.error, f"{where} {variant.name}")
            self.assertIsNone(variant.skipped, f"{where} {variant.name}")
            self.assertEqual(len(variant.runs), RUNS, where)
            self.assertTrue(all(math.isfinite(r) and r > 0 for r in variant.runs), where)
        self.assertEqual(
            [(c.variant, c.reference) for c in measurement.comparisons],
            [(IMPLICIT, PLAIN), (STARTTLS, PLAIN)],
            where,
        )
        for comparison in measurement.comparisons:
            self.assertIsNotNone(comparison.ratio, where)
            self.assertIsInstance(comparison.met, bool, where)

    def test_skipped_without_tls(self) -> None:
        """
        Without the C{tls} extra the case is skipped with the reason, and
        starts nothing.
        """
        reason = "TLS needs the tls extra (No module named 'OpenSSL')"
        self.patch(tlscase, "tls_missing", lambda: reason)
        case = self.run_case()
        self.assertEqual(case.skipped, reason)
        self.assertEqual(case.measurements, [])
