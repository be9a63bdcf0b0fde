# -*- test-case-name: rpctransport.test.test_rpcmsg -*-
"""
RPC message headers (RFC 5531): the public home of
L{rpctransport.sansio.rpcmsg}, where they are implemented.

Encode and decode call and reply headers, peek at the xid, build the whole
rejection reply for a L{Rejected <rpctransport.Rejected>} or
L{RejectedWith <rpctransport.RejectedWith>} record, and the RFC 9289
C{AUTH_TLS} probe and its C{STARTTLS} answer. No Twisted here.
"""

from .sansio.rpcmsg import *  # noqa: F401,F403
from .sansio.rpcmsg import __all__ as __all__
