# -*- test-case-name: rpctransport.test.test_demo -*-
"""
The TLS part of C{rpctransport demo}: a round trip over implicit TLS with
client certificates, and one over RFC 9289 STARTTLS, with certificates made
on the fly; each side says whom it saw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import inlineCallbacks

from ..entry.stream import connect_stream, listen_stream
from ..entry.tls import client_tls_options, server_tls_options
from ..testing.pki import CertificateAuthority
from ..rpc.client import RpcClient
from .echo import ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, EchoServer, run_calls

__all__ = ["run_tls_demo"]

_CALLS = 50
_SIZE = 4096


@inlineCallbacks
def run_tls_demo(reactor: Any, write: Callable[[str], object] = print) -> Any:
    """
    Run the TLS round trips on loopback and write one line each; return
    whether every call succeeded.
    """
    ca = CertificateAuthority("rpctransport demo CA")
    server_cert = ca.issue("demo server", dns=("localhost",), ips=("127.0.0.1",))
    client_cert = ca.issue("demo client", emails=("alice@example.org",))
    server_options = server_tls_options(
        server_cert.certificate, server_cert.key, client_ca=ca.certificate
    )

    def client_options() -> Any:
        return client_tls_options(
            "localhost",
            ca=ca.certificate,
            certificate=client_cert.certificate,
            key=client_cert.key,
        )

    server = EchoServer()
    ok = True
    implicit = yield listen_stream(
        "tcp:0:interface=127.0.0.1", server.serve, reactor=reactor, tls=server_options
    )
    starttls = yield listen_stream(
        "tcp:0:interface=127.0.0.1", server.serve, reactor=reactor, starttls=server_options
    )
    try:
        for name, port in (("tls", implicit), ("starttls", starttls)):
            address = f"tcp:host=127.0.0.1:port={port.getHost().port}"
            if name == "tls":
                client = yield connect_stream(address, reactor=reactor, tls=client_options())
            else:
                client = yield connect_stream(address, reactor=reactor)
                yield client.start_tls(client_options(), ECHO_PROGRAM, ECHO_VERSION)
            rpc = RpcClient(client, max_in_flight=4, reactor=reactor)
            try:
                stats = yield run_calls(
                    rpc, reactor, proc=PROC_ECHO, size=_SIZE, count=_CALLS, concurrency=4
                )
                props = client.tls_session_props
                seen_by_server = sorted(
                    str(c.peer_user_name) for c in server.controllers if c.alive
                )
                ok = ok and stats.ok
                write(
                    f"{name:<9} 127.0.0.1:{port.getHost().port:<6} echo {_SIZE} x {_CALLS}: "
                    f"{'ok' if stats.ok else 'FAILED'}  {props.version if props else '?'} "
                    f"ALPN {props.alpn.decode() if props and props.alpn else '-'}  "
                    f"client saw {client.peer_user_name!r}, server saw "
                    f"{', '.join(seen_by_server) or '-'}"
                )
            finally:
                rpc.close()
    finally:
        yield implicit.stopListening()
        yield starttls.stopListening()
        server.stop()
    return ok
