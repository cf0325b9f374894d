"""Response: the reply to the HTTP request that started the run (the executor delivers it).

The reply is held to `engine.response_policy` here, after mapping, so a value that came from the
caller (a header line break, a Content-Type of text/html) fails this step instead of going out."""
from engine import response_policy
from engine.steps import Outcome


def run(ctx, params) -> Outcome:
    status = params.get("status_code", 200)
    headers = params.get("headers") or {}
    if isinstance(headers, dict):
        headers = {str(k): v if isinstance(v, str) else str(v) for k, v in headers.items()}
    output = {"status_code": status, "headers": headers, "body": params.get("body")}
    try:
        response_policy.render(output)
    except response_policy.Refused as exc:
        return Outcome.failed(str(exc))
    return Outcome(output=output, ports=())
