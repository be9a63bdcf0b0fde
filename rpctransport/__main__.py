"""
C{python -m rpctransport}: the C{rpctransport} program.
"""

from .program.cli import main

main()
