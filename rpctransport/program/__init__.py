# -*- test-case-name: rpctransport.test.test_cli -*-
"""
The C{rpctransport} program, above the entry points: what the command line,
the C{twistd} plugin and the benchmark's servers run.

  - L{rpctransport.program.cli}: the command line (C{rpctransport},
    C{python -m rpctransport});
  - L{rpctransport.program.commands}: its subcommands C{serve}, C{call} and
    C{demo};
  - L{rpctransport.program.workers}: C{serve --workers N}, the parent that
    binds the sockets and the workers that adopt them;
  - L{rpctransport.program.addresses}: parsing and printing of addresses,
    shared by the above;
  - L{rpctransport.program.echo}: the echo test program, an RPC application
    served and called by the subcommands;
  - L{rpctransport.program.tap}: the same server as a Twisted service for
    C{twistd -n rpctransport-echo};
  - L{rpctransport.program.tlsdemo}: the TLS part of C{rpctransport demo};
  - L{rpctransport.program.tuning}: process tuning for servers that move
    large records.

This package may import the benchmark (L{rpctransport.bench}, for the
C{bench} subcommand); nothing below it imports this package.
"""
