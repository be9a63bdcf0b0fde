# -*- test-case-name: rpctransport.test.test_tls -*-
"""
Throwaway certificates for tests and the demo, made with C{cryptography}.

A L{CertificateAuthority} issues server and client certificates with
whatever names a test needs (DNS and IP subject alternative names, an rfc822
name, a subject uid, emailAddress or CN), valid or expired. Keys are EC
P-256: quick to make. Nothing here is for production use.

Why not C{trustme}: it makes the CA, the subject alternative names, the CN
and (with C{not_before}/C{not_after}) expired certificates, but not a
subject C{uid} or C{emailAddress}, which the C{peer_user_name} tests need
(three of their certificates): those would still be built and signed here,
with the CA's key, beside it. And the demo (C{python -m rpctransport demo})
and the benchmark make their certificates here, so it would become a
dependency of the C{tls} extra, to save the thirty lines that make the CA.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = ["CertificateAuthority", "IssuedCertificate"]


@dataclass(frozen=True)
class IssuedCertificate:
    """
    A certificate and its key, in PEM.

    @ivar certificate: the certificate.
    @ivar key: its private key (PKCS #8, unencrypted).
    @ivar x509: the C{cryptography} certificate object.
    """

    certificate: bytes
    key: bytes
    x509: Certificate

    @property
    def pem(self) -> bytes:
        """
        Certificate and key in one PEM blob (what Twisted's
        C{PrivateCertificate.loadPEM} takes).
        """
        return self.certificate + self.key


class CertificateAuthority:
    """
    A self-signed CA that issues certificates for tests.

    @ivar certificate: the CA's certificate, in PEM.
    """

    def __init__(self, name: str = "rpctransport test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.x509 = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.certificate = _pem(self.x509)

    def issue(
        self,
        common_name: str | None = None,
        *,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        emails: tuple[str, ...] = (),
        uid: str | None = None,
        email_address: str | None = None,
        expired: bool = False,
    ) -> IssuedCertificate:
        """
        Issue a certificate for a server or a client.

        @param common_name: the subject's CN.
        @param dns: DNS subject alternative names.
        @param ips: IP address subject alternative names.
        @param emails: rfc822 subject alternative names.
        @param uid: the subject's C{uid} attribute.
        @param email_address: the subject's C{emailAddress} attribute.
        @param expired: make it valid only in the past.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        attributes = []
        if uid is not None:
            attributes.append(x509.NameAttribute(NameOID.USER_ID, uid))
        if email_address is not None:
            attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email_address))
        if common_name is not None:
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        else:
            not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        names += [x509.RFC822Name(email) for email in emails]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return IssuedCertificate(_pem(certificate), key_pem, certificate)


def _pem(certificate: Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return certificate.public_bytes(serialization.Encoding.PEM)
