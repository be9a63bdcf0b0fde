# -*- test-case-name: rpctransport.test.test_program_errors -*-
"""
What the program tells its user when something they can fix goes wrong:
one line naming the problem and what to do, never a traceback.

L{ProgramError} carries that line and the exit status; the C{explain_*}
functions turn what Twisted, OpenSSL or the kernel raised into such a line.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

__all__ = [
    "ProgramError",
    "TLSFiles",
    "explain_call_failure",
    "explain_listen_failure",
    "read_tls_files",
]

USAGE_STATUS = 2
"""The exit status of a problem with what the user asked (as argparse's)."""


class ProgramError(Exception):
    """
    A problem the user can fix, said in one line.

    @ivar status: the exit status.
    """

    def __init__(self, message: str, status: int = USAGE_STATUS) -> None:
        super().__init__(message)
        self.status = status


_TLS_EXTRA = "TLS needs pyOpenSSL and cryptography: pip install 'rpctransport[tls]'"


def require_tls() -> None:
    """
    @raise ProgramError: when the C{tls} extra is not installed.
    """
    try:
        import cryptography  # noqa: F401
        import OpenSSL  # noqa: F401
    except ImportError as e:
        raise ProgramError(f"{_TLS_EXTRA} ({e})")


class TLSFiles:
    """
    The PEM data of C{--tls-cert}, C{--tls-key} and C{--tls-ca}, read and
    checked (see L{read_tls_files}).

    @ivar certificate: the certificate, with the key when it held it.
    @ivar key: the key, when given apart.
    @ivar ca: the CA certificates.
    """

    def __init__(self, certificate: bytes, key: bytes | None, ca: bytes | None) -> None:
        self.certificate = certificate
        self.key = key
        self.ca = ca


def _read(option: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ProgramError(f"{option} {path}: {e.strerror or e}")


def _certificates(option: str, path: str, data: bytes) -> list[Any]:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ProgramError(f"{option} {path}: no PEM certificate in it")


def read_tls_files(
    certificate: str | None, key: str | None, ca: str | None, *, server: bool
) -> TLSFiles | None:
    """
    Read and check the TLS files given: the certificate parses, there is a
    private key (in the certificate's file or C{key}) and it matches the
    certificate, the CA file holds certificates.

    @param server: whether the files are a server's (which must have a
        certificate) or a client's (for which all are optional).
    @return: L{None} when no file was given.
    @raise ProgramError: naming the file and what is wrong with it.
    """
    if certificate is None and key is None and ca is None:
        return None
    require_tls()
    from cryptography.hazmat.primitives import serialization

    if key is not None and certificate is None:
        raise ProgramError("--tls-key goes with --tls-cert")
    cert_data = key_data = ca_data = None
    if certificate is not None:
        cert_data = _read("--tls-cert", certificate)
        own = _certificates("--tls-cert", certificate, cert_data)[0]
        key_option, key_path = "--tls-cert", certificate
        if key is not None:
            key_data = _read("--tls-key", key)
            key_option, key_path, pem = "--tls-key", key, key_data
        else:
            pem = cert_data
        if b"PRIVATE KEY-----" not in pem:
            raise ProgramError(
                f"{key_option} {key_path} holds no private key: give it with --tls-key KEY.pem"
            )
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (TypeError, ValueError) as e:
            raise ProgramError(
                f"{key_option} {key_path}: cannot read its private key (encrypted keys are "
                f"not supported): {e}"
            )
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        encoding = serialization.Encoding.DER
        if private.public_key().public_bytes(encoding, public) != own.public_key().public_bytes(
            encoding, public
        ):
            raise ProgramError(
                f"{key_option} {key_path}: the private key is not the one of the "
                f"certificate in --tls-cert {certificate}"
            )
    elif server:
        raise ProgramError("TLS needs --tls-cert (and --tls-key)")
    if ca is not None:
        ca_data = _read("--tls-ca", ca)
        _certificates("--tls-ca", ca, ca_data)
    assert cert_data is not None or not server
    return TLSFiles(cert_data or b"", key_data, ca_data)


def explain_listen_failure(kind: str, address: str, error: BaseException) -> str:
    """
    The line for a listener that cannot start: C{cannot listen on tcp
    127.0.0.1:111: address already in use}.
    """
    from twisted.internet.error import CannotListenError

    reason: Any = error
    if isinstance(error, CannotListenError) and error.socketError is not None:
        reason = error.socketError
    if isinstance(reason, OSError) and reason.errno is not None:
        text = os.strerror(reason.errno).lower()
        if kind == "unix" and reason.errno == errno.ENOENT:
            text = f"no directory {os.path.dirname(address) or '.'}"
        elif kind == "unix" and reason.errno == errno.EACCES:
            text = f"no permission to create a socket in {os.path.dirname(address) or '.'}"
    else:
        text = str(reason) or type(reason).__name__
    return f"cannot listen on {kind} {address}: {text}"


def explain_call_failure(
    error: BaseException, *, address: str, timeout: float, tls: bool = False
) -> str:
    """
    The line for a connection of C{call} that failed with C{error} before
    any call succeeded: what TLS and the kernel said, in the user's terms,
    with what to do.

    @param tls: whether the connection began with a TLS handshake.
    """
    from twisted.internet.error import ConnectionDone, ConnectionLost

    from ..sansio.errors import ALPNMismatch, HandshakeTimeout

    if isinstance(error, HandshakeTimeout):
        return (
            f"no TLS handshake within {timeout:g} s: is {address} a TLS listener "
            "(serve --tls, or --starttls for a probe first)?"
        )
    if isinstance(error, ALPNMismatch):
        return f"{error}: the server does not speak RFC 9289 RPC-with-TLS"
    name = type(error).__name__
    if name == "VerificationError":
        return (
            f"the server's certificate is not for {_mismatched_names(error)}: give the name "
            "it carries with --server-name"
        )
    text = str(error)
    lowered = text.lower()
    for needle, explanation in _TLS_ALERTS:
        if needle in lowered:
            return explanation
    if tls and isinstance(error, (ConnectionDone, ConnectionLost)):
        return (
            f"the server closed the connection during the TLS handshake: is {address} a "
            "TLS listener (serve --tls)?"
        )
    return text or name


_TLS_ALERTS = (
    ("certificate required", "the server requires a client certificate: give --tls-cert (and --tls-key)"),
    (
        "certificate verify failed",
        "the server's certificate is not signed by a CA we trust: give its CA with --tls-ca",
    ),
    ("unknown ca", "the server does not trust the CA of our client certificate (--tls-cert)"),
    ("bad certificate", "the server refused our client certificate (--tls-cert)"),
    (
        "wrong version number",
        "the server did not answer with TLS: is it a TLS listener (serve --tls)?",
    ),
    (
        "packet length too long",
        "the server did not answer with TLS: is it a TLS listener (serve --tls)?",
    ),
    ("no application protocol", "the server offers no ALPN sunrpc: it does not speak RFC 9289"),
)
"""Substrings of OpenSSL's errors, and what they mean for C{call}."""


def _mismatched_names(error: BaseException) -> str:
    """
    The names a C{service_identity.VerificationError} did not find, quoted:
    C{'wrong.example'}.
    """
    names = []
    for mismatch in getattr(error, "errors", None) or ():
        identity = getattr(mismatch, "mismatched_id", None)
        value = getattr(identity, "hostname", None) or getattr(identity, "ip", None) or identity
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        names.append(repr(str(value)))
    return " or ".join(names) or "the name we asked for"
