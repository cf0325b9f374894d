"""Agents: API keys (Bearer authentication, quotas, audit) for callers outside the designer, and the
code-interpreter session API (session pools, stateful sandbox sessions) they call."""
