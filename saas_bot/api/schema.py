"""drf-spectacular extensions: the Api-Key security scheme and the error shape for every operation."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """The two ways to send a key, either one (Swagger UI's Authorize button offers both): ``Authorization:
    Api-Key <prefix>.<secret>`` and ``Authorization: Bearer <prefix>.<secret>`` (RFC 6750's header form, which
    most HTTP clients and SDK generators set from a "bearer token" option)."""

    target_class = "saas_bot.api.authentication.ApiKeyAuthentication"
    name = ["ApiKeyAuth", "BearerAuth"]

    def get_security_requirement(self, auto_schema):
        # A list of requirement objects means "any one of them" in OpenAPI 3 (one object with two keys: both).
        return [{"ApiKeyAuth": []}, {"BearerAuth": []}]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "Authorization",
             "description": "The value is `Api-Key <key>`, e.g. `Api-Key AbCd1234.s3cr3t...`. Keys are created "
                            "by company owners/admins in the admin, or with `manage.py api_key_create`."},
            {"type": "http", "scheme": "bearer",
             "description": "The same key as a bearer token: `Authorization: Bearer AbCd1234.s3cr3t...`."},
        ]
