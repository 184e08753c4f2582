"""Genesys Cloud Platform API client: auth, retries, request budget, paging, typed calls."""
