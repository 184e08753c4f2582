"""Concurrent License Monitor for Genesys Cloud."""
