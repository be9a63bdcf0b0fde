# -*- test-case-name: rpctransport.test.test_tls -*-
"""
Layer 3: what a stream controller tells Twisted's TLS layer, and learns
from it.

L{SunRPCConnectionCreator} wraps whatever TLS options it is given so that
the connections made offer and accept ALPN C{sunrpc}, and
L{SunRPCNegotiation} says the same to Twisted in its own terms.
L{TLSSessionProps} describes an established session (the contract's
C{tls_session_props}); L{user_name_from_certificate} gives the peer's
identity by OCamlnet's rule. Both read a pyOpenSSL C{Connection} and
C{cryptography} certificates; nothing here starts or drives TLS, which is
Twisted's job (C{TLSMemoryBIOProtocol}, C{ITLSTransport.startTLS}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IProtocolNegotiationFactory,
)
from zope.interface import implementer

from ._twisted import negotiate_under

if TYPE_CHECKING:
    from OpenSSL.SSL import Connection
    from twisted.protocols.tls import TLSMemoryBIOProtocol

__all__ = [
    "SUNRPC_ALPN",
    "SunRPCConnectionCreator",
    "SunRPCNegotiation",
    "TLSOptions",
    "TLSSessionProps",
    "session_props",
    "tls_connection",
    "user_name_from_certificate",
]

SUNRPC_ALPN: Final = b"sunrpc"
"""The ALPN protocol ID of RPC-with-TLS (RFC 9289 section 7.1)."""

TLSOptions: TypeAlias = (
    "IOpenSSLClientConnectionCreator | IOpenSSLServerConnectionCreator | IOpenSSLContextFactory"
)
"""
TLS options as Twisted's TLS layer takes them: C{optionsForClientTLS}'s
client options, C{CertificateOptions} (either side), or an older context
factory.
"""


@implementer(IProtocolNegotiationFactory)
class SunRPCNegotiation:
    """
    What an RPC connection negotiates, in Twisted's terms: ALPN C{sunrpc}.

    Twisted's TLS asks the factory under it (C{IProtocolNegotiationFactory})
    which protocols to offer as a client and to accept as a server, on top
    of those its options name. A factory of RPC connections may inherit
    this; L{SunRPCConnectionCreator} puts one under a TLS layer that has no
    factory (the one C{startTLS} makes).
    """

    def acceptableProtocols(self) -> list[bytes]:
        """
        @return: C{[b"sunrpc"]}.
        """
        return [SUNRPC_ALPN]


_NEGOTIATION: Final = SunRPCNegotiation()


@implementer(IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
class SunRPCConnectionCreator:
    """
    TLS options that make the connections of the options they wrap, offering
    (as the client) and accepting (as the server) ALPN C{sunrpc} whatever
    the wrapped options say about ALPN: RFC 9289 requires it after
    STARTTLS, and plain Twisted options (C{optionsForClientTLS(host,
    trustRoot=ca)}) offer none.

    As a client it offers C{sunrpc} and nothing else (RFC 9289 names no
    other protocol for an RPC connection). As a server it accepts C{sunrpc}
    besides the protocols of the wrapped options, through Twisted's own
    ALPN selection (which C{CertificateOptions} sets up); options whose
    context selects ALPN some other way are left to it.

    @ivar options: the wrapped options.
    """

    def __init__(self, options: TLSOptions, client: bool) -> None:
        """
        @param options: what Twisted's TLS layer would take.
        @param client: whether the connections will be TLS clients.
        @raise TypeError: C{options} cannot make such connections (as
            Twisted's TLS layer raises; here before TLS has started).
        """
        side = IOpenSSLClientConnectionCreator if client else IOpenSSLServerConnectionCreator
        if not side.providedBy(options) and getattr(options, "getContext", None) is None:
            raise TypeError(
                f"{options!r} cannot make TLS {'client' if client else 'server'} connections"
            )
        self.options = options

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> Connection:
        """
        A client connection of the wrapped options that offers ALPN
        C{sunrpc}.
        """
        options: Any = self.options
        if IOpenSSLClientConnectionCreator.providedBy(options):
            connection: Connection = options.clientConnectionForTLS(tlsProtocol)
        else:
            connection = _from_context(options)
        connection.set_alpn_protos([SUNRPC_ALPN])
        return connection

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> Connection:
        """
        A server connection of the wrapped options that accepts ALPN
        C{sunrpc}.
        """
        # Before the connection exists: Twisted reads the protocols when it
        # makes the connection or selects one during the handshake.
        negotiate_under(tlsProtocol, _NEGOTIATION)
        options: Any = self.options
        if IOpenSSLServerConnectionCreator.providedBy(options):
            connection: Connection = options.serverConnectionForTLS(tlsProtocol)
            return connection
        return _from_context(options)


def _from_context(options: Any) -> Connection:
    """
    A connection from an older context factory, as Twisted's TLS layer
    makes one.
    """
    from OpenSSL.SSL import Connection

    return Connection(options.getContext(), None)


# Subject attributes, in the order OCamlnet looks for a user name after the
# rfc822 subject alternative name: uid (RFC 4519), emailAddress (PKCS #9),
# commonName.
_UID: Final = "0.9.2342.19200300.100.1.1"
_EMAIL_ADDRESS: Final = "1.2.840.113549.1.9.1"
_COMMON_NAME: Final = "2.5.4.3"


@dataclass(frozen=True)
class TLSSessionProps:
    """
    An established TLS session, as a controller's C{tls_session_props}.

    @ivar version: the protocol version, such as C{"TLSv1.3"}.
    @ivar cipher: the cipher suite's name.
    @ivar alpn: the negotiated ALPN protocol (C{b"sunrpc"}), or L{None}.
    @ivar server_name: the server name the client asked for (SNI), or
        L{None}.
    @ivar peer_certificates: the peer's certificate chain as C{cryptography}
        certificates, the peer's own certificate first; empty for an
        anonymous peer.
    @ivar subject_alt_names: the subject alternative names of the peer's
        certificate as C{(kind, value)} pairs: C{("DNS", "host.example")},
        C{("email", "alice@example.org")}, C{("IP", "127.0.0.1")},
        C{("URI", ...)}.
    """

    version: str
    cipher: str
    alpn: bytes | None
    server_name: str | None
    peer_certificates: tuple[Any, ...]
    subject_alt_names: tuple[tuple[str, str], ...]

    @property
    def peer_user_name(self) -> str | None:
        """
        The peer's identity by L{user_name_from_certificate}, or L{None}
        for an anonymous peer.
        """
        if not self.peer_certificates:
            return None
        return user_name_from_certificate(self.peer_certificates[0])


def tls_connection(transport: Any) -> Any:
    """
    The pyOpenSSL C{Connection} behind a Twisted TLS transport, or L{None}.

    Implicit TLS (C{TLSMemoryBIOProtocol} as the transport) and
    C{startTLS} on a TCP or UNIX transport both answer C{getHandle()} with
    it.
    """
    try:
        from OpenSSL.SSL import Connection
    except ImportError:  # pragma: no cover - no TLS without pyOpenSSL
        return None
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if get_handle is not None else None
    return handle if isinstance(handle, Connection) else None


def session_props(connection: Any) -> TLSSessionProps:
    """
    Describe the established session of a pyOpenSSL C{Connection}.
    """
    peer = connection.get_peer_certificate()
    chain = connection.get_peer_cert_chain() or []
    certificates = []
    if peer is not None:
        own = peer.to_cryptography()
        certificates.append(own)
        # On a server, OpenSSL's chain leaves the client's own certificate
        # out; on a client, it starts with the server's. Either way: the
        # peer's own first, once.
        for entry in chain:
            cert = entry.to_cryptography()
            if cert != own:
                certificates.append(cert)
    server_name = connection.get_servername()
    return TLSSessionProps(
        version=connection.get_protocol_version_name(),
        cipher=connection.get_cipher_name() or "",
        alpn=connection.get_alpn_proto_negotiated() or None,
        server_name=server_name.decode("idna") if server_name else None,
        peer_certificates=tuple(certificates),
        subject_alt_names=_subject_alt_names(certificates[0]) if certificates else (),
    )


def _subject_alt_names(certificate: Any) -> tuple[tuple[str, str], ...]:
    from cryptography import x509

    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return ()
    names = []
    for name in extension.value:
        if isinstance(name, x509.DNSName):
            names.append(("DNS", name.value))
        elif isinstance(name, x509.RFC822Name):
            names.append(("email", name.value))
        elif isinstance(name, x509.IPAddress):
            names.append(("IP", str(name.value)))
        elif isinstance(name, x509.UniformResourceIdentifier):
            names.append(("URI", name.value))
        else:
            names.append((type(name).__name__, str(name.value)))
    return tuple(names)


def user_name_from_certificate(certificate: Any) -> str | None:
    """
    The user a certificate names, by OCamlnet's rule: the first rfc822
    subject alternative name if there is one, else the subject's C{uid},
    C{emailAddress} or C{CN}, in that order; L{None} if none is there.

    @param certificate: a C{cryptography} certificate.
    """
    for kind, value in _subject_alt_names(certificate):
        if kind == "email":
            return value
    for oid in (_UID, _EMAIL_ADDRESS, _COMMON_NAME):
        for attribute in certificate.subject:
            if attribute.oid.dotted_string == oid:
                value = attribute.value
                return value.decode() if isinstance(value, bytes) else str(value)
    return None
