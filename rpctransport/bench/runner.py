# -*- test-case-name: rpctransport.test.test_bench -*-
"""
Running the benchmark's processes, and repeating runs.

Every peer runs in a process of its own, over loopback: the benchmark's
Twisted peers (L{rpctransport.bench.peer}), its byte sources
(C{_sender.py}, standard library only), C{python -m rpctransport serve} and
C{call}, and the libtirpc C client and server, built on first use. Results
come back over pipes: JSON lines from our peers, the one summary line of
C{call} and of the C client.

L{Lab} starts and stops them (no process outlives the benchmark: servers
left running are stopped at exit, and our peers ask Linux to end them when
the benchmark dies); L{repeat} runs the variants of a measurement in turn,
warm-up runs first, so that the noise of a shared machine falls on all of
them alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._tirpc.build import BuildFailed, BuildUnavailable, build
from .._tirpc.process import (
    Finished,
    ServerProcess,
    ServerStartFailed,
    rpctransport_command,
    rpctransport_env,
    run_program,
)
from .report import Measurement

__all__ = [
    "BenchError",
    "Lab",
    "Settings",
    "Skip",
    "parse_tirpc_client",
    "repeat",
]

SENDER = Path(__file__).resolve().with_name("_sender.py")
"""The byte source, run as a script (it imports no Twisted)."""

PROGRAM_TIMEOUT = 300.0
"""Seconds any one client process may run before the run counts as failed."""


class BenchError(Exception):
    """
    A run went wrong: a process failed, or gave what it should not have.
    The message says what, with the process's output.
    """


class Skip(Exception):
    """
    A case or a variant cannot run on this machine; the message says why.
    """


@dataclass(frozen=True)
class Settings:
    """
    How long and how often to measure.

    @ivar quick: the smoke run (C{--quick}).
    @ivar runs: runs per figure (its median, min and max are reported).
    @ivar warmup: runs before those, not reported (they also calibrate the
        counts of runs sized by time).
    @ivar run_time: seconds a run sized by count should take.
    @ivar duration: seconds a run of the C client lasts.
    @ivar idle_connections: connections held open in the memory case.
    @ivar scaling_clients: client processes in the scaling case.
    """

    quick: bool
    runs: int
    warmup: int
    run_time: float
    duration: float
    idle_connections: int
    scaling_clients: int

    @classmethod
    def make(cls, quick: bool, runs: int | None = None) -> Settings:
        """
        The settings of a full run, or of a quick one.
        """
        if quick:
            # No warm-up: a smoke run checks that everything works, and its
            # counts start small enough without calibration.
            return cls(True, runs or 3, 0, 0.03, 0.1, 1000, 4)
        return cls(False, runs or 5, 1, 0.3, 0.5, 10_000, 4)


_CLIENT_LINE = re.compile(
    r"^(ok|FAIL) .* calls (\d+)/(\d+) elapsed ([\d.]+) s ([\d.]+) calls/s ([\d.]+) MB/s"
)


def parse_tirpc_client(finished: Finished) -> dict[str, float]:
    """
    The summary of a C{tirpc_client} run: C{calls}, C{elapsed},
    C{calls_per_s}, C{mb_per_s}.

    @raise BenchError: if it failed or printed no summary.
    """
    for line in finished.stdout.splitlines():
        match = _CLIENT_LINE.match(line)
        if match is not None and match.group(1) == "ok" and finished.returncode == 0:
            return {
                "calls": float(match.group(2)),
                "elapsed": float(match.group(4)),
                "calls_per_s": float(match.group(5)),
                "mb_per_s": float(match.group(6)),
            }
    raise BenchError(f"the C client failed:\n{finished.describe()}")


_CALL_LINE = re.compile(r"^calls (\d+)\s+ok (\d+)\s+failed (\d+)\s+elapsed ([\d.]+) s")


def parse_call(finished: Finished) -> dict[str, float]:
    """
    The summary of an C{rpctransport call} run: C{calls}, C{elapsed}.

    @raise BenchError: if a call failed or there is no summary.
    """
    for line in finished.stdout.splitlines():
        match = _CALL_LINE.match(line)
        if match is not None and finished.returncode == 0 and match.group(3) == "0":
            return {"calls": float(match.group(2)), "elapsed": float(match.group(4))}
    raise BenchError(f"rpctransport call failed:\n{finished.describe()}")


class Lab:
    """
    Starts the benchmark's processes and stops them.

    @ivar settings: how long and how often to measure.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = rpctransport_env()
        self._servers: list[ServerProcess] = []
        self._tirpc: dict[str, Path | str] = {}
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:
            self.cpus = []

    # -- Cores ----------------------------------------------------------------

    @property
    def pinning(self) -> bool:
        """
        Whether servers and clients get a core each (two cores or more).
        """
        return len(self.cpus) >= 2

    def pin_server(self, server: ServerProcess) -> None:
        """
        Keep a (single-process) server on the first core, so that a client
        on the second talks to it across cores, as across a network. Left
        to the scheduler, the two sometimes share a core, where a ping-pong
        costs no cross-core wake-up: figures of one call in flight then
        jump between two modes several times apart.
        """
        if self.pinning:
            try:
                os.sched_setaffinity(server.process.pid, {self.cpus[0]})
            except OSError:
                pass

    @contextlib.contextmanager
    def client_cpu(self) -> Iterator[None]:
        """
        Start clients on the second core (they inherit this process's
        affinity while the block runs).
        """
        if not self.pinning:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.cpus[1]})
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    # -- Commands -----------------------------------------------------------

    @staticmethod
    def peer(*args: str) -> list[str]:
        """
        The command line of one of our Twisted peers.
        """
        return [sys.executable, "-m", "rpctransport.bench.peer", *args]

    @staticmethod
    def sender(*args: str) -> list[str]:
        """
        The command line of the byte source (C{-I}: nothing from the
        environment or the current directory is imported).
        """
        return [sys.executable, "-I", str(SENDER), *args]

    @staticmethod
    def rpctransport(*args: str) -> list[str]:
        """
        The command line of C{python -m rpctransport ARGS}.
        """
        return rpctransport_command(*args)

    def tirpc(self, name: str) -> Path:
        """
        The libtirpc peer C{name}, built on first use.

        @raise Skip: if this machine cannot build it.
        @raise BenchError: if the compiler fails.
        """
        if name not in self._tirpc:
            try:
                self._tirpc[name] = build(name)
            except BuildUnavailable as e:
                self._tirpc[name] = str(e)
            except BuildFailed as e:
                raise BenchError(str(e)) from None
        found = self._tirpc[name]
        if isinstance(found, str):
            raise Skip(found)
        return found

    # -- Processes ------------------------------------------------------------

    def spawn(self, argv: Sequence[str]) -> ServerProcess:
        """
        Start a long-running process (a server, or the holder of idle
        connections); L{close} stops it if nobody did.
        """
        server = ServerProcess(argv, self.env)
        self._servers.append(server)
        return server

    def ready(self, server: ServerProcess, kinds: Sequence[str] = ("tcp",)) -> ServerProcess:
        """
        Wait until C{server} prints its C{listening} lines.

        @raise BenchError: if it does not.
        """
        try:
            server.wait_listening(kinds, 60.0)
        except ServerStartFailed as e:
            raise BenchError(str(e)) from None
        return server

    def start(self, argv: Sequence[str], kinds: Sequence[str] = ("tcp",)) -> ServerProcess:
        """
        L{spawn} a server and wait until it listens.
        """
        return self.ready(self.spawn(argv), kinds)

    def stop(self, server: ServerProcess) -> None:
        """
        Stop a process started here.
        """
        server.stop()
        if server in self._servers:
            self._servers.remove(server)

    def close(self) -> None:
        """
        Stop every process still running.
        """
        for server in list(self._servers):
            self.stop(server)

    def run(self, argv: Sequence[str], timeout: float = PROGRAM_TIMEOUT) -> Finished:
        """
        Run a client to its end.

        @raise BenchError: if it fails or runs out of time.
        """
        finished = run_program(argv, timeout, env=self.env)
        if finished.returncode != 0:
            raise BenchError(finished.describe())
        return finished

    def result(self, server: ServerProcess, timeout: float = PROGRAM_TIMEOUT) -> dict[str, Any]:
        """
        The next JSON line one of our peers prints.

        @raise BenchError: if it prints none in time, or reports an error.
        """
        try:
            line = server.wait_line(r"^\{", timeout).string
        except ServerStartFailed as e:
            raise BenchError(str(e)) from None
        result: dict[str, Any] = json.loads(line)
        if "error" in result:
            raise BenchError(f"{' '.join(server.argv)}: {result['error']}")
        return result


def proc_status(pid: int) -> dict[str, int]:
    """
    C{VmRSS} and C{VmHWM} of a process, in bytes, from C{/proc/PID/status}.
    """
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    return found


def open_files(pid: int) -> int:
    """
    How many descriptors a process has open.
    """
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """
    Poll C{condition} until it holds.

    @raise BenchError: after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Sized:
    """
    A run sized by a count (records, calls), adjusted after each run so that
    the next takes about C{run_time} seconds: the warm-up runs calibrate it.
    """

    def __init__(
        self,
        run: Callable[[int], tuple[float, float]],
        count: int,
        run_time: float,
        most: int = 1 << 40,
    ) -> None:
        """
        @param run: runs C{count} and returns C{(seconds, figure)}.
        @param count: the count of the first run.
        @param most: never more than this.
        """
        self._run = run
        self.count = count
        self.run_time = run_time
        self.most = most

    def __call__(self) -> float:
        elapsed, figure = self._run(self.count)
        if elapsed > 0:
            scale = min(100.0, max(0.01, self.run_time / elapsed))
            self.count = max(1, min(self.most, int(self.count * scale)))
        return figure


def repeat(
    settings: Settings,
    measurement: Measurement,
    runs: dict[str, Callable[[], float]],
    warmup: int | None = None,
) -> None:
    """
    Run each variant's C{runs[name]()} C{warmup} times, then
    C{settings.runs} times, keeping the figures; the variants take turns
    (in reverse order every other round), so that a slow moment of the
    machine falls on all of them.

    A variant that raises L{Skip} is marked skipped, one that raises
    L{BenchError} failed; the others go on.
    """
    warmup = settings.warmup if warmup is None else warmup
    order = list(runs.items())
    for round_number in range(warmup + settings.runs):
        for name, run in order if round_number % 2 == 0 else order[::-1]:
            variant = measurement.variant(name)
            assert variant is not None, name
            if variant.skipped or variant.error:
                continue
            try:
                figure = run()
            except Skip as e:
                variant.skipped = str(e)
            except BenchError as e:
                variant.error = str(e)
            else:
                if round_number >= warmup:
                    variant.runs.append(figure)
