"""
The C{twistd} plugin of rpctransport: C{twistd -n rpctransport-echo ...}
runs the echo test server as a Twisted service.

This directory must have no C{__init__.py}: it is merged into Twisted's own
C{twisted.plugins} package.
"""

from twisted.application.service import ServiceMaker

rpctransport_echo = ServiceMaker(
    "rpctransport echo server",
    "rpctransport.program.tap",
    "The ONC RPC echo test program (NULL and ECHO) over TCP, UDP and UNIX sockets.",
    "rpctransport-echo",
)
