# -*- test-case-name: rpctransport.test.test_tls -*-
"""
Tests of TLS on stream controllers: implicit TLS (from the first byte) and
RFC 9289 RPC-with-TLS (the C{AUTH_TLS} probe and C{STARTTLS}), over real
loopback sockets on the real reactor.

Certificates come from L{rpctransport.testing.CertificateAuthority}, made
once for the module. Misbehaving peers are plain Twisted protocols writing
raw bytes (optionally under Twisted's own TLS layer, started with
C{startTLS} or C{wrapClientTLS}), and C{openssl s_client} checks a client
that is not ours. Every test cleans up its listening ports, controllers,
peers and processes so that trial never finds the reactor dirty; waits are
bounded only so that a broken controller fails a test instead of hanging it.
Any DeprecationWarning is an error: a program run with C{-W error} must not
fail on one of ours.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Callable, Generator
from typing import Any, NamedTuple

import pytest
from twisted.internet.defer import Deferred, DeferredQueue, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    connectProtocol,
    serverFromString,
    wrapClientTLS,
    wrapServerTLS,
)
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from rpctransport import (
    END_OF_FILE,
    SUNRPC_ALPN,
    Accepted,
    ALPNMismatch,
    ControllerBusy,
    HandshakeTimeout,
    PlaintextInjection,
    StartTLSRefused,
    StreamController,
    StreamControllerFactory,
    TLSSessionProps,
    client_tls_options,
    connect_stream,
    listen_stream,
    stream_rpc_multiplex_controller,
)
from rpctransport.adapters.tls import user_name_from_certificate
from rpctransport.program.echo import (
    ECHO_PROGRAM,
    ECHO_VERSION,
    PROC_ECHO,
    EchoServer,
    run_calls,
)
from rpctransport.sansio.rpcmsg import (
    NULL_AUTH,
    STARTTLS_VERIFIER,
    AcceptedReply,
    AcceptStat,
    AuthFlavor,
    AuthStat,
    CallHeader,
    DeniedReply,
    MsgType,
    OpaqueAuth,
    RejectStat,
    decode_call_header,
    decode_reply_header,
    encode_call_header,
    encode_tls_probe,
    starttls_reply,
)
from rpctransport.test.helpers import (
    TLS_CLIENT_HELLO,
    WAIT,
    RawPeer,
    SocketTestMixin,
    client_options,
    outcome,
    pattern,
    pki,
    record,
    server_options,
    sleep,
    socket_transport,
)
from rpctransport.testing import IssuedCertificate

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

MiB = 1024 * 1024

HANDSHAKE_TIMEOUT = 0.3
"""The handshake timeout of the tests that let a handshake stall."""

TLS_VERSIONS = ("TLSv1.3", "TLSv1.2")
"""The versions our options may negotiate (RFC 9289 wants 1.3 at least)."""

PROBE_SIZE = 40
"""Bytes of an RFC 9289 probe: 6 words of call header and two empty auths."""

STARTTLS_REPLY_SIZE = 32
"""Bytes of the C{STARTTLS} answer: 3 words, the 8-byte verifier, the stat."""

PLAIN_SUCCESS_SIZE = 24
"""Bytes of an accepted SUCCESS reply with an empty verifier and no results."""

AUTH_ERROR_SIZE = 20
"""Bytes of a denied AUTH_ERROR reply."""


# -- Certificates --------------------------------------------------------------


def plain_server_options(certificate: IssuedCertificate | None = None) -> Any:
    """
    Server options as Twisted users write them: C{CertificateOptions} with
    a key and a certificate (the trusted server's by default), and nothing
    about ALPN.
    """
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from twisted.internet.ssl import CertificateOptions

    certificate = certificate or pki().server
    return CertificateOptions(
        privateKey=load_pem_private_key(certificate.key, None), certificate=certificate.x509
    )


def plain_client_options(hostname: str = "localhost") -> Any:
    """
    Client options as Twisted users write them: C{optionsForClientTLS}
    trusting the test CA, and nothing about ALPN.
    """
    from twisted.internet.ssl import Certificate, optionsForClientTLS

    return optionsForClientTLS(hostname, trustRoot=Certificate.loadPEM(pki().ca.certificate))


@implementer(IOpenSSLServerConnectionCreator)
class ALPNDeafServer:
    """
    Server options made with pyOpenSSL alone, whose context selects no ALPN
    protocol: a handshake with a client that offers C{sunrpc} completes
    without one, as with a server that knows nothing of ALPN. (Twisted's
    own options cannot do this: their context always selects, and refuses
    a client whose offer it does not share.)
    """

    def __init__(self, certificate: IssuedCertificate | None = None) -> None:
        self.certificate = certificate or pki().server

    def serverConnectionForTLS(self, tlsProtocol: Any) -> Any:
        """
        A server connection with our certificate and no ALPN selection.
        """
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from OpenSSL import SSL

        context = SSL.Context(SSL.TLS_METHOD)
        context.use_certificate(self.certificate.x509)
        context.use_privatekey(load_pem_private_key(self.certificate.key, None))
        return SSL.Connection(context, None)


# -- RPC bytes -----------------------------------------------------------------


def call(
    xid: int,
    proc: int = 0,
    cred: OpaqueAuth = NULL_AUTH,
    prog: int = ECHO_PROGRAM,
    vers: int = ECHO_VERSION,
) -> bytes:
    """
    A call without arguments.
    """
    return encode_call_header(CallHeader(xid, prog, vers, proc, cred))


def split_records(data: bytes | bytearray) -> tuple[list[bytes], bytes]:
    """
    The complete single-fragment records at the start of C{data}, and the
    bytes left after them.
    """
    records = []
    data = bytes(data)
    while len(data) >= 4:
        (word,) = struct.unpack(">I", data[:4])
        assert word & 0x80000000, f"a test peer only expects last fragments, not {word:#x}"
        size = word & 0x7FFFFFFF
        if len(data) < 4 + size:
            break
        records.append(data[4 : 4 + size])
        data = data[4 + size :]
    return records, data


# -- Peers ---------------------------------------------------------------------


@implementer(IHandshakeListener)
class TLSRawPeer(RawPeer):
    """
    A raw peer that may run under Twisted's TLS layer (from the first byte
    or after C{startTLS}) and tells when the handshake completed.

    @ivar handshake: fires when the TLS handshake completed.
    """

    def __init__(self, keep: bool = True) -> None:
        super().__init__(keep)
        self.handshake: Deferred[None] = Deferred()

    def handshakeCompleted(self) -> None:
        """
        Fire L{handshake}.
        """
        if not self.handshake.called:
            self.handshake.callback(None)

    def forget(self) -> None:
        """
        Forget what was received so far: the next bytes are counted from
        zero.
        """
        self.received = bytearray()
        self.count = 0


class ServerSide(NamedTuple):
    """
    A connection accepted by a test listener.

    @ivar controller: its controller.
    @ivar read: the outcome (see L{outcome}) of the read started as soon as
        the connection was made, when the listener started one.
    """

    controller: StreamController
    read: Deferred[tuple[bool, Any]] | None


class SClient(ProcessProtocol):
    """
    C{openssl s_client}: writes what it is given, collects what it prints.

    @ivar replied: fires with the bytes printed once there are C{want} of
        them (or with what there is when the process ends).
    @ivar ended: fires when the process is gone.
    """

    def __init__(self, send: bytes, want: int) -> None:
        self.send = send
        self.want = want
        self.out = bytearray()
        self.err = bytearray()
        self.replied: Deferred[bytes] = Deferred()
        self.ended: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        """
        Write the call; keep stdin open (C{-quiet} would ignore its end
        anyway).
        """
        assert self.transport is not None
        self.transport.write(self.send)

    def outReceived(self, data: bytes) -> None:
        """
        Collect stdout.
        """
        self.out += data
        if len(self.out) >= self.want and not self.replied.called:
            self.replied.callback(bytes(self.out))

    def errReceived(self, data: bytes) -> None:
        """
        Collect stderr, for failure messages.
        """
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        """
        The process is gone.
        """
        if not self.replied.called:
            self.replied.callback(bytes(self.out))
        self.ended.callback(None)


# -- The test base -----------------------------------------------------------


class _TLSTestCase(SocketTestMixin, TestCase):
    """
    Listening, connecting and raw peers, with everything a test opens torn
    down in one cleanup that waits for each connection to be gone (the
    registry of L{SocketTestMixin}).
    """

    timeout = 30

    def setUp(self) -> None:
        self._setUpRegistry()
        self.pki = pki()
        self.accepted: DeferredQueue[ServerSide] = DeferredQueue()

    def temp_dir(self) -> str:
        """
        A fresh directory, removed at the end of the test.
        """
        path = tempfile.mkdtemp(prefix="rpctls")
        self.addCleanup(shutil.rmtree, path, True)
        return path

    @inlineCallbacks
    def fails_with(
        self, d: Deferred[Any], what: str, *errors: type[BaseException]
    ) -> Generator[Any, Any, Any]:
        """
        Wait for C{d}, an L{outcome}, to tell of a failure with one of
        C{errors}; give the exception.
        """
        ok, result = yield self.within(d, what)
        self.assertFalse(ok, f"{what} succeeded with {result!r}")
        if not result.check(*errors):
            self.fail(f"{what} failed with {result.value!r}, not {errors}")
        return result.value

    # -- Our controllers ---------------------------------------------------------

    @inlineCallbacks
    def listen(
        self,
        endpoint: Any = "tcp:0:interface=127.0.0.1",
        *,
        read: bool = True,
        on_connection: Callable[[StreamController], object] | None = None,
        **options: Any,
    ) -> Generator[Any, Any, Any]:
        """
        Listen with L{listen_stream}. Each accepted controller goes to
        C{self.accepted}, with a read started at once when C{read} is set;
        C{on_connection} replaces that behaviour.
        """
        port = yield listen_stream(
            endpoint, on_connection or self._accept(read), reactor=self.reactor, **options
        )
        self.addCleanup(port.stopListening)
        return port

    def _accept(self, read: bool) -> Callable[[StreamController], None]:
        def accepted(controller: StreamController) -> None:
            self.track(controller)
            pending = outcome(controller.start_reading()) if read else None
            self.accepted.put(ServerSide(controller, pending))

        return accepted

    def tcp(self, port: Any) -> str:
        """
        The client endpoint string for a TCP listening C{port}.
        """
        return f"tcp:host=127.0.0.1:port={port.getHost().port}"

    @inlineCallbacks
    def connect(self, endpoint: Any, **options: Any) -> Generator[Any, Any, StreamController]:
        """
        Connect a controller with L{connect_stream}.
        """
        client = yield self.within(
            connect_stream(endpoint, reactor=self.reactor, **options), "connect"
        )
        return self.track(client)

    @inlineCallbacks
    def next_server(self) -> Generator[Any, Any, ServerSide]:
        """
        The next connection the listener accepted.
        """
        side = yield self.within(self.accepted.get(), "an accepted connection")
        return side

    @inlineCallbacks
    def pair(
        self,
        client_tls: Any = None,
        **server: Any,
    ) -> Generator[Any, Any, tuple[StreamController, ServerSide]]:
        """
        A listener with C{server} options (C{tls=} the trusted server's
        options by default) and a client connected to it by the name
        C{localhost}.
        """
        server.setdefault("tls", server_options())
        port = yield self.listen(**server)
        client = yield self.connect(self.tcp(port), tls=client_tls or client_options())
        side = yield self.next_server()
        return client, side

    @inlineCallbacks
    def round_trip(
        self, client: StreamController, side: ServerSide, message: bytes
    ) -> Generator[Any, Any, None]:
        """
        C{message} from the client to the server's first read, then an answer
        back.
        """
        assert side.read is not None
        yield self.within(client.start_writing(message), "the client's write")
        ok, result = yield self.within(side.read, "the server's read")
        self.assertTrue(ok, result)
        self.assertEqual(result[0], Accepted(message))
        reading = client.start_reading()
        yield self.within(side.controller.start_writing(message[::-1]), "the answer")
        result = yield self.within(reading, "the client's read")
        self.assertEqual(result[0], Accepted(message[::-1]))

    # -- Raw peers ---------------------------------------------------------------

    @inlineCallbacks
    def connect_raw(
        self, port: Any, peer: RawPeer | None = None, tls: Any = None
    ) -> Generator[Any, Any, Any]:
        """
        Connect a raw peer (a L{TLSRawPeer} by default) to a TCP C{port},
        under TLS from the first byte when C{tls} is given.
        """
        peer = peer or TLSRawPeer()
        endpoint: Any = TCP4ClientEndpoint(self.reactor, "127.0.0.1", port.getHost().port)
        if tls is not None:
            endpoint = wrapClientTLS(tls, endpoint)
        yield self.within(connectProtocol(endpoint, self.track_peer(peer)), "a raw connection")
        return peer

    @inlineCallbacks
    def listen_raw(self) -> Generator[Any, Any, tuple[Any, DeferredQueue[TLSRawPeer]]]:
        """
        A plain TCP listener whose connections are raw peers, given in the
        queue as they are accepted.
        """
        queue: DeferredQueue[TLSRawPeer] = DeferredQueue()

        def build() -> TLSRawPeer:
            peer = TLSRawPeer()
            self.track_peer(peer)
            queue.put(peer)
            return peer

        endpoint = serverFromString(self.reactor, "tcp:0:interface=127.0.0.1")
        port = yield endpoint.listen(Factory.forProtocol(build))
        self.addCleanup(port.stopListening)
        return port, queue

    @inlineCallbacks
    def raw_records(self, peer: RawPeer, count: int) -> Generator[Any, Any, list[bytes]]:
        """
        Wait until C{peer} has received C{count} whole records; give them.
        """
        yield self.until(
            lambda: len(split_records(peer.received)[0]) >= count or peer.lost.called,
            f"{count} records at the raw peer",
        )
        records, _ = split_records(peer.received)
        self.assertGreaterEqual(len(records), count, f"the peer got only {records!r}")
        return records

    # -- Checks ------------------------------------------------------------------

    def assert_session(
        self, props: TLSSessionProps | None, alpn: bytes | None = SUNRPC_ALPN
    ) -> TLSSessionProps:
        """
        C{props} describe an established session with C{alpn}.
        """
        self.assertIsNotNone(props, "no TLS session properties")
        assert props is not None
        self.assertIn(props.version, TLS_VERSIONS)
        self.assertTrue(props.cipher, "no cipher name")
        self.assertEqual(props.alpn, alpn)
        return props

    @inlineCallbacks
    def assert_closed(self, controller: StreamController) -> Generator[Any, Any, None]:
        """
        C{controller}'s connection is gone, and letting go of it again is
        harmless.
        """
        yield self.until(
            lambda: getattr(socket_transport(controller.transport), "disconnected", True),
            "the connection to close",
        )
        self.assertFalse(controller.alive)
        controller.inactivate()
        controller.inactivate()
        self.assertIsNone(controller.file_descr)


# -- 1. Implicit TLS: session properties and identities ------------------------


class SessionPropertiesTests(_TLSTestCase):
    """
    Implicit TLS over TCP between our client and our server: records, the
    session's properties on both sides, and the peers' identities.
    """

    @inlineCallbacks
    def test_anonymous_client(self) -> Generator[Any, Any, None]:
        """
        A client verifying the server by its CA and connecting by the name
        C{localhost}: records go both ways; on both sides the session is TLS
        1.3 or 1.2 with a cipher, ALPN C{sunrpc} and the server name
        C{localhost}; the server sees no client certificate and no user
        name; the client sees the server's certificate, its subject
        alternative names, and its identity (the CN) as C{peer_user_name}.
        """
        client, side = yield self.pair()
        yield self.round_trip(client, side, b"anonymous TLS")
        server = side.controller

        server_props = self.assert_session(server.tls_session_props)
        self.assertEqual(server_props.server_name, "localhost")
        self.assertEqual(server_props.peer_certificates, ())
        self.assertEqual(server_props.subject_alt_names, ())
        self.assertIsNone(server_props.peer_user_name)
        self.assertIsNone(server.peer_user_name)

        client_props = self.assert_session(client.tls_session_props)
        self.assertEqual(client_props.server_name, "localhost")
        self.assertEqual(client_props.peer_certificates, (self.pki.server.x509,))
        self.assertEqual(
            client_props.subject_alt_names, (("DNS", "localhost"), ("IP", "127.0.0.1"))
        )
        self.assertEqual(client.peer_user_name, "rpc-server")
        self.assertEqual(client_props.version, server_props.version)
        self.assertEqual(client_props.cipher, server_props.cipher)
        self.assertIsInstance(client.file_descr, int)
        self.assertIsInstance(server.file_descr, int)

    @inlineCallbacks
    def test_peer_chains(self) -> Generator[Any, Any, None]:
        """
        Both sides send their certificate followed by the CA's: each side's
        C{peer_certificates} is the peer's own certificate first, then the
        rest of its chain, each once; on the server side too, where OpenSSL
        leaves the client's own certificate out of the chain.
        C{subject_alt_names} are those of the peer's own certificate.
        """
        client, side = yield self.pair(
            client_tls=client_options(self.pki.rfc822_client, chain=True),
            tls=server_options(client_ca=self.pki.ca.certificate, chain=True),
        )
        yield self.round_trip(client, side, b"chains")
        server_props = self.assert_session(side.controller.tls_session_props)
        self.assertEqual(
            server_props.peer_certificates, (self.pki.rfc822_client.x509, self.pki.ca.x509)
        )
        self.assertEqual(
            server_props.subject_alt_names,
            (
                ("DNS", "alice.example"),
                ("email", "alice@example.org"),
                ("email", "second@example.org"),
            ),
        )
        client_props = self.assert_session(client.tls_session_props)
        self.assertEqual(client_props.peer_certificates, (self.pki.server.x509, self.pki.ca.x509))

    @inlineCallbacks
    def test_connect_by_address(self) -> Generator[Any, Any, None]:
        """
        A client connecting by IP address verifies the server's IP subject
        alternative name and sends no server name: C{server_name} is
        L{None} on both sides.
        """
        client, side = yield self.pair(client_tls=client_options(hostname="127.0.0.1"))
        yield self.round_trip(client, side, b"by address")
        self.assertIsNone(self.assert_session(side.controller.tls_session_props).server_name)
        self.assertIsNone(self.assert_session(client.tls_session_props).server_name)

    @inlineCallbacks
    def test_implicit_tls_without_alpn(self) -> Generator[Any, Any, None]:
        """
        Implicit TLS does not require ALPN: a client that offers none (a raw
        one: ours offer C{sunrpc} whatever their options say) talks to our
        server, and our client to a server that selects none; C{alpn} is
        L{None}.
        """
        port = yield self.listen(tls=server_options())
        peer = yield self.connect_raw(port, tls=client_options(alpn=False))
        side = yield self.next_server()
        assert side.read is not None
        peer.transport.write(record(b"no ALPN"))
        ok, result = yield self.within(side.read, "the server's read")
        self.assertTrue(ok, result)
        self.assert_session(side.controller.tls_session_props, alpn=None)

        deaf = wrapServerTLS(
            ALPNDeafServer(), TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        )
        raw = TLSRawPeer()
        deaf_port = yield deaf.listen(Factory.forProtocol(lambda: self.track_peer(raw)))
        self.addCleanup(deaf_port.stopListening)
        client = yield self.connect(self.tcp(deaf_port), tls=client_options())
        yield self.within(client.start_writing(b"no ALPN"), "the client's write")
        (got,) = yield self.raw_records(raw, 1)
        self.assertEqual(got, b"no ALPN")
        self.assert_session(client.tls_session_props, alpn=None)

    @inlineCallbacks
    def test_no_session_without_tls(self) -> Generator[Any, Any, None]:
        """
        A plaintext connection has no session properties and no TLS
        identity; C{start_tls} on an implicit TLS connection is a misuse.
        """
        port = yield self.listen()
        plain = yield self.connect(self.tcp(port))
        side = yield self.next_server()
        self.assertIsNone(plain.tls_session_props)
        self.assertIsNone(plain.peer_user_name)
        self.assertIsNone(side.controller.tls_session_props)

        client, tls_side = yield self.pair()
        yield self.round_trip(client, tls_side, b"on")
        self.assertRaises(
            ControllerBusy, client.start_tls, client_options(), ECHO_PROGRAM, ECHO_VERSION
        )


class UserNameRuleTests(SynchronousTestCase):
    """
    L{user_name_from_certificate}: OCamlnet's rule for the peer's user
    name, on certificates alone.
    """

    def test_rfc822_name_wins(self) -> None:
        """
        The first rfc822 subject alternative name wins over the uid, the
        emailAddress attribute and the CN.
        """
        self.assertEqual(
            user_name_from_certificate(pki().rfc822_client.x509), "alice@example.org"
        )

    def test_uid(self) -> None:
        """
        Without an rfc822 name, the subject's uid wins over emailAddress and
        CN (a DNS subject alternative name does not count).
        """
        self.assertEqual(user_name_from_certificate(pki().uid_client.x509), "bob")

    def test_email_address(self) -> None:
        """
        Without rfc822 name and uid, the subject's emailAddress wins over the
        CN.
        """
        self.assertEqual(
            user_name_from_certificate(pki().email_client.x509), "carol@example.org"
        )

    def test_common_name(self) -> None:
        """
        With only a CN, the CN.
        """
        self.assertEqual(user_name_from_certificate(pki().cn_client.x509), "dave")

    def test_none(self) -> None:
        """
        A certificate with none of those (only a DNS name) names nobody.
        """
        self.assertIsNone(user_name_from_certificate(pki().anonymous_client.x509))

    def test_session_without_peer_certificate(self) -> None:
        """
        A session whose peer sent no certificate names nobody.
        """
        props = TLSSessionProps("TLSv1.3", "TLS_AES_128_GCM_SHA256", SUNRPC_ALPN, None, (), ())
        self.assertIsNone(props.peer_user_name)


class MutualTLSTests(_TLSTestCase):
    """
    Mutual TLS over real connections: the server's C{peer_user_name} follows
    the rule for each kind of client certificate, and the client's names
    the server.
    """

    @inlineCallbacks
    def _check_identity(
        self, certificate: IssuedCertificate, expected: str | None
    ) -> Generator[Any, Any, None]:
        """
        A client presenting C{certificate} to a server requiring a client
        certificate: the server's C{peer_user_name} is C{expected}, its
        C{peer_certificates} start with C{certificate} (OpenSSL may send the
        CA after it, from the client's trust store); the client's
        C{peer_user_name} is the server's CN.
        """
        client, side = yield self.pair(
            client_tls=client_options(certificate),
            tls=server_options(client_ca=self.pki.ca.certificate),
        )
        yield self.round_trip(client, side, b"who am I")
        server = side.controller
        props = self.assert_session(server.tls_session_props)
        self.assertEqual(props.peer_certificates[0], certificate.x509)
        self.assertEqual(server.peer_user_name, expected)
        self.assertEqual(props.peer_user_name, expected)
        self.assertEqual(client.peer_user_name, "rpc-server")

    def test_rfc822_name(self) -> Deferred[None]:
        """
        The rfc822 subject alternative name wins over everything.
        """
        return self._check_identity(self.pki.rfc822_client, "alice@example.org")

    @inlineCallbacks
    def test_no_deprecated_objects(self) -> Generator[Any, Any, None]:
        """
        A client certificate goes to Twisted as cryptography objects: a
        mutual TLS round trip warns of no pyOpenSSL object (Twisted
        deprecates them, and a program run with C{-W error} failed).
        """
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeprecationWarning)
            yield self._check_identity(self.pki.rfc822_client, "alice@example.org")
        self.assertEqual([str(w.message) for w in caught if "pyOpenSSL" in str(w.message)], [])

    def test_uid(self) -> Deferred[None]:
        """
        Without an rfc822 name, the subject's uid.
        """
        return self._check_identity(self.pki.uid_client, "bob")

    def test_email_address(self) -> Deferred[None]:
        """
        Without rfc822 name and uid, the subject's emailAddress.
        """
        return self._check_identity(self.pki.email_client, "carol@example.org")

    def test_common_name(self) -> Deferred[None]:
        """
        With only a CN, the CN.
        """
        return self._check_identity(self.pki.cn_client, "dave")

    def test_no_identity(self) -> Deferred[None]:
        """
        A certificate with none of those gives L{None}.
        """
        return self._check_identity(self.pki.anonymous_client, None)


# -- 2. Implicit TLS: refusals --------------------------------------------------


class RefusalTests(_TLSTestCase):
    """
    Handshakes that must fail: unknown CA, expired certificates, missing
    ALPN when required, a peer that stalls. Pending operations fail with the
    reason, and each connection is closed once.
    """

    @inlineCallbacks
    def _check_refused(
        self, client_tls: Any, server_tls: Any, refuser: str, alert: str
    ) -> Generator[Any, Any, None]:
        """
        The handshake between C{client_tls} and C{server_tls} fails:
        C{refuser}'s pending read fails with the TLS error saying that the
        certificate did not verify; the other side's pending read fails with
        the TLS alert C{alert} that the refuser sent; both connections are
        closed once.
        """
        from OpenSSL.SSL import Error as SSLError

        port = yield self.listen(tls=server_tls)
        client = yield self.connect(self.tcp(port), tls=client_tls)
        client_read = outcome(client.start_reading())
        side = yield self.next_server()
        assert side.read is not None
        reads = {"client": client_read, "server": side.read}
        error = yield self.fails_with(reads[refuser], f"the {refuser}'s read", SSLError)
        self.assertIn("certificate verify failed", str(error))
        other = "server" if refuser == "client" else "client"
        error = yield self.fails_with(reads[other], f"the {other}'s read", SSLError)
        self.assertIn(alert, str(error))
        yield self.assert_closed(client)
        yield self.assert_closed(side.controller)

    def test_server_refuses_unknown_client_ca(self) -> Deferred[None]:
        """
        A client certificate signed by a CA the server does not trust: the
        server refuses it, and the client hears "unknown ca".
        """
        return self._check_refused(
            client_options(self.pki.rogue_client),
            server_options(client_ca=self.pki.ca.certificate),
            "server",
            "unknown ca",
        )

    def test_client_refuses_unknown_server_ca(self) -> Deferred[None]:
        """
        A server certificate signed by a CA the client does not trust: the
        client refuses it, and the server hears "unknown ca".
        """
        return self._check_refused(
            client_options(), server_options(self.pki.rogue_server), "client", "unknown ca"
        )

    def test_client_refuses_expired_server(self) -> Deferred[None]:
        """
        An expired server certificate: the client refuses it, and the server
        hears "certificate expired".
        """
        return self._check_refused(
            client_options(),
            server_options(self.pki.expired_server),
            "client",
            "certificate expired",
        )

    def test_server_refuses_expired_client(self) -> Deferred[None]:
        """
        An expired client certificate: the server refuses it, and the client
        hears "certificate expired".
        """
        return self._check_refused(
            client_options(self.pki.expired_client),
            server_options(client_ca=self.pki.ca.certificate),
            "server",
            "certificate expired",
        )

    @inlineCallbacks
    def test_client_write_fails_with_refusal(self) -> Generator[Any, Any, None]:
        """
        A write started before the handshake that the client refuses fails
        with the TLS error too, and nothing reaches the server.
        """
        from OpenSSL.SSL import Error as SSLError

        port = yield self.listen(tls=server_options(self.pki.rogue_server))
        client = yield self.connect(self.tcp(port), tls=client_options())
        writing = client.start_writing(b"never sent")
        yield self.fails_with(outcome(writing), "the client's write", SSLError)
        side = yield self.next_server()
        assert side.read is not None
        ok, result = yield self.within(side.read, "the server's read")
        self.assertFalse(ok, f"the server read {result!r}")
        yield self.assert_closed(client)

    @inlineCallbacks
    def test_required_alpn_missing(self) -> Generator[Any, Any, None]:
        """
        C{require_alpn=True} on an implicit TLS listener, and a client that
        offers no ALPN (a raw one): the server's pending read fails with
        ALPNMismatch (nothing negotiated) and the connection is closed.
        """
        port = yield self.listen(tls=server_options(), require_alpn=True)
        peer = yield self.connect_raw(port, tls=client_options(alpn=False))
        side = yield self.next_server()
        assert side.read is not None
        error = yield self.fails_with(side.read, "the server's read", ALPNMismatch)
        self.assertEqual(error.required, SUNRPC_ALPN)
        self.assertIsNone(error.negotiated)
        yield self.within(peer.lost, "the raw client to see the connection closed")
        yield self.assert_closed(side.controller)

    @inlineCallbacks
    def _check_stall(self, first_bytes: bytes) -> Generator[Any, Any, None]:
        """
        A raw TCP peer that sends C{first_bytes} and then nothing: after the
        handshake timeout the server's pending read fails with
        HandshakeTimeout, and the peer sees its connection closed.
        """
        port = yield self.listen(tls=server_options(), handshake_timeout=HANDSHAKE_TIMEOUT)
        peer = yield self.connect_raw(port, RawPeer())
        if first_bytes:
            peer.transport.write(first_bytes)
        side = yield self.next_server()
        assert side.read is not None
        error = yield self.fails_with(side.read, "the server's read", HandshakeTimeout)
        self.assertEqual(error.seconds, HANDSHAKE_TIMEOUT)
        yield self.within(peer.lost, "the raw peer to see the connection closed")
        assert peer.reason is not None
        self.assertTrue(peer.reason.check(ConnectionClosed), peer.reason)
        yield self.assert_closed(side.controller)

    def test_silent_peer_times_out(self) -> Deferred[None]:
        """
        A peer that connects and sends nothing is dropped after the
        handshake timeout.
        """
        return self._check_stall(b"")

    def test_half_client_hello_times_out(self) -> Deferred[None]:
        """
        A peer that sends half a ClientHello is dropped after the handshake
        timeout.
        """
        return self._check_stall(TLS_CLIENT_HELLO[: len(TLS_CLIENT_HELLO) // 2])


# -- 3. Implicit TLS: delivery and shutdown -------------------------------------


class DeliveryTests(_TLSTestCase):
    """
    What reads and writes do under TLS: they wait for the handshake, and
    everything the TLS layer decrypts is delivered.
    """

    @inlineCallbacks
    def test_write_before_handshake(self) -> Generator[Any, Any, None]:
        """
        A write started right after connecting, before the handshake: it
        stays pending until the handshake completed (the session is there
        when it fires), and the record arrives intact.
        """
        port = yield self.listen(tls=server_options())
        client = yield self.connect(self.tcp(port), tls=client_options())
        self.assertIsNone(client.tls_session_props)
        message = pattern(5000)
        writing = client.start_writing(message)
        self.assertNoResult(writing)
        self.assertTrue(client.writing)
        props_when_written: list[Any] = []
        writing.addCallback(lambda _: props_when_written.append(client.tls_session_props))
        yield self.within(writing, "the early write")
        self.assert_session(props_when_written[0])
        side = yield self.next_server()
        assert side.read is not None
        ok, result = yield self.within(side.read, "the server's read")
        self.assertTrue(ok, result)
        self.assertEqual(result[0], Accepted(message))

    @inlineCallbacks
    def test_records_in_one_tls_record(self) -> Generator[Any, Any, None]:
        """
        A raw TLS client writes several RPC records in one write (one TLS
        record): the first read gets the first; then, with no more bytes
        from the socket, each next read is served at once, in order.
        """
        port = yield self.listen(tls=server_options())
        messages = [b"first", pattern(300, seed=1), b"", pattern(1000, seed=2)]
        peer = yield self.connect_raw(port, tls=client_options())
        peer.transport.write(b"".join(record(m) for m in messages))
        side = yield self.next_server()
        assert side.read is not None
        ok, result = yield self.within(side.read, "the first record")
        self.assertTrue(ok, result)
        self.assertEqual(result[0], Accepted(messages[0]))
        # Out of the reader's callbacks, so that a new read is served by
        # start_reading itself.
        yield sleep(0)
        for i, message in enumerate(messages[1:], 1):
            reading = side.controller.start_reading()
            result = self.successResultOf(reading)
            self.assertEqual(result[0], Accepted(message), f"record {i}")
        self.assertNoResult(side.controller.start_reading())

    @inlineCallbacks
    def test_large_record_across_tls_records(self) -> Generator[Any, Any, None]:
        """
        One 1 MiB RPC record, which TLS carries in many TLS records, and a
        small record behind it in the same write: both arrive intact.
        """
        port = yield self.listen(tls=server_options())
        big = pattern(MiB, seed=3)
        peer = yield self.connect_raw(port, tls=client_options())
        peer.transport.write(record(big) + record(b"tail"))
        side = yield self.next_server()
        assert side.read is not None
        ok, result = yield self.within(side.read, "the large record")
        self.assertTrue(ok, result)
        self.assertEqual(len(result[0].message), MiB)
        self.assertTrue(result[0].message == big, "the large record is corrupt")
        result = yield self.within(side.controller.start_reading(), "the tail")
        self.assertEqual(result[0], Accepted(b"tail"))


class ShutdownTests(_TLSTestCase):
    """
    A TLS shutdown is a close_notify exchange.
    """

    @inlineCallbacks
    def test_close_notify(self) -> Generator[Any, Any, None]:
        """
        C{start_shutting_down()} on a TLS client completes once the server's
        close_notify came back, and C{read_eof} is then true; the server's
        pending read gets END_OF_FILE (a clean close, not ConnectionLost).
        """
        client, side = yield self.pair(linger=WAIT)
        yield self.round_trip(client, side, b"before the end")
        server = side.controller
        server_read = server.start_reading()
        shutting_down = client.start_shutting_down()
        yield self.within(shutting_down, "the client's shutdown")
        self.assertTrue(client.read_eof)
        result = yield self.within(server_read, "the server's read")
        self.assertIs(result, END_OF_FILE)
        self.assertTrue(server.read_eof)
        yield self.assert_closed(client)
        yield self.assert_closed(server)


# -- 4. Implicit TLS: other transports and endpoints ----------------------------


class TransportTests(_TLSTestCase):
    """
    Implicit TLS over UNIX sockets, Twisted's endpoint strings and TLS
    endpoint wrappers, and adopted descriptors.
    """

    @inlineCallbacks
    def test_unix_socket(self) -> Generator[Any, Any, None]:
        """
        C{listen_stream("unix:PATH", tls=...)} and
        C{connect_stream("unix:path=PATH", tls=...)}: records go both ways
        under TLS; an anonymous client has no user name even though the UNIX
        socket knows its process.
        """
        path = os.path.join(self.temp_dir(), "rpc.sock")
        yield self.listen(f"unix:{path}", tls=server_options())
        client = yield self.connect(f"unix:path={path}", tls=client_options())
        side = yield self.next_server()
        yield self.round_trip(client, side, b"over a UNIX socket")
        server = side.controller
        props = self.assert_session(server.tls_session_props)
        self.assertEqual(props.server_name, "localhost")
        props = self.assert_session(client.tls_session_props)
        self.assertEqual(props.peer_certificates[0], self.pki.server.x509)
        self.assertIsNone(server.peer_user_name)
        self.assertEqual(server.peer_credentials[0], os.getpid())

    @inlineCallbacks
    def test_endpoint_strings(self) -> Generator[Any, Any, None]:
        """
        An C{ssl:} server endpoint string (key and certificate in files) and
        a C{tls:} client endpoint string (trusting the CA in a directory) give
        a TLS session without any C{tls=} option: records go both ways. The
        only DeprecationWarnings are pyOpenSSL's about the objects Twisted's
        C{ssl:} parser hands it (Twisted's, not ours: one reason
        C{docs/tls.rst} recommends C{tls=server_tls_options(...)}).
        """
        directory = self.temp_dir()
        key_path = os.path.join(directory, "server.key")
        cert_path = os.path.join(directory, "server.pem")
        roots = os.path.join(directory, "roots")
        os.mkdir(roots)
        with open(key_path, "wb") as f:
            f.write(self.pki.server.key)
        with open(cert_path, "wb") as f:
            f.write(self.pki.server.certificate)
        with open(os.path.join(roots, "ca.pem"), "wb") as f:
            f.write(self.pki.ca.certificate)
        port = yield self.listen(
            f"ssl:0:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"
        )
        client = yield self.connect(
            f"tls:127.0.0.1:{port.getHost().port}:trustRoots={roots}"
        )
        side = yield self.next_server()
        yield self.round_trip(client, side, b"endpoint strings")
        self.assert_session(side.controller.tls_session_props)
        props = self.assert_session(client.tls_session_props)
        self.assertEqual(props.peer_certificates[0], self.pki.server.x509)
        self.flush_ssl_parser_warnings()

    def flush_ssl_parser_warnings(self) -> None:
        """
        Take the warnings of Twisted's C{ssl:} endpoint parser, which hands
        pyOpenSSL objects to C{CertificateOptions}; fail on any other.
        """
        for warning in self.flushWarnings():
            self.assertIs(warning["category"], DeprecationWarning)
            self.assertIn("pyOpenSSL", warning["message"])

    @inlineCallbacks
    def test_ssl_endpoint_with_client_tls_options(self) -> Generator[Any, Any, None]:
        """
        An C{ssl:} server endpoint string, whose options accept no ALPN,
        and a client with C{client_tls_options()}, which offers it: the
        server accepts C{sunrpc} itself (not Twisted's C{internal_error}
        alert), and records go both ways.
        """
        directory = self.temp_dir()
        key_path = os.path.join(directory, "server.key")
        cert_path = os.path.join(directory, "server.pem")
        with open(key_path, "wb") as f:
            f.write(self.pki.server.key)
        with open(cert_path, "wb") as f:
            f.write(self.pki.server.certificate)
        port = yield self.listen(
            f"ssl:0:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"
        )
        client = yield self.connect(
            self.tcp(port),
            tls=client_tls_options("localhost", ca=self.pki.ca.certificate),
        )
        side = yield self.next_server()
        yield self.round_trip(client, side, b"ssl: and client_tls_options")
        self.assert_session(client.tls_session_props)
        self.assert_session(side.controller.tls_session_props)
        self.flush_ssl_parser_warnings()

    @inlineCallbacks
    def test_plain_twisted_options(self) -> Generator[Any, Any, None]:
        """
        Plain Twisted options on both sides of implicit TLS, none naming
        ALPN (a listener's, a client's, and an adopted socket pair's): our
        controllers negotiate C{sunrpc} between them.
        """
        client, side = yield self.pair(
            client_tls=plain_client_options(), tls=plain_server_options()
        )
        yield self.round_trip(client, side, b"plain options")
        self.assert_session(client.tls_session_props)
        self.assert_session(side.controller.tls_session_props)
        a, b = socket.socketpair()
        server = self.track(
            stream_rpc_multiplex_controller(a.detach(), self.reactor, tls=plain_server_options())
        )
        adopted = self.track(
            stream_rpc_multiplex_controller(b.detach(), self.reactor, tls=plain_client_options())
        )
        yield self.round_trip(adopted, ServerSide(server, outcome(server.start_reading())), b"a")
        self.assert_session(adopted.tls_session_props)
        self.assert_session(server.tls_session_props)

    @inlineCallbacks
    def test_tls_endpoint_wrappers(self) -> Generator[Any, Any, None]:
        """
        C{wrapServerTLS} and C{wrapClientTLS} around TCP endpoints, with a
        plain L{StreamControllerFactory} on each side: records go both ways
        and both sides see the session.
        """
        accepted: DeferredQueue[StreamController] = DeferredQueue()

        def on_connection(controller: StreamController) -> None:
            self.track(controller)
            accepted.put(controller)

        server_endpoint = wrapServerTLS(
            server_options(), TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        )
        port = yield server_endpoint.listen(StreamControllerFactory(on_connection, self.reactor))
        self.addCleanup(port.stopListening)
        client_endpoint = wrapClientTLS(
            client_options(),
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", port.getHost().port),
        )
        client = yield self.within(
            client_endpoint.connect(StreamControllerFactory(None, self.reactor)), "connect"
        )
        self.track(client)
        server = yield self.within(accepted.get(), "the accepted connection")
        side = ServerSide(server, outcome(server.start_reading()))
        yield self.round_trip(client, side, b"wrapped endpoints")
        self.assert_session(server.tls_session_props)
        self.assert_session(client.tls_session_props)

    @inlineCallbacks
    def test_adopted_socket_pair(self) -> Generator[Any, Any, None]:
        """
        C{stream_rpc_multiplex_controller(fd, tls=...)} on both ends of a
        socket pair, one with server options, the other with client
        options: records go both ways under TLS.
        """
        a, b = socket.socketpair()
        server = self.track(
            stream_rpc_multiplex_controller(a.detach(), self.reactor, tls=server_options())
        )
        client = self.track(
            stream_rpc_multiplex_controller(b.detach(), self.reactor, tls=client_options())
        )
        side = ServerSide(server, outcome(server.start_reading()))
        yield self.round_trip(client, side, b"adopted")
        self.assertEqual(self.assert_session(server.tls_session_props).server_name, "localhost")
        props = self.assert_session(client.tls_session_props)
        self.assertEqual(props.peer_certificates[0], self.pki.server.x509)


# -- 5. RFC 9289: STARTTLS ------------------------------------------------------


class StartTLSTests(_TLSTestCase):
    """
    RFC 9289 at byte level: the probe our client sends, what our server
    answers to probes good and bad, and how both sides refuse plaintext
    pipelined around the upgrade.
    """

    @inlineCallbacks
    def _raw_client_of_starttls_server(
        self, **options: Any
    ) -> Generator[Any, Any, tuple[TLSRawPeer, ServerSide]]:
        """
        A raw client connected to a C{starttls=} listener whose application
        has a read pending.
        """
        options.setdefault("starttls", server_options())
        port = yield self.listen(**options)
        peer = yield self.connect_raw(port)
        side = yield self.next_server()
        return peer, side

    @inlineCallbacks
    def test_probe_layout(self) -> Generator[Any, Any, None]:
        """
        The probe C{start_tls} sends is one record of 40 bytes: a version-2
        CALL of the program and version given, procedure 0, credential
        AUTH_TLS (7) with an empty body, verifier AUTH_NONE with an empty
        body, and no arguments. A server that closes instead of answering
        makes C{start_tls} fail with StartTLSRefused.
        """
        port, peers = yield self.listen_raw()
        client = yield self.connect(self.tcp(port))
        upgrading = outcome(client.start_tls(client_options(), 100003, 4))
        peer = yield self.within(peers.get(), "the raw server")
        (probe,) = yield self.raw_records(peer, 1)
        self.assertEqual(peer.received[:4], struct.pack(">I", 0x80000000 | PROBE_SIZE))
        self.assertEqual(len(probe), PROBE_SIZE)
        header, offset = decode_call_header(probe)
        self.assertEqual(offset, len(probe))
        self.assertEqual(header.rpcvers, 2)
        self.assertEqual((header.prog, header.vers, header.proc), (100003, 4, 0))
        self.assertEqual(header.cred, OpaqueAuth(AuthFlavor.AUTH_TLS, b""))
        self.assertEqual(header.verf, OpaqueAuth(AuthFlavor.AUTH_NONE, b""))
        self.assertEqual(
            probe,
            struct.pack(">10I", header.xid, MsgType.CALL, 2, 100003, 4, 0, 7, 0, 0, 0),
        )
        self.assertEqual(probe, encode_tls_probe(header.xid, 100003, 4))
        peer.transport.loseConnection()
        error = yield self.fails_with(upgrading, "start_tls", StartTLSRefused)
        self.assertIn("closed", str(error))

    @inlineCallbacks
    def test_answer_and_second_probe(self) -> Generator[Any, Any, None]:
        """
        A raw client probes a C{starttls=} server: the answer is an accepted
        SUCCESS reply with the probe's xid, verifier AUTH_NONE C{STARTTLS},
        and nothing after it. The client starts TLS (offering ALPN
        C{sunrpc}); a second probe inside the TLS session gets a denied
        AUTH_ERROR AUTH_BADCRED reply. Neither probe reaches the
        application's pending read, which gets the next real record.
        """
        peer, side = yield self._raw_client_of_starttls_server()
        assert side.read is not None
        peer.transport.write(record(encode_tls_probe(0x01020304, ECHO_PROGRAM, ECHO_VERSION)))
        (answer,) = yield self.raw_records(peer, 1)
        self.assertEqual(len(answer), STARTTLS_REPLY_SIZE)
        reply, offset = decode_reply_header(answer)
        self.assertEqual(reply, AcceptedReply(0x01020304, STARTTLS_VERIFIER, AcceptStat.SUCCESS))
        self.assertEqual(offset, len(answer))
        self.assertEqual(split_records(peer.received)[1], b"")

        peer.forget()
        peer.transport.startTLS(client_options())
        peer.transport.write(record(encode_tls_probe(0x05060708, ECHO_PROGRAM, ECHO_VERSION)))
        yield self.within(peer.handshake, "the raw client's handshake")
        (denial,) = yield self.raw_records(peer, 1)
        self.assertEqual(len(denial), AUTH_ERROR_SIZE)
        reply, _ = decode_reply_header(denial)
        self.assertEqual(
            reply,
            DeniedReply(0x05060708, RejectStat.AUTH_ERROR, auth_stat=AuthStat.AUTH_BADCRED),
        )
        self.assert_session(side.controller.tls_session_props)
        self.assertFalse(side.read.called, "a probe reached the application")

        peer.transport.write(record(call(0x0A0B0C0D, proc=1)))
        ok, result = yield self.within(side.read, "the application's read")
        self.assertTrue(ok, result)
        self.assertEqual(result[0], Accepted(call(0x0A0B0C0D, proc=1)))

    @inlineCallbacks
    def test_probe_inside_implicit_tls(self) -> Generator[Any, Any, None]:
        """
        A probe inside an implicit TLS session gets a denied AUTH_ERROR
        AUTH_BADCRED reply, and does not reach the application's read.
        """
        port = yield self.listen(tls=server_options())
        peer = yield self.connect_raw(port, tls=client_options())
        peer.transport.write(record(encode_tls_probe(0x0C0FFEE0, ECHO_PROGRAM, ECHO_VERSION)))
        side = yield self.next_server()
        assert side.read is not None
        (denial,) = yield self.raw_records(peer, 1)
        reply, _ = decode_reply_header(denial)
        self.assertEqual(
            reply,
            DeniedReply(0x0C0FFEE0, RejectStat.AUTH_ERROR, auth_stat=AuthStat.AUTH_BADCRED),
        )
        self.assertFalse(side.read.called, "the probe reached the application")

    @inlineCallbacks
    def _check_bad_auth_tls(self, **options: Any) -> Generator[Any, Any, None]:
        """
        Over plaintext, an AUTH_TLS call with a credential body and an
        AUTH_TLS call of procedure 1 each get a denied AUTH_ERROR
        AUTH_BADCRED reply with their xid; neither reaches the application,
        whose read gets the next ordinary call.
        """
        port = yield self.listen(**options)
        peer = yield self.connect_raw(port)
        side = yield self.next_server()
        assert side.read is not None
        with_body = call(0x11111111, cred=OpaqueAuth(AuthFlavor.AUTH_TLS, b"body"))
        proc_1 = call(0x22222222, proc=1, cred=OpaqueAuth(AuthFlavor.AUTH_TLS, b""))
        peer.transport.write(record(with_body) + record(proc_1))
        denials = yield self.raw_records(peer, 2)
        for xid, denial in zip((0x11111111, 0x22222222), denials):
            self.assertEqual(len(denial), AUTH_ERROR_SIZE)
            reply, _ = decode_reply_header(denial)
            self.assertEqual(
                reply, DeniedReply(xid, RejectStat.AUTH_ERROR, auth_stat=AuthStat.AUTH_BADCRED)
            )
        self.assertFalse(side.read.called, "an AUTH_TLS call reached the application")
        peer.transport.write(record(call(0x33333333)))
        ok, result = yield self.within(side.read, "the application's read")
        self.assertTrue(ok, result)
        self.assertEqual(result[0], Accepted(call(0x33333333)))
        self.assertIsNone(side.controller.tls_session_props)

    def test_bad_auth_tls_with_starttls(self) -> Deferred[None]:
        """
        Bad AUTH_TLS calls to a C{starttls=} server are denied with
        AUTH_BADCRED.
        """
        return self._check_bad_auth_tls(starttls=server_options())

    def test_bad_auth_tls_without_starttls(self) -> Deferred[None]:
        """
        Bad AUTH_TLS calls to a server without TLS are denied with
        AUTH_BADCRED as well.
        """
        return self._check_bad_auth_tls()

    @inlineCallbacks
    def test_probe_without_starttls(self) -> Generator[Any, Any, None]:
        """
        A server without C{starttls=} answers the probe with an accepted
        SUCCESS reply whose verifier is AUTH_NONE with an empty body, and no
        results; the probe does not reach the application, and the
        connection stays plaintext and usable.
        """
        port = yield self.listen()
        peer = yield self.connect_raw(port)
        side = yield self.next_server()
        assert side.read is not None
        peer.transport.write(record(encode_tls_probe(0x0BADCAFE, ECHO_PROGRAM, ECHO_VERSION)))
        (answer,) = yield self.raw_records(peer, 1)
        self.assertEqual(len(answer), PLAIN_SUCCESS_SIZE)
        reply, offset = decode_reply_header(answer)
        self.assertEqual(reply, AcceptedReply(0x0BADCAFE, NULL_AUTH, AcceptStat.SUCCESS))
        self.assertEqual(reply.verf, OpaqueAuth(AuthFlavor.AUTH_NONE, b""))
        self.assertEqual(offset, len(answer))
        self.assertFalse(side.read.called, "the probe reached the application")
        peer.transport.write(record(b"plain record"))
        ok, result = yield self.within(side.read, "the application's read")
        self.assertTrue(ok, result)
        self.assertEqual(result[0], Accepted(b"plain record"))

    @inlineCallbacks
    def test_start_tls_refused_leaves_connection_usable(self) -> Generator[Any, Any, None]:
        """
        Our client's C{start_tls} against an echo server without TLS fails
        with StartTLSRefused; the connection stays plaintext and a call
        afterwards works.
        """
        echo = EchoServer()
        self.addCleanup(echo.stop)
        port = yield self.listen(on_connection=lambda c: echo.serve(self.track(c)))
        client = yield self.connect(self.tcp(port))
        error = yield self.fails_with(
            outcome(client.start_tls(client_options(), ECHO_PROGRAM, ECHO_VERSION)),
            "start_tls",
            StartTLSRefused,
        )
        self.assertIn("STARTTLS", str(error))
        self.assertTrue(client.alive)
        self.assertIsNone(client.tls_session_props)
        stats = yield self.within(
            run_calls(client, self.reactor, proc=PROC_ECHO, size=20, count=3), "plain calls"
        )
        self.assertTrue(stats.ok, stats.reasons)
        self.assertEqual(stats.calls, 3)

    @inlineCallbacks
    def test_plaintext_behind_probe(self) -> Generator[Any, Any, None]:
        """
        A client pipelining a plaintext record behind its probe in one send
        to a C{starttls=} server: no STARTTLS answer, the application's
        pending read fails with PlaintextInjection (not a TLS error), and
        the connection is closed.
        """
        peer, side = yield self._raw_client_of_starttls_server()
        assert side.read is not None
        injected = record(call(0x44444444, proc=1))
        peer.transport.write(
            record(encode_tls_probe(0x12345678, ECHO_PROGRAM, ECHO_VERSION)) + injected
        )
        error = yield self.fails_with(side.read, "the application's read", PlaintextInjection)
        self.assertEqual(error.count, len(injected))
        yield self.within(peer.lost, "the raw client to see the connection closed")
        self.assertEqual(bytes(peer.received), b"")
        yield self.assert_closed(side.controller)

    @inlineCallbacks
    def test_plaintext_behind_answer(self) -> Generator[Any, Any, None]:
        """
        A server answering STARTTLS with a plaintext record pipelined behind
        the answer in one send: our client's C{start_tls} fails with
        PlaintextInjection and the connection is closed.
        """
        port, peers = yield self.listen_raw()
        client = yield self.connect(self.tcp(port))
        upgrading = outcome(client.start_tls(client_options(), ECHO_PROGRAM, ECHO_VERSION))
        peer = yield self.within(peers.get(), "the raw server")
        (probe,) = yield self.raw_records(peer, 1)
        header, _ = decode_call_header(probe)
        injected = record(b"\0\0\0\x09" + b"\0\0\0\x01" + b"injected reply")
        peer.transport.write(record(starttls_reply(header.xid)) + injected)
        error = yield self.fails_with(upgrading, "start_tls", PlaintextInjection)
        self.assertEqual(error.count, len(injected))
        yield self.within(peer.lost, "the raw server to see the connection closed")
        yield self.assert_closed(client)

    @inlineCallbacks
    def _probed_raw_client(
        self, **options: Any
    ) -> Generator[Any, Any, tuple[TLSRawPeer, ServerSide]]:
        """
        A raw client of a C{starttls=} listener (with C{options}) that has
        probed and been answered C{STARTTLS}, and starts no TLS yet.
        """
        peer, side = yield self._raw_client_of_starttls_server(**options)
        peer.transport.write(record(encode_tls_probe(0x0D0E0F00, ECHO_PROGRAM, ECHO_VERSION)))
        yield self.raw_records(peer, 1)
        peer.forget()
        return peer, side

    @inlineCallbacks
    def _probed_raw_server(
        self, server_tls: Any, **start: Any
    ) -> Generator[Any, Any, tuple[StreamController, TLSRawPeer, Deferred[tuple[bool, Any]]]]:
        """
        Our client's C{start_tls} (with plain Twisted options and C{start})
        against a raw server that answers C{STARTTLS} and starts TLS with
        C{server_tls}; give our client, the raw server and the outcome of
        C{start_tls}.
        """
        port, peers = yield self.listen_raw()
        client = yield self.connect(self.tcp(port))
        upgrading = outcome(
            client.start_tls(plain_client_options(), ECHO_PROGRAM, ECHO_VERSION, **start)
        )
        peer = yield self.within(peers.get(), "the raw server")
        (probe,) = yield self.raw_records(peer, 1)
        header, _ = decode_call_header(probe)
        peer.forget()
        peer.transport.write(record(starttls_reply(header.xid)))
        peer.transport.startTLS(server_tls)
        return client, peer, upgrading

    @inlineCallbacks
    def test_server_requires_alpn(self) -> Generator[Any, Any, None]:
        """
        ALPN C{sunrpc} is required after STARTTLS by default: a client that
        offers no ALPN (a raw one, starting TLS with plain Twisted options)
        is refused by the server, whose application's read fails with
        ALPNMismatch.
        """
        peer, side = yield self._probed_raw_client()
        assert side.read is not None
        peer.transport.startTLS(plain_client_options())
        error = yield self.fails_with(side.read, "the application's read", ALPNMismatch)
        self.assertIsNone(error.negotiated)
        yield self.within(peer.lost, "the raw client to see the connection closed")
        yield self.assert_closed(side.controller)

    @inlineCallbacks
    def test_client_requires_alpn(self) -> Generator[Any, Any, None]:
        """
        Our client requires ALPN C{sunrpc} after STARTTLS by default: when
        the server negotiates none (though our client offered it),
        C{start_tls} fails with ALPNMismatch, and the connection is closed.
        """
        client, peer, upgrading = yield self._probed_raw_server(ALPNDeafServer())
        error = yield self.fails_with(upgrading, "start_tls", ALPNMismatch)
        self.assertIsNone(error.negotiated)
        yield self.within(peer.lost, "the raw server to see the connection closed")
        yield self.assert_closed(client)

    @inlineCallbacks
    def test_server_alpn_optional_when_not_required(self) -> Generator[Any, Any, None]:
        """
        With C{require_alpn=False}, a server takes a client that offers no
        ALPN after STARTTLS: records go through and C{alpn} is L{None}.
        """
        peer, side = yield self._probed_raw_client(
            starttls=server_options(alpn=False), require_alpn=False
        )
        assert side.read is not None
        peer.transport.startTLS(plain_client_options())
        peer.transport.write(record(call(0x0A0B0C0E, proc=1)))
        yield self.within(peer.handshake, "the raw client's handshake")
        ok, result = yield self.within(side.read, "the application's read")
        self.assertTrue(ok, result)
        self.assertEqual(result[0], Accepted(call(0x0A0B0C0E, proc=1)))
        self.assert_session(side.controller.tls_session_props, alpn=None)

    @inlineCallbacks
    def test_client_alpn_optional_when_not_required(self) -> Generator[Any, Any, None]:
        """
        With C{require_alpn=False}, our client goes on after STARTTLS with a
        server that negotiates no ALPN: C{alpn} is L{None} and records go
        through.
        """
        client, peer, upgrading = yield self._probed_raw_server(ALPNDeafServer(), require_alpn=False)
        ok, result = yield self.within(upgrading, "start_tls")
        self.assertTrue(ok, result)
        self.assert_session(client.tls_session_props, alpn=None)
        yield self.within(client.start_writing(b"no ALPN"), "the client's write")
        (got,) = yield self.raw_records(peer, 1)
        self.assertEqual(got, b"no ALPN")

    @inlineCallbacks
    def test_start_tls_with_plain_twisted_options(self) -> Generator[Any, Any, None]:
        """
        C{start_tls} with client options as Twisted users write them
        (C{optionsForClientTLS(host, trustRoot=ca)}, no ALPN) against a
        C{starttls=server_tls_options(...)} server: our client offers
        C{sunrpc} itself, so the upgrade succeeds, ALPN C{sunrpc} on both
        sides, and records go both ways.
        """
        port = yield self.listen(starttls=server_options())
        client = yield self.connect(self.tcp(port))
        side = yield self.next_server()
        yield self.within(
            client.start_tls(plain_client_options(), ECHO_PROGRAM, ECHO_VERSION), "start_tls"
        )
        yield self.round_trip(client, side, b"plain Twisted options")
        self.assert_session(client.tls_session_props)
        self.assert_session(side.controller.tls_session_props)

    @inlineCallbacks
    def test_starttls_server_with_plain_twisted_options(self) -> Generator[Any, Any, None]:
        """
        A server whose C{starttls=} options are a plain C{CertificateOptions}
        (no ALPN) accepts C{sunrpc} itself: a client that offers it (a raw
        one, starting TLS with Twisted's layer) completes the handshake with
        ALPN C{sunrpc} (not Twisted's C{internal_error} alert for a server
        that accepts no protocol), and its record reaches the application.
        """
        peer, side = yield self._probed_raw_client(starttls=plain_server_options())
        assert side.read is not None
        peer.transport.startTLS(client_options())
        peer.transport.write(record(call(0x0A0B0C0F, proc=1)))
        ok, result = yield self.within(side.read, "the application's read")
        self.assertTrue(ok, result)
        self.assertEqual(result[0], Accepted(call(0x0A0B0C0F, proc=1)))
        yield self.within(peer.handshake, "the raw client's handshake")
        self.assertEqual(peer.transport.getHandle().get_alpn_proto_negotiated(), SUNRPC_ALPN)
        self.assert_session(side.controller.tls_session_props)

    @inlineCallbacks
    def test_plain_twisted_options_on_both_sides(self) -> Generator[Any, Any, None]:
        """
        Plain Twisted options on both sides of STARTTLS, none of them
        naming ALPN: our echo server and our client negotiate C{sunrpc}
        between them, and ECHO calls work.
        """
        echo = EchoServer()
        self.addCleanup(echo.stop)
        port = yield self.listen(
            on_connection=lambda c: echo.serve(self.track(c)), starttls=plain_server_options()
        )
        client = yield self.connect(self.tcp(port))
        yield self.within(
            client.start_tls(plain_client_options(), ECHO_PROGRAM, ECHO_VERSION), "start_tls"
        )
        self.assert_session(client.tls_session_props)
        stats = yield self.within(
            run_calls(client, self.reactor, proc=PROC_ECHO, size=20, count=3), "calls"
        )
        self.assertTrue(stats.ok, stats.reasons)
        self.assertEqual(stats.calls, 3)

    @inlineCallbacks
    def test_handshake_stall_after_starttls(self) -> Generator[Any, Any, None]:
        """
        A raw client that probes, gets STARTTLS, and then sends nothing: the
        application's read fails with HandshakeTimeout after the handshake
        timeout and the connection is closed.
        """
        peer, side = yield self._raw_client_of_starttls_server(
            handshake_timeout=HANDSHAKE_TIMEOUT
        )
        assert side.read is not None
        peer.transport.write(record(encode_tls_probe(1, ECHO_PROGRAM, ECHO_VERSION)))
        yield self.fails_with(side.read, "the application's read", HandshakeTimeout)
        yield self.within(peer.lost, "the raw client to see the connection closed")
        yield self.assert_closed(side.controller)

    @inlineCallbacks
    def test_start_tls_misuse(self) -> Generator[Any, Any, None]:
        """
        C{start_tls} while a read is pending raises ControllerBusy at once
        and sends nothing.
        """
        port, peers = yield self.listen_raw()
        client = yield self.connect(self.tcp(port))
        peer = yield self.within(peers.get(), "the raw server")
        reading = client.start_reading()
        self.assertRaises(
            ControllerBusy, client.start_tls, client_options(), ECHO_PROGRAM, ECHO_VERSION
        )
        yield sleep(0.05)
        self.assertEqual(bytes(peer.received), b"")
        client.cancel_rd_polling()
        self.failureResultOf(reading)

    @inlineCallbacks
    def test_start_tls_on_adopted_sockets(self) -> Generator[Any, Any, None]:
        """
        STARTTLS between two adopted ends of a socket pair (Twisted takes
        both for accepted connections): the side calling C{start_tls} is the
        TLS client all the same, and records go both ways afterwards.
        """
        a, b = socket.socketpair()
        server = self.track(
            stream_rpc_multiplex_controller(
                a.detach(), self.reactor, starttls=server_options(), recognise_probes=True
            )
        )
        client = self.track(stream_rpc_multiplex_controller(b.detach(), self.reactor))
        side = ServerSide(server, outcome(server.start_reading()))
        yield self.within(
            client.start_tls(client_options(), ECHO_PROGRAM, ECHO_VERSION), "start_tls"
        )
        yield self.round_trip(client, side, b"adopted STARTTLS")
        self.assert_session(server.tls_session_props)
        self.assert_session(client.tls_session_props)

    @inlineCallbacks
    def test_starttls_over_unix_socket(self) -> Generator[Any, Any, None]:
        """
        STARTTLS on a UNIX socket: records go both ways afterwards, and both
        sides still know the peer process from the socket (C{SO_PEERCRED})
        under TLS.
        """
        path = os.path.join(self.temp_dir(), "rpc.sock")
        yield self.listen(f"unix:{path}", starttls=server_options())
        client = yield self.connect(f"unix:path={path}")
        side = yield self.next_server()
        yield self.within(
            client.start_tls(client_options(), ECHO_PROGRAM, ECHO_VERSION), "start_tls"
        )
        yield self.round_trip(client, side, b"STARTTLS over UNIX")
        self.assert_session(client.tls_session_props)
        self.assert_session(side.controller.tls_session_props)
        for controller in (client, side.controller):
            credentials = controller.peer_credentials
            assert credentials is not None
            self.assertEqual(credentials[0], os.getpid())

    @inlineCallbacks
    def test_start_tls_with_unusable_options(self) -> Generator[Any, Any, None]:
        """
        C{start_tls} with options Twisted's TLS cannot use fails with the
        error Twisted raises, once the server answered STARTTLS, and the
        connection is closed: it does not wait for a handshake that never
        starts.
        """
        port = yield self.listen(starttls=server_options())
        client = yield self.connect(self.tcp(port))
        side = yield self.next_server()
        assert side.read is not None
        yield self.fails_with(
            outcome(client.start_tls(object(), ECHO_PROGRAM, ECHO_VERSION)),
            "start_tls",
            TypeError,
        )
        yield self.assert_closed(client)
        yield self.within(side.read, "the server's read to end")
        self.flushWarnings()

    @inlineCallbacks
    def test_starttls_server_with_unusable_options(self) -> Generator[Any, Any, None]:
        """
        A server whose C{starttls=} options Twisted's TLS cannot use: the
        probe's answer goes out, then the application's read fails with the
        error Twisted raised and the connection is closed (nothing escapes
        from C{dataReceived}); the client's C{start_tls} fails.
        """
        port = yield self.listen(starttls=object())
        client = yield self.connect(self.tcp(port))
        side = yield self.next_server()
        assert side.read is not None
        upgrading = outcome(client.start_tls(client_options(), ECHO_PROGRAM, ECHO_VERSION))
        yield self.fails_with(side.read, "the application's read", TypeError)
        ok, result = yield self.within(upgrading, "start_tls")
        self.assertFalse(ok, result)
        yield self.assert_closed(side.controller)
        yield self.assert_closed(client)
        self.flushWarnings()

    @inlineCallbacks
    def test_echo_calls_over_starttls(self) -> Generator[Any, Any, None]:
        """
        Our client upgrades a TCP connection to our echo server with
        STARTTLS, then makes 1,000 ECHO calls of 100 bytes, 10 at a time:
        all succeed, and ALPN C{sunrpc} was negotiated on both sides.
        """
        echo = EchoServer()
        self.addCleanup(echo.stop)
        port = yield self.listen(
            on_connection=lambda c: echo.serve(self.track(c)), starttls=server_options()
        )
        client = yield self.connect(self.tcp(port))
        yield self.within(
            client.start_tls(client_options(), ECHO_PROGRAM, ECHO_VERSION), "start_tls"
        )
        self.assert_session(client.tls_session_props)
        self.assertEqual(client.tls_session_props.server_name, "localhost")
        stats = yield self.within(
            run_calls(
                client, self.reactor, proc=PROC_ECHO, size=100, count=1000, concurrency=10
            ),
            "1,000 calls",
            seconds=25,
        )
        self.assertTrue(stats.ok, stats.reasons)
        self.assertEqual(stats.calls, 1000)
        (server,) = echo.controllers
        self.assert_session(server.tls_session_props)


# -- 6. Another implementation: openssl s_client --------------------------------


class OpenSSLClientTests(_TLSTestCase):
    """
    C{openssl s_client} against an implicit TLS listener serving the echo
    program.
    """

    openssl = shutil.which("openssl")
    if openssl is None:
        skip = "the openssl command is not installed (apt-get install openssl)"

    @inlineCallbacks
    def test_null_call(self) -> Generator[Any, Any, None]:
        """
        C{openssl s_client} (verifying our certificate against the CA, with
        ALPN C{sunrpc}) completes a handshake and sends a record-marked NULL
        call of the echo program; the reply has the call's xid and is an
        accepted SUCCESS with an empty verifier and no results.
        """
        echo = EchoServer()
        self.addCleanup(echo.stop)
        port = yield self.listen(
            on_connection=lambda c: echo.serve(self.track(c)), tls=server_options()
        )
        ca_path = os.path.join(self.temp_dir(), "ca.pem")
        with open(ca_path, "wb") as f:
            f.write(self.pki.ca.certificate)
        xid = 0x5EC0DE01
        null_call = struct.pack(">10I", xid, 0, 2, ECHO_PROGRAM, ECHO_VERSION, 0, 0, 0, 0, 0)
        self.assertEqual(len(null_call), 40)
        process = SClient(struct.pack(">I", 0x80000028) + null_call, 4 + PLAIN_SUCCESS_SIZE)
        assert self.openssl is not None
        argv = [
            self.openssl, "s_client", "-quiet",
            "-connect", f"127.0.0.1:{port.getHost().port}",
            "-servername", "localhost",
            "-CAfile", ca_path, "-verify_return_error",
            "-alpn", "sunrpc",
        ]  # fmt: skip
        transport = self.reactor.spawnProcess(
            process, self.openssl, argv, env={"PATH": os.environ.get("PATH", "")}
        )
        self.track_process(transport, process)
        out = yield self.within(process.replied, "the reply from s_client")
        self.assertEqual(len(out), 4 + PLAIN_SUCCESS_SIZE, f"stdout {out!r}, stderr {process.err!r}")
        self.assertEqual(out[:4], struct.pack(">I", 0x80000000 | PLAIN_SUCCESS_SIZE))
        reply, offset = decode_reply_header(out[4:])
        self.assertEqual(reply, AcceptedReply(xid, NULL_AUTH, AcceptStat.SUCCESS))
        self.assertEqual(offset, PLAIN_SUCCESS_SIZE)
        (server,) = echo.controllers
        self.assert_session(server.tls_session_props)
        self.assertEqual(server.tls_session_props.server_name, "localhost")
        # Our end closes; s_client sees it and exits.
        echo.stop()
        yield self.within(process.ended, "s_client to exit")


class InactivateTests(_TLSTestCase):
    """
    C{inactivate()} on a TLS connection.
    """

    @inlineCallbacks
    def test_silent_peer_does_not_hold_connection(self) -> Generator[Any, Any, None]:
        """
        A TLS peer that stops reading never answers our close_notify:
        C{inactivate()} still closes the connection, at most C{linger}
        seconds later, instead of waiting for that answer forever.
        """
        port = yield self.listen(tls=server_options(), linger=HANDSHAKE_TIMEOUT)
        peer = yield self.connect_raw(port, tls=client_options())
        peer.transport.write(record(b"hello"))
        side = yield self.next_server()
        assert side.read is not None
        ok, result = yield self.within(side.read, "the server's read")
        self.assertTrue(ok, result)
        peer.transport.pauseProducing()
        server = side.controller
        server.inactivate()
        yield self.until(
            lambda: getattr(socket_transport(server.transport), "disconnected", True),
            "the server's connection to close",
            seconds=2.0,
        )


class SameTurnTests(_TLSTestCase):
    """
    Replies under TLS leave in the reactor turn that received their call:
    Twisted's TLS layer, which gathers small writes for its next reactor
    iteration, is flushed, and so is the socket under it, before
    C{dataReceived} returns.
    """

    @inlineCallbacks
    def reply_seen_in_turn(self, prompt_writes: bool) -> Generator[Any, Any, int]:
        """
        Bytes the client's socket could read when the implicit TLS server's
        C{dataReceived} that wrote the reply to the second call returns (the
        first call leaves the session settled: tickets read, nothing else in
        flight).
        """
        seen: list[int] = []
        replies: list[int] = []
        client_socket: list[socket.socket] = []

        def echo(controller: StreamController) -> None:
            self.track(controller)
            original = controller.dataReceived

            def received(data: bytes) -> None:
                original(data)
                if len(replies) == 2 and not seen:
                    try:
                        peeked = client_socket[0].recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        peeked = b""
                    seen.append(len(peeked))

            controller.dataReceived = received  # type: ignore[method-assign]

            def reply(result: Any) -> None:
                controller.start_writing(result[0].message)
                replies.append(1)
                controller.start_reading().addCallback(reply)

            controller.start_reading().addCallback(reply)

        port = yield self.listen(
            tls=server_options(), on_connection=echo, prompt_writes=prompt_writes
        )
        client = yield self.connect(self.tcp(port), tls=client_options())
        client_socket.append(client.transport.transport.socket)  # type: ignore[union-attr]
        for n in (1, 2):
            reading = client.start_reading()
            yield self.within(client.start_writing(pattern(100, seed=n)), "the call")
            result = yield self.within(reading, "the reply")
            self.assertEqual(result[0], Accepted(pattern(100, seed=n)))
        self.assertEqual(len(seen), 1)
        return seen[0]

    @inlineCallbacks
    def test_reply_sent_in_turn(self) -> Generator[Any, Any, None]:
        """
        With C{prompt_writes} (the default), the reply has reached the
        client's socket when the turn ends.
        """
        seen = yield self.reply_seen_in_turn(True)
        self.assertGreater(seen, 100)

    @inlineCallbacks
    def test_reply_waits_without_prompt_writes(self) -> Generator[Any, Any, None]:
        """
        With C{prompt_writes=False}, the reply waits for the reactor.
        """
        seen = yield self.reply_seen_in_turn(False)
        self.assertEqual(seen, 0)


class ProbeOrderTests(_TLSTestCase):
    """
    A reply written in the same turn as a client's RFC 9289 probe, to a call
    pipelined before it, leaves before the STARTTLS answer, in plaintext.
    """

    @inlineCallbacks
    def check_order(self, streaming: bool) -> Generator[Any, Any, None]:
        def on_connection(controller: StreamController) -> None:
            self.track(controller)
            if streaming:
                receiver = _Replier(controller)
                controller.receive_records(receiver)
                return

            def got(result: Any) -> None:
                controller.start_writing(b"reply-to:" + result[0].message)
                controller.start_reading().addCallback(got)

            controller.start_reading().addCallback(got)

        port = yield self.listen(starttls=server_options(), on_connection=on_connection)
        sock = self.track_socket(socket.create_connection(("127.0.0.1", port.getHost().port)))
        probe = encode_call_header(
            CallHeader(7, ECHO_PROGRAM, ECHO_VERSION, 0, cred=OpaqueAuth(AuthFlavor.AUTH_TLS, b""))
        )
        sock.sendall(record(b"\0\0\0\x2acall A") + record(probe))
        sock.setblocking(False)
        data = bytearray()

        def two_records() -> bool:
            try:
                data.extend(sock.recv(65536))
            except BlockingIOError:
                pass
            if len(data) < 4:
                return False
            first = 4 + (int.from_bytes(data[:4], "big") & 0x7FFFFFFF)
            return len(data) >= first + 4 + 24

        yield self.until(two_records, "two records")
        first = 4 + (int.from_bytes(data[:4], "big") & 0x7FFFFFFF)
        self.assertEqual(bytes(data[4:first]), b"reply-to:\0\0\0\x2acall A")
        self.assertIn(b"STARTTLS", bytes(data[first:]))

    def test_one_shot(self) -> Any:
        """With one-shot reads and writes."""
        return self.check_order(False)

    def test_streaming(self) -> Any:
        """With a stream of records and C{send_record}."""
        return self.check_order(True)


class _Replier:
    """A receiver that replies to every record from C{record_received}."""

    def __init__(self, controller: StreamController) -> None:
        self.controller = controller

    def record_received(self, message: bytes, peer: object) -> None:
        self.controller.send_record(b"reply-to:" + message)

    def record_refused(self, record: Any, peer: object) -> None:
        pass

    def receiving_ended(self, reason: Any) -> None:
        pass
