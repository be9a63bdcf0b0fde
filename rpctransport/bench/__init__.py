# -*- test-case-name: rpctransport.test.test_bench -*-
"""
The benchmark: C{rpctransport bench}, or C{python -m rpctransport.bench}.

It measures the transport against Twisted's ceiling (a bare C{Protocol}),
Twisted's own framing (C{Int32StringReceiver}) and libtirpc, side by side,
with senders and receivers in separate processes over loopback, and prints a
table. Machines are shared and noisy: every figure is the median of several
runs, reported with their min and max, and every target is a ratio against a
reference measured in the same run, never an absolute time. C{--quick} is the
smoke run CI makes; C{--json FILE} writes the results (structure in
L{rpctransport.bench.report}); C{--plot FILE.png} draws them (with
matplotlib: C{pip install 'rpctransport[plot]'}).

Layer 4, beside L{rpctransport.entry}:

  - L{rpctransport.bench.cli}: the command line;
  - L{rpctransport.bench.cases}: the cases (C{tlscase}: the TLS one);
  - L{rpctransport.bench.runner}: starting, stopping and repeating processes;
  - L{rpctransport.bench.report}: the results, the table, the JSON, the plot;
  - L{rpctransport.bench.peer}: the Twisted peers (receivers, echoes);
  - L{rpctransport.bench.haproxy}: HAProxy, for the scaling case;
  - C{_sender.py}: the byte sources, a standard-library script.

C{docs/performance.rst} has the results of a full run, and how to read them;
C{docs/scaling.rst} the scaling case's tables, written by C{--rst}.
"""
