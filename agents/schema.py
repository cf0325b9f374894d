"""drf-spectacular: the OpenAPI security scheme of `BearerKeyAuthentication`."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "agents.auth.BearerKeyAuthentication"
    name = "apiKeyBearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key from /keys/ (sw_...)."}
