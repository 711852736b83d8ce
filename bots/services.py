"""Writes on bots and the answer pipeline shared by Telegram, the ``ask`` command, the API and the playground."""
from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager
import re
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from telegram.error import TelegramError

from billing.ledger import usage_enqueue
from billing.models import DEFAULT_LIMIT_MESSAGES, UsageEvent
from billing.quotas import limit_notice_claim, quota_release_message, quota_reserve, quota_settle
from billing.services import quota_check_bot_add, subscription_get_live
from bots import telegram as tg
from bots import telegram_errors
from bots.ratelimit import flood_hold, flood_hold_remaining
from bots.models import Bot, Chat, Conversation, Message, TelegramUpdate, TelegramUser
from rag.answering import answer_question
from saas_bot.crypto import decrypt_secret, encrypt_secret
from saas_bot.errors import NoLiveSubscription, NotFound, ProviderUnavailable, QuotaExceeded, ValidationFailed
from tenants.models import Company

logger = logging.getLogger("saas_bot.bots")

# @BotFather tokens: the bot's numeric id, a colon, and a secret of letters, digits, "_" and "-".
TOKEN_PATTERN = re.compile(r"\d{3,20}:[A-Za-z0-9_-]{30,80}")
# Telegram Bot API: a text message is at most 4096 characters.
QUESTION_MAX_CHARS = 4096
NO_SUBSCRIPTION_TEXT = "Sorry, this assistant is not available at the moment. Please try again later."


def _mask(token: str) -> str:
    return f"{token.split(':', 1)[0]}:…{token[-4:]}" if ":" in token else f"…{token[-4:]}"


def bot_token(bot: Bot) -> str:
    """The bot's token, decrypted (never log or display it)."""
    return decrypt_secret(bot.token_encrypted)


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
    token = _token_checked(token)
    _quota_check_bots(company)
    me = _token_identity(token)
    if Bot.objects.filter(telegram_id=me["id"]).exists():
        raise ValidationFailed(code="bot_already_connected", message=f"@{me['username']} is already connected.")
    with transaction.atomic():
        bot = Bot.objects.create(company=company, name=name or me["first_name"] or me["username"],
                                 username=me["username"] or "", telegram_id=me["id"],
                                 token_encrypted=encrypt_secret(token), token_hint=_mask(token))
        if register_webhook:
            transaction.on_commit(lambda: _bot_setup_on_telegram(bot))
    return bot


def _bot_setup_on_telegram(bot: Bot) -> None:
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


@contextmanager
def _coded_telegram_errors(what: str = ""):
    """Telegram's refusals inside the block as our coded errors (``bots.telegram_errors.classify``).

    Raises:
        ValidationFailed(code="bot_token_invalid"): 401/404 (InvalidToken).
        ProviderUnavailable(code="telegram_flood_wait"): 429; ``detail={"retry_after": seconds}``.
        ProviderUnavailable(code="telegram_unavailable"): 5xx, timeouts, connection errors.
        ValidationFailed(code="telegram_rejected"): any other refusal (400, 403, 409), with Telegram's words.
    """
    prefix = f"{what}: " if what else ""
    try:
        yield
    except TelegramError as exc:
        failure = telegram_errors.classify(exc)
        if failure.kind == telegram_errors.TOKEN_REVOKED:
            raise ValidationFailed(code="bot_token_invalid", message="Telegram rejected this bot token.") from None
        if failure.kind == telegram_errors.FLOOD_WAIT:
            raise ProviderUnavailable(code="telegram_flood_wait", detail={"retry_after": failure.retry_after},
                                      message=f"{prefix}Telegram asks to wait {failure.retry_after:.0f} s (429).") \
                from exc
        if failure.transient:
            raise ProviderUnavailable(code="telegram_unavailable", message=f"{prefix}Telegram is unreachable: {exc}") \
                from exc
        raise ValidationFailed(code="telegram_rejected", message=f"{prefix}Telegram refused: {exc}") from exc


def _telegram_call(bot: Bot, call, *, what: str, max_wait: float | None = None):
    """One Bot API call for ``bot`` that honours Telegram's 429, with refusals as our coded errors.

    Before calling, the bot's hold (a 429 it got earlier, ``bots.ratelimit.flood_hold``) is waited out when it
    ends within ``max_wait`` seconds (default ``TELEGRAM_INLINE_WAIT_MAX_SECONDS``); a 429 sets the hold and is
    waited out and retried the same way (twice at most). A longer wait is not slept:
    ProviderUnavailable(code="telegram_flood_wait", detail={"retry_after": s}) lets the caller come back then.

    Raises:
        the coded errors of :func:`_coded_telegram_errors`.
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
            with _coded_telegram_errors(what):
                return tg.run_telegram(token, call)
        except ProviderUnavailable as exc:
            if exc.code != "telegram_flood_wait":
                raise
            wait = exc.detail["retry_after"]
            flood_hold(bot_id=bot.id, seconds=wait)
            if wait > max_wait or attempt == 2:
                raise


def bot_set_commands(*, bot: Bot, max_inline_wait: float | None = None) -> None:
    """Register the command menu (``setMyCommands``): /start, /help, /new, /usage, /sources (bots.telegram.COMMANDS).

    ``max_inline_wait``: seconds a 429 may be slept here (default ``TELEGRAM_INLINE_WAIT_MAX_SECONDS``; 0 never:
    the caller schedules the retry, as ``telegram_webhooks`` does).

    Raises:
        the coded errors of :func:`_telegram_call` (a 429 is honoured first).
    """
    from telegram import BotCommand

    commands = [BotCommand(name, description) for name, description in tg.COMMANDS]

    async def call(ptb):
        return await ptb.set_my_commands(commands)

    _telegram_call(bot, call, what="setMyCommands", max_wait=max_inline_wait)


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
    async def call(ptb):
        return await ptb.get_webhook_info()

    info = _telegram_call(bot, call, what="getWebhookInfo", max_wait=max_inline_wait)
    expected = tg.webhook_url_for(bot.public_id) if settings.PUBLIC_BASE_URL else ""
    return {"url": info.url or "", "pending_update_count": info.pending_update_count or 0,
            "last_error_message": info.last_error_message or "", "last_error_date": info.last_error_date,
            "max_connections": info.max_connections, "allowed_updates": list(info.allowed_updates or []),
            "matches": bool(expected) and info.url == expected}


def bot_delete_webhook(*, bot: Bot) -> None:
    """``deleteWebhook`` (pending updates kept by Telegram) and forget the URL.

    Raises:
        ValidationFailed(code="bot_token_invalid"), ProviderUnavailable(code="telegram_unavailable").
    """
    async def call(ptb):
        return await ptb.delete_webhook(drop_pending_updates=False)

    _telegram_call(bot, call, what="deleteWebhook")
    Bot.objects.filter(id=bot.id).update(webhook_url="")
    bot.webhook_url = ""


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
        _bot_setup_on_telegram(bot)
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
    token = _token_checked(token)
    me = _token_identity(token)
    if bot.telegram_id and me["id"] != bot.telegram_id:
        raise ValidationFailed(code="bot_token_other_bot",
                               message=f"This token belongs to @{me['username']}, not to {bot}.")
    Bot.objects.filter(id=bot.id).update(token_encrypted=encrypt_secret(token), token_hint=_mask(token),
                                         username=me["username"] or "", telegram_id=me["id"],
                                         status=Bot.Status.ACTIVE, last_error="")
    bot.refresh_from_db()
    _bot_setup_on_telegram(bot)
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


def _token_checked(token: str) -> str:
    """The token stripped, if it has @BotFather's shape; else ValidationFailed(code="bot_token_invalid")."""
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
            with _coded_telegram_errors("getMe"):
                return tg.get_me(token)
        except ProviderUnavailable as exc:
            wait = (exc.detail or {}).get("retry_after") if exc.code == "telegram_flood_wait" else None
            if wait is None or wait > settings.TELEGRAM_INLINE_WAIT_MAX_SECONDS or attempt:
                raise
            time.sleep(wait)
        except ValidationFailed as exc:
            if exc.code == "telegram_rejected":
                raise ValidationFailed(code="bot_token_invalid", message=exc.message) from exc
            raise
    raise AssertionError("unreachable")


def bot_refresh_identity(*, bot: Bot) -> Bot:
    """Re-read the bot's username and id from ``getMe`` (bots can be renamed in @BotFather).

    Raises:
        telegram.error.InvalidToken: the token was revoked.
    """
    me = tg.get_me(bot_token(bot))
    Bot.objects.filter(id=bot.id).update(username=me["username"] or "", telegram_id=me["id"])
    bot.username, bot.telegram_id = me["username"] or "", me["id"]
    return bot


def _quota_check_bots(company: Company) -> None:
    quota_check_bot_add(company=company, current_bots=Bot.objects.for_company(company).count())


def bot_register_webhook(*, bot: Bot, max_inline_wait: float | None = None) -> str:
    """Register the bot's webhook (``setWebhook`` with its secret and allowed updates); returns the URL.

    ``max_inline_wait`` as for :func:`bot_set_commands`.

    Raises:
        ValidationFailed(code="public_base_url_missing"): ``PUBLIC_BASE_URL`` is not set.
        the coded errors of :func:`_telegram_call` (a 429 is honoured first; Telegram's words in the message).
    """
    if not settings.PUBLIC_BASE_URL:
        raise ValidationFailed(code="public_base_url_missing",
                               message="Set PUBLIC_BASE_URL (the https origin Telegram can reach) first.")
    url = tg.webhook_url_for(bot.public_id)

    async def call(ptb):
        return await ptb.set_webhook(url=url, secret_token=bot.webhook_secret, allowed_updates=tg.ALLOWED_UPDATES,
                                     drop_pending_updates=False)

    _telegram_call(bot, call, what="setWebhook", max_wait=max_inline_wait)
    Bot.objects.filter(id=bot.id).update(webhook_url=url, last_error="")
    return url


@dataclass
class AskResult:
    """The outcome of one question through the pipeline."""

    message: Message
    created: bool


def conversation_history(conversation: Conversation) -> list[tuple[str, str]]:
    """The conversation's memory: earlier answered (question, answer) turns, oldest first.

    At most ``CONVERSATION_MEMORY_TURNS`` turns, newest kept first, within ``CONVERSATION_MEMORY_TOKENS``
    (cl100k tokens of question + answer), so a long conversation never overflows the prompt.
    """
    from rag.splitting import count_tokens

    rows = (Message.objects.filter(conversation=conversation, status=Message.Status.ANSWERED)
            .order_by("-created_at").values_list("question", "answer")[:settings.CONVERSATION_MEMORY_TURNS])
    kept, budget = [], settings.CONVERSATION_MEMORY_TOKENS
    for question, answer in rows:
        budget -= count_tokens(question) + count_tokens(answer)
        if budget < 0:
            break
        kept.append((question, answer))
    return list(reversed(kept))


def message_answer(*, bot: Bot, question: str, conversation: Conversation, idempotency_key: str,
                   channel: str = Conversation.Channel.TELEGRAM, end_user_id: int | None = None,
                   update: TelegramUpdate | None = None, started: float | None = None,
                   meter_on_delivery: bool = False) -> AskResult:
    """Answer ``question`` for ``bot``: reserve quota, retrieve, answer, log, meter. Idempotent per key.

    Order (ARCHITECTURE.md, docs/billing.md): the live subscription and every quota window (company
    messages and tokens per period, the bot's cap, the end user's day) are checked and reserved first,
    atomically; over a limit the limit message is the reply (once a day per end user) and nothing is
    counted. Otherwise the answer chain runs, and the Message row, the token settlement and the usage
    outbox rows (``idempotency_key``; ``<key>:llm`` for provider-reported tokens) are written in one
    transaction; the ledger is written by a task after commit.

    Args:
        idempotency_key: e.g. ``tg:<bot id>:<update_id>``; a second call with it returns the first Message.
        started: ``time.monotonic()`` when the question arrived (for latency_ms).
        meter_on_delivery: the ``message`` usage event is written by :func:`message_delivered` when the answer
            has reached the user (Telegram), not here; an answer that never arrives is not billed as a message.
            The ``llm_tokens`` event is always written here (the tokens are spent either way).

    Raises:
        ProviderUnavailable: the chat model or embeddings failed transiently (the caller retries;
            the reservation is kept for the retry under the same key).
    """
    started = started if started is not None else time.monotonic()
    if update is not None:
        existing = Message.objects.filter(update=update).first()
        if existing:
            return AskResult(existing, created=False)
    company = bot.company
    base = dict(company=company, bot=bot, conversation=conversation, update=update, end_user_id=end_user_id,
                question=question[:QUESTION_MAX_CHARS])
    try:
        reservation = quota_reserve(company=company, idempotency_key=idempotency_key, bot=bot,
                                    end_user_id=end_user_id, estimated_tokens=_estimate_tokens(bot, question))
    except NoLiveSubscription:
        return _message_save(Message(**base, status=Message.Status.NO_SUBSCRIPTION, answer=NO_SUBSCRIPTION_TEXT,
                                     latency_ms=_ms(started)), update)
    except QuotaExceeded:
        # The limit message goes to an end user at most once a day; after that the bot stays silent
        # (the Message is logged as limit_reached with no answer, marked delivered so nothing is sent).
        tell = end_user_id is None or limit_notice_claim(company=company, end_user_id=end_user_id)
        return _message_save(Message(**base, status=Message.Status.LIMIT_REACHED,
                                     answer=limit_message_for(bot) if tell else "",
                                     delivered_at=None if tell else timezone.now(),
                                     latency_ms=_ms(started)), update)
    try:
        answer = answer_question(company=company, question=question, persona=bot.persona,
                                 history=conversation_history(conversation), document_ids=bot_document_ids(bot))
    except ProviderUnavailable:
        raise
    except Exception:
        quota_release_message(company=company, idempotency_key=idempotency_key)
        raise
    with transaction.atomic():
        message = Message(**base, answer=answer.text, sources=answer.sources_as_dicts(),
                          status=Message.Status.NOT_FOUND if answer.refused else Message.Status.ANSWERED,
                          prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                          model=answer.model, latency_ms=_ms(started))
        result = _message_save(message, update)
        if result.created:
            quota_settle(company=company, idempotency_key=idempotency_key,
                         actual_tokens=answer.prompt_tokens + answer.completion_tokens)
            common = dict(company=company, period_start=reservation.period_start, bot_id=bot.id,
                          end_user_id=end_user_id, channel=channel)
            if not meter_on_delivery:
                usage_enqueue(idempotency_key=idempotency_key, kind=UsageEvent.Kind.MESSAGE, model=answer.model,
                              **common)
            # The model's tokens are spent (and billed by the provider) whether or not the answer is delivered.
            if answer.prompt_tokens or answer.completion_tokens:
                usage_enqueue(idempotency_key=f"{idempotency_key}:llm", kind=UsageEvent.Kind.LLM_TOKENS,
                              quantity=answer.prompt_tokens + answer.completion_tokens,
                              prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                              model=answer.model, tokens_estimated=answer.tokens_estimated, **common)
    Conversation.objects.filter(id=conversation.id).update(last_message_at=timezone.now())
    return result


def _usage_enqueue_message(message: Message, *, idempotency_key: str, period_start, channel: str) -> None:
    """The ``message`` usage event of a delivered answer into the outbox (the caller's transaction)."""
    usage_enqueue(idempotency_key=idempotency_key, kind=UsageEvent.Kind.MESSAGE, model=message.model,
                  company=message.company, period_start=period_start, bot_id=message.bot_id,
                  end_user_id=message.end_user_id, channel=channel)


_METERED = (Message.Status.ANSWERED, Message.Status.NOT_FOUND)


def _reservation_period(company_id: int, idempotency_key: str, fallback):
    from billing.models import QuotaReservation

    period = (QuotaReservation.objects.filter(idempotency_key=idempotency_key)
              .values_list("period_start", flat=True).first())
    return period or fallback


def message_delivered(*, message: Message, telegram_message_ids: list[int], idempotency_key: str) -> bool:
    """The answer reached the chat: mark it delivered and, for an answer (not a limit notice), meter it.

    Both happen in one transaction, once: a second call (a redelivered task) changes nothing. The usage
    event carries the reservation's period (the period the message was admitted in).

    Returns:
        True if this call marked it delivered.
    """
    with transaction.atomic():
        changed = Message.objects.filter(id=message.id, delivered_at__isnull=True).update(
            delivered_at=timezone.now(), telegram_message_ids=telegram_message_ids)
        if changed and message.status in _METERED:
            period = _reservation_period(message.company_id, idempotency_key, message.created_at)
            _usage_enqueue_message(message, idempotency_key=idempotency_key, period_start=period,
                                   channel=message.conversation.channel)
    return bool(changed)


def message_undeliverable(*, message: Message, reason: str, idempotency_key: str) -> bool:
    """The answer can never reach the chat (blocked, kicked, deactivated, chat gone, or given up): not billed.

    The message is given back to every quota window it was counted in (company, bot, end user); the tokens the
    chat model spent on it stay counted (their ``llm_tokens`` event was recorded with the answer).
    ``delivery_error`` says why (shown in the admin). Once per message.

    Returns:
        True if this call recorded it.
    """
    from billing.quotas import quota_release_undelivered

    with transaction.atomic():
        changed = Message.objects.filter(id=message.id, delivered_at__isnull=True, delivery_error="").update(
            delivery_error=reason[:300] or "undeliverable")
        if changed and message.status in _METERED:
            quota_release_undelivered(company=message.company, idempotency_key=idempotency_key)
    return bool(changed)


def bot_document_ids(bot: Bot) -> list[int] | None:
    """The documents ``bot`` may answer from: None = all the company's; else those in its collections."""
    from rag.models import Document

    collection_ids = list(bot.collections.values_list("id", flat=True))
    if not collection_ids:
        return None
    return list(Document.objects.for_company(bot.company_id).filter(collection_id__in=collection_ids)
                .values_list("id", flat=True))


def _estimate_tokens(bot: Bot, question: str) -> int:
    """Tokens an answer may use, reserved before answering (0 without a chat model).

    Prompt: persona + question + the retrieved context (5 chunks of at most RAG_CHUNK_TOKENS) + 150
    for the template and history headers; completion: the LLM_MAX_COMPLETION_TOKENS cap.
    """
    if not settings.OPENAI_API_KEY:
        return 0
    from rag.splitting import count_tokens

    return (count_tokens(bot.persona) + count_tokens(question) + 5 * settings.RAG_CHUNK_TOKENS + 150
            + settings.LLM_MAX_COMPLETION_TOKENS)


def limit_message_for(bot: Bot) -> str:
    """The text an end user gets at a limit: the bot's own, else the plan's, else the default in the
    bot's language (billing.models.DEFAULT_LIMIT_MESSAGES)."""
    if bot.limit_message.strip():
        return bot.limit_message
    try:
        plan_message = subscription_get_live(company=bot.company).plan.limit_message
    except NoLiveSubscription:
        plan_message = ""
    if plan_message.strip():
        return plan_message
    language = (bot.language or "en").split("-")[0].lower()
    return DEFAULT_LIMIT_MESSAGES.get(language, DEFAULT_LIMIT_MESSAGES["en"])


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _message_save(message: Message, update: TelegramUpdate | None) -> AskResult:
    try:
        with transaction.atomic():
            message.save()
        return AskResult(message, created=True)
    except IntegrityError:  # a concurrent delivery of the same update saved it first
        return AskResult(Message.objects.get(update=update), created=False)


def conversation_for_cli(*, bot: Bot) -> Conversation:
    """A fresh conversation for a command-line question."""
    return Conversation.objects.create(company=bot.company, bot=bot, channel=Conversation.Channel.CLI)


def ask(*, bot: Bot, question: str, channel: str = Conversation.Channel.CLI,
        conversation: Conversation | None = None, idempotency_key: str | None = None) -> AskResult:
    """One question outside Telegram (``ask`` command, API, playground): the same pipeline and metering.

    Args:
        channel: Conversation.Channel value recorded on the conversation and the usage event.
        conversation: continue this conversation of ``bot`` (its earlier turns are the memory);
            None starts a new one.
        idempotency_key: the caller's key (the API's Idempotency-Key); default: a fresh one.

    Raises:
        ValidationFailed(code="question_empty" | "question_too_long").
        NotFound(code="conversation_not_found"): ``conversation`` is not one of this bot's.
        ValidationFailed(code="bot_not_active"): the bot is disabled or its token was revoked; like its
            Telegram chats, it answers nobody (and nothing is metered) until it is enabled again.
    """
    if bot.status != Bot.Status.ACTIVE:
        raise ValidationFailed(code="bot_not_active",
                               message=f"{bot} is {bot.get_status_display().lower()}: enable it to ask it questions.")
    question = question.strip()
    if not question:
        raise ValidationFailed(code="question_empty", message="The question is empty.")
    if len(question) > QUESTION_MAX_CHARS:
        raise ValidationFailed(code="question_too_long",
                               message=f"Questions are limited to {QUESTION_MAX_CHARS} characters.")
    if conversation is None:
        conversation = Conversation.objects.create(company=bot.company, bot=bot, channel=channel)
    elif conversation.bot_id != bot.id:
        raise NotFound(code="conversation_not_found", message="Conversation not found.")
    return message_answer(bot=bot, question=question, conversation=conversation, channel=channel,
                          idempotency_key=idempotency_key or f"{channel}:{bot.id}:{uuid.uuid4().hex}")


def chat_upsert(*, bot: Bot, chat_id: int, type: str, title: str = "", username: str = "",
                is_forum: bool = False) -> Chat:
    """The bot's Chat row for a Telegram chat, created on first sight; title, type and forum flag kept current.

    A group that became a supergroup (``chat_migrate``) is recognised by its old id: the row of the
    supergroup is returned unchanged (replies go to the new id).
    """
    chat = Chat.objects.filter(bot=bot, telegram_chat_id=chat_id).first()
    if chat is None:
        moved = Chat.objects.filter(bot=bot, previous_chat_id=chat_id).first()
        if moved is not None:
            return moved
    if chat is None:
        chat, created = Chat.objects.get_or_create(
            bot=bot, telegram_chat_id=chat_id,
            defaults=dict(company_id=bot.company_id, type=type, title=title[:255], username=username[:64],
                          is_forum=is_forum))
        if created:
            return chat
    if chat.title != title[:255] or chat.type != type or chat.is_forum != is_forum:
        Chat.objects.filter(id=chat.id).update(title=title[:255], type=type, is_forum=is_forum)
        chat.title, chat.type, chat.is_forum = title[:255], type, is_forum
    return chat


@transaction.atomic
def chat_migrate(*, bot: Bot, old_chat_id: int, new_chat_id: int) -> Chat | None:
    """A group became a supergroup (Telegram's ``migrate_to_chat_id``): the chat moves to ``new_chat_id``.

    The bot's Chat row keeps its conversations, memory and settings and gets the new id (the old one is kept in
    ``previous_chat_id`` so later updates from the old id are recognised). If the supergroup already has a row
    (its first update arrived before the migration notice), the old row's conversations move onto it and the
    old row is removed. Idempotent. Returns the chat now holding ``new_chat_id`` (None if the bot knew neither).
    """
    old = Chat.objects.select_for_update().filter(bot=bot, telegram_chat_id=old_chat_id).first()
    new = Chat.objects.select_for_update().filter(bot=bot, telegram_chat_id=new_chat_id).first()
    if old is None:
        if new is not None and new.previous_chat_id is None:
            Chat.objects.filter(id=new.id).update(previous_chat_id=old_chat_id)
            new.previous_chat_id = old_chat_id
        return new
    if new is None:
        Chat.objects.filter(id=old.id).update(telegram_chat_id=new_chat_id, previous_chat_id=old_chat_id,
                                              type="supergroup")
        old.refresh_from_db()
        logger.info("chat %s of bot %s moved to supergroup %s", old_chat_id, bot.id, new_chat_id)
        return old
    Conversation.objects.filter(chat=old).update(chat=new)
    Chat.objects.filter(id=new.id).update(previous_chat_id=old_chat_id,
                                          start_param=new.start_param or old.start_param)
    old.delete()
    new.refresh_from_db()
    return new


def conversation_for_chat(*, chat: Chat, thread_id: int | None = None, end_user: TelegramUser | None = None,
                          now=None) -> Conversation:
    """The current conversation of a chat (and forum topic), or a new one.

    The latest conversation of (chat, thread_id) continues unless it was ended (/new) or has been idle
    longer than the bot's ``conversation_idle_minutes``; then it is marked ended and a new one starts.
    Private chats, groups and each forum topic have their own conversations, so memory never crosses them.
    """
    now = now or timezone.now()
    current = (Conversation.objects.filter(chat=chat, thread_id=thread_id, ended_at__isnull=True)
               .order_by("-started_at").first())
    if current is not None:
        idle = dt.timedelta(minutes=chat.bot.conversation_idle_minutes)
        if now - current.last_message_at <= idle:
            return current
        Conversation.objects.filter(id=current.id).update(ended_at=current.last_message_at + idle)
    return Conversation.objects.create(company_id=chat.company_id, bot=chat.bot, chat=chat, thread_id=thread_id,
                                       end_user=end_user if chat.type == "private" else None)


def conversation_end(*, chat: Chat, thread_id: int | None = None) -> int:
    """End the chat's (topic's) open conversations (/new): the next question starts without memory.

    Returns:
        How many conversations were ended (0 or 1).
    """
    return Conversation.objects.filter(chat=chat, thread_id=thread_id, ended_at__isnull=True).update(
        ended_at=timezone.now())


def telegram_user_upsert(*, bot: Bot, user) -> TelegramUser | None:
    """The bot's TelegramUser for a PTB ``telegram.User`` (None for none or for bots), names kept current."""
    if user is None or user.is_bot:
        return None
    fields = dict(username=(user.username or "")[:64], first_name=(user.first_name or "")[:255],
                  last_name=(user.last_name or "")[:255], language_code=(user.language_code or "")[:16])
    end_user, created = TelegramUser.objects.get_or_create(bot=bot, telegram_user_id=user.id,
                                                           defaults=dict(company_id=bot.company_id, **fields))
    if not created:
        TelegramUser.objects.filter(id=end_user.id).update(last_seen_at=timezone.now(), **fields)
    return end_user


def message_feedback_set(*, bot: Bot, message_id: int, value: int) -> Message:
    """Store 👍 (+1) or 👎 (-1) on one of ``bot``'s answers; pressing again changes it.

    Raises:
        NotFound(code="message_not_found"): not an answer of this bot.
        ValidationFailed(code="feedback_invalid"): value not +1 or -1.
    """
    if value not in (Message.Feedback.UP, Message.Feedback.DOWN):
        raise ValidationFailed(code="feedback_invalid", message="Feedback is +1 or -1.")
    updated = Message.objects.filter(id=message_id, bot=bot).update(feedback=value, feedback_at=timezone.now())
    if not updated:
        raise NotFound(code="message_not_found", message="That answer does not exist any more.")
    return Message.objects.get(id=message_id)


def bot_token_revoked(*, bot: Bot) -> None:
    """Telegram answered 401 for ``bot``: disable it and tell the company's owners and admins by email.

    Idempotent: only the first call after the token stopped working sends the email.
    """
    from django.core.mail import send_mail

    from tenants.models import Membership

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
