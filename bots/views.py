"""The Telegram webhook: authenticate, store raw, acknowledge. Nothing slow happens here.

Telegram resends an update for up to a day on any non-2xx answer and holds back
the chat meanwhile, so the view answers 200 to every well-formed update of a
known bot (even kinds we ignore) and only refuses what Telegram itself would
never send: an unknown bot (404), a wrong secret (403), a body that is not an
update (400) or too large (413).
"""
from __future__ import annotations

import hmac
import json
import math
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bots.models import Bot
from bots.inbox import update_receive

logger = logging.getLogger("saas_bot.bots")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_BIGINT_MAX = 2**63 - 1


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(literal: str) -> float | str:
    """A JSON number with a fraction or exponent; one a double cannot hold (``1e999``) is kept as its literal
    text, since PostgreSQL's jsonb has no infinity and the update must still be stored."""
    value = float(literal)
    return value if math.isfinite(value) else literal


def _parse_int(literal: str) -> int | str:
    """A JSON integer; one longer than Python converts (4,300 digits, ``sys.int_info``) is kept as text."""
    return int(literal) if len(literal) <= 4000 else literal


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"ok": False, "error": {"code": code, "message": message}}, status=status)


# Webhook lookups are cached per process for a few seconds: the bot row is read on every update
# and changes rarely. A rotated secret or a deleted bot takes effect within this time.
WEBHOOK_BOT_CACHE_SECONDS = 10.0
_bot_cache: dict[str, tuple[float, dict | None]] = {}


def _bot_for_webhook(public_id: str) -> dict | None:
    now = time.monotonic()
    hit = _bot_cache.get(public_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    bot = Bot.objects.filter(public_id=public_id).values("id", "company_id", "webhook_secret").first()
    if len(_bot_cache) > 10_000:  # unknown ids are cached too; keep the dict bounded
        _bot_cache.clear()
    _bot_cache[public_id] = (now + WEBHOOK_BOT_CACHE_SECONDS, bot)
    return bot


def webhook_cache_clear() -> None:
    """Forget cached webhook lookups (tests; after rotating a secret in this process)."""
    _bot_cache.clear()


def _error_body(code: str, message: str) -> dict:
    return {"ok": False, "error": {"code": code, "message": message}}


def webhook_handle(*, public_id: str, secret: str, content_length: str | None,
                   read: Callable[[int], bytes]) -> tuple[int, dict]:
    """Everything the webhook does after routing, for the Django view and the WSGI fast path alike.

    Args:
        public_id: the bot's public id from the URL.
        secret: the ``X-Telegram-Bot-Api-Secret-Token`` header ("" when missing).
        content_length: the ``Content-Length`` header as sent (None or "" when missing).
        read: reads up to n bytes of the body.

    Returns:
        (HTTP status, JSON body): 200 stored (or a redelivery), 404 unknown bot, 403 wrong secret, 413 too
        large, 400 not an update.

    Raises:
        django.db.Error: the database is away; nothing was acknowledged.
    """
    bot = _bot_for_webhook(public_id)
    if bot is None:
        return 404, _error_body("bot_not_found", "No bot at this address.")
    if not hmac.compare_digest(secret.encode(), bot["webhook_secret"].encode()):
        return 403, _error_body("webhook_secret_invalid", "Missing or wrong secret token.")
    limit = settings.TELEGRAM_WEBHOOK_MAX_BYTES
    try:
        declared = int(content_length or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return 413, _error_body("update_too_large", f"Updates are limited to {limit} bytes.")
    body = read(limit + 1)
    if len(body) > limit:
        return 413, _error_body("update_too_large", f"Updates are limited to {limit} bytes.")
    try:
        payload = json.loads(body, parse_constant=_reject_constant, parse_float=_parse_float,
                             parse_int=_parse_int)
    except (ValueError, RecursionError):
        return 400, _error_body("update_invalid", "The body is not JSON.")
    update_id = payload.get("update_id") if isinstance(payload, dict) else None
    if type(update_id) is not int or not 0 <= update_id <= _BIGINT_MAX:
        return 400, _error_body("update_invalid", "The body is not a JSON object with an integer update_id.")
    update_receive(bot_id=bot["id"], company_id=bot["company_id"], payload=payload)
    return 200, {"ok": True}


@csrf_exempt
def telegram_webhook(request: HttpRequest, public_id: str) -> HttpResponse:
    """POST /telegram/webhook/<public id>/ : store the update and return 200 at once.

    In production the WSGI fast path (:func:`webhook_fast_path`) answers these POSTs before Django's
    middleware; this view serves the test client, ``runserver`` and any other method (405).
    """
    if request.method != "POST":
        return _error(405, "method_not_allowed", "Telegram webhooks are POST requests.")
    declared = request.META.get("CONTENT_LENGTH")
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not declared and "wsgi.input" in request.META:
        # No Content-Length: Django's request stream reads nothing; gunicorn's input decodes chunks.
        read = request.META["wsgi.input"].read
    else:
        read = request.read
    status, body = webhook_handle(public_id=public_id, secret=request.headers.get(SECRET_HEADER, ""),
                                  content_length=declared, read=read)
    return JsonResponse(body, status=status)


WEBHOOK_PREFIX = "/telegram/webhook/"
_REASONS = {200: "200 OK", 400: "400 Bad Request", 403: "403 Forbidden", 404: "404 Not Found",
            413: "413 Content Too Large", 503: "503 Service Unavailable"}


def webhook_fast_path(django_app: Callable) -> Callable:
    """Wrap the Django WSGI application: webhook POSTs are answered without Django's request machinery.

    ``POST /telegram/webhook/<public id>[/]`` goes straight to :func:`webhook_handle` (same checks, same
    answers as the view), skipping URL resolution, the middleware stack (sessions, CSRF, auth, messages,
    security headers: none of which a webhook uses) and the request/response objects. Everything else,
    including other methods on the webhook URL, goes to ``django_app``.

    Database connection: like a Django request it honours ``CONN_MAX_AGE`` and closes a connection that had
    errors, but instead of ``CONN_HEALTH_CHECKS``' ``SELECT 1`` before each request it runs the INSERT and, if
    a kept connection turns out broken (OperationalError/InterfaceError), reconnects and runs it once more
    (the INSERT ... ON CONFLICT DO NOTHING is idempotent). If that fails too: 503 (Telegram resends).
    """
    from django.db import DataError, InterfaceError, OperationalError, connection

    def application(environ: dict, start_response: Callable):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not path.startswith(WEBHOOK_PREFIX):
            return django_app(environ, start_response)
        public_id = path[len(WEBHOOK_PREFIX):]
        if public_id.endswith("/"):
            public_id = public_id[:-1]
        if not public_id or "/" in public_id:
            return django_app(environ, start_response)
        stream = environ["wsgi.input"]
        declared = environ.get("CONTENT_LENGTH")
        try:
            length = int(declared) if declared else None
        except ValueError:
            length = 0
        if length is None and "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            length = 0

        buffered: list[bytes] = []

        def read(n: int) -> bytes:  # kept, so a retry on a new connection sees the same body
            if not buffered:
                buffered.append(stream.read(n if length is None else min(n, max(length, 0))))
            return buffered[0]

        secret = environ.get("HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN", "")
        if not connection.in_atomic_block:  # (a test's transaction: leave its connection alone)
            connection.close_if_unusable_or_obsolete()  # CONN_MAX_AGE, errors of an earlier request
            connection.health_check_done = True  # no SELECT 1: a broken kept connection is retried below
        fresh = connection.connection is None
        try:
            try:
                status, body = webhook_handle(public_id=public_id, secret=secret, content_length=declared,
                                              read=read)
            except (OperationalError, InterfaceError):
                if fresh:
                    raise
                logger.info("webhook: kept database connection broken; reconnecting once")
                connection.close()
                status, body = webhook_handle(public_id=public_id, secret=secret, content_length=declared,
                                              read=read)
        except (OperationalError, InterfaceError):
            logger.warning("webhook: database unavailable", exc_info=True)
            connection.close()
            status, body = 503, _error_body("database_unavailable", "Try again later.")
        except DataError:
            logger.warning("webhook: the database refused an update", exc_info=True)
            status, body = 400, _error_body("update_invalid", "The update could not be stored.")
        data = json.dumps(body, separators=(", ", ": ")).encode()
        start_response(_REASONS[status], [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(data)))])
        return [data]

    return application
