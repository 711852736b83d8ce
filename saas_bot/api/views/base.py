"""What every API v1 endpoint shares: the company viewset base, pagination and the schema's error responses.

Each endpoint parses input, calls one service or selector with the request's company, renders. Every
queryset starts from ``.for_company(self.company)``: another company's object is a 404 like a missing one.
Business rules live in bots/rag/billing services (docs/api.md).
"""
from __future__ import annotations

from django.conf import settings
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import PageNumberPagination

from saas_bot.api import serializers as s
from saas_bot.api.authentication import ApiKeyAuthentication, ApiKeyRateThrottle, CompanyMember, request_company
from saas_bot.api.exceptions import RequestTooLarge
from saas_bot.api.idempotency import HEADER as IDEMPOTENCY_HEADER

ID_REGEX = r"[0-9]{1,18}"  # fits a bigint: longer ids cannot exist and never reach the database


def schema_error(description: str) -> OpenApiResponse:
    """An error response in the schema; its example carries the first code the description names."""
    code = description.replace(":", " ").replace(",", " ").split()[0].rstrip(".")
    example = OpenApiExample(code, value={"error": {"code": code, "message": description.split(": ", 1)[-1],
                                                    "detail": None}}, response_only=True)
    return OpenApiResponse(s.ErrorSerializer, description=description, examples=[example])


READ_ERRORS = {
    400: schema_error("validation_failed: a query parameter is not valid."),
    401: schema_error("not_authenticated / authentication_failed: no key, or an unknown, revoked or expired key."),
    403: schema_error("permission_denied: no company (platform staff without membership) or a viewer writing."),
    404: schema_error("not_found: no such object in your company (another company's objects look the same)."),
    429: schema_error("throttled: too many requests for this key; see Retry-After."),
}
WRITE_ERRORS = {
    **READ_ERRORS,
    400: schema_error("validation_failed, or the service's code (e.g. bot_token_invalid)."),
    409: schema_error("idempotency_key_in_progress: the first request with this Idempotency-Key still runs."),
    415: schema_error("unsupported_media_type."),
    422: schema_error("idempotency_key_reused: this Idempotency-Key was used for a different request."),
}
IDEMPOTENCY_PARAM = OpenApiParameter(
    IDEMPOTENCY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Up to 255 characters. Same key and same request within 24 h: the first response is "
                "returned again (header Idempotent-Replayed: true) and nothing runs twice.")


class Pagination(PageNumberPagination):
    """``?page=N&page_size=M`` (default 50, at most 200): ``{"count", "next", "previous", "results"}``."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class CompanyViewSet(viewsets.GenericViewSet):
    """Base: API key or session authentication, the request's company, per-key throttling."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [CompanyMember]
    throttle_classes = [ApiKeyRateThrottle]
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = ID_REGEX

    @property
    def company(self):
        if not hasattr(self, "_company"):
            self._company = request_company(self.request)
        return self._company

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "company": self.company}

    def max_body_bytes(self) -> int:
        """The largest request body this action accepts (bytes): Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
        (2.5 MiB) unless a view allows more (uploads: ``API_UPLOAD_MAX_BYTES``)."""
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440

    def initial(self, request, *args, **kwargs):
        """Refuse a body declared larger than ``max_body_bytes()`` before authentication, the
        Idempotency-Key fingerprint or any parser reads it: 413 ``request_too_large``.

        The declared length bounds every read: Django reads a request body through a stream limited to
        ``Content-Length`` (a body without one, e.g. chunked, reads as empty), so nothing past the limit is
        ever read, with or without ``Idempotency-Key``.
        """
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0  # Django reads such a body as empty too
        limit = self.max_body_bytes()
        if declared > limit:
            raise RequestTooLarge(f"The request body is {declared} bytes; this endpoint accepts at most {limit}.")
        super().initial(request, *args, **kwargs)
