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
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bots.models import Bot
from bots.inbox import update_receive

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


@csrf_exempt
def telegram_webhook(request: HttpRequest, public_id: str) -> HttpResponse:
    """POST /telegram/webhook/<public id>/ : store the update and return 200 at once."""
    if request.method != "POST":
        return _error(405, "method_not_allowed", "Telegram webhooks are POST requests.")
    bot = _bot_for_webhook(public_id)
    if bot is None:
        return _error(404, "bot_not_found", "No bot at this address.")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), bot["webhook_secret"].encode()):
        return _error(403, "webhook_secret_invalid", "Missing or wrong secret token.")
    limit = settings.TELEGRAM_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return _error(413, "update_too_large", f"Updates are limited to {limit} bytes.")
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not declared and "wsgi.input" in request.META:
        # No Content-Length: Django's request stream reads nothing; gunicorn's input decodes chunks.
        body = request.META["wsgi.input"].read(limit + 1)
    else:
        body = request.read(limit + 1)
    if len(body) > limit:
        return _error(413, "update_too_large", f"Updates are limited to {limit} bytes.")
    try:
        payload = json.loads(body, parse_constant=_reject_constant, parse_float=_parse_float,
                             parse_int=_parse_int)
    except (ValueError, RecursionError):
        return _error(400, "update_invalid", "The body is not JSON.")
    update_id = payload.get("update_id") if isinstance(payload, dict) else None
    if type(update_id) is not int or not 0 <= update_id <= _BIGINT_MAX:
        return _error(400, "update_invalid", "The body is not a JSON object with an integer update_id.")
    update_receive(bot_id=bot["id"], company_id=bot["company_id"], payload=payload)
    return JsonResponse({"ok": True})
