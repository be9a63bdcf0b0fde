# -*- test-case-name: rpctransport.test -*-
"""
Layer 4: the library's entry points. Constructors of controllers from
endpoints, addresses and descriptors (L{rpctransport.entry.stream},
L{rpctransport.entry.datagram}), TLS options (L{rpctransport.entry.tls}) and
admission control for listeners (L{rpctransport.entry.admission}).

The program built on them (the command line, the echo test program) is
L{rpctransport.program}, a layer above.
"""
