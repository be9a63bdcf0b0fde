"""
Tests for rpctransport.
"""
