"""Every model of the governance app, defined in one module per concern and re-exported here."""
from governance.audit import AuditChainHead, AuditEvent  # noqa: F401
from governance.policies import Policy  # noqa: F401
from governance.secrets import Secret  # noqa: F401
from governance.usage import Usage  # noqa: F401
