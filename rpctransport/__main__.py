"""
C{python -m rpctransport}: the C{rpctransport} program.
"""

from .entry.cli import main

main()
