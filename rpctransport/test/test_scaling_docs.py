# -*- test-case-name: rpctransport.test.test_scaling_docs -*-
"""
Tests for the "Scaling out" chapter, C{docs/scaling.rst}: its HAProxy
configuration works as it stands in the chapter, in front of two C{serve}
processes (skipped, saying why, without C{haproxy}); its table is the one
the benchmark writes from the JSON file beside it
(L{rpctransport.bench.report.rst_tables}), and that writer, alone and
through C{rpctransport bench --from-json}, gives what it documents.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

import rpctransport
from rpctransport.bench.cli import main as bench_main
from rpctransport.bench import haproxy
from rpctransport.bench.haproxy import balancer_config, free_port, haproxy_missing, start_haproxy
from rpctransport.bench.report import (
    RST_HEADER,
    Case,
    Comparison,
    Measurement,
    Report,
    Target,
    Variant,
    rst_tables,
)
from rpctransport.test.interop.build import (
    rpctransport_command,
    rpctransport_env,
    run_program,
    start_server,
)

DOCS = Path(rpctransport.__file__).resolve().parent.parent / "docs"
CHAPTER = DOCS / "scaling.rst"
TABLE = DOCS / "scaling-table.inc"
TABLE_JSON = DOCS / "scaling-table.json"

CHECK_TIMEOUT = 15.0
"""
Seconds HAProxy has to report both backends' health checks passed: the
configuration checks every 2 s, the first check of each within that.
"""


def docs_or_skip() -> None:
    """
    Skip the test where this copy of the package has no C{docs/} beside it.
    """
    if not CHAPTER.is_file():
        raise SkipTest(f"{CHAPTER} not found: this copy of rpctransport has no docs beside it")


def chapter_config(text: str, name: str = "haproxy.cfg") -> str:
    """
    A piece of HAProxy configuration in the chapter C{text}: the literal
    block between the comments C{.. begin NAME} and C{.. end NAME},
    unindented.
    """
    begin = text.index(f".. begin {name}\n")
    end = text.index(f".. end {name}\n", begin)
    lines = text[begin:end].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(".. code-block::"))
    body = [line[3:] if line.startswith("   ") else line for line in lines[start + 1 :]]
    return "\n".join(body).strip("\n") + "\n"


def substitute(config: str, replacements: dict[str, str]) -> str:
    """
    C{config} with each key of C{replacements} replaced, each of which must
    occur exactly once (a chapter that changed its ports or paths must
    fail here, not test something else).
    """
    for old, new in replacements.items():
        found = config.count(old)
        if found != 1:
            raise AssertionError(f"{old!r} occurs {found} times in the chapter's haproxy.cfg")
        config = config.replace(old, new)
    return config


def haproxy_stats(path: Path) -> dict[str, dict[str, str]]:
    """
    HAProxy's C{show stat} through its stats socket C{path}: a row per
    proxy and server, by C{"proxy/server"}.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stats:
        stats.settimeout(5)
        stats.connect(str(path))
        stats.sendall(b"show stat\n")
        chunks = []
        while chunk := stats.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode(errors="replace").lstrip("# ")
    return {f"{row['pxname']}/{row['svname']}": row for row in csv.DictReader(io.StringIO(text))}


def wait_until(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s: {what()}")
        time.sleep(0.1)


class ChapterConfigTests(SynchronousTestCase):
    """
    The chapter's C{haproxy.cfg}, run.
    """

    def test_extract(self) -> None:
        """
        A piece of configuration is read from between the chapter's
        markers of its name, without the block's indentation.
        """
        text = (
            "before\n\n.. begin haproxy.cfg\n\n.. code-block:: text\n\n"
            "   global\n       maxconn 1\n\n   defaults\n\n.. end haproxy.cfg\n\n"
            ".. begin haproxy.cfg proxy\n\n.. code-block:: text\n\n   x y\n\n"
            ".. end haproxy.cfg proxy\n"
        )
        self.assertEqual(chapter_config(text), "global\n    maxconn 1\n\ndefaults\n")
        self.assertEqual(chapter_config(text, "haproxy.cfg proxy"), "x y\n")

    def test_config_balances_two_serve(self) -> None:
        """
        HAProxy started with the chapter's configuration (its ports, its
        listening address and its stats socket replaced by the test's) in
        front of two C{serve} processes finds both healthy by its RPC
        health check (a NULL call), and passes calls through to both, every
        call answered.
        """
        docs_or_skip()
        config = chapter_config(CHAPTER.read_text(encoding="utf-8"))
        self.run_config(config, ["--tcp", "127.0.0.1:0"])

    def test_config_with_proxy_protocol(self) -> None:
        """
        The same, with the chapter's C{default-server} line for the PROXY
        protocol in place of the first one, in front of two C{serve
        --proxy-protocol} processes: the health checks (which then send a
        PROXY header of their own, with the C{LOCAL} command) pass, and
        every call is answered.
        """
        docs_or_skip()
        text = CHAPTER.read_text(encoding="utf-8")
        config = chapter_config(text)
        [proxied] = chapter_config(text, "haproxy.cfg proxy").splitlines()
        [plain] = [line for line in config.splitlines() if line.startswith("    default-server ")]
        self.assertIn("send-proxy-v2", proxied)
        config = config.replace(plain, "    " + proxied)
        self.run_config(config, ["--tcp", "127.0.0.1:0", "--proxy-protocol"])

    def run_config(self, config: str, listen: list[str]) -> None:
        """
        Start two C{serve} processes with the listener options C{listen},
        and HAProxy in front of them with C{config} (the chapter's ports,
        listening address and stats socket replaced); wait until HAProxy's
        health checks pass for both; make calls through HAProxy, and check
        each C{serve} process took some.
        """
        missing = haproxy_missing()
        if missing is not None:
            raise SkipTest(missing)
        backends = [
            start_server(
                self, rpctransport_command("serve", *listen), ["tcp"], env=rpctransport_env()
            )
            for _ in range(2)
        ]
        directory = Path(tempfile.mkdtemp(prefix="rpctransport-haproxy-"))
        self.addCleanup(shutil.rmtree, directory, True)
        stats_path = directory / "stats.sock"

        def configure(port: int) -> str:
            return substitute(
                config,
                {
                    "bind :20049": f"bind 127.0.0.1:{port}",
                    "127.0.0.1:20050": f"127.0.0.1:{backends[0].port('tcp')}",
                    "127.0.0.1:20051": f"127.0.0.1:{backends[1].port('tcp')}",
                    "/run/haproxy/rpc.sock": str(stats_path),
                },
            )

        haproxy, port = start_haproxy(configure, directory, env=rpctransport_env())
        self.addCleanup(haproxy.stop)
        servers = ("serve/serve1", "serve/serve2")

        def checked() -> bool:
            stats = haproxy_stats(stats_path)
            return all(stats[name]["check_status"] == "L7OK" for name in servers)

        wait_until(
            checked,
            CHECK_TIMEOUT,
            lambda: f"health checks: {self.check_states(stats_path, servers)}\n"
            f"{haproxy.describe()}",
        )
        for _ in range(4):
            done = run_program(
                rpctransport_command(
                    "call", f"tcp:127.0.0.1:{port}", "--proc", "echo", "--size", "100",
                    "--count", "200", "--concurrency", "8",
                ),
                env=rpctransport_env(),
            )
            self.assertEqual(done.returncode, 0, done.describe())
            self.assertRegex(done.stdout, r"calls 200\s+ok 200\s+failed 0")
        stats = haproxy_stats(stats_path)
        for name in servers:
            self.assertGreaterEqual(int(stats[name]["stot"]), 1, f"{name}: {stats[name]}")

    def test_port_taken(self) -> None:
        """
        When the free port L{start_haproxy} picked is taken before HAProxy
        binds it, HAProxy exits saying it cannot bind, and another port is
        tried.
        """
        missing = haproxy_missing()
        if missing is not None:
            raise SkipTest(missing)
        taken = socket.socket()
        self.addCleanup(taken.close)
        # Bound, not listening: HAProxy cannot bind it, and a connection to
        # it is refused (a listening one would accept it in HAProxy's place,
        # and the wait for HAProxy to accept could end on it).
        taken.bind(("127.0.0.1", 0))
        ports = [taken.getsockname()[1]]
        self.patch(haproxy, "free_port", lambda host: ports.pop() if ports else free_port(host))
        directory = Path(tempfile.mkdtemp(prefix="rpctransport-haproxy-"))
        self.addCleanup(shutil.rmtree, directory, True)
        process, port = start_haproxy(
            lambda port: balancer_config(port, [("127.0.0.1", 9)]), directory
        )
        self.addCleanup(process.stop)
        self.assertEqual(ports, [])
        self.assertNotEqual(port, taken.getsockname()[1])
        self.assertIsNone(process.process.poll())

    @staticmethod
    def check_states(path: Path, servers: tuple[str, ...]) -> str:
        try:
            stats = haproxy_stats(path)
        except OSError as e:
            return f"no stats: {e}"
        return ", ".join(
            f"{name} {stats[name]['status']} {stats[name]['check_status']}"
            f" {stats[name]['last_chk']!r}"
            for name in servers
        )


def measured_report() -> Report:
    """
    A report of one case: two measured variants (one against two
    references), one skipped, one failed, and the case's notes.
    """
    measurement = Measurement("c/1", "four clients", "calls/s")
    measurement.variants += [
        Variant("serve --workers 2", runs=[300.0, 200.0, 250.0]),
        Variant("behind", runs=[150.0, 160.0, 170.0]),
        Variant("absent", skipped="haproxy not found"),
        Variant("broken", error="exit status 1\nsecond line"),
        Variant("one", "reference", runs=[100.0, 120.0, 110.0]),
        Variant("other", "reference", runs=[200.0, 200.0, 200.0]),
    ]
    measurement.comparisons += [
        Comparison("serve --workers 2", "one", Target(">=", 1.6)),
        Comparison("serve --workers 2", "other"),
        Comparison("behind", "one"),
        Comparison("absent", "one"),
    ]
    measurement.compute()
    case = Case("scaling", 6, "Scaling", [measurement], notes=["nothing pinned"])
    return Report(
        quick=False,
        runs=3,
        warmup=1,
        started="2026-01-01T00:00:00Z",
        command=["/venv/bin/python", "-m", "rpctransport.bench", "--case", "scaling"],
        cases=[case, Case("other", 7, "Other", skipped="no compiler")],
        machine={"cpu": "Test CPU", "cores": 2, "kernel": "Linux 6", "memory": 2 << 30},
        versions={"python": "3.11.7", "twisted": "26.10.0", "libtirpc": None},
    )


def table_rows(text: str) -> list[list[str]]:
    """
    The rows of the C{list-table}s of C{text}: each a list of its cells.
    """
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("   * - "):
            rows.append([line[len("   * - ") :]])
        elif line.startswith("     -"):
            rows[-1].append(line[len("     -") :].strip())
    return rows


class RstTablesTests(SynchronousTestCase):
    """
    L{rst_tables}: a run's JSON as the chapter's tables.
    """

    def render(self) -> str:
        return rst_tables(json.loads(json.dumps(measured_report().to_json())))

    def test_rows(self) -> None:
        """
        Each variant has a row: its median, the range of its runs, its
        ratios (with their ranges and targets' verdicts) and references, a
        line each; a variant not measured says why instead, on one line; a
        reference is marked so.
        """
        rows = table_rows(self.render())
        self.assertEqual(
            rows[0], ["variant", "calls/s, median", "runs, min to max", "ratio (range)", "against"]
        )
        by_name = {row[0]: row for row in rows[1:]}
        self.assertEqual(
            by_name["``serve --workers 2``"],
            [
                "``serve --workers 2``",
                "250",
                "200 to 300",
                "2.27 (1.67 to 3.00), target >= 1.6: met | 1.25 (1.00 to 1.50)",
                "``one`` | ``other``",
            ],
        )
        self.assertEqual(
            by_name["``behind``"],
            ["``behind``", "160", "150 to 170", "1.45 (1.25 to 1.70)", "``one``"],
        )
        self.assertEqual(
            by_name["``absent``"], ["``absent``", "not measured: haproxy not found", "", "", ""]
        )
        self.assertEqual(
            by_name["``broken``"],
            ["``broken``", "not measured: failed: exit status 1 second line", "", "", ""],
        )
        self.assertEqual(
            by_name["``one`` (reference)"], ["``one`` (reference)", "110", "100 to 120", "", ""]
        )

    def test_text(self) -> None:
        """
        The text opens with the comment saying where it comes from, titles
        each table with its measurement, lists the case's notes, says why a
        case was skipped, and ends with how, when and on what it was
        measured (the command as C{rpctransport bench}); it is the same
        for the same run.
        """
        text = self.render()
        self.assertTrue(text.startswith(RST_HEADER))
        self.assertIn(".. list-table:: four clients\n   :header-rows: 1\n", text)
        self.assertIn("\n- nothing pinned\n", text)
        self.assertIn("Other: not measured: no compiler", text)
        last = text.rstrip("\n").splitlines()[-1]
        for part in (
            "``rpctransport bench --case scaling``",
            "2026-01-01T00:00:00Z",
            "median of 3 runs after 1 warm-up",
            "Test CPU, 2 cores, 2 GiB, Linux 6",
            "CPython 3.11.7, Twisted 26.10.0.",
        ):
            self.assertIn(part, last)
        self.assertTrue(text.endswith(".\n"))
        self.assertEqual(text, self.render())

    def test_from_json(self) -> None:
        """
        C{rpctransport bench --from-json FILE --rst OUT} measures nothing
        and writes what L{rst_tables} makes of the file; without C{--rst}
        it is a usage error, and a file of another format (or none) is
        refused, exit status 2.
        """
        directory = Path(tempfile.mkdtemp(prefix="rpctransport-rst-"))
        self.addCleanup(shutil.rmtree, directory, True)
        source, out = directory / "run.json", directory / "table.inc"
        measured_report().write_json(str(source))
        self.assertEqual(bench_main(["--from-json", str(source), "--rst", str(out)]), 0)
        written = json.loads(source.read_text(encoding="utf-8"))
        self.assertEqual(out.read_text(encoding="utf-8"), rst_tables(written))
        with self.assertRaises(SystemExit) as usage:
            bench_main(["--from-json", str(source)])
        self.assertEqual(usage.exception.code, 2)
        other = json.loads(source.read_text(encoding="utf-8"))
        other["format"] = "rpctransport-bench 0"
        (directory / "other.json").write_text(json.dumps(other))
        self.assertEqual(
            bench_main(["--from-json", str(directory / "other.json"), "--rst", str(out)]), 2
        )


class ChapterTableTests(SynchronousTestCase):
    """
    The chapter's table, C{docs/scaling-table.inc}, and the run it comes
    from, C{docs/scaling-table.json}.
    """

    def setUp(self) -> None:
        docs_or_skip()

    def test_table_is_written_from_json(self) -> None:
        """
        The table is exactly what the benchmark writes from the JSON file
        beside it, and the chapter includes it.
        """
        data = json.loads(TABLE_JSON.read_text(encoding="utf-8"))
        self.assertEqual(TABLE.read_text(encoding="utf-8"), rst_tables(data))
        self.assertIn(f".. include:: {TABLE.name}\n", CHAPTER.read_text(encoding="utf-8"))

    def test_json_is_a_full_scaling_run(self) -> None:
        """
        The JSON file is a full run (not C{--quick}) of the scaling case in
        which every variant was measured: one C{serve} process, C{--workers
        2} and HAProxy in front of two C{serve} processes, compared with the
        one process.
        """
        data: dict[str, Any] = json.loads(TABLE_JSON.read_text(encoding="utf-8"))
        self.assertFalse(data["quick"])
        [case] = data["cases"]
        self.assertEqual(case["id"], "scaling")
        self.assertIsNone(case["skipped"])
        self.assertIsNone(case["error"])
        processes = case["measurements"][0]
        names = [variant["name"] for variant in processes["variants"]]
        self.assertEqual(
            names, ["serve --workers 2", "HAProxy, 2 serve processes", "one serve process"]
        )
        for measurement in case["measurements"]:
            for variant in measurement["variants"]:
                self.assertEqual(len(variant["runs"]), data["runs"], variant["name"])
            for comparison in measurement["comparisons"]:
                self.assertIsNotNone(comparison["ratio"], comparison)
        self.assertEqual(
            [(c["variant"], c["reference"]) for c in processes["comparisons"]],
            [
                ("serve --workers 2", "one serve process"),
                ("HAProxy, 2 serve processes", "one serve process"),
            ],
        )
