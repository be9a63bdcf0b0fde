# -*- test-case-name: rpctransport.test -*-
"""
Helpers shared by the test modules; a test module imports helpers from here
(and the library from L{rpctransport}), never from another test module.

  - record-marked bytes, built here rather than with the code under test:
    L{mark}, L{fragment_mark}, L{fragment}, L{record}, L{fragments}, and
    L{read_record} to read one from a socket;
  - L{echo_call}: a call of the echo test program;
  - L{connected}: a stream controller on a fake transport and clock;
  - the real reactor and bounded waits on it: L{get_reactor}, L{WAIT},
    L{sleep}, L{fires_within}, L{outcome}, L{eventually}; L{wait_until}
    blocks, for tests that watch other processes;
  - socket tests: L{RawPeer}, L{pattern}, L{TLS_CLIENT_HELLO},
    L{socket_transport} and L{SocketTestMixin} (a registry of what a test
    opens, torn down in one cleanup);
  - certificates: L{pki}, L{server_options}, L{client_options};
  - datagram controllers on fakes: L{FakePort}, L{make_datagram}, L{Hook},
    L{refused}; L{ipv6_skip} for IPv6 socket tests;
  - L{RecordingProducer}, a push producer that notes how it was told to
    produce.
"""

from __future__ import annotations

import contextlib
import functools
import io
import socket
import struct
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IPushProducer, IUDPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from rpctransport import (
    SUNRPC_ALPN,
    StreamController,
    client_tls_options,
    server_tls_options,
)
from rpctransport.adapters.datagram import DatagramController
from rpctransport.bench.haproxy import find_haproxy, haproxy_missing
from rpctransport.program.echo import ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, encode_opaque
from rpctransport.sansio.record import FragmentHeader, RecordReader
from rpctransport.sansio.rpcmsg import CallHeader, encode_call_header
from rpctransport.sansio.types import ACCEPT, InRule
from rpctransport.testing import CertificateAuthority, IssuedCertificate

# -- Record-marked bytes -------------------------------------------------------

LAST = 0x80000000
"""The last-fragment bit of a record mark."""


def mark(length: int, last: bool = True) -> bytes:
    """
    A record mark for a fragment of C{length} bytes, the last of its record
    unless C{last} is false.
    """
    return struct.pack(">I", length | (LAST if last else 0))


def fragment_mark(length: int, last: bool = False) -> bytes:
    """
    L{mark} for a fragment that is I{not} the last of its record unless
    C{last} says so: the codec's tests build records one fragment at a time.
    """
    return mark(length, last)


def fragment(payload: bytes, last: bool = False) -> bytes:
    """
    One fragment on the wire: its mark and its payload.
    """
    return mark(len(payload), last) + payload


def record(*payloads: bytes) -> bytes:
    """
    A record made of one fragment per payload; the last one is flagged last.
    """
    return b"".join(
        fragment(p, i == len(payloads) - 1) for i, p in enumerate(payloads)
    )


def next_event(reader: RecordReader, decide: Callable[[int], Any]) -> Any:
    """
    The next event of C{reader} that is not a L{FragmentHeader}: each
    fragment header is answered with what C{decide(size)} returns, as the
    stream controller answers it with a read's C{before_record}. What
    C{decide} raises fails the reader and is raised again.
    """
    while True:
        event = reader.next_event()
        if type(event) is not FragmentHeader:
            return event
        try:
            rule = decide(event.size)
        except Exception as e:
            reader.close(e)
            raise
        record = reader.decide(rule)
        if record is not None:
            return record


def fragments(message: bytes, sizes: list[int]) -> bytes:
    """
    C{message} record-marked in fragments of C{sizes} bytes, then one last
    fragment with the rest; built here, not with the code under test.
    """
    out = []
    offset = 0
    for size in sizes:
        out.append(fragment(message[offset : offset + size]))
        offset += size
    out.append(fragment(message[offset:], last=True))
    return b"".join(out)


def read_record(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """
    One record from C{sock}, reassembled from its fragments.
    """
    sock.settimeout(timeout)
    parts = []
    while True:
        (word,) = struct.unpack(">I", read_exactly(sock, 4))
        parts.append(read_exactly(sock, word & ~LAST))
        if word & LAST:
            return b"".join(parts)


def read_exactly(sock: socket.socket, n: int) -> bytes:
    """
    Exactly C{n} bytes from C{sock}.

    @raise EOFError: if the peer closes the connection first.
    """
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"the server closed the connection after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


# -- Calls of the echo program -------------------------------------------------


def echo_call(xid: int, proc: int = PROC_ECHO, argument: bytes = b"") -> bytes:
    """
    An echo-program call (without its record mark): C{proc} ECHO (with
    C{argument}) by default.
    """
    body = b"".join(encode_opaque(argument)) if proc == PROC_ECHO else b""
    return encode_call_header(CallHeader(xid, ECHO_PROGRAM, ECHO_VERSION, proc)) + body


# -- Stream controllers on fakes -----------------------------------------------


PEER = IPv4Address("TCP", "192.0.2.7", 40000)
"""The peer of L{connected}'s controller."""

HOST = IPv4Address("TCP", "127.0.0.1", 111)
"""The local address of L{connected}'s controller."""


class HalfCloseableStringTransport(StringTransport):
    """
    A C{StringTransport} that can half-close, as TCP transports do.
    """

    write_closed = False

    def loseWriteConnection(self) -> None:
        """
        Remember the half-close.
        """
        self.write_closed = True


def connected(**options: Any) -> tuple[StreamController, HalfCloseableStringTransport, Clock]:
    """
    A controller connected to a fake transport, with a fake clock.
    """
    clock = Clock()
    controller = StreamController(clock, **options)
    transport = HalfCloseableStringTransport(hostAddress=HOST, peerAddress=PEER)
    controller.makeConnection(transport)
    return controller, transport, clock


# -- The reactor, and bounded waits --------------------------------------------


def get_reactor() -> Any:
    """
    The global reactor, imported when a test needs it (never at import).
    """
    from twisted.internet import reactor

    return reactor


WAIT = 10.0
"""
Seconds any single wait may take before the test gives up: far more than a
loopback socket ever needs, so it only turns a hang into a failure.
"""


def outcome(d: Deferred[Any]) -> Deferred[tuple[bool, Any]]:
    """
    A Deferred that never fails: it fires with C{(True, result)} when C{d}
    succeeds, or C{(False, failure)} when it fails (the failure is then
    handled).
    """
    return d.addCallbacks(lambda result: (True, result), lambda failure: (False, failure))


def sleep(seconds: float) -> Deferred[None]:
    """
    A Deferred firing after C{seconds} of reactor time.
    """
    return deferLater(get_reactor(), seconds, lambda: None)


def fires_within(d: Deferred[Any], seconds: float) -> Deferred[bool]:
    """
    A Deferred firing with C{True} as soon as C{d} fires, or with C{False}
    if it has not fired after C{seconds}. C{d}'s own result passes through
    untouched.
    """
    answer: Deferred[bool] = Deferred()
    if d.called:
        return succeed(True)
    call = get_reactor().callLater(seconds, answer.callback, False)

    def fired(result: object) -> object:
        if call.active():
            call.cancel()
            answer.callback(True)
        return result

    d.addBoth(fired)
    return answer


def eventually(predicate: Callable[[], bool], what: str) -> Deferred[None]:
    """
    Fire once C{predicate()} holds, checking once per reactor turn; fail
    after L{WAIT} seconds.
    """
    reactor = get_reactor()
    deadline = reactor.seconds() + WAIT

    @inlineCallbacks
    def poll() -> Generator[Deferred[Any], Any, None]:
        while not predicate():
            if reactor.seconds() > deadline:
                raise AssertionError(f"gave up waiting for {what}")
            yield deferLater(reactor, 0.001, lambda: None)

    return poll()


def wait_until(condition: Callable[[], object], timeout: float = 30.0) -> bool:
    """
    Poll C{condition} until it is true or C{timeout} seconds pass; return
    whether it came true. It blocks: for tests that watch other processes,
    without a reactor (L{eventually} is the reactor's).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- Socket tests --------------------------------------------------------------


TLS_CLIENT_HELLO = (
    # TLS record: handshake (0x16), version 3.1, length 0x00f8.
    b"\x16\x03\x01\x00\xf8"
    # Handshake: ClientHello (1), length 0x0000f4, client version 3.3.
    + b"\x01\x00\x00\xf4\x03\x03"
    + bytes(range(32))
    + b"\x20"
    + bytes(range(32, 64))
    + b"\x00\x08\x13\x02\x13\x03\x13\x01\x00\xff\x01\x00"
    + b"\x00" * 160
)


def pattern(size: int, seed: int = 0) -> bytes:
    """
    C{size} bytes that are not all alike, so that a shifted or truncated
    record never compares equal.
    """
    block = bytes((i * 7 + seed) % 251 for i in range(min(size, 4093)))
    if not block:
        return b""
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]


class RawPeer(Protocol):
    """
    A peer that speaks raw bytes: it counts (and optionally keeps) what it
    receives and tells when the connection is gone.

    @ivar received: the bytes received, when C{keep} is set.
    @ivar count: how many bytes were received.
    @ivar lost: fires with L{None} once the connection is gone.
    @ivar reason: why it is gone.
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.received = bytearray()
        self.count = 0
        self.lost: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self._waiters: list[tuple[int, Deferred[int]]] = []

    def dataReceived(self, data: bytes) -> None:
        """
        Count the bytes and wake up whoever waits for that many.
        """
        self.count += len(data)
        if self.keep:
            self.received += data
        ready = [w for w in self._waiters if self.count >= w[0]]
        for waiter in ready:
            self._waiters.remove(waiter)
            waiter[1].callback(self.count)

    def wait_for_bytes(self, n: int) -> Deferred[int]:
        """
        A Deferred firing once at least C{n} bytes have been received.
        """
        if self.count >= n:
            return succeed(self.count)
        d: Deferred[int] = Deferred()
        self._waiters.append((n, d))
        return d

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Remember why, fail the byte waiters, fire L{lost}.
        """
        self.reason = reason
        waiters, self._waiters = self._waiters, []
        for _, d in waiters:
            d.errback(reason)
        self.lost.callback(None)


def socket_transport(transport: Any) -> Any:
    """
    The socket's own transport under any protocol wrappers (Twisted's TLS).
    """
    while isinstance(transport, ProtocolWrapper):
        transport = transport.transport
    return transport


if TYPE_CHECKING:
    MixinBase = TestCase
else:
    # Not a TestCase at run time, so that the mixins are not collected.
    MixinBase = object


class SocketTestMixin(MixinBase):
    """
    Helpers shared by the socket test cases: bounded waits, and a registry of
    everything a test opens, torn down in one cleanup.
    """

    timeout = 60

    def _setUpRegistry(self) -> None:
        self.reactor = get_reactor()
        self._controllers: list[StreamController] = []
        self._raw_peers: list[RawPeer] = []
        self._sockets: list[socket.socket] = []
        self._processes: list[tuple[Any, Any]] = []
        self.addCleanup(self._tear_down_everything)

    def track(self, controller: StreamController) -> StreamController:
        """
        Inactivate C{controller} when the test ends, and wait for its
        connection to be gone.
        """
        self._controllers.append(controller)
        return controller

    def track_peer(self, peer: RawPeer) -> RawPeer:
        """
        Abort C{peer}'s connection when the test ends, if still up.
        """
        self._raw_peers.append(peer)
        return peer

    def track_socket(self, sock: socket.socket) -> socket.socket:
        """
        Close C{sock} when the test ends.
        """
        self._sockets.append(sock)
        return sock

    def track_process(self, transport: Any, process: Any) -> None:
        """
        Kill the process of C{transport} when the test ends, if still
        running, and wait for C{process.ended} (a Deferred) to fire.
        """
        self._processes.append((transport, process))

    @inlineCallbacks
    def _tear_down_everything(self) -> Generator[Any, Any, None]:
        for controller in self._controllers:
            controller.inactivate()
        for peer in self._raw_peers:
            transport: Any = peer.transport
            if transport is not None and not peer.lost.called:
                transport.abortConnection()
        for transport, process in self._processes:
            if not process.ended.called:
                transport.signalProcess("KILL")

        def all_gone() -> bool:
            for controller in self._controllers:
                transport = socket_transport(controller.transport)
                if transport is not None and not getattr(transport, "disconnected", True):
                    return False
            if not all(peer.lost.called or peer.transport is None for peer in self._raw_peers):
                return False
            return all(process.ended.called for _, process in self._processes)

        yield self.until(all_gone, "every connection to close")
        for sock in self._sockets:
            sock.close()

    @inlineCallbacks
    def until(
        self, predicate: Callable[[], bool], what: str, seconds: float = WAIT
    ) -> Generator[Any, Any, None]:
        """
        Wait (polling the reactor) until C{predicate()} is true; fail the
        test after C{seconds}.
        """
        step = 0.01
        for _ in range(int(seconds / step) + 1):
            if predicate():
                return
            yield sleep(step)
        self.fail(f"gave up waiting for {what}")

    @inlineCallbacks
    def within(self, d: Deferred[Any], what: str, seconds: float = WAIT) -> Generator[Any, Any, Any]:
        """
        Wait for C{d} and return its result; fail the test if it does not
        fire within C{seconds}.
        """
        fired = yield fires_within(d, seconds)
        if not fired:
            self.fail(f"gave up waiting for {what}")
        result = yield d
        return result


# -- Certificates --------------------------------------------------------------


class Certificates:
    """
    Every certificate the tests use, made once: two CAs, servers and
    clients with each kind of identity, expired ones.

    @ivar ca: the CA both sides trust.
    @ivar other_ca: a CA nobody trusts.
    """

    def __init__(self) -> None:
        self.ca = CertificateAuthority("rpctransport test CA")
        self.other_ca = CertificateAuthority("some other CA")
        names: dict[str, Any] = {"dns": ("localhost",), "ips": ("127.0.0.1",)}
        self.server = self.ca.issue("rpc-server", **names)
        self.rogue_server = self.other_ca.issue("rpc-server", **names)
        self.expired_server = self.ca.issue("rpc-server", expired=True, **names)
        # One client per rule of the peer_user_name, each also carrying the
        # identities of the rules below it, so that the order is checked.
        self.rfc822_client = self.ca.issue(
            "Alice CN",
            emails=("alice@example.org", "second@example.org"),
            dns=("alice.example",),
            uid="alice-uid",
            email_address="alice-attribute@example.org",
        )
        self.uid_client = self.ca.issue(
            "Bob CN", dns=("bob.example",), uid="bob", email_address="bob@example.org"
        )
        self.email_client = self.ca.issue(
            "Carol CN", email_address="carol@example.org"
        )
        self.cn_client = self.ca.issue("dave")
        self.anonymous_client = self.ca.issue(None, dns=("nobody.example",))
        self.rogue_client = self.other_ca.issue("mallory")
        self.expired_client = self.ca.issue("late", expired=True)


@functools.cache
def pki() -> Certificates:
    """
    The tests' certificates (L{Certificates}), made on first use.
    """
    return Certificates()


def server_options(
    certificate: IssuedCertificate | None = None,
    *,
    client_ca: bytes | None = None,
    alpn: bool = True,
    chain: bool = False,
) -> Any:
    """
    Server TLS options with C{certificate} (the trusted server's by
    default); C{chain} adds the CA's certificate after ours, as a server
    sends its intermediates.
    """
    certificate = certificate or pki().server
    if not chain:
        return server_tls_options(
            certificate.certificate, certificate.key, client_ca=client_ca, alpn=alpn
        )
    from twisted.internet import ssl

    own = ssl.PrivateCertificate.loadPEM(certificate.pem)
    extra: dict[str, Any] = {}
    if client_ca is not None:
        extra["trustRoot"] = ssl.Certificate.loadPEM(client_ca)
    if alpn:
        extra["acceptableProtocols"] = [SUNRPC_ALPN]
    return ssl.CertificateOptions(
        privateKey=own.privateKey.original.to_cryptography_key(),
        certificate=own.original.to_cryptography(),
        extraCertChain=[ssl.Certificate.loadPEM(pki().ca.certificate).original.to_cryptography()],
        **extra,
    )


def client_options(
    certificate: IssuedCertificate | None = None,
    *,
    hostname: str = "localhost",
    ca: CertificateAuthority | None = None,
    alpn: bool = True,
    chain: bool = False,
) -> Any:
    """
    Client TLS options verifying the server as C{hostname} against C{ca}
    (the trusted CA by default), presenting C{certificate} if given;
    C{chain} sends the CA's certificate after the client's own.
    """
    ca = ca or pki().ca
    if not chain:
        if certificate is None:
            return client_tls_options(hostname, ca=ca.certificate, alpn=alpn)
        return client_tls_options(
            hostname,
            ca=ca.certificate,
            certificate=certificate.certificate,
            key=certificate.key,
            alpn=alpn,
        )
    from twisted.internet import ssl

    assert certificate is not None
    own = ssl.PrivateCertificate.loadPEM(certificate.pem)
    return ssl.optionsForClientTLS(
        hostname,
        trustRoot=ssl.Certificate.loadPEM(ca.certificate),
        acceptableProtocols=[SUNRPC_ALPN] if alpn else None,
        extraCertificateOptions={
            "privateKey": own.privateKey.original.to_cryptography_key(),
            "certificate": own.original.to_cryptography(),
            "extraCertChain": [
                ssl.Certificate.loadPEM(pki().ca.certificate).original.to_cryptography()
            ],
        },
    )


# -- Datagram controllers on fakes ------------------------------------------------


@implementer(IUDPTransport)
class FakePort:
    """
    A UDP port in memory: records what is written, can be told to fail
    writes, and closes (telling its protocol) when asked.

    @ivar written: C{(datagram, addr)} for each write.
    @ivar write_error: raised by the next L{write}, when set.
    @ivar reading: whether the protocol wants datagrams.
    """

    def __init__(self, host: IPv4Address | IPv6Address) -> None:
        self.host = host
        self.written: list[tuple[bytes, Any]] = []
        self.write_error: Exception | None = None
        self.reading = True
        self.stopped = False
        self.protocol: DatagramController | None = None

    def attach(self, protocol: DatagramController) -> None:
        self.protocol = protocol
        protocol.makeConnection(self)

    def write(self, packet: bytes, addr: Any = None) -> None:
        if self.write_error is not None:
            error, self.write_error = self.write_error, None
            raise error
        self.written.append((packet, addr))

    def connect(self, host: str, port: int) -> None:
        raise AssertionError("the controller must not connect its socket")

    def getHost(self) -> IPv4Address | IPv6Address:
        return self.host

    def stopListening(self) -> Deferred[None]:
        self.stopped = True
        self.reading = False
        assert self.protocol is not None
        self.protocol.doStop()
        return succeed(None)

    def stopReading(self) -> None:
        self.reading = False

    def setBroadcastAllowed(self, enabled: bool) -> None:
        pass

    def getBroadcastAllowed(self) -> bool:
        return False


def make_datagram(
    inet6: bool = False, **options: Any
) -> tuple[DatagramController, FakePort, Clock]:
    """
    A controller on a L{FakePort}, with a L{Clock} for its timers.
    """
    clock = Clock()
    controller = DatagramController(clock, **options)
    host: IPv4Address | IPv6Address = (
        IPv6Address("UDP", "::1", 5000) if inet6 else IPv4Address("UDP", "127.0.0.1", 5000)
    )
    port = FakePort(host)
    port.attach(controller)
    return controller, port, clock


class Hook:
    """
    A C{before_record} hook that answers C{rule} and remembers its calls.
    """

    def __init__(self, rule: InRule = ACCEPT) -> None:
        self.rule = rule
        self.calls: list[tuple[int, object]] = []

    def __call__(self, size: int, peer: object) -> InRule:
        self.calls.append((size, peer))
        return self.rule


def refused(port: int = 9) -> ConnectionRefusedError:
    """
    The error the port makes of an ICMP port unreachable about a datagram
    sent to C{127.0.0.1:port}.
    """
    return ConnectionRefusedError(string=f"the datagram sent to 127.0.0.1:{port} failed")


def ipv6_skip() -> str | None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError as e:
        return f"no IPv6 sockets here: {e}"
    try:
        probe.bind(("::1", 0))
    except OSError as e:
        return f"cannot bind ::1: {e}"
    finally:
        probe.close()
    return None


@implementer(IPushProducer)
class RecordingProducer:
    """
    A push producer that notes how it was told to produce.

    @ivar calls: C{"pause"}, C{"resume"} and C{"stop"}, in order.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def help_text(*argv: str) -> str:
    """
    What C{rpctransport ARGV --help} prints.
    """
    from rpctransport.program.cli import parse_args

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            parse_args([*argv, "--help"])
        except SystemExit as e:
            assert e.code == 0
    return out.getvalue()


def usage_error(*argv: str) -> str:
    """
    The error C{rpctransport ARGV} prints (it must exit 2).
    """
    from rpctransport.program.cli import parse_args

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parse_args(list(argv))
        except SystemExit as e:
            assert e.code == 2, e.code
        else:
            raise AssertionError(f"{argv} parsed")
    return err.getvalue()


# -- HAProxy, for the PROXY protocol tests ------------------------------------------

def haproxy_skip() -> str | None:
    """
    Why a test that runs a real HAProxy must skip here (C{.ci/run} installs
    Debian's haproxy package), or L{None}.
    """
    return haproxy_missing()


class HAProxy:
    """
    A real HAProxy on loopback, run in the foreground (C{-db}) with a
    configuration written to a directory of the test's: a C{global} section
    with a stats socket, C{defaults} for TCP mode, then the C{sections}
    given. L{start} blocks until HAProxy answers on its stats socket (its
    listeners are bound by then); L{stop} ends it.

    @ivar directory: where the configuration, the stats socket and
        HAProxy's output are.
    """

    def __init__(self, directory: str, sections: str) -> None:
        import os

        self.directory = directory
        self.config = os.path.join(directory, "haproxy.cfg")
        self.stats_socket = os.path.join(directory, "haproxy-stats.sock")
        self.output = os.path.join(directory, "haproxy.out")
        self.process: Any = None
        text = (
            "global\n"
            f"    stats socket {self.stats_socket} mode 600 level admin\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 5s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n"
            f"{sections}"
        )
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, timeout: float = WAIT) -> None:
        """
        Check the configuration, start HAProxy and wait until it serves.

        @raise AssertionError: the configuration is refused, or HAProxy
            exits or does not answer in time (with its output).
        """
        import subprocess

        path = find_haproxy()
        assert path is not None, haproxy_skip()
        check = subprocess.run(
            [path, "-c", "-f", self.config], capture_output=True, text=True, timeout=timeout
        )
        if check.returncode != 0:
            raise AssertionError(f"haproxy -c refused the configuration:\n{check.stdout}{check.stderr}")
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(
                [path, "-f", self.config, "-db"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if not wait_until(lambda: self.process.poll() is not None or self._answers(), timeout):
            self.stop()
            raise AssertionError(f"HAProxy did not answer within {timeout} s:\n{self.log()}")
        if self.process.poll() is not None:
            raise AssertionError(f"HAProxy exited with {self.process.returncode}:\n{self.log()}")

    def _answers(self) -> bool:
        try:
            self.command("show info")
        except OSError:
            return False
        return True

    def command(self, line: str) -> str:
        """
        Send one command to the stats socket; return the answer.
        """
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(WAIT)
            sock.connect(self.stats_socket)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def sessions(self, backend: str) -> dict[str, int]:
        """
        The sessions each server of C{backend} has had so far (the stats'
        C{stot}).
        """
        lines = self.command("show stat").splitlines()
        fields = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(fields, line.split(",")))
            if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
                out[row["svname"]] = int(row["stot"])
        return out

    def log(self) -> str:
        """
        What HAProxy printed so far.
        """
        try:
            with open(self.output) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        """
        Stop HAProxy (SIGTERM, then SIGKILL after a few seconds) and reap it.
        """
        import subprocess

        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
