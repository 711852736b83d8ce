"""One error shape for the whole API: ``{"error": {"code", "message", "detail"}}`` (docs/api.md).

``saas_bot.errors.ServiceError`` subclasses keep their stable ``code``; DRF's own errors get the codes
below. Nothing under /api/ answers with an HTML page: unknown URLs get ``api_not_found`` and an
unexpected exception a logged 500 ``internal_error`` (a bug: user input must never cause one).
"""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework import status
from rest_framework.response import Response

from saas_bot.errors import ServiceError

logger = logging.getLogger("saas_bot.api")

# Service codes whose HTTP status differs from their class's ``status`` (saas_bot.errors).
STATUS_BY_CODE = {
    "document_too_large": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
}

class RequestTooLarge(drf.APIException):
    """A request body declared larger than the endpoint accepts: refused before any of it is read."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"
    default_detail = "The request body is too large."


# DRF exception class -> (our code, default message). Order matters: subclasses first.
DRF_CODES: list[tuple[type[drf.APIException], str]] = [
    (drf.ValidationError, "validation_failed"),
    (drf.NotAuthenticated, "not_authenticated"),
    (drf.AuthenticationFailed, "authentication_failed"),
    (drf.PermissionDenied, "permission_denied"),
    (drf.NotFound, "not_found"),
    (drf.MethodNotAllowed, "method_not_allowed"),
    (drf.NotAcceptable, "not_acceptable"),
    (drf.UnsupportedMediaType, "unsupported_media_type"),
    (drf.Throttled, "throttled"),
    (drf.ParseError, "parse_error"),
    (RequestTooLarge, "request_too_large"),
]


_SUSPICIOUS_MESSAGES = {
    "TooManyFieldsSent": "The request has too many form fields.",
    "TooManyFilesSent": "The request has too many files.",
}


def error_body(code: str, message: str, detail=None) -> dict:
    """The body of every API error."""
    return {"error": {"code": code, "message": message, "detail": detail}}


def api_exception_handler(exc, context):
    """DRF ``EXCEPTION_HANDLER``: map any exception to the one error shape with the right status.

    ServiceError: its ``.status`` (QuotaExceeded 429, NoLiveSubscription 402, NotFound 404,
    ValidationFailed 400, ProviderUnavailable 503; ``STATUS_BY_CODE`` overrides). DRF errors keep their
    status (401 with ``WWW-Authenticate: Api-Key``, 429 with ``Retry-After``). Request bodies over
    Django's limits: 413.
    """
    headers = {}
    if isinstance(exc, ServiceError):
        code = STATUS_BY_CODE.get(exc.code, exc.status)
        return Response(error_body(exc.code, exc.message, exc.detail), status=code)
    # Django's own messages name its settings ("...exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE"):
    # a client is told what is wrong in its request, never how the server is configured.
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("request_too_large", "The request body is too large."),
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("bad_request", _SUSPICIOUS_MESSAGES.get(type(exc).__name__,
                                                                          "The request is malformed.")),
                        status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = "%d" % max(1, round(exc.wait))
        code = next((name for cls, name in DRF_CODES if isinstance(exc, cls)), None)
        if code is None:
            code = exc.default_code if isinstance(exc.default_code, str) else "error"
        if isinstance(exc, drf.ValidationError):
            return Response(error_body(code, "The request is not valid; see detail for each field.", exc.detail),
                            status=exc.status_code, headers=headers)
        message = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        return Response(error_body(code, str(message)), status=exc.status_code, headers=headers)
    logger.exception("Unhandled API error in %s", context.get("view").__class__.__name__ if context else "?")
    return Response(error_body("internal_error", "An unexpected error occurred; it has been logged."),
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)


@csrf_exempt  # a POST to an unknown URL (e.g. with a trailing slash) is a 404, not Django's HTML CSRF page
def api_not_found(request, *args, **kwargs):
    """Any /api/ URL that matches no endpoint: the JSON 404, not Django's HTML page."""
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)
