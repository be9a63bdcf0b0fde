# -*- test-case-name: rpctransport.test.test_interop -*-
"""
Run peer programs as subprocesses: servers (the libtirpc C server,
C{python -m rpctransport serve}, the benchmark's receivers) that print
C{listening KIND ADDRESS} lines, and clients run to their end.

The interop tests and the benchmark share these helpers. Every child runs in
its own session, so that a stop reaches whatever it started in turn;
servers not stopped by their owner are stopped when this process exits.
"""

from __future__ import annotations

import atexit
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "Finished",
    "RUN_TIMEOUT",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "ServerProcess",
    "ServerStartFailed",
    "rpctransport_command",
    "rpctransport_env",
    "run_program",
]

SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The directory that holds the C{rpctransport} package running here."""

START_TIMEOUT = 30.0
"""
Seconds a server has to print its C{listening} lines. Generous: a Python
server imports Twisted first, which takes seconds on a loaded CI machine.
"""

STOP_TIMEOUT = 10.0
"""Seconds a server has to exit after SIGTERM before it is killed."""

RUN_TIMEOUT = 60.0
"""Seconds a client has to finish before it is killed."""

_LISTENING = re.compile(r"^listening (tcp|udp|unix|tls) (\S+)$")


class ServerStartFailed(Exception):
    """
    A server exited, or did not print all its C{listening} lines in time.
    The message has the command and everything the server printed.
    """


# ---------------------------------------------------------------------------
# The rpctransport program
# ---------------------------------------------------------------------------


def rpctransport_command(*args: str) -> list[str]:
    """
    The command line of C{python -m rpctransport ARGS...}, with the Python
    running here.
    """
    return [sys.executable, "-m", "rpctransport", *args]


def rpctransport_env() -> dict[str, str]:
    """
    The environment for L{rpctransport_command}: this one, with the
    directory of the package running here first on C{PYTHONPATH}, so that
    the subprocess runs the same code as its parent imported.
    """
    env = dict(os.environ)
    paths = [str(SOURCE_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


def _signal_group(process: subprocess.Popen[str], signum: int) -> None:
    """
    Send a signal to a child started with C{start_new_session=True} and to
    whatever it started in turn (its process group), so that a wrapper
    script cannot leave a grandchild behind holding our pipes open.

    Call only while the child is not yet reaped: its process group id is
    its pid, which cannot have been reused until then.
    """
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _drain(
    pipe: IO[str], lines: list[str], notify: queue.Queue[str | None] | None
) -> None:
    """
    Read a pipe to its end, keeping its lines; a reader thread's body, so
    that a chatty child never blocks on a full pipe.

    @param notify: if not L{None}, receives each line, then L{None} at the
        end.
    """
    try:
        for line in pipe:
            line = line.rstrip("\n")
            lines.append(line)
            if notify is not None:
                notify.put(line)
    finally:
        if notify is not None:
            notify.put(None)


def _spawn(argv: Sequence[str], env: Mapping[str, str] | None) -> subprocess.Popen[str]:
    """
    Start a program with its output piped as text, in a session of its own
    (so that killing the session takes its children too).
    """
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=None if env is None else dict(env),
        start_new_session=True,
    )


class ServerProcess:
    """
    A server running as a subprocess.

    @ivar argv: its command line.
    @ivar process: the process.
    @ivar addresses: what it listens on, from its C{listening} lines:
        C{{"tcp": "127.0.0.1:40123", "udp": ..., "unix": "/path"}}.
    @ivar stdout: the lines it printed on standard output so far.
    @ivar stderr: the lines it printed on standard error so far.
    @ivar killed: whether L{stop} had to kill it.
    """

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.addresses: dict[str, str] = {}
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.killed = False
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.process = _spawn(self.argv, env)
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(
                target=_drain,
                args=(self.process.stdout, self.stdout, self._lines),
                daemon=True,
            ),
            threading.Thread(
                target=_drain,
                args=(self.process.stderr, self.stderr, None),
                daemon=True,
            ),
        ]
        for reader in self._readers:
            reader.start()
        _running.add(self)

    def wait_listening(self, kinds: Sequence[str], timeout: float) -> None:
        """
        Wait until the server has printed a C{listening} line for each of
        C{kinds}.

        @param kinds: some of C{"tcp"}, C{"udp"}, C{"unix"}.
        @param timeout: seconds to wait.
        @raise ServerStartFailed: if its standard output ends first (it
            exited), or C{timeout} passes; the server is stopped.
        """
        deadline = time.monotonic() + timeout
        while not all(kind in self.addresses for kind in kinds):
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0))
            except queue.Empty:
                self.stop()
                raise ServerStartFailed(
                    self.describe(
                        f"no 'listening' line for {self._missing(kinds)} "
                        f"within {timeout:g} s"
                    )
                ) from None
            if line is None:
                self.stop()
                raise ServerStartFailed(
                    self.describe(
                        "the server closed its standard output before "
                        f"listening on {self._missing(kinds)}"
                    )
                )
            match = _LISTENING.match(line.strip())
            if match is not None:
                self.addresses[match.group(1)] = match.group(2)

    def _missing(self, kinds: Sequence[str]) -> str:
        return ", ".join(kind for kind in kinds if kind not in self.addresses)

    def host_port(self, kind: str) -> tuple[str, int]:
        """
        The host and port of a C{tcp} or C{udp} listener.
        """
        host, port = self.addresses[kind].rsplit(":", 1)
        return host.strip("[]"), int(port)

    def port(self, kind: str) -> int:
        """
        The port of a C{tcp} or C{udp} listener.
        """
        return self.host_port(kind)[1]

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """
        Stop the server: SIGTERM, then SIGKILL if it has not exited after
        C{timeout} seconds. Safe to call again.

        @return: its exit status (negative: the signal that ended it).
        """
        _running.discard(self)
        if self.process.poll() is None:
            try:
                _signal_group(self.process, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait()
        for reader in self._readers:
            reader.join(5)
        # Closing a pipe that a reader is still blocked on would wait for
        # that read (a lingering grandchild holding the pipe open): leave
        # such a pipe to its daemon thread.
        if not any(reader.is_alive() for reader in self._readers):
            for pipe in (self.process.stdout, self.process.stderr):
                if pipe is not None:
                    pipe.close()
        return self.process.returncode

    def wait_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """
        Wait for a line of standard output that matches C{pattern}, passing
        over the lines before it (they stay in L{stdout}).

        @param pattern: a regular expression, matched at the start of each
            line.
        @param timeout: seconds to wait.
        @return: the match.
        @raise ServerStartFailed: if standard output ends first (the process
            exited), or C{timeout} passes. The process is left running.
        """
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0))
            except queue.Empty:
                raise ServerStartFailed(
                    self.describe(f"no line matching {pattern!r} within {timeout:g} s")
                ) from None
            if line is None:
                # Let a later wait see the end too.
                self._lines.put(None)
                raise ServerStartFailed(
                    self.describe(f"standard output ended before a line matching {pattern!r}")
                )
            match = compiled.match(line)
            if match is not None:
                return match

    def describe(self, what: str = "") -> str:
        """
        Describe the server for a failure message: its command line, C{what}
        went wrong, its status and all it printed.
        """
        status = self.process.poll()
        lines = [f"$ {' '.join(self.argv)}"]
        if what:
            lines.append(what)
        lines.append(
            "still running" if status is None else f"exit status {status}"
        )
        lines.append("stdout:")
        lines.extend(f"  {line}" for line in self.stdout)
        lines.append("stderr:")
        lines.extend(f"  {line}" for line in self.stderr)
        return "\n".join(lines)


_running: set[ServerProcess] = set()
"""
Servers not yet stopped. Each runs in its own session (so that L{stop} can
reach anything it started), out of reach of a Ctrl-C at the terminal: those
a test run leaves behind when it is interrupted are stopped at exit.
"""


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        server.stop()


@dataclass(frozen=True)
class Finished:
    """
    A program that ran to its end, or was killed at its timeout.

    @ivar argv: its command line.
    @ivar returncode: its exit status, or L{None} if it was killed because
        it ran out of time.
    @ivar stdout: what it printed on standard output.
    @ivar stderr: what it printed on standard error.
    @ivar elapsed: how long it ran, in seconds.
    """

    argv: Sequence[str]
    returncode: int | None
    stdout: str
    stderr: str
    elapsed: float

    def describe(self) -> str:
        """
        Describe the run for a failure message.
        """
        if self.returncode is None:
            status = f"killed: still running after {self.elapsed:.1f} s"
        else:
            status = f"exit status {self.returncode} after {self.elapsed:.2f} s"
        return (
            f"$ {' '.join(self.argv)}\n{status}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )


def run_program(
    argv: Sequence[str],
    timeout: float = RUN_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Finished:
    """
    Run a program to its end, killing it if it runs longer than C{timeout}
    seconds.

    @param argv: its command line.
    @param timeout: seconds it may run.
    @param env: its environment (by default, ours).
    """
    started = time.monotonic()
    process = _spawn(argv, env)
    returncode: int | None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        stdout, stderr = process.communicate()
        returncode = None
    return Finished(
        list(argv), returncode, stdout, stderr, time.monotonic() - started
    )
