# -*- test-case-name: rpctransport.test.test_tls -*-
"""
Layer 3: what a stream controller learns from Twisted's TLS layer.

L{TLSSessionProps} describes an established session (the contract's
C{tls_session_props}); L{user_name_from_certificate} gives the peer's
identity by OCamlnet's rule. Both read a pyOpenSSL C{Connection} and
C{cryptography} certificates; nothing here starts or drives TLS, which is
Twisted's job (C{TLSMemoryBIOProtocol}, C{ITLSTransport.startTLS}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "SUNRPC_ALPN",
    "TLSSessionProps",
    "session_props",
    "tls_connection",
    "user_name_from_certificate",
]

SUNRPC_ALPN: Final = b"sunrpc"
"""The ALPN protocol ID of RPC-with-TLS (RFC 9289 section 7.1)."""

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
