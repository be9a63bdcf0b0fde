# -*- test-case-name: rpctransport.test -*-
"""
Layer 3: the Twisted adapters that implement the controller contract.

They feed the sans-IO codecs of L{rpctransport.sansio} and act on what they
return; only this layer (and the entry points above it) touches reactors,
transports and timers.
"""
