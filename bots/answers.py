"""The answer pipeline: one question in, one answer out, metered the same way on every channel.

:func:`message_answer` (reserve quota, retrieve and answer, log, meter; idempotent per key) serves Telegram;
:func:`ask` wraps it for the ``ask`` command, the API and the playground. :func:`message_delivered` and
:func:`message_undeliverable` settle a Telegram answer once delivery is known.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.ledger import usage_enqueue
from billing.models import DEFAULT_LIMIT_MESSAGES, QuotaReservation, UsageEvent
from billing.quotas import (limit_notice_claim, quota_release_message, quota_release_undelivered, quota_reserve,
                            quota_settle)
from billing.services import subscription_get_live
from bots.models import Bot, Conversation, Message, TelegramUpdate
from rag.answering import answer_question
from rag.models import Document
from rag.splitting import count_tokens
from saas_bot.errors import NoLiveSubscription, NotFound, ProviderUnavailable, QuotaExceeded, ValidationFailed

# Telegram Bot API: a text message is at most 4096 characters.
QUESTION_MAX_CHARS = 4096
NO_SUBSCRIPTION_TEXT = "Sorry, this assistant is not available at the moment. Please try again later."


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
                                     answer=bot_limit_message(bot) if tell else "",
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
    with transaction.atomic():
        changed = Message.objects.filter(id=message.id, delivered_at__isnull=True, delivery_error="").update(
            delivery_error=reason[:300] or "undeliverable")
        if changed and message.status in _METERED:
            quota_release_undelivered(company=message.company, idempotency_key=idempotency_key)
    return bool(changed)


def bot_document_ids(bot: Bot) -> list[int] | None:
    """The documents ``bot`` may answer from: None = all the company's; else those in its collections."""
    collection_ids = list(bot.collections.values_list("id", flat=True))
    if not collection_ids:
        return None
    # all_objects: a deleted document answers until its version goes live (searches keep live chunks only).
    return list(Document.all_objects.for_company(bot.company_id).filter(collection_id__in=collection_ids)
                .values_list("id", flat=True))


def _estimate_tokens(bot: Bot, question: str) -> int:
    """Tokens an answer may use, reserved before answering (0 without a chat model).

    Prompt: persona + question + the retrieved context (5 chunks of at most RAG_CHUNK_TOKENS) + 150
    for the template and history headers; completion: the LLM_MAX_COMPLETION_TOKENS cap.
    """
    if not settings.OPENAI_API_KEY:
        return 0
    return (count_tokens(bot.persona) + count_tokens(question) + 5 * settings.RAG_CHUNK_TOKENS + 150
            + settings.LLM_MAX_COMPLETION_TOKENS)


def bot_limit_message(bot: Bot) -> str:
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


def bot_ask(*, bot: Bot, question: str, channel: str = Conversation.Channel.CLI,
        conversation: Conversation | None = None, idempotency_key: str | None = None) -> AskResult:
    """One question outside Telegram (``ask`` command, API, playground): the same pipeline and metering.

    Args:
        channel: Conversation.Channel value recorded on the conversation and the usage event.
        conversation: continue this conversation of ``bot`` (its earlier turns are the memory);
            None starts a new one.
        idempotency_key: the caller's key (the API's Idempotency-Key); default: a fresh one.

    Raises:
        ValidationFailed(code="question_empty" | "question_too_long"): ``question_empty`` when it has no
            letter or digit in any script (blank, only zero-width spaces or punctuation).
        NotFound(code="conversation_not_found"): ``conversation`` is not one of this bot's.
        ValidationFailed(code="bot_not_active"): the bot is disabled or its token was revoked; like its
            Telegram chats, it answers nobody (and nothing is metered) until it is enabled again.
    """
    if bot.status != Bot.Status.ACTIVE:
        raise ValidationFailed(code="bot_not_active",
                               message=f"{bot} is {bot.get_status_display().lower()}: enable it to ask it questions.")
    question = question.strip()
    if not any(ch.isalnum() for ch in question):  # blank, zero-width spaces, punctuation only
        raise ValidationFailed(code="question_empty", message="The question is empty (no letters or digits).")
    if len(question) > QUESTION_MAX_CHARS:
        raise ValidationFailed(code="question_too_long",
                               message=f"Questions are limited to {QUESTION_MAX_CHARS} characters.")
    if conversation is None:
        conversation = Conversation.objects.create(company=bot.company, bot=bot, channel=channel)
    elif conversation.bot_id != bot.id:
        raise NotFound(code="conversation_not_found", message="Conversation not found.")
    return message_answer(bot=bot, question=question, conversation=conversation, channel=channel,
                          idempotency_key=idempotency_key or f"{channel}:{bot.id}:{uuid.uuid4().hex}")

