"""Concurrent License Monitor for Genesys Cloud."""

__version__ = "0.1.0"
