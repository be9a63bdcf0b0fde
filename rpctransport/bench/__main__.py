"""
C{python -m rpctransport.bench}: the benchmark (see L{rpctransport.bench}).
"""

import sys

from .cli import main

sys.exit(main())
