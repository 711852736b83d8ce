"""A bot's life: connect it by its token, replace the token, enable or disable it, change its settings,
delete it, and what happens when Telegram revokes its token."""
from __future__ import annotations

import logging
import re
import time

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from billing.services import quota_check_bot_add
from bots import telegram as tg
from bots.models import Bot
from bots.telegram_setup import bot_delete_webhook, bot_setup_on_telegram, bot_token
from saas_bot.crypto import encrypt_secret
from saas_bot.errors import NotFound, ProviderUnavailable, ValidationFailed
from tenants.models import Company, Membership

logger = logging.getLogger("saas_bot.bots")


# @BotFather tokens: the bot's numeric id, a colon, and a secret of letters, digits, "_" and "-".
TOKEN_PATTERN = re.compile(r"\d{3,20}:[A-Za-z0-9_-]{30,80}")


def _mask(token: str) -> str:
    return f"{token.split(':', 1)[0]}:…{token[-4:]}" if ":" in token else f"…{token[-4:]}"


def bot_connect(*, company: Company, token: str, name: str = "", register_webhook: bool = True) -> Bot:
    """Connect a Telegram bot to ``company`` by its token.

    The token is checked with ``getMe``, stored encrypted (Fernet) and never shown again. If
    ``PUBLIC_BASE_URL`` is set and ``register_webhook``, the webhook is registered after commit.

    Raises:
        ValidationFailed(code="bot_token_invalid"): Telegram rejected the token.
        ValidationFailed(code="bot_already_connected"): this Telegram bot is connected already.
        ProviderUnavailable(code="telegram_unavailable"): Telegram could not be reached.
        QuotaExceeded(code="quota_bots"): the plan's bot limit is reached.
    """
    token = bot_token_format_check(token=token)
    _quota_check_bots(company)
    me = _token_identity(token)
    if Bot.objects.filter(telegram_id=me["id"]).exists():
        raise ValidationFailed(code="bot_already_connected", message=f"@{me['username']} is already connected.")
    with transaction.atomic():
        bot = Bot.objects.create(company=company, name=name or me["first_name"] or me["username"],
                                 username=me["username"] or "", telegram_id=me["id"],
                                 token_encrypted=encrypt_secret(token), token_hint=_mask(token))
        if register_webhook:
            transaction.on_commit(lambda: bot_setup_on_telegram(bot))
    return bot


def bot_set_status(*, bot: Bot, active: bool) -> Bot:
    """Enable (re-register the webhook when ``PUBLIC_BASE_URL`` is set) or disable (``deleteWebhook``) a bot.

    Telegram errors while disabling are recorded on ``last_error``: a disabled bot never answers anyway.

    Raises:
        ValidationFailed(code="bot_token_revoked"): enabling a bot whose token was revoked (replace it).
    """
    if active:
        if bot.status == Bot.Status.TOKEN_REVOKED:
            raise ValidationFailed(code="bot_token_revoked",
                                   message="Telegram revoked this bot's token; paste a new token to enable it.")
        Bot.objects.filter(id=bot.id).update(status=Bot.Status.ACTIVE)
        bot.status = Bot.Status.ACTIVE
        bot_setup_on_telegram(bot)
        return bot
    Bot.objects.filter(id=bot.id).update(status=Bot.Status.DISABLED)
    bot.status = Bot.Status.DISABLED
    try:
        bot_delete_webhook(bot=bot)
    except (ValidationFailed, ProviderUnavailable) as exc:
        Bot.objects.filter(id=bot.id).update(last_error=exc.message[:2000])
    return bot


def bot_replace_token(*, bot: Bot, token: str) -> Bot:
    """Give ``bot`` a new token (after @BotFather /revoke) keeping its chats, conversations and usage.

    The token must belong to the same Telegram bot (same id from ``getMe``). The bot becomes active,
    and its commands and webhook are registered again.

    Raises:
        ValidationFailed(code="bot_token_invalid" | "bot_token_other_bot"),
        ProviderUnavailable(code="telegram_unavailable").
    """
    token = bot_token_format_check(token=token)
    me = _token_identity(token)
    if bot.telegram_id and me["id"] != bot.telegram_id:
        raise ValidationFailed(code="bot_token_other_bot",
                               message=f"This token belongs to @{me['username']}, not to {bot}.")
    Bot.objects.filter(id=bot.id).update(token_encrypted=encrypt_secret(token), token_hint=_mask(token),
                                         username=me["username"] or "", telegram_id=me["id"],
                                         status=Bot.Status.ACTIVE, last_error="")
    bot.refresh_from_db()
    bot_setup_on_telegram(bot)
    return bot


def bot_delete(*, bot: Bot) -> None:
    """Delete ``bot`` with its chats and conversations; its webhook is removed first (best effort).

    Usage events stay in the ledger (they keep the bot id).
    """
    if bot.status != Bot.Status.TOKEN_REVOKED:
        try:
            bot_delete_webhook(bot=bot)
        except (ValidationFailed, ProviderUnavailable) as exc:
            logger.info("deleteWebhook for bot %s failed while deleting it: %s", bot.id, exc)
    bot.delete()


def bot_token_format_check(*, token: str) -> str:
    """The token stripped, if it has @BotFather's shape (``TOKEN_PATTERN``); no Telegram call, so forms may
    use it while validating. Whether Telegram accepts it is ``bot_connect``'s / ``bot_replace_token``'s.

    Raises:
        ValidationFailed(code="bot_token_invalid").
    """
    token = token.strip()
    if not TOKEN_PATTERN.fullmatch(token):
        raise ValidationFailed(code="bot_token_invalid",
                               message="That does not look like a bot token (digits, a colon, then 30+ characters "
                                       "from @BotFather).")
    return token


def _token_identity(token: str) -> dict:
    """``getMe`` for ``token`` with Telegram's refusals as our coded errors.

    A 429 of at most ``TELEGRAM_INLINE_WAIT_MAX_SECONDS`` is waited out once; a longer one is raised.

    Raises:
        ValidationFailed(code="bot_token_invalid"), ProviderUnavailable(code="telegram_unavailable" |
        "telegram_flood_wait").
    """
    for attempt in range(2):
        try:
            return tg.get_me(token)
        except tg.TelegramFailed as exc:
            wait = exc.failure.retry_after if exc.kind == tg.FLOOD_WAIT else None
            if wait is not None and wait <= settings.TELEGRAM_INLINE_WAIT_MAX_SECONDS and not attempt:
                time.sleep(wait)
                continue
            error = tg.service_error(exc, "getMe")
            if error.code == "telegram_rejected":
                raise ValidationFailed(code="bot_token_invalid", message=error.message) from exc
            raise error from exc
    raise AssertionError("unreachable")


def bot_refresh_identity(*, bot: Bot) -> Bot:
    """Re-read the bot's username and id from ``getMe`` (bots can be renamed in @BotFather).

    Raises:
        bots.telegram.TelegramFailed: Telegram refused (kind TOKEN_REVOKED: the token was revoked).
    """
    me = tg.get_me(bot_token(bot))
    Bot.objects.filter(id=bot.id).update(username=me["username"] or "", telegram_id=me["id"])
    bot.username, bot.telegram_id = me["username"] or "", me["id"]
    return bot


def _quota_check_bots(company: Company) -> None:
    quota_check_bot_add(company=company, current_bots=Bot.objects.for_company(company).count())


def bot_token_revoked(*, bot: Bot) -> None:
    """Telegram answered 401 for ``bot``: disable it and tell the company's owners and admins by email.

    Idempotent: only the first call after the token stopped working sends the email.
    """
    changed = Bot.objects.filter(id=bot.id).exclude(status=Bot.Status.TOKEN_REVOKED).update(
        status=Bot.Status.TOKEN_REVOKED,
        last_error="Telegram rejected the token (401): it was revoked in @BotFather. Paste the new token.")
    if not changed:
        return
    recipients = sorted({m.user.email for m in Membership.objects.filter(
        company_id=bot.company_id, role__in=[Membership.Role.OWNER, Membership.Role.ADMIN]).select_related("user")
        if m.user.email})
    logger.warning("bot %s: token revoked; telling %d admins", bot.id, len(recipients))
    if recipients:
        send_mail(subject=f"Your Telegram bot {bot} stopped: its token was revoked",
                  message=(f"Telegram no longer accepts the token of {bot} (HTTP 401). The bot does not answer "
                           "until you paste its new token (from @BotFather, /token or /revoke) on the bot's page "
                           "in the admin. Its chats, conversations and usage are kept."),
                  from_email=None, recipient_list=recipients, fail_silently=True)


# Settings a company may change on a bot (the API's and the admin's form fields).
BOT_SETTINGS_FIELDS = ("name", "persona", "welcome_text", "help_text", "language", "limit_message",
                       "max_messages_per_period", "edited_messages", "conversation_idle_minutes")


def bot_update(*, bot: Bot, changes: dict | None = None, collections: list | None = None, token: str | None = None,
               status: str | None = None) -> Bot:
    """One change of a bot, the same from the API, the admin and commands: a new token first (the same
    Telegram bot, after @BotFather /revoke), then settings and collections, then enabling or disabling.

    Args:
        changes: settings (``BOT_SETTINGS_FIELDS``) -> value, validated by the caller's form or serializer.
        collections: rag.Collection rows (replace the bot's set; [] = all documents); None = unchanged.
        token: a replacement token; None or "" = unchanged.
        status: Bot.Status.ACTIVE or DISABLED; None (or the current status) = unchanged.

    Returns:
        The bot as stored now.

    Raises:
        the errors of :func:`bot_replace_token`, :func:`bot_settings_update` and :func:`bot_set_status`.
    """
    if token:
        bot = bot_replace_token(bot=bot, token=token)
    if changes or collections is not None:
        bot = bot_settings_update(bot=bot, changes=changes or {}, collections=collections)
    if status is not None and status != bot.status:
        bot = bot_set_status(bot=bot, active=status == Bot.Status.ACTIVE)
    bot.refresh_from_db()
    return bot


def bot_settings_update(*, bot: Bot, changes: dict, collections: list | None = None) -> Bot:
    """Change ``bot``'s settings (``BOT_SETTINGS_FIELDS``) and, when given, its collections.

    Args:
        changes: field -> value, already validated by the caller's form or serializer.
        collections: rag.Collection rows (replace the bot's set; [] = all documents); None = unchanged.

    Raises:
        ValidationFailed(code="bot_setting_unknown"): a field outside BOT_SETTINGS_FIELDS.
        NotFound(code="collection_not_found"): a collection of another company.
    """
    unknown = set(changes) - set(BOT_SETTINGS_FIELDS)
    if unknown:
        raise ValidationFailed(code="bot_setting_unknown", message=f"Not a bot setting: {', '.join(sorted(unknown))}.")
    if collections is not None and any(c.company_id != bot.company_id for c in collections):
        raise NotFound(code="collection_not_found", message="Collection not found.")
    with transaction.atomic():
        if changes:
            for field, value in changes.items():
                setattr(bot, field, value)
            bot.save(update_fields=list(changes))
        if collections is not None:
            bot.collections.set(collections)
    return bot

