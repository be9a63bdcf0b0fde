"""
Layer 5: an RPC client and server on the multiplex controllers, and
rpcbind registration.

  - C{rpctransport.rpc.client}: C{RpcClient}, calls over any controller
    (stream or datagram, plaintext or TLS) on Deferreds: xids allocated
    and matched, calls in flight bounded, per-call timeouts, UDP
    retransmission, errors as L{rpctransport.sansio.errors.RpcCallError}
    subclasses with their RFC 5531 numbers.
  - C{rpctransport.rpc.server}: C{RpcServer}, handlers registered per
    program, version and procedure, RFC 5531 answers for the rest,
    AUTH_SYS decoded, calls in progress bounded per connection, a
    duplicate-request cache on UDP.
  - C{rpctransport.rpc.rpcbind}: register a server's programs with the
    local rpcbind, and ask it where a program is.

Argument and result bodies are bytes: encode and decode them with the XDR
library of your choice (C{docs/rpc.rst} shows C{xdrlib3}).
"""
