# -*- test-case-name: rpctransport.test.test_program_errors -*-
"""
The program's answer to what a user can get wrong: one line on standard
error naming the problem and what to do, a non-zero exit status, and never
a traceback.

One table, L{BAD_INPUTS}: each row is a command line (with placeholders for
the files and servers the test makes), the line expected on standard error,
and the exit status (2: what was asked cannot be done, as argparse's usage
errors; 1: a call failed). All rows run at once, each in its own process.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from rpctransport.program.echo import CallStats
from rpctransport.test.interop.build import (
    rpctransport_command,
    rpctransport_env,
    start_server,
)

BAD_INPUTS: Sequence[tuple[str, str, int]] = (
    # serve: TLS files
    (
        "serve --tls 127.0.0.1:0 --tls-cert {dir}/server.crt",
        r"^rpctransport serve: --tls-cert \S+/server\.crt holds no private key: give it with --tls-key",
        2,
    ),
    (
        "serve --tls 127.0.0.1:0 --tls-cert {dir}/missing.pem",
        r"^rpctransport serve: --tls-cert \S+/missing\.pem: No such file or directory$",
        2,
    ),
    (
        "serve --tls 127.0.0.1:0 --tls-cert {dir}/server.crt --tls-key {dir}/alice.pem",
        r"^rpctransport serve: --tls-key \S+/alice\.pem: the private key is not the one of the "
        r"certificate in --tls-cert",
        2,
    ),
    (
        "serve --tls 127.0.0.1:0 --tls-cert {dir}/ca.pem",
        r"^rpctransport serve: --tls-cert \S+/ca\.pem holds no private key",
        2,
    ),
    (
        "serve --tls 127.0.0.1:0 --tls-cert {dir}/server.pem --tls-ca {dir}/server.key",
        r"^rpctransport serve: --tls-ca \S+/server\.key: no PEM certificate in it$",
        2,
    ),
    (
        "serve --tcp 127.0.0.1:0 --tls-cert {dir}/server.pem",
        r"^rpctransport serve: error: --tls-cert given, but no TLS listener: add --tls HOST:PORT "
        r"or --starttls$",
        2,
    ),
    (
        "serve --starttls",
        r"^rpctransport serve: error: --tls and --starttls need --tls-cert",
        2,
    ),
    # serve: TLS without the extra (the blocker makes "import OpenSSL" fail)
    (
        "NO-OPENSSL serve --tls 127.0.0.1:0 --tls-cert {dir}/server.pem",
        r"^rpctransport serve: TLS needs pyOpenSSL and cryptography: pip install "
        r"'rpctransport\[tls\]'",
        2,
    ),
    # serve: listeners
    (
        "serve --unix /nonexistent/dir/x.sock",
        r"^rpctransport serve: cannot listen on unix /nonexistent/dir/x\.sock: no directory "
        r"/nonexistent/dir$",
        2,
    ),
    (
        "serve --tcp 127.0.0.1:{busy}",
        r"^rpctransport serve: cannot listen on tcp 127\.0\.0\.1:\d+: address already in use$",
        2,
    ),
    (
        "serve --listen tcp:notaport",
        r"^rpctransport serve: error: argument --listen: 'tcp:notaport' is not a server endpoint "
        r"string",
        2,
    ),
    (
        "serve --udp nowhere",
        r"^rpctransport serve: error: argument --udp: 'nowhere' is not HOST:PORT$",
        2,
    ),
    (
        "serve --program twelve",
        r"^rpctransport serve: error: argument --program: 'twelve' is not a number",
        2,
    ),
    (
        "serve --workers 2 --listen tcp:0",
        r"^rpctransport serve: error: --listen takes any Twisted endpoint, which only a "
        r"process running a reactor opens: with --workers, listen with --tcp, --udp, --unix, "
        r"--tls or --systemd$",
        2,
    ),
    (
        "serve --reuse-port",
        r"^rpctransport serve: error: --reuse-port goes with --workers N \(N > 1\)",
        2,
    ),
    (
        "serve --systemd",
        r"^rpctransport serve: --systemd: no sockets were passed: it needs LISTEN_FDS, "
        r"LISTEN_PID \(this process\) and LISTEN_FDNAMES",
        2,
    ),
    # call: TLS against a server that wants a client certificate
    (
        "call tls:127.0.0.1:{tls} --tls-ca {dir}/ca.pem",
        r"^rpctransport call: tls:127\.0\.0\.1:\d+: the server requires a client certificate: "
        r"give --tls-cert",
        1,
    ),
    (
        "call tls:127.0.0.1:{tls} --tls-ca {dir}/ca.pem --tls-cert {dir}/alice.pem "
        "--server-name wrong.example",
        r"^rpctransport call: tls:127\.0\.0\.1:\d+: the server's certificate is not for "
        r"'wrong\.example': give the name it carries with --server-name$",
        1,
    ),
    (
        "call tls:127.0.0.1:{tls} --tls-cert {dir}/alice.pem",
        r"^rpctransport call: tls:127\.0\.0\.1:\d+: the server's certificate is not signed by a "
        r"CA we trust: give its CA with --tls-ca$",
        1,
    ),
    (
        "call tls:127.0.0.1:{tcp} --tls-ca {dir}/ca.pem --timeout 3",
        r"^rpctransport call: tls:127\.0\.0\.1:\d+: the server closed the connection during the "
        r"TLS handshake: is tls:127\.0\.0\.1:\d+ a TLS listener",
        1,
    ),
    (
        "call tls:127.0.0.1:{silent} --tls-ca {dir}/ca.pem --timeout 1",
        r"^rpctransport call: tls:127\.0\.0\.1:\d+: no TLS handshake within 1 s: is "
        r"tls:127\.0\.0\.1:\d+ a TLS listener",
        1,
    ),
    (
        "call tcp:127.0.0.1:{tcp} --starttls --tls-ca {dir}/ca.pem",
        r"^rpctransport call: tcp:127\.0\.0\.1:\d+: the server does not offer RPC-with-TLS",
        1,
    ),
    # call: options
    (
        "call tcp:127.0.0.1:{tcp} --tls-cert {dir}/alice.pem",
        r"^rpctransport call: error: --tls-cert go with tls: addresses or --starttls$",
        2,
    ),
    (
        "call tcp:127.0.0.1:{tcp} --proc echo --size 4000000000",
        r"^rpctransport call: error: --size 4000000000 does not fit in a call of at most "
        r"--max-record-size 16777216 bytes: at most 16777172$",
        2,
    ),
    (
        "call http://x",
        r"^rpctransport call: error: ADDRESS 'http://x' is not tcp:HOST:PORT, tls:HOST:PORT, "
        r"udp:HOST:PORT, unix:PATH or a client endpoint string",
        2,
    ),
    (
        "call udp:127.0.0.1",
        r"^rpctransport call: error: ADDRESS 'udp:127\.0\.0\.1': UDP addresses are udp:HOST:PORT$",
        2,
    ),
    (
        "call tls:127.0.0.1:{tcp} --starttls",
        r"^rpctransport call: error: --starttls goes with tcp: and unix: addresses",
        2,
    ),
    (
        "call tcp:127.0.0.1:{closed}",
        r"^rpctransport call: cannot reach tcp:127\.0\.0\.1:\d+: .*[Cc]onnection refused",
        1,
    ),
    (
        "call tcp:127.0.0.1:{tcp} --tls-ca {dir}/missing.pem --starttls",
        r"^rpctransport call: --tls-ca \S+/missing\.pem: No such file or directory$",
        2,
    ),
    (
        "call tcp:host=127.0.0.1:port={tcp} --starttls --tls-ca {dir}/ca.pem",
        r"^rpctransport call: error: --starttls with a client endpoint string needs "
        r"--server-name",
        2,
    ),
    (
        "call tls:host=127.0.0.1:port={tls}",
        r"^rpctransport call: error: ADDRESS 'tls:host=127\.0\.0\.1:port=\d+': TLS addresses "
        r"are tls:HOST:PORT",
        2,
    ),
    (
        "nosuchcommand",
        r"^rpctransport: error: argument COMMAND: invalid choice: 'nosuchcommand'",
        2,
    ),
)
"""Command line, expected line on standard error (a regular expression), exit status."""


_BLOCK_OPENSSL = "raise ModuleNotFoundError(\"No module named 'OpenSSL'\", name='OpenSSL')\n"
"""A package C{OpenSSL} that cannot be imported: the C{tls} extra missing."""


class BadInputTests(SynchronousTestCase):
    """
    Every row of L{BAD_INPUTS}.
    """

    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory(prefix="rpctransport-errors-")
        self.addCleanup(directory.cleanup)
        self.dir = Path(directory.name)
        from rpctransport.testing.pki import CertificateAuthority

        ca = CertificateAuthority()
        server = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"])
        alice = ca.issue("alice", emails=["alice@example.org"])
        (self.dir / "ca.pem").write_bytes(ca.certificate)
        (self.dir / "server.pem").write_bytes(server.pem)
        (self.dir / "server.crt").write_bytes(server.certificate)
        (self.dir / "server.key").write_bytes(server.key)
        (self.dir / "alice.pem").write_bytes(alice.pem)
        blocker = self.dir / "blocker" / "OpenSSL"
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text(_BLOCK_OPENSSL)

    def _sockets(self) -> dict[str, int]:
        """
        A listening socket that never answers, one that is bound and
        listening (busy), and a port nothing listens on.
        """
        ports: dict[str, int] = {}
        for name in ("silent", "busy"):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(8)
            self.addCleanup(sock.close)
            ports[name] = sock.getsockname()[1]
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        ports["closed"] = closed.getsockname()[1]
        closed.close()
        return ports

    def test_bad_inputs(self) -> None:
        """
        Each bad input gets its line on standard error, its exit status, and
        no traceback; nothing else is printed for runtime problems (argparse
        adds the subcommand's usage for usage errors).
        """
        d = self.dir
        server = start_server(
            self,
            rpctransport_command(
                "serve", "--tcp", "127.0.0.1:0", "--tls", "127.0.0.1:0",
                "--tls-cert", str(d / "server.pem"), "--tls-ca", str(d / "ca.pem"),
            ),
            kinds=("tcp", "tls"),
            env=rpctransport_env(),
        )
        values = {"dir": str(d), "tcp": server.port("tcp"), "tls": server.port("tls")}
        values.update(self._sockets())
        running = []
        for line, expected, status in BAD_INPUTS:
            env = rpctransport_env()
            words = line.format(**values).split()
            if words[0] == "NO-OPENSSL":
                words = words[1:]
                env["PYTHONPATH"] = os.pathsep.join([str(d / "blocker"), env["PYTHONPATH"]])
            process = subprocess.Popen(
                rpctransport_command(*words),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            running.append((line, expected, status, process))
        problems = []
        deadline = time.monotonic() + 120
        for line, expected, status, process in running:
            try:
                out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
                problems.append(f"{line}: still running\n{err}")
                continue
            lines = err.splitlines()
            if process.returncode != status:
                problems.append(f"{line}: exit {process.returncode}, not {status}\n{err}")
            if not any(re.search(expected, one) for one in lines):
                problems.append(f"{line}: no line matches {expected!r}:\n{err}")
            if "Traceback" in err or "Traceback" in out:
                problems.append(f"{line}: a traceback\n{err}")
            if "error:" not in expected and len(lines) != 1:
                problems.append(f"{line}: {len(lines)} lines on standard error, not 1:\n{err}")
        self.assertEqual(problems, [], "\n\n".join(problems))


class SummaryTests(SynchronousTestCase):
    """
    C{call}'s summary line.
    """

    def test_no_call_succeeded(self) -> None:
        """
        When every call failed, the summary says so instead of giving a rate
        and latencies measured on nothing.
        """
        from rpctransport.program.commands import summary

        failed = CallStats(calls=3, failures=3, elapsed=1.0)
        line = summary(failed)
        self.assertIn("no call succeeded", line)
        self.assertNotIn("p50", line)
        self.assertNotIn("calls/s", line)
        worked = summary(CallStats(calls=2, failures=0, latencies=[0.001, 0.002], elapsed=1.0))
        self.assertIn("latency p50", worked)
        self.assertIn("calls/s 2", worked)


class HelpTests(SynchronousTestCase):
    """
    What C{--help} says matches what the program does.
    """

    def test_no_command_runs_the_demo(self) -> None:
        """
        The program's help says that without a COMMAND it runs the demo, and
        does not call COMMAND required.
        """
        from rpctransport.program.cli import parse_args

        self.assertIsNone(parse_args([]).command)
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            with self.assertRaises(SystemExit):
                parse_args(["--help"])
        self.assertIn("[COMMAND]", out.getvalue())
        self.assertIn("Without a COMMAND, runs the demo", " ".join(out.getvalue().split()))
        self.assertNotIn("required", out.getvalue())
