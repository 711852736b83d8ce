"""Writes on bots and the answer pipeline shared by Telegram, the ``ask`` command, the API and the playground."""
from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from telegram.error import InvalidToken, NetworkError, TelegramError

from billing.ledger import usage_enqueue
from billing.models import DEFAULT_LIMIT_MESSAGES, UsageEvent
from billing.quotas import limit_notice_claim, quota_release_message, quota_reserve, quota_settle
from billing.services import quota_check_bot_add, subscription_get_live
from bots import telegram as tg
from bots.models import Bot, Chat, Conversation, Message, TelegramUpdate
from rag.answering import answer_question
from saas_bot.crypto import decrypt_secret, encrypt_secret
from saas_bot.errors import NoLiveSubscription, ProviderUnavailable, QuotaExceeded, ValidationFailed
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
    token = token.strip()
    if not TOKEN_PATTERN.fullmatch(token):
        raise ValidationFailed(code="bot_token_invalid",
                               message="That does not look like a bot token (digits, a colon, then 30+ characters "
                                       "from @BotFather).")
    _quota_check_bots(company)
    try:
        me = tg.get_me(token)
    except InvalidToken:
        raise ValidationFailed(code="bot_token_invalid", message="Telegram rejected this bot token.") from None
    except NetworkError as exc:
        raise ProviderUnavailable(code="telegram_unavailable", message=f"Telegram is unreachable: {exc}") from exc
    except TelegramError as exc:
        raise ValidationFailed(code="bot_token_invalid", message=f"Telegram refused: {exc}") from exc
    if Bot.objects.filter(telegram_id=me["id"]).exists():
        raise ValidationFailed(code="bot_already_connected", message=f"@{me['username']} is already connected.")
    with transaction.atomic():
        bot = Bot.objects.create(company=company, name=name or me["first_name"] or me["username"],
                                 username=me["username"] or "", telegram_id=me["id"],
                                 token_encrypted=encrypt_secret(token), token_hint=_mask(token))
        if register_webhook and settings.PUBLIC_BASE_URL:
            transaction.on_commit(lambda: bot_register_webhook(bot=bot))
    return bot


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


def bot_register_webhook(*, bot: Bot) -> str:
    """Register the bot's webhook (``setWebhook`` with its secret and allowed updates); returns the URL.

    Raises:
        ValidationFailed(code="public_base_url_missing"): ``PUBLIC_BASE_URL`` is not set.
        telegram.error.TelegramError: Telegram refused (the message says why).
    """
    if not settings.PUBLIC_BASE_URL:
        raise ValidationFailed(code="public_base_url_missing",
                               message="Set PUBLIC_BASE_URL (the https origin Telegram can reach) first.")
    url = tg.webhook_url_for(bot.public_id)

    async def call(ptb):
        return await ptb.set_webhook(url=url, secret_token=bot.webhook_secret, allowed_updates=tg.ALLOWED_UPDATES,
                                     drop_pending_updates=False)

    tg.run_telegram(bot_token(bot), call)
    Bot.objects.filter(id=bot.id).update(webhook_url=url, last_error="")
    return url


@dataclass
class AskResult:
    """The outcome of one question through the pipeline."""

    message: Message
    created: bool


def _history(conversation: Conversation, limit: int = 3) -> list[tuple[str, str]]:
    rows = (Message.objects.filter(conversation=conversation, status=Message.Status.ANSWERED)
            .order_by("-created_at").values_list("question", "answer")[:limit])
    return list(reversed(list(rows)))


def message_answer(*, bot: Bot, question: str, conversation: Conversation, idempotency_key: str,
                   channel: str = Conversation.Channel.TELEGRAM, end_user_id: int | None = None,
                   update: TelegramUpdate | None = None, started: float | None = None) -> AskResult:
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
                                 history=_history(conversation), document_ids=bot_document_ids(bot))
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
            usage_enqueue(idempotency_key=idempotency_key, kind=UsageEvent.Kind.MESSAGE, model=answer.model,
                          **common)
            if answer.prompt_tokens or answer.completion_tokens:
                usage_enqueue(idempotency_key=f"{idempotency_key}:llm", kind=UsageEvent.Kind.LLM_TOKENS,
                              quantity=answer.prompt_tokens + answer.completion_tokens,
                              prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                              model=answer.model, **common)
    Conversation.objects.filter(id=conversation.id).update(last_message_at=timezone.now())
    return result


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


def ask(*, bot: Bot, question: str, channel: str = Conversation.Channel.CLI) -> AskResult:
    """One question outside Telegram (``ask`` command): same pipeline, its own idempotency key.

    Raises:
        ValidationFailed(code="question_empty" | "question_too_long").
    """
    question = question.strip()
    if not question:
        raise ValidationFailed(code="question_empty", message="The question is empty.")
    if len(question) > QUESTION_MAX_CHARS:
        raise ValidationFailed(code="question_too_long",
                               message=f"Questions are limited to {QUESTION_MAX_CHARS} characters.")
    conversation = Conversation.objects.create(company=bot.company, bot=bot, channel=channel)
    return message_answer(bot=bot, question=question, conversation=conversation, channel=channel,
                          idempotency_key=f"{channel}:{bot.id}:{uuid.uuid4().hex}")


def chat_upsert(*, bot: Bot, chat_id: int, type: str, title: str = "", username: str = "") -> Chat:
    """The bot's Chat row for a Telegram chat, created on first sight, title/username kept current."""
    chat, created = Chat.objects.get_or_create(
        bot=bot, telegram_chat_id=chat_id,
        defaults=dict(company_id=bot.company_id, type=type, title=title[:255], username=username[:64]))
    if not created and (chat.title != title[:255] or chat.type != type):
        Chat.objects.filter(id=chat.id).update(title=title[:255], type=type)
    return chat


def conversation_for_chat(*, chat: Chat) -> Conversation:
    """The chat's current conversation (the latest), created if there is none."""
    conversation = Conversation.objects.filter(chat=chat).order_by("-started_at").first()
    return conversation or Conversation.objects.create(company_id=chat.company_id, bot=chat.bot, chat=chat)
