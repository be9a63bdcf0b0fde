# -*- test-case-name: rpctransport.test.test_interop -*-
"""
Interoperability with libtirpc, the ONC RPC library of Linux distributions.

The peers are real programs on loopback sockets, run as subprocesses:

  - C{tirpc_client} and C{tirpc_server}, small C programs built on libtirpc
    at test time (see L{rpctransport._tirpc.build}, shared with the
    benchmark, and L{rpctransport.test.interop.build});
  - C{python -m rpctransport serve} and C{python -m rpctransport call};
  - C{rpcinfo}, from Debian's C{rpcbind} package.

All serve or call the echo test program: program 0x20000099, version 1,
procedure 0 NULL and procedure 1 ECHO (an XDR C{opaque data<>}, returned
as it came). The C client and the C server against each other prove the
harness; then each of ours faces a libtirpc peer.

The tests skip, saying why, only when this machine cannot build C programs
against libtirpc, or (for the C{rpcinfo} tests) has no C{rpcinfo}.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from rpctransport import ACCEPT, Accepted, RecordReader
from rpctransport.program.echo import encode_opaque
from rpctransport.rpcmsg import decode_call_header, encode_call_header
from rpctransport.sansio.record import NEED_DATA
from rpctransport.test.helpers import next_event
from rpctransport.test.interop.build import (
    Finished,
    ServerProcess,
    build_or_skip,
    find_rpcinfo,
    rpctransport_command,
    rpctransport_env,
    run_program,
    start_server,
    universal_address,
)

PROGRAM = 0x20000099
"""The echo test program's number (536871065)."""

VERSION = 1

OTHER_PROGRAM = 0x200000A0
"""A program number for the servers started with C{--program}."""

OTHER_VERSION = 3

TCP_SIZES = (0, 1, 4095, 65536, 1 << 20, 4 << 20)
"""
ECHO sizes over streams: empty, padded, just under a page, more than one of
libtirpc's 65,532-byte fragments, and large records of many fragments.
"""

UDP_SIZES = (0, 1, 4095, 8801, 60000)
"""
ECHO sizes over UDP: 8801 is just over libtirpc's default C{UDPMSGSIZE}
(8800), 60,000 near the largest datagram.
"""

CLIENT_TIMEOUT = 60.0
"""Seconds a client process may run before it is killed and the test fails."""


def count_for(size: int) -> int:
    """
    How many ECHO calls of C{size} bytes a client makes: several, so that
    records follow one another on a connection, but few for large ones.
    """
    if size >= 4 << 20:
        return 2
    if size >= 1 << 20:
        return 3
    return 5


def serve_command(*args: str) -> list[str]:
    """
    The command line of C{rpctransport serve} on loopback TCP and UDP, with
    C{args} after it.
    """
    return rpctransport_command(
        "serve", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0", *args
    )


def call_command(
    address: str, proc: str, size: int, count: int, concurrency: int, *args: str
) -> list[str]:
    """
    The command line of C{rpctransport call}.

    @param address: C{tcp:HOST:PORT}, C{udp:HOST:PORT} or C{unix:PATH}.
    @param proc: C{"null"} or C{"echo"}.
    @param args: more options (C{--program}, C{--version}).
    """
    return rpctransport_command(
        "call",
        address,
        "--proc",
        proc,
        "--size",
        str(size),
        "--count",
        str(count),
        "--concurrency",
        str(concurrency),
        "--timeout",
        "20",
        *args,
    )


class _InteropTestCase(SynchronousTestCase):
    """
    Running the C client and checking how programs ended. Has no tests of
    its own.
    """

    server: ServerProcess

    def run_client(
        self,
        transport: str,
        proc: str,
        size: int = 0,
        count: int = 1,
        program: int = PROGRAM,
        version: int = VERSION,
        expect: str | None = None,
        timeout: int | None = None,
    ) -> Finished:
        """
        Run C{tirpc_client} against C{self.server}.

        @param transport: C{"tcp"} or C{"udp"}.
        @param proc: C{"null"}, C{"echo"} or a procedure number.
        @param expect: the C{clnt_stat} name every call must fail with, or
            L{None} for calls that must succeed.
        @param timeout: the client's RPC timeout in seconds (its default:
            25 for TCP, 10 for UDP).
        """
        host, port = self.server.host_port(transport)
        argv = [str(build_or_skip("tirpc_client"))]
        if expect is not None:
            argv += ["--expect", expect]
        if timeout is not None:
            argv += ["--timeout", str(timeout)]
        argv += [
            transport,
            host,
            str(port),
            str(program),
            str(version),
            proc,
            str(size),
            str(count),
        ]
        return run_program(argv, CLIENT_TIMEOUT)

    def assertSucceeded(self, finished: Finished) -> None:
        """
        Fail unless C{finished} exited 0; the message shows its output and
        the server's.
        """
        if finished.returncode != 0:
            self.fail(
                f"{finished.describe()}\n--- server:\n{self.server.describe()}"
            )

    def assertFailed(self, finished: Finished) -> None:
        """
        Fail unless C{finished} ran to its end and exited with a status
        other than 0.
        """
        if finished.returncode in (0, None):
            self.fail(
                "expected a non-zero exit status\n"
                f"{finished.describe()}\n--- server:\n{self.server.describe()}"
            )

    def assertClientOk(self, finished: Finished, count: int) -> None:
        """
        Fail unless the C client exited 0 and reported all C{count} calls
        as they should be.
        """
        self.assertSucceeded(finished)
        self.assertIn(
            f" calls {count}/{count} ", finished.stdout, finished.describe()
        )

    def check_null_and_echo(self, transport: str, sizes: Sequence[int]) -> None:
        """
        NULL (many calls) and ECHO of each of C{sizes} (a few calls each)
        succeed over C{transport}, echoes intact.
        """
        self.assertClientOk(self.run_client(transport, "null", count=200), 200)
        for size in sizes:
            count = count_for(size)
            self.assertClientOk(self.run_client(transport, "echo", size, count), count)

    def check_rejections(
        self, transport: str, program: int = PROGRAM, version: int = VERSION
    ) -> None:
        """
        Over C{transport}, a call to another program fails with
        C{RPC_PROGUNAVAIL}, to another version with C{RPC_PROGVERSMISMATCH}
        (the server supporting C{version} to C{version}), to an unknown
        procedure with C{RPC_PROCUNAVAIL}; and the server answers a good
        call afterwards.
        """
        cases = [
            ("RPC_PROGUNAVAIL", program + 1, version, "null", ""),
            (
                "RPC_PROGVERSMISMATCH",
                program,
                version + 1,
                "null",
                f"low {version} high {version}",
            ),
            ("RPC_PROCUNAVAIL", program, version, "7", ""),
        ]
        for stat, prog, vers, proc, detail in cases:
            finished = self.run_client(
                transport, proc, program=prog, version=vers, expect=stat, count=2
            )
            self.assertClientOk(finished, 2)
            self.assertIn(f"got {stat}: RPC: ", finished.stdout)
            self.assertIn(detail, finished.stdout)
        self.assertClientOk(
            self.run_client(transport, "null", program=program, version=version), 1
        )


# ---------------------------------------------------------------------------
# The harness: libtirpc against itself
# ---------------------------------------------------------------------------


class TirpcSanityTests(_InteropTestCase):
    """
    The C client against the C server: the harness works, whatever our own
    programs do.
    """

    def setUp(self) -> None:
        self.server = start_server(self, [str(build_or_skip("tirpc_server"))])

    def test_listeners(self) -> None:
        """
        The C server listens on loopback TCP and UDP, on ports the kernel
        picked.
        """
        for transport in ("tcp", "udp"):
            host, port = self.server.host_port(transport)
            self.assertEqual(host, "127.0.0.1")
            self.assertGreater(port, 0)

    def test_tcp(self) -> None:
        """
        NULL, and ECHO of 0 B to 4 MiB, succeed over TCP.
        """
        self.check_null_and_echo("tcp", TCP_SIZES)

    def test_udp(self) -> None:
        """
        NULL, and ECHO of 0 B to 60,000 B, succeed over UDP.
        """
        self.check_null_and_echo("udp", UDP_SIZES)

    def test_rejections(self) -> None:
        """
        The client reports an unknown program, version or procedure as
        libtirpc's C{clnt_stat}, over TCP and UDP.
        """
        self.check_rejections("tcp")
        self.check_rejections("udp")

    def test_expect_sees_success(self) -> None:
        """
        C{--expect} fails (exit status 1) when the call succeeds, so the
        rejection checks cannot pass vacuously.
        """
        finished = self.run_client("tcp", "null", expect="RPC_PROCUNAVAIL")
        self.assertEqual(finished.returncode, 1, finished.describe())
        self.assertIn("got RPC_SUCCESS", finished.stdout)

    def test_echo_checked(self) -> None:
        """
        An ECHO too large for the client's UDP buffer fails with exit
        status 1: the client does not report calls it could not make.
        """
        finished = self.run_client("udp", "echo", 70000)
        self.assertEqual(finished.returncode, 1, finished.describe())
        self.assertIn("calls 0/1", finished.stdout)

    def test_stop(self) -> None:
        """
        The C server exits 0 on SIGTERM.
        """
        self.assertEqual(self.server.stop(), 0, self.server.describe())
        self.assertFalse(self.server.killed)


def rpcinfo_or_skip() -> str:
    """
    The path of C{rpcinfo}, or skip the test.
    """
    rpcinfo = find_rpcinfo()
    if rpcinfo is None:
        raise SkipTest(
            "rpcinfo is not installed (not on PATH, nor in /usr/sbin or "
            "/sbin); install Debian's rpcbind package to run the rpcinfo tests"
        )
    return rpcinfo


class _RpcinfoTestCase(_InteropTestCase):
    """
    C{rpcinfo -T tcp|udp -a UNIVERSAL-ADDRESS PROG [VERS]} against
    C{self.server}: it calls NULL at that address directly, without asking
    rpcbind.
    """

    def rpcinfo(self, transport: str, *numbers: int) -> Finished:
        """
        Run C{rpcinfo} against C{self.server}.

        @param numbers: the program, and the version if given (without it,
            C{rpcinfo} learns the versions from a C{PROG_MISMATCH} reply and
            calls each).
        """
        host, port = self.server.host_port(transport)
        argv = [
            rpcinfo_or_skip(),
            "-T",
            transport,
            "-a",
            universal_address(host, port),
            *map(str, numbers),
        ]
        return run_program(argv, CLIENT_TIMEOUT)

    def check_rpcinfo(self, program: int = PROGRAM, version: int = VERSION) -> None:
        """
        C{rpcinfo} finds the program ready over TCP and UDP, with the
        version given and without, and reports another version as not
        available (exit status 1).
        """
        ready = f"program {program} version {version} ready and waiting"
        for transport in ("tcp", "udp"):
            for numbers in ((program, version), (program,)):
                finished = self.rpcinfo(transport, *numbers)
                self.assertSucceeded(finished)
                self.assertEqual(finished.stdout.splitlines(), [ready])
            finished = self.rpcinfo(transport, program, version + 1)
            self.assertEqual(finished.returncode, 1, finished.describe())
            self.assertEqual(
                finished.stdout.splitlines(),
                [f"program {program} version {version + 1} is not available"],
            )


class TirpcRpcinfoTests(_RpcinfoTestCase):
    """
    C{rpcinfo} against the C server: what it prints for a libtirpc server,
    which the same checks then expect of ours.
    """

    def setUp(self) -> None:
        rpcinfo_or_skip()
        self.server = start_server(self, [str(build_or_skip("tirpc_server"))])

    def test_rpcinfo(self) -> None:
        """
        C{rpcinfo} prints C{program 536871065 version 1 ready and waiting}
        and exits 0 over TCP and UDP, and prints C{... version 2 is not
        available} and exits 1 for version 2.
        """
        self.check_rpcinfo()


# ---------------------------------------------------------------------------
# libtirpc client against rpctransport serve
# ---------------------------------------------------------------------------


class ServeTests(_InteropTestCase):
    """
    The libtirpc client against C{python -m rpctransport serve}.
    """

    def setUp(self) -> None:
        build_or_skip("tirpc_client")
        self.server = start_server(self, serve_command(), env=rpctransport_env())

    def test_listeners(self) -> None:
        """
        C{serve} prints a C{listening} line for TCP and for UDP, on
        127.0.0.1 and the ports the kernel picked.
        """
        for transport in ("tcp", "udp"):
            host, port = self.server.host_port(transport)
            self.assertEqual(host, "127.0.0.1")
            self.assertGreater(port, 0)

    def test_tcp(self) -> None:
        """
        Over TCP, NULL succeeds, and ECHO of 0 B, 1 B, 4095 B, 64 KiB, 1 MiB
        and 4 MiB (libtirpc sends the larger ones in many fragments) comes
        back intact, several calls on one connection.
        """
        self.check_null_and_echo("tcp", TCP_SIZES)

    def test_udp(self) -> None:
        """
        Over UDP, NULL succeeds, and ECHO of 0 B up to 60,000 B comes back
        intact.
        """
        self.check_null_and_echo("udp", UDP_SIZES)

    def test_rejections_tcp(self) -> None:
        """
        Over TCP, an unknown program gets C{PROG_UNAVAIL}, an unknown version
        C{PROG_MISMATCH} (low 1, high 1), an unknown procedure
        C{PROC_UNAVAIL}, and the connection's server goes on answering.
        """
        self.check_rejections("tcp")

    def test_rejections_udp(self) -> None:
        """
        Over UDP, an unknown program gets C{PROG_UNAVAIL}, an unknown version
        C{PROG_MISMATCH} (low 1, high 1), an unknown procedure
        C{PROC_UNAVAIL}.
        """
        self.check_rejections("udp")

    def test_concurrent_clients(self) -> None:
        """
        Four libtirpc clients at once, each on its own TCP connection,
        echoing 1 MiB records, all get their own bytes back.
        """
        with ThreadPoolExecutor(4) as pool:
            runs = list(
                pool.map(
                    lambda _: self.run_client("tcp", "echo", 1 << 20, 5), range(4)
                )
            )
        for finished in runs:
            self.assertClientOk(finished, 5)

    def test_stop(self) -> None:
        """
        C{serve} exits 0 on SIGTERM, without having to be killed.
        """
        self.assertClientOk(self.run_client("tcp", "null"), 1)
        self.assertEqual(self.server.stop(), 0, self.server.describe())
        self.assertFalse(self.server.killed)


class ServeOptionsTests(_InteropTestCase):
    """
    The options of C{python -m rpctransport serve}, seen by a libtirpc
    client.
    """

    def setUp(self) -> None:
        build_or_skip("tirpc_client")

    def test_program_and_version(self) -> None:
        """
        With C{--program} and C{--version}, C{serve} answers that program and
        version, and rejects the default ones.
        """
        self.server = start_server(
            self,
            serve_command(
                "--program", str(OTHER_PROGRAM), "--program-version", str(OTHER_VERSION)
            ),
            env=rpctransport_env(),
        )
        for transport in ("tcp", "udp"):
            finished = self.run_client(
                transport,
                "echo",
                4095,
                3,
                program=OTHER_PROGRAM,
                version=OTHER_VERSION,
            )
            self.assertClientOk(finished, 3)
            self.check_rejections(transport, OTHER_PROGRAM, OTHER_VERSION)
            finished = self.run_client(transport, "null", expect="RPC_PROGUNAVAIL")
            self.assertClientOk(finished, 1)

    def test_max_record_size(self) -> None:
        """
        With C{--max-record-size 1048576}, a 64 KiB ECHO succeeds, a 4 MiB
        one fails (within the client's 5 s timeout, whether the server
        closes the connection or answers with an error), and the server goes
        on serving new connections.
        """
        self.server = start_server(
            self,
            serve_command("--max-record-size", str(1 << 20)),
            env=rpctransport_env(),
        )
        self.assertClientOk(self.run_client("tcp", "echo", 65536, 2), 2)
        finished = self.run_client("tcp", "echo", 4 << 20, 1, timeout=5)
        self.assertFailed(finished)
        self.assertIn("calls 0/1", finished.stdout)
        self.assertClientOk(self.run_client("tcp", "echo", 65536, 2), 2)


class ServeRpcinfoTests(_RpcinfoTestCase):
    """
    C{rpcinfo} against C{python -m rpctransport serve}.
    """

    def setUp(self) -> None:
        rpcinfo_or_skip()
        self.server = start_server(self, serve_command(), env=rpctransport_env())

    def test_rpcinfo(self) -> None:
        """
        C{rpcinfo} prints C{program 536871065 version 1 ready and waiting}
        and exits 0 over TCP and UDP, with version 1 given and without (it
        then learns the versions from a C{PROG_MISMATCH} reply to version
        0); it prints C{... version 2 is not available} and exits 1 for
        version 2.
        """
        self.check_rpcinfo()


# ---------------------------------------------------------------------------
# rpctransport call against the libtirpc server
# ---------------------------------------------------------------------------


class CallTests(_InteropTestCase):
    """
    C{python -m rpctransport call} against the libtirpc server.
    """

    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="rpctransport-interop-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.socket_path = f"{directory}/tirpc.sock"
        self.server = start_server(
            self,
            [str(build_or_skip("tirpc_server")), "--unix", self.socket_path],
            kinds=("tcp", "udp", "unix"),
        )

    def call(
        self,
        transport: str,
        proc: str,
        size: int = 0,
        count: int = 1,
        concurrency: int = 1,
        *args: str,
    ) -> Finished:
        """
        Run C{rpctransport call} against the C server.

        @param transport: C{"tcp"}, C{"udp"} or C{"unix"}.
        """
        if transport == "unix":
            address = f"unix:{self.socket_path}"
        else:
            host, port = self.server.host_port(transport)
            address = f"{transport}:{host}:{port}"
        argv = call_command(address, proc, size, count, concurrency, *args)
        return run_program(argv, CLIENT_TIMEOUT, env=rpctransport_env())

    def test_tcp_null(self) -> None:
        """
        200 NULL calls over TCP, 8 at a time, all succeed (exit status 0).
        """
        self.assertSucceeded(self.call("tcp", "null", 0, 200, 8))

    def test_tcp_echo(self) -> None:
        """
        ECHO over TCP of 0 B to 4 MiB, several calls two at a time, comes
        back intact from libtirpc (which answers large records in 65,532-byte
        fragments).
        """
        for size in TCP_SIZES:
            self.assertSucceeded(self.call("tcp", "echo", size, 2 * count_for(size), 2))

    def test_udp_null(self) -> None:
        """
        50 NULL calls over UDP all succeed.
        """
        self.assertSucceeded(self.call("udp", "null", 0, 50, 1))

    def test_udp_echo(self) -> None:
        """
        ECHO over UDP of 0 B to 60,000 B comes back intact.
        """
        for size in UDP_SIZES:
            self.assertSucceeded(self.call("udp", "echo", size, count_for(size), 1))

    def test_unix(self) -> None:
        """
        NULL, and ECHO of 64 KiB and 1 MiB, over a UNIX socket, succeed.
        """
        self.assertSucceeded(self.call("unix", "null", 0, 20, 4))
        for size in (65536, 1 << 20):
            self.assertSucceeded(self.call("unix", "echo", size, 4, 2))

    def test_program_and_version(self) -> None:
        """
        C{--program} and C{--program-version} choose what C{call} calls: with the C
        server serving another program and version, calls to them succeed
        over TCP and UDP.
        """
        self.server.stop()
        self.server = start_server(
            self,
            [
                str(build_or_skip("tirpc_server")),
                "--program",
                str(OTHER_PROGRAM),
                "--version",
                str(OTHER_VERSION),
            ],
        )
        options = ("--program", str(OTHER_PROGRAM), "--program-version", str(OTHER_VERSION))
        for transport in ("tcp", "udp"):
            self.assertSucceeded(self.call(transport, "null", 0, 3, 1, *options))
            self.assertSucceeded(self.call(transport, "echo", 4095, 3, 1, *options))

    def test_failure_status(self) -> None:
        """
        C{call} exits with a status other than 0, without a traceback, when
        the server rejects its calls: an unknown program, an unknown
        version.
        """
        for transport in ("tcp", "udp"):
            for option, value in (
                ("--program", PROGRAM + 1),
                ("--program-version", VERSION + 1),
            ):
                finished = self.call(transport, "null", 0, 1, 1, option, str(value))
                self.assertFailed(finished)
                # A rejected call is a result to report, not a crash.
                self.assertNotIn("Traceback", finished.stderr, finished.describe())


class CapturedCallTests(SynchronousTestCase):
    """
    L{rpctransport.rpcmsg} against bytes libtirpc really sends.
    """

    def capture(self, proc: int, size: int) -> bytes:
        """
        The first record libtirpc's client sends for one call of C{proc}
        (ECHO with C{size} bytes), read from a plain listening socket.
        """
        client = build_or_skip("tirpc_client")
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.settimeout(30)
            port = listener.getsockname()[1]
            process = subprocess.Popen(
                [str(client), "--timeout", "2", "tcp", "127.0.0.1", str(port),
                 str(PROGRAM), str(VERSION), "null" if proc == 0 else "echo",
                 str(size), "1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.addCleanup(process.wait)
            self.addCleanup(process.kill)
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(30)
                reader = RecordReader()
                while True:
                    data = connection.recv(65536)
                    self.assertTrue(data, "libtirpc closed before sending a whole record")
                    reader.feed(data)
                    record = next_event(reader, lambda size: ACCEPT)
                    if record is not NEED_DATA:
                        assert isinstance(record, Accepted)
                        return record.message

    def test_null_call_header(self) -> None:
        """
        The call header libtirpc sends for NULL is byte for byte what
        C{encode_call_header} makes of what C{decode_call_header} reads.
        """
        message = self.capture(0, 0)
        header, offset = decode_call_header(message)
        self.assertEqual(
            (header.rpcvers, header.prog, header.vers, header.proc),
            (2, PROGRAM, VERSION, 0),
        )
        self.assertEqual(header.cred.flavor, 0)
        self.assertEqual(offset, len(message))
        self.assertEqual(encode_call_header(header), message)
        self.assertEqual(
            message[4:],
            bytes.fromhex("00000000 00000002 20000099 00000001 00000000 00000000 00000000 00000000 00000000"),
        )

    def test_echo_call(self) -> None:
        """
        An ECHO call from libtirpc decodes to the header and the opaque
        argument it carried (libtirpc's own fragmentation undone by the
        record reader).
        """
        message = self.capture(1, 100000)
        header, offset = decode_call_header(message)
        self.assertEqual(header.proc, 1)
        self.assertEqual(encode_call_header(header), message[:offset])
        argument = b"".join(encode_opaque(bytes(i % 251 for i in range(100000))))
        self.assertEqual(message[offset:], argument)
