# -*- test-case-name: rpctransport.test.test_twistd -*-
"""
The C{twistd} plugin: the same options as C{rpctransport serve} (one table
feeds both), found by C{twistd} from a regular and from an editable install,
serving calls over TCP, UDP and TLS, and with worker processes.

The install tests install this source tree into a new virtual environment
with pip, as a user would (a wheel built in pip's build isolation, or an
editable install), the environment seeing the running one's packages
(Twisted and the rest) through a C{.pth} file; C{twistd} then runs there,
in a directory and with an environment that do not have the source tree on
their path.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from rpctransport.program.cli import parse_args
from rpctransport.program.options import (
    SERVE_OPTIONS,
    Option,
    OptionNameTaken,
    check_serve,
    read_count,
    usage_options,
)
from rpctransport.program.tap import Options
from rpctransport.program.workers import WORKER_STOP_TIMEOUT
from rpctransport.test.helpers import help_text, usage_error
from rpctransport.test.interop.build import (
    ServerProcess,
    rpctransport_command,
    rpctransport_env,
    run_program,
)

SOURCE_ROOT = Path(__file__).resolve().parents[2]

_TWISTD = ["-c", "from twisted.scripts.twistd import run; run()"]
"""C{twistd} as the arguments of a Python: the one of the environment under test."""

LISTENING = r".*listening (tcp|udp|unix|tls) (\S+)"
"""A listener's line, inside twistd's log line."""


def _twistd_options(argv: list[str]) -> Options:
    options = Options()
    options.parseOptions(argv)
    return options


class OptionTableTests(SynchronousTestCase):
    """
    One table of options feeds C{rpctransport serve} and the plugin.
    """

    def test_same_options(self) -> None:
        """
        Every option of the table is in both helps, and the same command
        line gives the same values through both parsers, TLS and workers
        included.
        """
        serve_help = " ".join(help_text("serve").split())
        plugin_help = Options().getUsage()
        for option in SERVE_OPTIONS:
            self.assertIn(f"--{option.name}", serve_help)
            self.assertIn(f"--{option.name}", plugin_help)
        argv = [
            "--tcp", "127.0.0.1:0", "--udp", "[::1]:5", "--unix", "/x.sock",
            "--tls", "127.0.0.1:0", "--starttls", "--tls-cert", "c.pem", "--tls-key", "k.pem",
            "--tls-ca", "ca.pem", "--program", "0x20000001", "--program-version", "3",
            "--max-record-size", "4096", "--record-deadline", "0", "--idle-timeout", "7",
            "--max-connections", "0",
        ]
        cli = parse_args(["serve", *argv])
        plugin = _twistd_options(argv).namespace()  # type: ignore[attr-defined]
        for option in SERVE_OPTIONS:
            self.assertEqual(
                getattr(plugin, option.dest), getattr(cli, option.dest), option.name
            )
        self.assertEqual(plugin.program_version, 3)
        self.assertIsNone(plugin.max_connections)
        self.assertEqual(_twistd_options(["--workers", "2"])["workers"], 2)

    def test_same_checks(self) -> None:
        """
        What C{serve} refuses, the plugin refuses with the same message.
        """
        for argv in (
            ["--workers", "2", "--listen", "tcp:0"],
            ["--reuse-port"],
            ["--starttls"],
            ["--tcp", "127.0.0.1:0", "--tls-cert", "c.pem"],
            ["--workers", "0"],
            ["--listen", "tcp:notaport"],
        ):
            with self.assertRaises(UsageError) as caught:
                _twistd_options(argv)
            cli = usage_error("serve", *argv)
            message = str(caught.exception).split(": ", 1)[-1]
            self.assertIn(message, cli, argv)

    def test_no_collision(self) -> None:
        """
        An option named like one of C{usage.Options}' own (C{--version},
        C{--help}) cannot be made: under twistd it would never be reached
        (C{twistd rpctransport-echo --version 2} printed Twisted's version).
        """
        for name in ("version", "help"):
            with self.assertRaises(OptionNameTaken) as caught:
                usage_options(
                    [Option(name, "a number", read_count, 1)],
                    synopsis="",
                    longdesc="",
                    check=check_serve,
                )
            self.assertIn(f"--{name}", str(caught.exception))
        self.assertNotIn("version", [option.name for option in SERVE_OPTIONS])

    def test_deadline_options(self) -> None:
        """
        The plugin has C{serve}'s deadlines, on by default with the same
        values; 0 turns one off; a negative or non-numeric value is refused.
        """
        options = _twistd_options([])
        self.assertEqual(
            [options[name] for name in ("record-deadline", "idle-timeout", "first-record-timeout", "write-deadline")],
            [30.0, 300.0, 10.0, 60.0],
        )
        options = _twistd_options(["--record-deadline", "0", "--write-deadline", "2.5"])
        self.assertIsNone(options["record-deadline"])
        self.assertEqual(options["write-deadline"], 2.5)
        for bad in ("-1", "soon"):
            with self.assertRaises(UsageError):
                _twistd_options(["--idle-timeout", bad])


def _environment_without_source() -> dict[str, str]:
    """
    Our environment without C{PYTHONPATH}: what runs there finds only what
    is installed.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _install(directory: Path, editable: bool) -> str:
    """
    Install this source tree into a new virtual environment in
    C{directory} with pip (editable or not); return its Python.
    """
    venv = directory / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # Twisted and the rest, from the environment running the tests. A
    # directory named in a .pth file is added as it is: the .pth files in
    # it (the running environment's own install of rpctransport) are not
    # read.
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "zz_outer.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    command = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps"]
    command += ["-e", str(SOURCE_ROOT)] if editable else [str(SOURCE_ROOT)]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=str(directory),
        env=_environment_without_source(), timeout=300,
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    return python


class InstalledPluginTests(SynchronousTestCase):
    """
    C{twistd} finds and runs the plugin from a regular and from an editable
    install.
    """

    def _environment(self, editable: bool) -> tuple[str, str, dict[str, str]]:
        directory = tempfile.TemporaryDirectory(prefix="rpctransport-install-")
        self.addCleanup(directory.cleanup)
        python = _install(Path(directory.name), editable)
        work = Path(directory.name, "work")
        work.mkdir()
        env = _environment_without_source()
        where = _run_in(
            [python, "-c", "import rpctransport; print(rpctransport.__file__)"], env, str(work)
        )
        if editable:
            self.assertEqual(where.stdout.strip(), str(SOURCE_ROOT / "rpctransport" / "__init__.py"))
        else:
            self.assertIn(str(Path(directory.name, "venv")), where.stdout, where.stderr)
        return python, str(work), env

    def _twistd(self, python: str, work: str, env: dict[str, str], *args: str) -> ServerProcess:
        argv = [python, *_TWISTD, "-n", "--pidfile", "", "--logfile", "-", "rpctransport-echo", *args]
        server = _ServerIn(argv, env, work)
        self.addCleanup(server.stop)
        return server

    def _listening(self, server: ServerProcess, count: int) -> dict[str, str]:
        addresses: dict[str, str] = {}
        while len(addresses) < count:
            match = server.wait_line(LISTENING, 60)
            addresses[match.group(1)] = match.group(2)
        return addresses

    def _help_lists_plugin(self, python: str, work: str, env: dict[str, str]) -> None:
        listed = _run_in([python, *_TWISTD, "--help"], env, work)
        self.assertIn("rpctransport-echo", listed.stdout, listed.stderr)
        options = _run_in([python, *_TWISTD, "rpctransport-echo", "--help"], env, work)
        for option in ("--tls=", "--starttls", "--tls-cert", "--workers", "--program-version"):
            self.assertIn(option, options.stdout, options.stderr)

    def _mypy_finds_package(self, python: str, work: str, env: dict[str, str]) -> None:
        """
        mypy, run on a user's module in that environment, finds
        C{rpctransport} and its types (an editable install used to hide it
        behind an import hook).
        """
        try:
            import mypy  # noqa: F401
        except ImportError:
            # The dev extra (CI's) has mypy; the rest of the test stands.
            return
        user = Path(work, "user.py")
        user.write_text(
            "from rpctransport import ReadResult, listen_stream\n"
            "reveal_type(listen_stream)\n"
        )
        done = _run_in(
            [python, "-m", "mypy", "--no-incremental", "--python-executable", python, str(user)],
            env,
            work,
        )
        self.assertIn("Revealed type", done.stdout, done.stdout + done.stderr)
        self.assertIn("IListeningPort", done.stdout, done.stdout + done.stderr)
        self.assertNotIn("Cannot find implementation", done.stdout, done.stdout)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_regular_install(self) -> None:
        """
        From a wheel installed by pip, C{twistd --help} lists the plugin
        with all of C{serve}'s options, and C{twistd -n rpctransport-echo}
        serves calls over TCP and UDP until SIGTERM.
        """
        python, work, env = self._environment(editable=False)
        self._help_lists_plugin(python, work, env)
        server = self._twistd(python, work, env, "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0")
        addresses = self._listening(server, 2)
        for kind in ("tcp", "udp"):
            done = _run_in(
                [python, "-m", "rpctransport", "call", f"{kind}:{addresses[kind]}", "--count", "10"],
                env,
                work,
            )
            self.assertEqual(done.returncode, 0, done.stderr + done.stdout)
        self.assertIn(server.stop(), (0, -15), server.describe())

    def test_editable_install(self) -> None:
        """
        From the README's editable install, the same, over implicit TLS and
        STARTTLS with a client certificate.
        """
        python, work, env = self._environment(editable=True)
        self._help_lists_plugin(python, work, env)
        self._mypy_finds_package(python, work, env)
        from rpctransport.testing.pki import CertificateAuthority

        ca = CertificateAuthority()
        files = Path(work)
        (files / "ca.pem").write_bytes(ca.certificate)
        (files / "server.pem").write_bytes(ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"]).pem)
        (files / "alice.pem").write_bytes(ca.issue("alice", emails=["alice@example.org"]).pem)
        server = self._twistd(
            python, work, env, "--tcp", "127.0.0.1:0", "--tls", "127.0.0.1:0", "--starttls",
            "--tls-cert", "server.pem", "--tls-ca", "ca.pem",
        )
        addresses = self._listening(server, 2)
        tls = ["--tls-ca", "ca.pem", "--tls-cert", "alice.pem", "--server-name", "localhost"]
        for address, extra in ((f"tls:{addresses['tls']}", []), (f"tcp:{addresses['tcp']}", ["--starttls"])):
            done = _run_in(
                [python, "-m", "rpctransport", "call", address, "--count", "5", *tls, *extra], env, work
            )
            self.assertEqual(done.returncode, 0, done.stderr + done.stdout)
            self.assertIn("ALPN sunrpc", done.stdout)
        self.assertIn(server.stop(), (0, -15), server.describe())


class _ServerIn(ServerProcess):
    """
    A L{ServerProcess} started in directory C{cwd}.
    """

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        previous = os.getcwd()
        os.chdir(cwd)
        try:
            super().__init__(argv, env)
        finally:
            os.chdir(previous)


def _run_in(argv: list[str], env: dict[str, str], cwd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


class WorkersPluginTests(SynchronousTestCase):
    """
    C{twistd -n rpctransport-echo --workers 2}.
    """

    def test_workers(self) -> None:
        """
        The plugin starts two worker processes sharing the TCP socket, logs
        the listener once they serve, and stops them all on SIGTERM.
        """
        env = rpctransport_env()
        with tempfile.TemporaryDirectory() as directory:
            server = _ServerIn(
                [sys.executable, *_TWISTD, "-n", "--pidfile", "", "--logfile", "-",
                 "rpctransport-echo", "--workers", "2", "--tcp", "127.0.0.1:0"],
                env,
                directory,
            )
            self.addCleanup(server.stop)
            address = server.wait_line(LISTENING, 60).group(2)
            pids = server.wait_line(r".*from 2 worker processes (\d+), (\d+)", 30).groups()
            done = run_program(
                rpctransport_command("call", f"tcp:{address}", "--count", "20", "--concurrency", "4"),
                env=env,
            )
            self.assertEqual(done.returncode, 0, done.describe())
            # SIGTERM to twistd alone (not to its process group): it must
            # stop the workers itself, well before WORKER_STOP_TIMEOUT.
            os.kill(server.process.pid, signal.SIGTERM)
            server.process.wait(WORKER_STOP_TIMEOUT / 2)
            deadline = time.monotonic() + 10
            while any(_alive(int(pid)) for pid in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
            for pid in pids:
                self.assertFalse(_alive(int(pid)), f"worker {pid} outlived twistd")

    def test_stop_before_the_workers_started(self) -> None:
        """
        A stop that comes while the pool is still starting its workers (as
        twistd's can, from the reactor thread) starts no more and stops
        those started, at once, not after WORKER_STOP_TIMEOUT.
        """
        import argparse
        import threading

        from rpctransport.program.workers import WorkerPool, bind_shared

        args = argparse.Namespace(
            **{o.dest: o.default for o in SERVE_OPTIONS if not o.repeat},
            tcp=[("127.0.0.1", 0)], udp=[], unix=[], listen=[], tls=[],
        )
        args.workers = 2
        args.max_connections = None
        pool = WorkerPool(args, bind_shared(args), say=lambda line: None, handle_signals=False)
        pool.request_stop()
        started = time.monotonic()
        thread = threading.Thread(target=pool.run)
        thread.start()
        thread.join(WORKER_STOP_TIMEOUT)
        self.assertLess(time.monotonic() - started, WORKER_STOP_TIMEOUT / 2)
        self.assertEqual(
            [w.returncode for w in pool.workers if w.returncode not in (0, -signal.SIGTERM)], []
        )


class FailingStartTests(SynchronousTestCase):
    """
    C{twistd rpctransport-echo} that cannot listen exits at once, non-zero,
    with one line saying why (it used to run on without a listener).
    """

    def test_cannot_listen(self) -> None:
        """
        A busy port, with and without workers, and a UNIX socket in a
        missing directory.
        """
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        env = rpctransport_env()
        with tempfile.TemporaryDirectory() as directory:
            for options, expected in (
                (["--tcp", address], "cannot listen on tcp 127.0.0.1:"),
                (["--workers", "2", "--tcp", address], "cannot listen:"),
                (["--unix", "/nonexistent/dir/x.sock"], "no directory /nonexistent/dir"),
            ):
                done = _run_in(
                    [sys.executable, *_TWISTD, "-n", "--pidfile", "", "--logfile", "-",
                     "rpctransport-echo", *options],
                    env,
                    directory,
                )
                # twistd logs what goes to standard error, into --logfile.
                output = done.stdout + done.stderr
                self.assertNotEqual(done.returncode, 0, output)
                self.assertIn(expected, output)
                self.assertIn("rpctransport-echo: ", output)
                self.assertNotIn("Traceback", output)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return re.search(r"\) Z ", status) is None
