"""API keys, roles and company/store scope."""
