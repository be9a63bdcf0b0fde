# -*- test-case-name: rpctransport.test.test_memory -*-
"""
Helpers for testing code that uses rpctransport, without sockets.

L{CertificateAuthority} (in L{rpctransport.testing.pki}) issues throwaway
certificates for TLS tests (needs C{cryptography}, part of the C{tls} extra).

L{controller_pair} (in L{rpctransport.testing.memory}) gives two connected
stream controllers joined in memory: what one writes, the other reads,
synchronously, so trial's C{SynchronousTestCase} with C{successResultOf} is
all a test needs. Timers run on a L{twisted.internet.task.Clock}. For
example::

    from rpctransport.testing import controller_pair

    client, server = controller_pair()
    d = server.start_reading()
    client.start_writing(b"call")
    record, peer = self.successResultOf(d)
"""

from .memory import MemoryTransport, controller_pair
from .pki import CertificateAuthority, IssuedCertificate

__all__ = ["CertificateAuthority", "IssuedCertificate", "MemoryTransport", "controller_pair"]
