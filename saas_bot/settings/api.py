"""The REST API v1 (saas_bot/api, docs/api.md): throttling, idempotency, uploads, the OpenAPI schema.

Its apps, exception handler and parsers are in base.py with Django's own."""
from saas_bot.settings.base import env
from saas_bot.settings.documents import DOCUMENT_MAX_BYTES

# Requests per API key (DRF rate syntax: N/second|minute|hour|day), counted in the default cache.
API_THROTTLE_RATE = env("API_THROTTLE_RATE", default="120/min")
# Stored responses of POSTs with an Idempotency-Key are replayed for this long (Stripe keeps 24 h).
API_IDEMPOTENCY_HOURS = env.int("API_IDEMPOTENCY_HOURS", default=24)
API_UPLOAD_MAX_FILES = env.int("API_UPLOAD_MAX_FILES", default=10)
# A multipart upload larger than this is refused with 413 before it is parsed (bytes).
API_UPLOAD_MAX_BYTES = env.int("API_UPLOAD_MAX_BYTES", default=API_UPLOAD_MAX_FILES * DOCUMENT_MAX_BYTES + 2**20)
SPECTACULAR_SETTINGS = {
    "TITLE": "saas_bot API",
    "DESCRIPTION": "Manage bots and documents, ask questions, read conversations and usage. Authenticate with "
                   "`Authorization: Api-Key <key>`. Errors: `{\"error\": {\"code\", \"message\", \"detail\"}}`. "
                   "See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from drf-spectacular-sidecar (served by us): nothing is fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two models have a "kind" field: the usage event's keeps KindEnum, a source's is named here.
    "ENUM_NAME_OVERRIDES": {"KindEnum": "billing.models.UsageEvent.Kind", "SourceKindEnum": "rag.models.Source.Kind"},
}
# An Idempotency-Key whose first request has not answered after this long is taken as abandoned (its
# process died) and may run again (seconds; longer than any request runs).
API_IDEMPOTENCY_ABANDONED_SECONDS = env.int("API_IDEMPOTENCY_ABANDONED_SECONDS", default=900)
