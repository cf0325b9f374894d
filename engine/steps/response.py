"""Response: the reply to the HTTP request that started the run (the executor delivers it)."""
from engine.steps import Outcome


def run(ctx, params) -> Outcome:
    status = params.get("status_code", 200)
    if not isinstance(status, int) or not 100 <= status <= 599:
        return Outcome.failed(f"status_code must be an integer between 100 and 599, got {status!r}")
    headers = params.get("headers") or {}
    if not isinstance(headers, dict):
        return Outcome.failed("headers must be an object")
    return Outcome(output={"status_code": status, "headers": {str(k): str(v) for k, v in headers.items()},
                           "body": params.get("body")}, ports=())
