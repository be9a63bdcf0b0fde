# -*- test-case-name: rpctransport.test.test_workers -*-
"""
Tests for C{rpctransport serve --workers N} and socket activation
(C{serve --systemd}, C{--listen systemd:...}): real processes, real
sockets.

The worker processes are found from the parent's line C{... from N worker
processes PID, PID; ...} on standard error, and from C{/proc}.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from rpctransport._tirpc import process as _process
from rpctransport.program import workers
from rpctransport.program.cli import parse_args
from rpctransport.program.echo import encode_opaque
from rpctransport.program.workers import WorkerPool, bind_shared
from rpctransport.test.helpers import (
    echo_call,
    help_text,
    read_record,
    record,
    usage_error,
    wait_until,
)
from rpctransport.test.interop.build import (
    Finished,
    ServerProcess,
    rpctransport_command,
    rpctransport_env,
    run_program,
    start_server,
)


def children_of(pid: int) -> list[int]:
    """
    The processes whose parent is C{pid}, from C{/proc}.
    """
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "PID (COMMAND) STATE PPID ...": the command may hold spaces.
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(text.split(" ", 1)[0]))
    return sorted(found)


def running(pid: int) -> bool:
    """
    Whether C{pid} is a process that has not exited (a zombie has).
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] not in "ZX"


def call(address: str, *argv: str) -> Finished:
    """
    Run C{rpctransport call ADDRESS ARGV...} to its end.
    """
    return run_program(rpctransport_command("call", address, *argv), env=rpctransport_env())


def stderr_match(server: ServerProcess, pattern: str, timeout: float = 30.0) -> re.Match[str] | None:
    """
    Wait for a line of the server's standard error that C{pattern} is found
    in; return its match (L{None} if none came within C{timeout}).
    """
    found: list[re.Match[str]] = []

    def look() -> bool:
        for line in list(server.stderr):
            match = re.search(pattern, line)
            if match is not None:
                found.append(match)
                return True
        return False

    wait_until(look, timeout)
    return found[0] if found else None


def write_certificates(testcase: SynchronousTestCase) -> dict[str, str]:
    """
    A CA and a server certificate for C{localhost} and C{127.0.0.1}, in
    files removed when the test ends: C{{"ca": PATH, "server": PATH}}.
    """
    from rpctransport.testing import CertificateAuthority

    directory = tempfile.mkdtemp()
    testcase.addCleanup(shutil.rmtree, directory, ignore_errors=True)
    ca = CertificateAuthority()
    files = {}
    for name, data in (
        ("ca", ca.certificate),
        ("server", ca.issue("test server", dns=("localhost",), ips=("127.0.0.1",)).pem),
    ):
        path = os.path.join(directory, f"{name}.pem")
        Path(path).write_bytes(data)
        files[name] = path
    return files


def listening_sockets(protocol: str, port: int) -> int:
    """
    How many sockets of this machine's network namespace are bound to
    C{port} on IPv4: listening ones for C{tcp}, all for C{udp}; from
    C{/proc/net}.
    """
    count = 0
    for line in Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if int(local.rsplit(":", 1)[1], 16) == port and (protocol == "udp" or state == "0A"):
            count += 1
    return count


class _ProcTestCase(SynchronousTestCase):
    """
    Skips without C{/proc}; fails when a worker outlives its test.
    """

    def setUp(self) -> None:
        if not Path("/proc/self/stat").exists():
            raise SkipTest("finding the workers needs /proc")

    def serve(self, *argv: str, kinds: Sequence[str] = ("tcp", "udp")) -> tuple[ServerProcess, list[int]]:
        """
        Start C{serve ARGV...} (with C{--workers N} in C{argv}), wait for
        its C{listening} lines and its workers; make sure no worker outlives
        the test.
        """
        server = start_server(self, rpctransport_command("serve", *argv), kinds, env=rpctransport_env())
        return server, self.workers_of(server)

    def workers_of(self, server: ServerProcess) -> list[int]:
        """
        The workers the parent names on standard error, checked against
        C{/proc}; each is killed when the test ends if still running.
        """
        match = stderr_match(server, r"from \d+ worker processes ([\d, ]+);")
        self.assertIsNotNone(match, server.describe())
        assert match is not None
        pids = [int(pid) for pid in match.group(1).split(", ")]
        self.assertEqual(sorted(pids), children_of(server.process.pid), server.describe())
        self.addCleanup(self.assertNoOrphans, pids, server)
        return pids

    def assertNoOrphans(self, pids: list[int], server: ServerProcess | None = None) -> None:
        """
        Fail unless every one of C{pids} has exited (killing those left),
        once C{server}, their parent, is stopped.
        """
        if server is not None:
            server.stop()
        left = [pid for pid in pids if running(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        self.assertEqual(left, [], "worker processes outlived the test")

    def assertStopsAll(self, server: ServerProcess, pids: list[int]) -> None:
        """
        SIGTERM to the parent alone (not to its process group) stops every
        worker, and the parent exits 0.
        """
        os.kill(server.process.pid, signal.SIGTERM)
        self.assertEqual(server.process.wait(workers.WORKER_STOP_TIMEOUT / 2), 0, server.describe())
        self.assertTrue(wait_until(lambda: not any(map(running, pids)), 10), pids)


class WorkersTests(_ProcTestCase):
    """
    C{serve --workers N}: one parent, N worker processes sharing its sockets.
    """

    def test_serve_and_stop(self) -> None:
        """
        With C{--workers 2}, C{serve} prints its listeners once both workers
        serve, answers calls over TCP (on several connections) and UDP, and
        on SIGTERM to the parent alone stops both workers and exits 0.
        """
        server, pids = self.serve("--workers", "2")
        for kind, concurrency in (("tcp", "8"), ("udp", "1")):
            done = call(
                f"{kind}:{server.addresses[kind]}", "--proc", "echo",
                "--size", "100", "--count", "200", "--concurrency", concurrency,
            )
            self.assertEqual(done.returncode, 0, done.describe())
        for _ in range(4):
            done = call(f"tcp:{server.addresses['tcp']}", "--count", "20")
            self.assertEqual(done.returncode, 0, done.describe())
        self.assertTrue(all(running(pid) for pid in pids))
        self.assertStopsAll(server, pids)

    def test_parent_killed(self) -> None:
        """
        Workers whose parent dies without forwarding anything (SIGKILL) stop
        on their own.
        """
        server, pids = self.serve("--workers", "2")
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
        self.assertTrue(wait_until(lambda: not any(map(running, pids))), pids)

    def test_unix(self) -> None:
        """
        The workers share a UNIX listener (and a TCP one): calls through its
        path succeed; a worker stopped on its own (SIGTERM to it alone) is
        replaced, and leaves the sockets serving (not shut down) and the
        path in place for the others; SIGTERM to the parent stops them all,
        and the parent removes the path and its lock file.
        """
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "echo.sock")
            server, pids = self.serve(
                "--workers", "2", "--unix", path, "--tcp", "127.0.0.1:0", kinds=["unix", "tcp"]
            )
            self.assertEqual(server.addresses["unix"], path)
            for _ in range(3):
                done = call(f"unix:{path}", "--proc", "echo", "--size", "100", "--count", "50", "--concurrency", "4")
                self.assertEqual(done.returncode, 0, done.describe())
            os.kill(pids[0], signal.SIGTERM)
            replaced = stderr_match(server, rf"worker {pids[0]} exited with status 0; started worker (\d+)")
            self.assertIsNotNone(replaced, server.describe())
            assert replaced is not None
            new = int(replaced.group(1))
            self.addCleanup(self.assertNoOrphans, [new], server)
            self.assertTrue(os.path.exists(path), "a worker's stop removed the shared socket's path")
            for _ in range(3):
                for address in (f"unix:{path}", f"tcp:{server.addresses['tcp']}"):
                    done = call(address, "--count", "20")
                    self.assertEqual(done.returncode, 0, done.describe())
            self.assertStopsAll(server, [pids[1], new])
            self.assertEqual(os.listdir(directory), [])

    def test_tls_and_starttls(self) -> None:
        """
        The workers serve a TLS listener (each builds its TLS options from
        the files the parent checked) and STARTTLS on the plaintext one;
        calls succeed through both; SIGTERM to the parent stops them all.
        """
        files = write_certificates(self)
        server, pids = self.serve(
            "--workers", "2", "--tls", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--starttls",
            "--tls-cert", files["server"],
            kinds=["tls", "tcp"],
        )
        for _ in range(3):
            done = call(
                f"tls:{server.addresses['tls']}", "--tls-ca", files["ca"], "--proc", "echo",
                "--size", "1000", "--count", "50", "--concurrency", "4",
            )
            self.assertEqual(done.returncode, 0, done.describe())
            self.assertIn("tls TLSv1.3", done.stdout)
            done = call(
                f"tcp:{server.addresses['tcp']}", "--starttls", "--tls-ca", files["ca"],
                "--server-name", "localhost", "--count", "20",
            )
            self.assertEqual(done.returncode, 0, done.describe())
            self.assertIn("tls TLSv1.3", done.stdout)
        self.assertStopsAll(server, pids)

    def test_killed_worker_replaced(self) -> None:
        """
        A worker killed with SIGKILL is replaced, with one line naming both
        and how the first ended; once both original workers are killed, the
        replacements alone answer calls over TCP and UDP on the same
        sockets; SIGTERM to the parent stops them.
        """
        server, pids = self.serve("--workers", "2")
        replacements = []
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            replaced = stderr_match(
                server, rf"worker {pid} was killed by SIGKILL; started worker (\d+) in its place"
            )
            self.assertIsNotNone(replaced, server.describe())
            assert replaced is not None
            replacements.append(int(replaced.group(1)))
            self.addCleanup(self.assertNoOrphans, replacements[-1:], server)
        self.assertEqual(sorted(replacements), children_of(server.process.pid))
        for kind in ("tcp", "udp"):
            done = call(f"{kind}:{server.addresses[kind]}", "--proc", "echo", "--size", "100", "--count", "50")
            self.assertEqual(done.returncode, 0, done.describe())
        self.assertStopsAll(server, replacements)

    def test_stop_restarts_nothing(self) -> None:
        """
        SIGTERM to the whole process group (as Ctrl-C or a service manager
        sends it) stops parent and workers: a worker that ends while another
        is still stopping (here held with SIGSTOP for a second) is part of
        the stop, not a death to replace; the parent exits 0 once the last
        one stopped, with no worker left.
        """
        server, pids = self.serve("--workers", "2")
        os.kill(pids[1], signal.SIGSTOP)
        self.addCleanup(lambda: running(pids[1]) and os.kill(pids[1], signal.SIGCONT))
        os.killpg(server.process.pid, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: not running(pids[0]), 10))
        # Time enough for several replacements.
        self.assertFalse(wait_until(lambda: server.process.poll() is not None, 1))
        os.kill(pids[1], signal.SIGCONT)
        self.assertEqual(server.process.wait(workers.WORKER_STOP_TIMEOUT / 2), 0, server.describe())
        self.assertNotIn("in its place", "\n".join(server.stderr))
        self.assertEqual(children_of(server.process.pid), [])
        self.assertTrue(wait_until(lambda: not any(map(running, pids)), 10), pids)

    def test_reuse_port(self) -> None:
        """
        With C{--reuse-port}, each worker binds its own TCP and UDP socket
        on the same port (two of each in C{/proc/net}, where a shared socket
        is one), calls succeed, and a replaced worker binds its own again.
        """
        server, pids = self.serve("--workers", "2", "--reuse-port")
        tcp, udp = server.port("tcp"), server.port("udp")
        self.assertEqual((listening_sockets("tcp", tcp), listening_sockets("udp", udp)), (2, 2))
        for kind in ("tcp", "udp"):
            done = call(f"{kind}:{server.addresses[kind]}", "--count", "50", "--concurrency", "4")
            self.assertEqual(done.returncode, 0, done.describe())
        os.kill(pids[0], signal.SIGKILL)
        replaced = stderr_match(server, rf"worker {pids[0]} was killed by SIGKILL; started worker (\d+)")
        self.assertIsNotNone(replaced, server.describe())
        assert replaced is not None
        new = int(replaced.group(1))
        self.addCleanup(self.assertNoOrphans, [new], server)
        self.assertTrue(
            wait_until(lambda: listening_sockets("tcp", tcp) == 2 and listening_sockets("udp", udp) == 2),
            server.describe(),
        )
        self.assertStopsAll(server, [pids[1], new])

    def test_restarts_capped(self) -> None:
        """
        Workers that keep dying are replaced at most C{MAX_RESTARTS} times
        within C{RESTART_WINDOW}; then the pool stops the others and ends
        with status 1. (Here the certificate is removed once the workers
        serve, so that every replacement exits at its start.)
        """
        files = write_certificates(self)
        self.patch(workers, "MAX_RESTARTS", 2)
        self.patch(workers, "RESTART_DELAY", 0.01)
        args = parse_args(["serve", "--workers", "2", "--tls", "127.0.0.1:0", "--tls-cert", files["server"]])
        lines: list[str] = []
        pool = WorkerPool(args, bind_shared(args), say=lines.append, handle_signals=False)
        statuses: list[int] = []
        thread = threading.Thread(target=lambda: statuses.append(pool.run()))
        thread.start()

        def stop() -> None:
            pool.request_stop()
            thread.join(workers.WORKER_STOP_TIMEOUT)
            self.assertNoOrphans([w.pid for w in pool.workers])

        self.addCleanup(stop)
        self.assertTrue(wait_until(lambda: any("serving program" in line for line in lines), 60), lines)
        os.remove(files["server"])
        os.kill(pool.workers[0].pid, signal.SIGKILL)
        thread.join(60)
        self.assertEqual(statuses, [1], lines)
        self.assertEqual(len([line for line in lines if "in its place" in line]), 2, lines)
        self.assertIn("after 2 restarts in 60 s; stopping the others", lines[-1])
        self.assertEqual([w for w in pool.workers if w.poll() is None], [])

    def test_usage(self) -> None:
        """
        C{--workers} takes every listener but C{--listen} (and not
        C{--register}), and must be at least 1; C{--reuse-port} goes with
        it.
        """
        self.assertEqual(parse_args(["serve"]).workers, 1)
        self.assertIn("--workers", help_text("serve"))
        args = parse_args(["serve", "--workers", "2", "--unix", "/x", "--tls", "127.0.0.1:0", "--tls-cert", "c"])
        self.assertEqual((args.unix, args.workers), (["/x"], 2))
        self.assertIn("--systemd", usage_error("serve", "--workers", "2", "--listen", "tcp:0"))
        self.assertIn("--workers 1", usage_error("serve", "--workers", "2", "--register"))
        self.assertIn("at least 1", usage_error("serve", "--workers", "0"))
        self.assertIn("goes with --workers", usage_error("serve", "--reuse-port"))
        self.assertIn("alone", usage_error("serve", "--adopt", "tcp:3", "--tcp", "127.0.0.1:0"))


_ACTIVATE = """
import fcntl, os, sys
fds = [int(fd) for fd in sys.argv[1].split(",")]
# As systemd does: the sockets at 3, 4, ..., inheritable, and the variables
# naming them for this very process (exec keeps the pid).
high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
for n, fd in enumerate(high):
    os.dup2(fd, 3 + n)
    os.close(fd)
os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=sys.argv[2])
os.execv(sys.executable, [sys.executable, *sys.argv[3:]])
"""
"""What a service manager does before it runs C{serve}: argv FDS NAMES COMMAND..."""


class SocketActivationTests(_ProcTestCase):
    """
    C{serve} on listening sockets a service manager bound and passed
    (systemd's C{LISTEN_FDS}): here the test binds them and starts C{serve}
    the way systemd does.
    """

    def setUp(self) -> None:
        super().setUp()
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.sockets: list[socket.socket] = []

    def bind(self, kind: str) -> socket.socket:
        """
        A socket as a C{.socket} unit makes it: C{tcp} listening on
        loopback, C{udp} bound there, C{unix} listening in a temporary
        directory; closed when the test ends.
        """
        if kind == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
        elif kind == "unix":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(os.path.join(self.directory, "echo.sock"))
            sock.listen(16)
        else:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
        self.addCleanup(sock.close)
        self.sockets.append(sock)
        return sock

    def activated(
        self, names: str, *argv: str, kinds: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> ServerProcess:
        """
        Start C{serve ARGV...} with the sockets bound so far passed at fds 3,
        4, ... named C{names} (C{LISTEN_FDNAMES}); wait for its C{listening}
        lines of C{kinds}.
        """
        fds = [sock.fileno() for sock in self.sockets]
        command = [
            sys.executable, "-c", _ACTIVATE, ",".join(map(str, fds)), names,
            "-m", "rpctransport", "serve", *argv,
        ]

        def spawn(argv: Sequence[str], env: Mapping[str, str] | None) -> subprocess.Popen[str]:
            # ServerProcess's, with the sockets inherited.
            return subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, errors="replace",
                env=None if env is None else dict(env), start_new_session=True, pass_fds=fds,
            )

        self.patch(_process, "_spawn", spawn)
        return start_server(self, command, kinds, env=env or rpctransport_env())

    def text(self, sock: socket.socket) -> str:
        """
        The address of one of the test's sockets, as C{listening} lines say.
        """
        address = sock.getsockname()
        return address if isinstance(address, str) else f"{address[0]}:{address[1]}"

    def check_serves(self, server: ServerProcess, tcp: socket.socket, udp: socket.socket, unix: socket.socket) -> None:
        """
        C{server} says it listens on the test's sockets, and calls through
        each succeed.
        """
        self.assertEqual(
            (server.addresses["tcp"], server.addresses["udp"], server.addresses["unix"]),
            (self.text(tcp), self.text(udp), self.text(unix)),
        )
        for kind, sock in (("tcp", tcp), ("udp", udp), ("unix", unix)):
            done = call(f"{kind}:{self.text(sock)}", "--proc", "echo", "--size", "100", "--count", "20")
            self.assertEqual(done.returncode, 0, done.describe())

    def test_systemd(self) -> None:
        """
        C{serve --systemd} serves every passed socket by its type: TCP, UDP,
        UNIX stream, and TLS from the first byte on the stream socket named
        C{tls}. Stopped, it leaves the sockets to their owner: the UNIX
        socket's path stays, and a client connecting meanwhile waits in the
        backlog; started again on the same sockets, it answers that client.
        """
        files = write_certificates(self)
        tcp, udp, unix, tls = (self.bind(kind) for kind in ("tcp", "udp", "unix", "tcp"))
        argv = ["--systemd", "--tls-cert", files["server"]]
        server = self.activated("rpc:rpc:rpc:tls", *argv, kinds=["tcp", "udp", "unix", "tls"])
        self.check_serves(server, tcp, udp, unix)
        self.assertEqual(server.addresses["tls"], self.text(tls))
        done = call(f"tls:{self.text(tls)}", "--tls-ca", files["ca"], "--count", "20")
        self.assertEqual(done.returncode, 0, done.describe())
        self.assertEqual(server.stop(), 0, server.describe())
        self.assertTrue(os.path.exists(unix.getsockname()), "serve removed systemd's socket path")
        # Between two runs of serve: the kernel queues the connection.
        waiting = socket.create_connection(tcp.getsockname(), timeout=30)
        self.addCleanup(waiting.close)
        argument = b"while serve was down"
        waiting.sendall(record(echo_call(7, argument=argument)))
        server = self.activated("rpc:rpc:rpc:tls", *argv, kinds=["tcp", "udp", "unix", "tls"])
        reply = read_record(waiting, timeout=30)
        self.assertEqual(reply[:4], (7).to_bytes(4, "big"))
        self.assertTrue(reply.endswith(b"".join(encode_opaque(argument))), reply)
        done = call(f"unix:{self.text(unix)}", "--count", "5")
        self.assertEqual(done.returncode, 0, done.describe())

    def test_systemd_workers(self) -> None:
        """
        C{serve --systemd --workers 2}: the parent hands the passed sockets
        to its workers, which serve them; stopped, they leave the UNIX
        socket's path in place.
        """
        tcp, udp, unix = (self.bind(kind) for kind in ("tcp", "udp", "unix"))
        server = self.activated("rpc:rpc:rpc", "--systemd", "--workers", "2", kinds=["tcp", "udp", "unix"])
        pids = self.workers_of(server)
        self.check_serves(server, tcp, udp, unix)
        self.assertStopsAll(server, pids)
        self.assertTrue(os.path.exists(unix.getsockname()), "serve removed systemd's socket path")

    def test_listen_systemd_endpoints(self) -> None:
        """
        Twisted's C{systemd:} endpoint strings with C{--listen}: the stream
        socket is served as TCP, the datagram socket as UDP (Twisted alone
        would adopt it as a stream port), a UNIX socket without removing
        its path when stopped.
        """
        tcp, udp, unix = (self.bind(kind) for kind in ("tcp", "udp", "unix"))
        server = self.activated(
            "a:b:c",
            "--listen", "systemd:domain=INET:index=0", "--listen", "systemd:domain=INET:name=b",
            "--listen", "systemd:domain=UNIX:index=2",
            kinds=["tcp", "udp", "unix"],
        )
        self.check_serves(server, tcp, udp, unix)
        self.assertEqual(server.stop(), 0, server.describe())
        self.assertTrue(os.path.exists(unix.getsockname()), "serve removed systemd's socket path")

    def test_nothing_passed(self) -> None:
        """
        C{--systemd} with no sockets passed (no C{LISTEN_FDS}, or one for
        another process) exits 2 with one line saying what it needs.
        """
        env = rpctransport_env()
        env.update(LISTEN_FDS="1", LISTEN_PID="1", LISTEN_FDNAMES="x")
        done = run_program(rpctransport_command("serve", "--systemd"), env=env)
        self.assertEqual(done.returncode, 2, done.describe())
        self.assertIn("--systemd: no sockets were passed", done.stderr)
        self.assertNotIn("Traceback", done.stderr)
