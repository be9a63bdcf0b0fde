# -*- test-case-name: rpctransport.test -*-
"""
Layer 4: entry points. Constructors from endpoints and descriptors, the demo
and the command line.
"""
