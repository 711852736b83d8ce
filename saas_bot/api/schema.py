"""drf-spectacular extensions: the Api-Key security scheme and the error shape for every operation."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """``Authorization: Api-Key <prefix>.<secret>`` in the schema (Swagger UI's Authorize button)."""

    target_class = "saas_bot.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "The value is `Api-Key <key>`, e.g. `Api-Key AbCd1234.s3cr3t...`. Keys are created "
                               "by company owners/admins in the admin, or with `manage.py api_key_create`."}
