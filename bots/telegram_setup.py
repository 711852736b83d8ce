"""The bot's setup on Telegram: its token, command menu and webhook (bot-level Bot API calls).

Each call honours a 429 the bot got earlier (``bots.ratelimit`` holds) and reports Telegram's refusals as our
coded errors (``bots.telegram.service_error``), so the admin, the API and the commands show the same words.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from django.conf import settings

from bots import telegram as tg
from bots.models import Bot
from bots.ratelimit import flood_hold, flood_hold_remaining
from saas_bot.crypto import decrypt_secret
from saas_bot.errors import ProviderUnavailable, ValidationFailed

logger = logging.getLogger("saas_bot.bots")
T = TypeVar("T")


def bot_token(bot: Bot) -> str:
    """The bot's token, decrypted (never log or display it)."""
    return decrypt_secret(bot.token_encrypted)


def bot_setup_on_telegram(bot: Bot) -> None:
    """After connecting or replacing a token: the command menu, and the webhook if we have a public URL.

    Failures are recorded on ``bot.last_error`` (shown in the admin), never raised: the bot is saved.
    """
    try:
        bot_set_commands(bot=bot)
        if settings.PUBLIC_BASE_URL:
            bot_register_webhook(bot=bot)
    except (ValidationFailed, ProviderUnavailable) as exc:
        logger.warning("setting up bot %s on Telegram failed: %s", bot.id, exc.message)
        Bot.objects.filter(id=bot.id).update(last_error=f"Telegram: {exc.message}"[:2000])


def _telegram_call(bot: Bot, call: Callable[[str], T], *, what: str, max_wait: float | None = None) -> T:
    """One Bot API call for ``bot`` that honours Telegram's 429, with refusals as our coded errors.

    Before calling, the bot's hold (a 429 it got earlier, ``bots.ratelimit.flood_hold``) is waited out when it
    ends within ``max_wait`` seconds (default ``TELEGRAM_INLINE_WAIT_MAX_SECONDS``); a 429 sets the hold and is
    waited out and retried the same way (twice at most). A longer wait is not slept:
    ProviderUnavailable(code="telegram_flood_wait", detail={"retry_after": s}) lets the caller come back then.

    ``call(token)``: one function of ``bots.telegram``.

    Raises:
        the coded errors of :func:`bots.telegram.service_error`.
    """
    max_wait = settings.TELEGRAM_INLINE_WAIT_MAX_SECONDS if max_wait is None else max_wait
    token = bot_token(bot)
    for attempt in range(3):
        remaining = flood_hold_remaining(bot_id=bot.id)
        if remaining > max_wait:
            raise ProviderUnavailable(code="telegram_flood_wait", detail={"retry_after": remaining},
                                      message=f"{what}: Telegram asked to wait; {remaining:.0f} s left (429).")
        if remaining > 0:
            time.sleep(remaining)
        try:
            return call(token)
        except tg.TelegramFailed as exc:
            if exc.kind != tg.FLOOD_WAIT:
                raise tg.service_error(exc, what) from exc
            wait = exc.failure.retry_after
            flood_hold(bot_id=bot.id, seconds=wait)
            if wait > max_wait or attempt == 2:
                raise tg.service_error(exc, what) from exc
    raise AssertionError("unreachable")


def bot_set_commands(*, bot: Bot, max_inline_wait: float | None = None) -> None:
    """Register the command menu (``setMyCommands``): /start, /help, /new, /usage, /sources (bots.telegram.COMMANDS).

    ``max_inline_wait``: seconds a 429 may be slept here (default ``TELEGRAM_INLINE_WAIT_MAX_SECONDS``; 0 never:
    the caller schedules the retry, as ``telegram_webhooks`` does).

    Raises:
        the coded errors of :func:`_telegram_call` (a 429 is honoured first).
    """
    _telegram_call(bot, tg.set_my_commands, what="setMyCommands", max_wait=max_inline_wait)


def bot_webhook_info(*, bot: Bot, max_inline_wait: float | None = None) -> dict:
    """Telegram's ``getWebhookInfo`` for ``bot`` (``max_inline_wait`` as for :func:`bot_set_commands`).

    Returns:
        {"url": str, "pending_update_count": int, "last_error_message": str, "last_error_date": datetime | None,
         "max_connections": int | None, "allowed_updates": list[str], "matches": bool} where ``matches`` says
        the registered URL is the one this deployment expects (``PUBLIC_BASE_URL``).

    Raises:
        ValidationFailed(code="bot_token_invalid"): the token was revoked.
        ProviderUnavailable(code="telegram_unavailable").
    """
    info = _telegram_call(bot, tg.get_webhook_info, what="getWebhookInfo", max_wait=max_inline_wait)
    expected = tg.webhook_url_for(bot.public_id) if settings.PUBLIC_BASE_URL else ""
    return {**info, "matches": bool(expected) and info["url"] == expected}


def bot_delete_webhook(*, bot: Bot) -> None:
    """``deleteWebhook`` (pending updates kept by Telegram) and forget the URL.

    Raises:
        ValidationFailed(code="bot_token_invalid"), ProviderUnavailable(code="telegram_unavailable").
    """
    _telegram_call(bot, tg.delete_webhook, what="deleteWebhook")
    Bot.objects.filter(id=bot.id).update(webhook_url="")
    bot.webhook_url = ""


def bot_register_webhook(*, bot: Bot, max_inline_wait: float | None = None) -> str:
    """Register the bot's webhook (``setWebhook`` with its secret and allowed updates); returns the URL.

    ``max_inline_wait`` as for :func:`bot_set_commands`.

    Raises:
        ValidationFailed(code="public_base_url_missing"): ``PUBLIC_BASE_URL`` is not set.
        the coded errors of :func:`_telegram_call` (a 429 is honoured first; Telegram's words in the message).
    """
    if not settings.PUBLIC_BASE_URL:
        raise ValidationFailed(code="public_base_url_missing",
                               message="This server has no public address Telegram could send updates to yet; "
                                       "the platform's operator sets it (docs/deployment.md).")
    url = tg.webhook_url_for(bot.public_id)

    _telegram_call(bot, lambda token: tg.set_webhook(token, url=url, secret_token=bot.webhook_secret),
                   what="setWebhook", max_wait=max_inline_wait)
    Bot.objects.filter(id=bot.id).update(webhook_url=url, last_error="")
    return url

