# -*- test-case-name: rpctransport.test -*-
"""
rpctransport: low-level ONC RPC (RFC 5531) transports for Twisted.

A I{multiplex controller} owns one connection (stream) or one socket
(datagram) and moves whole RPC records in and out of it. The package is laid
out in layers; each imports only from the layers below it:

  1. L{rpctransport.sansio}: value types, errors, codecs over bytes (record
     marking, RPC headers) and the state of a stream connection. No Twisted.
  2. L{rpctransport.interfaces}: the controller contract,
     L{IRpcMultiplexController}.
  3. L{rpctransport.adapters}: the Twisted protocols that implement it
     (stream, datagram). Only this layer touches the reactor.
  4. L{rpctransport.entry}: constructors from endpoints and descriptors; TLS
     options; admission control.
  5. L{rpctransport.rpc}: an RPC client and server on the controllers, and
     rpcbind registration; L{rpctransport.testing}: the in-memory pair, a
     test certificate authority.
  6. L{rpctransport.bench}: the benchmark.
  7. L{rpctransport.program}: the command line, the echo program, workers,
     the twistd plugin's options.

C{docs/architecture.rst} has one line per module.

Everything a user needs is re-exported here.
"""

from ._version import __version__
from .adapters.datagram import (
    DEFAULT_DATAGRAM_MAX_RECORD_SIZE,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_DATAGRAMS,
    MAX_UDP_PAYLOAD_IPV4,
    MAX_UDP_PAYLOAD_IPV6,
    PEER_ERROR_LOG_INTERVAL,
    DatagramController,
    OnPeerError,
)
from .adapters.stream import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_LINGER,
    DEFAULT_READ_BUFFER_LIMIT,
    StreamController,
)
from .adapters.tls import SUNRPC_ALPN, TLSSessionProps
from .entry.tls import client_tls_options, server_tls_options
from .entry.datagram import (
    connect_datagram,
    datagram_rpc_multiplex_controller,
    listen_datagram,
)
from .entry.admission import DESCRIPTOR_RESERVE, MAX_CLOSING, default_max_connections
from .entry.stream import (
    StreamControllerFactory,
    connect_stream,
    listen_stream,
    listener_counters,
    stream_rpc_multiplex_controller,
)
from .interfaces import (
    BeforeRecord,
    IRecordReceiver,
    IRecordStreaming,
    IRpcMultiplexController,
    Message,
    ReadResult,
)
from .rpc.client import RpcClient, connect_rpc_client, datagram_rpc_client
from .rpc.server import CallInfo, RpcServer
from .sansio.auth import AuthSys
from .sansio.errors import (
    ALPNMismatch,
    AddressMismatch,
    AddressRequired,
    AuthError,
    CallTimeout,
    GarbageArguments,
    ProcedureUnavailable,
    ProgramMismatch,
    ProgramUnavailable,
    RpcCallError,
    RpcVersionMismatch,
    ServerSystemError,
    ControllerBusy,
    ControllerInactive,
    DatagramTooLarge,
    DeadlineExceeded,
    Evicted,
    HandshakeTimeout,
    IdleTimeout,
    IncompleteRecord,
    LocalProtocolError,
    MalformedRecord,
    NotConnected,
    PlaintextInjection,
    RecordDeadlineExceeded,
    RecordTooLarge,
    RemoteProtocolError,
    SendFailed,
    StartTLSRefused,
    TransportError,
    WriteDeadlineExceeded,
)
from .sansio.connection import StreamConnection
from .sansio.counters import Counters
from .sansio.deadlines import Deadlines
from .sansio.record import (
    DEFAULT_MAX_EMPTY_FRAGMENTS,
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_RECORD_SIZE,
    NEED_DATA,
    FragmentHeader,
    RecordReader,
    encode_record,
)
from .sansio.types import (
    ACCEPT,
    DENY,
    DROP,
    END_OF_FILE,
    IMPLIED,
    REJECT,
    Accepted,
    Denied,
    Dropped,
    EndOfFile,
    InRecord,
    InRule,
    Rejected,
    RejectedWith,
    RejectWith,
    RpcProtocol,
    ServerError,
)

__all__ = [
    "ACCEPT",
    "DEFAULT_DATAGRAM_MAX_RECORD_SIZE",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_LINGER",
    "DEFAULT_MAX_EMPTY_FRAGMENTS",
    "DEFAULT_MAX_FRAGMENTS",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_QUEUED_DATAGRAMS",
    "DEFAULT_MAX_RECORD_SIZE",
    "DEFAULT_READ_BUFFER_LIMIT",
    "DENY",
    "DESCRIPTOR_RESERVE",
    "DROP",
    "END_OF_FILE",
    "IMPLIED",
    "MAX_CLOSING",
    "MAX_UDP_PAYLOAD_IPV4",
    "MAX_UDP_PAYLOAD_IPV6",
    "NEED_DATA",
    "PEER_ERROR_LOG_INTERVAL",
    "REJECT",
    "SUNRPC_ALPN",
    "__version__",
    "client_tls_options",
    "connect_datagram",
    "connect_rpc_client",
    "connect_stream",
    "datagram_rpc_client",
    "datagram_rpc_multiplex_controller",
    "default_max_connections",
    "encode_record",
    "listen_datagram",
    "listen_stream",
    "listener_counters",
    "server_tls_options",
    "stream_rpc_multiplex_controller",
    "ALPNMismatch",
    "Accepted",
    "AddressMismatch",
    "AddressRequired",
    "AuthError",
    "AuthSys",
    "BeforeRecord",
    "CallInfo",
    "CallTimeout",
    "ControllerBusy",
    "ControllerInactive",
    "Counters",
    "DatagramController",
    "DatagramTooLarge",
    "DeadlineExceeded",
    "Deadlines",
    "Denied",
    "Dropped",
    "EndOfFile",
    "Evicted",
    "FragmentHeader",
    "GarbageArguments",
    "HandshakeTimeout",
    "IRecordReceiver",
    "IRecordStreaming",
    "IRpcMultiplexController",
    "IdleTimeout",
    "InRecord",
    "InRule",
    "IncompleteRecord",
    "LocalProtocolError",
    "MalformedRecord",
    "Message",
    "NotConnected",
    "OnPeerError",
    "PlaintextInjection",
    "ProcedureUnavailable",
    "ProgramMismatch",
    "ProgramUnavailable",
    "ReadResult",
    "RecordDeadlineExceeded",
    "RecordReader",
    "RecordTooLarge",
    "RejectWith",
    "Rejected",
    "RejectedWith",
    "RemoteProtocolError",
    "RpcCallError",
    "RpcClient",
    "RpcProtocol",
    "RpcServer",
    "RpcVersionMismatch",
    "SendFailed",
    "ServerError",
    "ServerSystemError",
    "StartTLSRefused",
    "StreamConnection",
    "StreamController",
    "StreamControllerFactory",
    "TLSSessionProps",
    "TransportError",
    "WriteDeadlineExceeded",
]
