"""``Idempotency-Key`` on POST: the first response is stored per (company, key) and replayed.

Rules (docs/api.md, "Idempotency"), after Stripe's and the IETF draft "The Idempotency-Key HTTP Header
Field" (draft-ietf-httpapi-idempotency-key-header):
- same key, same request (method, path, data) within ``API_IDEMPOTENCY_HOURS``: the stored status and
  body are returned with ``Idempotent-Replayed: true``; nothing runs again;
- same key, different request: 422 ``idempotency_key_reused``;
- same key while the first request still runs: 409 ``idempotency_key_in_progress`` (retry later);
- responses with status 429 or 5xx are not kept: the key can be retried.
The record is inserted before the work runs (unique company + key), so two concurrent requests with
one key never both run.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from saas_bot.api.models import IdempotencyRecord
from saas_bot.errors import ValidationFailed

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
KEY_MAX_LENGTH = 255


def _hash_value(digest, value) -> None:
    if isinstance(value, UploadedFile):
        digest.update(f"file:{value.name}:{value.size}:".encode())
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
    else:
        digest.update(json.dumps(value, sort_keys=True, default=str).encode())


def request_fingerprint(request) -> str:
    """SHA-256 over method, path and the parsed data (uploaded files by name, size and content)."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    data = request.data
    if hasattr(data, "lists"):  # QueryDict / MultiValueDict (form and multipart bodies)
        items = sorted(data.lists(), key=lambda kv: kv[0])
        for key, values in items:
            digest.update(f"\n{key}=".encode())
            for value in values:
                _hash_value(digest, value)
        for key, files in sorted(request.FILES.lists(), key=lambda kv: kv[0]):
            if key in data:
                continue
            digest.update(f"\n{key}=".encode())
            for value in files:
                _hash_value(digest, value)
    else:
        _hash_value(digest, data)
    return digest.hexdigest()


def idempotency_key_of(request) -> str | None:
    """The request's Idempotency-Key header (stripped), None when absent.

    Raises:
        ValidationFailed(code="idempotency_key_invalid"): empty, longer than 255 characters, or not
            printable ASCII.
    """
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    # The IETF draft makes the key a Structured Field string: printable ASCII only.
    if not key or len(key) > KEY_MAX_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise ValidationFailed(code="idempotency_key_invalid",
                               message=f"{HEADER} must be 1-{KEY_MAX_LENGTH} printable ASCII characters.")
    return key


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(json.loads(record.response_body) if record.response_body else None,
                        status=record.status_code)
    response[REPLAY_HEADER] = "true"
    return response


def idempotent(handler):
    """Decorate a POST handler of a company-scoped view (``self.company``) to honour Idempotency-Key."""

    @functools.wraps(handler)
    def wrapper(self, request, *args, **kwargs):
        key = idempotency_key_of(request)
        if key is None:
            return handler(self, request, *args, **kwargs)
        company = self.company
        fingerprint = request_fingerprint(request)
        record, early = _claim(company, key, fingerprint)
        if early is not None:
            return early
        request.idempotency_key = key
        try:
            response = handler(self, request, *args, **kwargs)
        except Exception:
            IdempotencyRecord.objects.filter(id=record.id).delete()
            raise
        return _store(record, response)

    return wrapper


def _claim(company, key: str, fingerprint: str) -> tuple[IdempotencyRecord | None, Response | None]:
    """Insert the (company, key) row, or return the response owed to a duplicate (replay, 409, 422).

    An expired row (older than ``API_IDEMPOTENCY_HOURS``) or an abandoned one (still without a
    response after ``API_IDEMPOTENCY_ABANDONED_SECONDS``: its process died) is deleted and claimed again.
    """
    now = timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(company=company, key=key, fingerprint=fingerprint), None
        except IntegrityError:
            record = IdempotencyRecord.objects.for_company(company).filter(key=key).first()
        if record is None:  # deleted in between: claim again
            continue
        expired = record.created_at < now - dt.timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
        abandoned = record.status_code is None and record.created_at < now - dt.timedelta(
            seconds=settings.API_IDEMPOTENCY_ABANDONED_SECONDS)
        if expired or abandoned:
            IdempotencyRecord.objects.filter(id=record.id, created_at=record.created_at).delete()
            continue
        if record.fingerprint != fingerprint:
            return None, _error(422, "idempotency_key_reused",
                                f"This {HEADER} was used for a different request in the last "
                                f"{settings.API_IDEMPOTENCY_HOURS} hours.")
        if record.status_code is None:
            return None, _error(409, "idempotency_key_in_progress",
                                f"A request with this {HEADER} is still being processed; retry shortly.")
        return None, _replay(record)
    return None, _error(409, "idempotency_key_in_progress",
                        f"A request with this {HEADER} is still being processed; retry shortly.")


def idempotency_records_purge(*, now: dt.datetime | None = None) -> int:
    """Delete stored responses older than ``API_IDEMPOTENCY_HOURS`` (hourly from beat); returns how many."""
    horizon = (now or timezone.now()) - dt.timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    return IdempotencyRecord.objects.filter(created_at__lt=horizon).delete()[0]


def _error(status_code: int, code: str, message: str) -> Response:
    from saas_bot.api.exceptions import error_body

    return Response(error_body(code, message), status=status_code)


def _store(record: IdempotencyRecord, response: Response) -> Response:
    if response.status_code == 429 or response.status_code >= 500:
        IdempotencyRecord.objects.filter(id=record.id).delete()
        return response
    body = JSONRenderer().render(response.data).decode() if response.data is not None else ""
    IdempotencyRecord.objects.filter(id=record.id).update(status_code=response.status_code, response_body=body)
    return response
