# -*- test-case-name: rpctransport.test.test_rpcbind -*-
"""
A real rpcbind for the tests that need one (C{test_rpcbind}, and
C{serve --register} in C{test_cli}): started in the foreground by the
test, stopped when it ends, the files it leaves restored.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from rpctransport.program.echo import ECHO_PROGRAM

RPCBIND_SOCKET = "/run/rpcbind.sock"
RPCBIND_FILES = (
    RPCBIND_SOCKET,
    "/run/rpcbind.lock",
    "/run/rpcbind/rpcbind.xdr",
    "/run/rpcbind/portmap.xdr",
)
"""What rpcbind leaves behind when it stops: its socket, its lock, and its
warm-start state (written at exit even without C{-w})."""


def _answers(address: Any, family: int = socket.AF_INET) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(address)
        except OSError:
            return False
        return True


def _port_111_taken() -> str | None:
    """
    Why port 111 cannot be bound, if it cannot.
    """
    for kind, name in ((socket.SOCK_STREAM, "TCP"), (socket.SOCK_DGRAM, "UDP")):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("0.0.0.0", 111))
            except OSError as e:
                return f"{name} port 111 is taken ({errno.errorcode.get(e.errno or 0, e)})"
    return None


class RunningRpcbind:
    """
    A real rpcbind, started in the foreground for one test (C{rpcbind -f};
    not C{-h}, on which Debian's 1.2.6 aborts with a double free), stopped
    when the test ends, the files it leaves behind restored to what they
    were.
    """

    def __init__(self, testcase: SynchronousTestCase) -> None:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            raise SkipTest("rpcbind must be started as root (it binds port 111)")
        binary = shutil.which("rpcbind", path="/usr/sbin:/sbin:/usr/bin:/bin")
        rpcinfo = shutil.which("rpcinfo") or shutil.which("rpcinfo", path="/usr/sbin:/sbin")
        if binary is None or rpcinfo is None:
            raise SkipTest("no rpcbind or rpcinfo: install Debian's rpcbind package")
        if _answers(RPCBIND_SOCKET, socket.AF_UNIX):
            raise SkipTest(f"an rpcbind already answers on {RPCBIND_SOCKET}")
        taken = _port_111_taken()
        if taken is not None:
            raise SkipTest(f"{taken}: is an rpcbind already running?")
        self.rpcinfo = rpcinfo
        self._saved: dict[str, bytes | None] = {}
        for path in RPCBIND_FILES:
            try:
                with open(path, "rb") as f:
                    self._saved[path] = f.read()
            except FileNotFoundError:
                self._saved[path] = None
            except OSError:
                self._saved[path] = b""  # the socket: left as it is
        self._process = subprocess.Popen(
            [binary, "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        testcase.addCleanup(self.stop)
        deadline = time.monotonic() + 10
        while not (_answers(RPCBIND_SOCKET, socket.AF_UNIX) and _answers(("127.0.0.1", 111))):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SkipTest(f"rpcbind did not start: {self._stderr()}")
            time.sleep(0.02)

    def _stderr(self) -> str:
        if self._process.poll() is None:
            return "still not listening after 10 s"
        assert self._process.stderr is not None
        return (
            f"exit status {self._process.returncode}, "
            + self._process.stderr.read().decode("utf-8", "replace").strip()
        )

    def stop(self) -> None:
        """
        Stop rpcbind, and put back the files it changed.
        """
        process = self._process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
        for path, saved in self._saved.items():
            if saved is None:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            elif saved:
                with open(path, "wb") as f:
                    f.write(saved)
        self._saved = {}

    @inlineCallbacks
    def run(self, *args: str) -> Generator[Any, Any, tuple[int, list[list[str]]]]:
        """
        Run C{rpcinfo} with C{args}; its exit status and its output's lines,
        split in columns.
        """
        out, err, code = yield getProcessOutputAndValue(self.rpcinfo, args, env=os.environ)
        lines = out.decode("utf-8", "replace").splitlines()
        return code, [line.split() for line in lines]

    @inlineCallbacks
    def ports(
        self, program: int = ECHO_PROGRAM
    ) -> Generator[Any, Any, set[tuple[int, int, str, int]]]:
        """
        What C{rpcinfo -p} lists for C{program}: C{(program, version,
        protocol, port)}.
        """
        code, rows = yield self.run("-p")
        return {(int(r[0]), int(r[1]), r[2], int(r[3])) for r in rows[1:] if int(r[0]) == program}

    @inlineCallbacks
    def owners(
        self, program: int = ECHO_PROGRAM
    ) -> Generator[Any, Any, dict[tuple[int, str], str]]:
        """
        What C{rpcinfo} (rpcbind 4's dump) lists for C{program}:
        C{{(version, netid): owner}}.
        """
        code, rows = yield self.run()
        return {(int(r[1]), r[2]): r[-1] for r in rows[1:] if int(r[0]) == program}
