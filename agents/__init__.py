"""Agents: API keys (Bearer authentication, quotas, audit) for callers outside the designer."""
