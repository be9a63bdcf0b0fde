"""
Interoperability test harness: C programs built on libtirpc, and helpers to
build them and to run them (and C{python -m rpctransport}) as subprocesses.
"""
