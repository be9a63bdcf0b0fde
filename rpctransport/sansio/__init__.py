# -*- test-case-name: rpctransport.test -*-
"""
Layer 1: the sans-IO core. Value types, errors and codecs over bytes.

Nothing in this package imports Twisted or any other part of rpctransport
above it; the Twisted adapters in L{rpctransport.adapters} feed these codecs
and act on what they return. A test (C{test_layers}) keeps it that way.
"""
