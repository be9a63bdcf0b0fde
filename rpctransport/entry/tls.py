# -*- test-case-name: rpctransport.test.test_tls -*-
"""
Layer 4: TLS options for RPC, built with Twisted's own machinery.

RFC 9289 asks for TLS 1.3 and the ALPN protocol C{sunrpc}; these helpers
build Twisted's C{CertificateOptions} (server) and C{optionsForClientTLS}
(client) with both, from PEM files or bytes. Options built any other way
work too: the controllers take whatever Twisted's TLS layer takes, and
offer and accept C{sunrpc} themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..adapters.tls import SUNRPC_ALPN

if TYPE_CHECKING:
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
    from twisted.internet.ssl import CertificateOptions

__all__ = ["client_tls_options", "server_tls_options"]

PEM = bytes | str | Path
"""PEM data as bytes, or the path of a PEM file (C{str} or C{Path})."""


def _pem(value: PEM) -> bytes:
    if isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


def server_tls_options(
    certificate: PEM,
    key: PEM | None = None,
    *,
    client_ca: PEM | None = None,
    alpn: bool = True,
    minimum_version: str = "TLSv1_2",
) -> CertificateOptions:
    """
    Server TLS options: our certificate and key, optionally requiring client
    certificates signed by C{client_ca}, offering ALPN C{sunrpc}.

    @param certificate: our certificate (PEM; may hold the key too).
    @param key: our private key (PEM), when not in C{certificate}.
    @param client_ca: require a client certificate that this CA signed.
    @param alpn: accept ALPN C{sunrpc}, for Twisted's own APIs (with a
        factory of ours, or after STARTTLS, C{sunrpc} is accepted whatever
        the options say). Leave it on: Twisted's TLS refuses a client that
        offers ALPN to a server whose options accept no protocol (an
        C{internal_error} alert).
    @param minimum_version: the oldest TLS version accepted, as a name of
        Twisted's C{TLSVersion} (C{"TLSv1_2"}, C{"TLSv1_3"}).
    @return: Twisted's C{CertificateOptions} (which can make server and
        client connections).
    """
    from twisted.internet import ssl

    pem = _pem(certificate) + (b"\n" + _pem(key) if key is not None else b"")
    own = ssl.PrivateCertificate.loadPEM(pem)
    extra: dict[str, Any] = {}
    if client_ca is not None:
        extra["trustRoot"] = ssl.Certificate.loadPEM(_pem(client_ca))
    if alpn:
        extra["acceptableProtocols"] = [SUNRPC_ALPN]
    return ssl.CertificateOptions(
        # cryptography objects: Twisted deprecates pyOpenSSL's here.
        privateKey=own.privateKey.original.to_cryptography_key(),
        certificate=own.original.to_cryptography(),
        raiseMinimumTo=getattr(ssl.TLSVersion, minimum_version),
        **extra,
    )


def client_tls_options(
    hostname: str,
    *,
    ca: PEM | None = None,
    certificate: PEM | None = None,
    key: PEM | None = None,
    alpn: bool = True,
) -> IOpenSSLClientConnectionCreator:
    """
    Client TLS options: verify the server as C{hostname} against C{ca} (the
    platform's trust store by default), optionally present a client
    certificate, offer ALPN C{sunrpc}.

    @param hostname: the name the server's certificate must carry (a DNS
        name or an IP address), also sent as SNI.
    @param ca: the CA that signed the server's certificate (PEM).
    @param certificate: our client certificate (PEM; may hold the key too).
    @param key: its private key (PEM), when not in C{certificate}.
    @param alpn: offer ALPN C{sunrpc}, for Twisted's own APIs (our
        controllers offer it whatever the options say).
    @return: client options from C{optionsForClientTLS}.
    """
    from twisted.internet import ssl

    extra: dict[str, Any] = {}
    if certificate is not None:
        pem = _pem(certificate) + (b"\n" + _pem(key) if key is not None else b"")
        own = ssl.PrivateCertificate.loadPEM(pem)
        # As cryptography objects, as for servers: optionsForClientTLS's
        # clientCertificate hands pyOpenSSL's on, which Twisted deprecates.
        extra = {
            "privateKey": own.privateKey.original.to_cryptography_key(),
            "certificate": own.original.to_cryptography(),
        }
    trust_root = ssl.Certificate.loadPEM(_pem(ca)) if ca is not None else None
    return ssl.optionsForClientTLS(
        hostname,
        trustRoot=trust_root,
        acceptableProtocols=[SUNRPC_ALPN] if alpn else None,
        extraCertificateOptions=extra,
    )
