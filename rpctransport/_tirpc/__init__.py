# -*- test-case-name: rpctransport.test.test_interop -*-
"""
The libtirpc peers and the helpers that run peer programs.

  - L{rpctransport._tirpc.build}: compile C{tirpc_client.c} and
    C{tirpc_server.c}, which share C{tirpc_echo.h} (package data beside
    this module), against libtirpc, on demand, once per process;
  - L{rpctransport._tirpc.process}: run servers and clients (the C peers,
    C{python -m rpctransport}, the benchmark's own peers) as subprocesses.

Private: the interop tests (L{rpctransport.test.test_interop}) and the
benchmark (L{rpctransport.bench}) use them; nothing here is part of the
library's API.
"""
