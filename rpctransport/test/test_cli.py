# -*- test-case-name: rpctransport.test.test_cli -*-
"""
Tests for the C{rpctransport} program: its options, C{serve} and C{call}
against each other in separate processes, and the C{twistd} plugin.

The C{serve}/C{call} tests against libtirpc are in C{test_interop}; those
of C{serve --workers} and socket activation in C{test_workers}.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from rpctransport.program.addresses import host_port
from rpctransport.program.cli import parse_args
from rpctransport.program.echo import ECHO_PROGRAM
from rpctransport.test.interop.build import (
    Finished,
    ServerProcess,
    rpctransport_command,
    rpctransport_env,
    run_program,
    start_server,
)
from rpctransport.test.helpers import help_text, usage_error


class OptionTests(SynchronousTestCase):
    """
    The command line is parsed as documented, and refuses what it cannot use.
    """

    def test_help(self) -> None:
        """
        C{--help} of the program and of each subcommand says what it does and
        names its options.
        """
        self.assertIn("serve", help_text())
        self.assertIn("call", help_text())
        self.assertIn("demo", help_text())
        serve = help_text("serve")
        for option in ("--tcp", "--udp", "--unix", "--listen", "--program", "--program-version", "--max-record-size"):
            self.assertIn(option, serve)
        call = help_text("call")
        for option in ("--proc", "--size", "--count", "--concurrency", "--timeout", "--retry"):
            self.assertIn(option, call)
        self.assertIn("udp:HOST:PORT", call)
        self.assertIn("Start the echo server", help_text("demo"))

    def test_numbers(self) -> None:
        """
        Program and version numbers are read in decimal or 0x hex.
        """
        args = parse_args(["serve", "--program", "0x20000001", "--program-version", "3"])
        self.assertEqual((args.program, args.program_version), (0x20000001, 3))
        self.assertIn("not a number", usage_error("serve", "--program", "twelve"))
        self.assertIn("32-bit", usage_error("serve", "--program", "0x100000000"))

    def test_listeners(self) -> None:
        """
        Listener options may be repeated; IPv6 hosts are written in brackets.
        """
        args = parse_args(["serve", "--tcp", "127.0.0.1:0", "--tcp", "[::1]:5000", "--unix", "/x"])
        self.assertEqual(args.tcp, [("127.0.0.1", 0), ("::1", 5000)])
        self.assertEqual(args.unix, ["/x"])
        self.assertIn("HOST:PORT", usage_error("serve", "--udp", "nowhere"))
        self.assertEqual(host_port("[::1]:111"), ("::1", 111))

    def test_call_address(self) -> None:
        """
        C{call} takes C{tcp:}, C{udp:} and C{unix:} addresses and refuses
        others, and C{--size} without C{--proc echo}.
        """
        self.assertEqual(parse_args(["call", "udp:127.0.0.1:111"]).address, "udp:127.0.0.1:111")
        self.assertIn("tcp:HOST:PORT", usage_error("call", "http://x"))
        self.assertIn("HOST:PORT", usage_error("call", "tcp:127.0.0.1"))
        self.assertIn("--size goes with --proc echo", usage_error("call", "tcp:1.2.3.4:5", "--size", "9"))


class ServeAndCallTests(SynchronousTestCase):
    """
    C{rpctransport serve} and C{rpctransport call}, each in its own process.
    """

    def test_default_listeners_and_calls(self) -> None:
        """
        Without options, C{serve} listens on loopback TCP and UDP, printing
        the real ports; C{call} over each succeeds and sums up; SIGTERM stops
        the server with exit status 0.
        """
        server = start_server(self, rpctransport_command("serve"), env=rpctransport_env())
        for kind in ("tcp", "udp"):
            host, port = server.host_port(kind)
            self.assertEqual(host, "127.0.0.1")
            self.assertNotEqual(port, 0)
            done = run_program(
                rpctransport_command(
                    "call", f"{kind}:127.0.0.1:{port}", "--proc", "echo", "--size", "1000",
                    "--count", "200", "--concurrency", "5",
                ),
                env=rpctransport_env(),
            )
            self.assertEqual(done.returncode, 0, done.describe())
            self.assertIn("calls 200  ok 200  failed 0", done.stdout)
            self.assertIn("latency p50", done.stdout)
        self.assertEqual(server.stop(), 0, server.describe())

    def test_unix_and_ipv6(self) -> None:
        """
        C{serve} listens on a UNIX socket and on IPv6 loopback; C{call}
        reaches both.
        """
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "echo.sock")
            kinds = ["unix"]
            argv = ["serve", "--unix", path]
            if socket.has_ipv6:
                try:
                    with socket.socket(socket.AF_INET6) as probe:
                        probe.bind(("::1", 0))
                    argv += ["--tcp", "[::1]:0"]
                    kinds.append("tcp")
                except OSError:
                    pass
            server = start_server(self, rpctransport_command(*argv), kinds, env=rpctransport_env())
            self.assertEqual(server.addresses["unix"], path)
            targets = [f"unix:{path}"]
            if "tcp" in kinds:
                self.assertTrue(server.addresses["tcp"].startswith("[::1]:"))
                targets.append(f"tcp:{server.addresses['tcp']}")
            for target in targets:
                done = run_program(
                    rpctransport_command("call", target, "--count", "50"), env=rpctransport_env()
                )
                self.assertEqual(done.returncode, 0, done.describe())
            self.assertEqual(server.stop(), 0, server.describe())
            self.assertFalse(os.path.exists(path), "the socket file was left behind")

    def test_call_fails_cleanly(self) -> None:
        """
        C{call} to a wrong program exits 1 with the rejection named, and to a
        closed port exits 1 saying it cannot reach it; no traceback.
        """
        server = start_server(self, rpctransport_command("serve", "--tcp", "127.0.0.1:0"), ["tcp"], env=rpctransport_env())
        done = run_program(
            rpctransport_command("call", f"tcp:{server.addresses['tcp']}", "--program", "7"),
            env=rpctransport_env(),
        )
        self.assertEqual(done.returncode, 1, done.describe())
        self.assertIn("PROG_UNAVAIL", done.stderr)
        self.assertNotIn("Traceback", done.stderr)
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        done = run_program(rpctransport_command("call", f"tcp:127.0.0.1:{port}"), env=rpctransport_env())
        self.assertEqual(done.returncode, 1, done.describe())
        self.assertIn("cannot reach", done.stderr)
        self.assertNotIn("Traceback", done.stderr)

    def test_max_record_size(self) -> None:
        """
        C{serve --max-record-size} answers larger calls GARBAGE_ARGS from the
        header and keeps serving the connection.
        """
        server = start_server(
            self,
            rpctransport_command("serve", "--tcp", "127.0.0.1:0", "--max-record-size", "10000"),
            ["tcp"],
            env=rpctransport_env(),
        )
        address = f"tcp:{server.addresses['tcp']}"
        done = run_program(
            rpctransport_command("call", address, "--proc", "echo", "--size", "20000"),
            env=rpctransport_env(),
        )
        self.assertEqual(done.returncode, 1, done.describe())
        self.assertIn("GARBAGE_ARGS", done.stderr)
        done = run_program(
            rpctransport_command("call", address, "--proc", "echo", "--size", "9000"),
            env=rpctransport_env(),
        )
        self.assertEqual(done.returncode, 0, done.describe())


_PLAIN_STARTTLS = """
from pathlib import Path
from twisted.internet import ssl
from twisted.internet.task import react
from rpctransport import END_OF_FILE, Accepted, connect_stream
from rpctransport.program.echo import ECHO_PROGRAM, ECHO_VERSION
from rpctransport.sansio.rpcmsg import CallHeader, encode_call_header

async def main(reactor):
    client = await connect_stream("tcp:host={host}:port={port}", reactor=reactor)
    options = ssl.optionsForClientTLS(
        "localhost",
        trustRoot=ssl.Certificate.loadPEM(Path("{ca}").read_bytes()),
        clientCertificate=ssl.PrivateCertificate.loadPEM(Path("{client}").read_bytes()),
    )
    await client.start_tls(options, ECHO_PROGRAM, ECHO_VERSION)
    print("alpn", client.tls_session_props.alpn.decode())
    reading = client.start_reading()
    await client.start_writing(encode_call_header(CallHeader(7, ECHO_PROGRAM, ECHO_VERSION, 0)))
    result = await reading
    assert result is not END_OF_FILE and isinstance(result[0], Accepted), result
    print("null ok")
    client.inactivate()

react(lambda reactor: __import__("twisted.internet.defer").internet.defer.ensureDeferred(main(reactor)))
"""
"""A user's program: STARTTLS with options made the plain Twisted way."""


class TLSCommandTests(SynchronousTestCase):
    """
    C{serve} and C{call} over TLS: implicit TLS listeners, RFC 9289 STARTTLS
    on the plaintext port, client certificates required with C{--tls-ca}.
    """

    def setUp(self) -> None:
        from rpctransport.testing import CertificateAuthority

        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        ca = CertificateAuthority()
        self.files = {}
        for name, data in (
            ("ca", ca.certificate),
            ("server", ca.issue("test server", dns=("localhost",), ips=("127.0.0.1",)).pem),
            ("client", ca.issue("alice", emails=("alice@example.org",)).pem),
        ):
            path = os.path.join(directory, f"{name}.pem")
            Path(path).write_bytes(data)
            self.files[name] = path
        self.server = start_server(
            self,
            rpctransport_command(
                "serve", "--tcp", "127.0.0.1:0", "--tls", "127.0.0.1:0", "--starttls",
                "--tls-cert", self.files["server"], "--tls-ca", self.files["ca"],
            ),
            ["tcp", "tls"],
            env=rpctransport_env(),
        )

    def call(self, *argv: str) -> Finished:
        return run_program(rpctransport_command("call", *argv), env=rpctransport_env())

    def test_udp_name_and_ssl_listener(self) -> None:
        """
        C{--udp localhost:0} resolves the name (Twisted's UDP ports take
        addresses only), and a C{--listen ssl:...} listener is printed as
        C{tls}; C{call} reaches both.
        """
        server = start_server(
            self,
            rpctransport_command(
                "serve", "--udp", "localhost:0",
                "--listen", f"ssl:0:interface=127.0.0.1:privateKey={self.files['server']}",
            ),
            ["udp", "tls"],
            env=rpctransport_env(),
        )
        for address, extra in (
            (f"udp:{server.addresses['udp']}", []),
            (f"tls:{server.addresses['tls']}", ["--tls-ca", self.files["ca"], "--server-name", "localhost"]),
        ):
            done = self.call(address, "--count", "3", *extra)
            self.assertEqual(done.returncode, 0, done.describe())

    def test_start_tls_with_plain_twisted_options(self) -> None:
        """
        A program of the user's own upgrades a connection to C{serve
        --starttls} with C{start_tls(optionsForClientTLS(...))}, the plain
        Twisted way, without asking for ALPN: the library offers C{sunrpc}
        itself, and the session negotiates it. (Not under C{-W
        error::DeprecationWarning}: Twisted's own C{optionsForClientTLS}
        hands pyOpenSSL objects to pyOpenSSL for a client certificate.)
        """
        host, port = self.server.host_port("tcp")
        script = _PLAIN_STARTTLS.format(
            host=host, port=port, ca=self.files["ca"], client=self.files["client"]
        )
        done = run_program(
            [sys.executable, "-c", script], env=rpctransport_env()
        )
        self.assertEqual(done.returncode, 0, done.describe())
        self.assertEqual(done.stdout.split(), ["alpn", "sunrpc", "null", "ok"], done.describe())

    def test_implicit_tls(self) -> None:
        """
        C{call tls:} with a client certificate succeeds and names the server;
        without one, the server requires it and the call fails cleanly.
        """
        address = f"tls:{self.server.addresses['tls']}"
        done = self.call(
            address, "--tls-ca", self.files["ca"], "--tls-cert", self.files["client"],
            "--proc", "echo", "--size", "5000", "--count", "20",
        )
        self.assertEqual(done.returncode, 0, done.describe())
        self.assertIn("ALPN sunrpc; server 'test server'", done.stdout)
        self.assertIn("calls 20  ok 20", done.stdout)
        done = self.call(address, "--tls-ca", self.files["ca"])
        self.assertEqual(done.returncode, 1, done.describe())
        self.assertNotIn("Traceback", done.stderr)

    def test_starttls(self) -> None:
        """
        C{call --starttls} upgrades the plaintext connection and calls over
        TLS; plain calls on the same port still work.
        """
        address = f"tcp:{self.server.addresses['tcp']}"
        done = self.call(
            address, "--starttls", "--tls-ca", self.files["ca"],
            "--tls-cert", self.files["client"], "--count", "20",
        )
        self.assertEqual(done.returncode, 0, done.describe())
        self.assertIn("tls TLSv1.3", done.stdout)
        done = self.call(address, "--count", "5")
        self.assertEqual(done.returncode, 0, done.describe())
        self.assertNotIn("tls ", done.stdout)

    def test_usage(self) -> None:
        """
        TLS listeners need a certificate; C{--starttls} needs a stream
        address.
        """
        self.assertIn("--tls-cert", usage_error("serve", "--tls", "127.0.0.1:0"))
        self.assertIn("tcp: and unix:", usage_error("call", "udp:127.0.0.1:1", "--starttls"))


class TuningTests(SynchronousTestCase):
    """
    L{keep_large_allocations} asks glibc to keep large freed blocks.
    """

    def test_glibc(self) -> None:
        """
        On Linux with glibc, the setting takes effect (C{mallopt} accepts
        both values); elsewhere it says it did not.
        """
        import platform

        from rpctransport.program.tuning import keep_large_allocations

        took = keep_large_allocations()
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
            self.assertTrue(took)
        else:
            self.assertFalse(took)


class RegisterTests(SynchronousTestCase):
    """
    C{serve --register} against a real rpcbind started by the test.
    """

    def rpcinfo(self, rpcinfo: str, *args: str) -> Finished:
        return run_program([rpcinfo, *args])

    def test_register(self) -> None:
        """
        While C{serve --register} runs, C{rpcinfo -p} lists the program at
        its TCP and UDP ports and C{rpcinfo -T tcp|udp HOST PROG VERS} (libtirpc
        asking rpcbind, then calling NULL) reaches it; after SIGTERM the
        registrations are gone.
        """
        from rpctransport.test.interop.rpcbind import RunningRpcbind

        rpcbind = RunningRpcbind(self)
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        server = start_server(
            self,
            rpctransport_command(
                "serve", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0",
                "--unix", os.path.join(directory, "echo.sock"), "--register",
            ),
            ["tcp", "udp", "unix"],
            env=rpctransport_env(),
        )
        program = str(ECHO_PROGRAM)
        listed = self.rpcinfo(rpcbind.rpcinfo, "-p")
        rows = {tuple(line.split()[:4]) for line in listed.stdout.splitlines()[1:]}
        self.assertIn((program, "1", "tcp", str(server.port("tcp"))), rows, listed.describe())
        self.assertIn((program, "1", "udp", str(server.port("udp"))), rows, listed.describe())
        for netid in ("tcp", "udp"):
            reached = self.rpcinfo(rpcbind.rpcinfo, "-T", netid, "127.0.0.1", program, "1")
            self.assertEqual(reached.returncode, 0, reached.describe())
            self.assertIn("ready and waiting", reached.stdout)
        dump = self.rpcinfo(rpcbind.rpcinfo)
        self.assertIn("local", [line.split()[2] for line in dump.stdout.splitlines()[1:] if line.split()[0] == program])
        self.assertEqual(server.stop(), 0, server.describe())
        after = self.rpcinfo(rpcbind.rpcinfo)
        self.assertNotIn(program, [line.split()[0] for line in after.stdout.splitlines()[1:]], after.stdout)

    def test_register_twistd(self) -> None:
        """
        C{twistd -n rpctransport-echo --register} registers the same way, and
        takes the registration back when it stops.
        """
        from rpctransport.test.interop.rpcbind import RunningRpcbind

        rpcbind = RunningRpcbind(self)
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        server = ServerProcess(
            [
                sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
                "--pidfile", os.path.join(directory, "pid"), "--logfile", "-",
                "rpctransport-echo", "--tcp", "127.0.0.1:0", "--register",
            ],
            rpctransport_env(),
        )
        self.addCleanup(server.stop)
        port = server.wait_line(r".*listening tcp 127\.0\.0\.1:(\d+)", 30).group(1)
        program = str(ECHO_PROGRAM)
        deadline = time.monotonic() + 10
        rows: set[tuple[str, ...]] = set()
        while (program, "1", "tcp", port) not in rows and time.monotonic() < deadline:
            listed = self.rpcinfo(rpcbind.rpcinfo, "-p")
            rows = {tuple(line.split()[:4]) for line in listed.stdout.splitlines()[1:]}
            time.sleep(0.05)
        self.assertIn((program, "1", "tcp", port), rows)
        server.stop()
        after = self.rpcinfo(rpcbind.rpcinfo)
        self.assertNotIn(program, [line.split()[0] for line in after.stdout.splitlines()[1:]], after.stdout)

    def test_cannot_register(self) -> None:
        """
        Without an rpcbind to register with, C{serve --register} says so in
        one line and exits 2, listening nowhere.
        """
        from rpctransport.test.interop.rpcbind import RPCBIND_SOCKET

        if os.path.exists(RPCBIND_SOCKET):
            raise SkipTest(f"an rpcbind may be running ({RPCBIND_SOCKET} exists)")
        with socket.socket() as probe:
            probe.settimeout(1.0)
            if probe.connect_ex(("127.0.0.1", 111)) == 0:
                raise SkipTest("a portmapper answers on TCP 127.0.0.1:111")
        done = run_program(
            rpctransport_command("serve", "--tcp", "127.0.0.1:0", "--register"),
            env=rpctransport_env(),
        )
        self.assertEqual(done.returncode, 2, done.describe())
        self.assertRegex(done.stderr, r"(?m)^rpctransport serve: cannot register with rpcbind: ")
        self.assertNotIn("Traceback", done.stderr)
        self.assertNotIn("listening", done.stdout)
