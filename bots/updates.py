"""The inbox: receiving Telegram updates and processing them in the worker.

Receiving stores the raw update (unique per bot and update_id) and enqueues
processing after commit; it parses nothing beyond ``update_id``. Processing
claims the row, parses it with python-telegram-bot, routes it (command, text,
other) and replies through the Telegram client. A redelivered update is
acknowledged and never answered twice; a pending update left behind (broker
down, worker killed) is re-enqueued by :func:`inbox_sweep`.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from telegram import Message as PTBMessage
from telegram import MessageEntity, Update
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

from bots import telegram as tg
from bots.formatting import Part, format_answer
from bots.models import Bot, Chat, Message, TelegramUpdate
from bots.services import bot_token, chat_upsert, conversation_for_chat, message_answer
from saas_bot.errors import ProviderUnavailable

logger = logging.getLogger("saas_bot.bots")

NON_TEXT_REPLY = "I can only answer text questions. Please type your question."
# A stale claim (worker killed mid-task) can be taken over after this long (seconds).
CLAIM_TIMEOUT_SECONDS = 300
# Sleep inside the task for a 429 up to this long; longer waits go back to Celery (seconds).
RETRY_AFTER_INLINE_MAX = 5


class RetryLater(Exception):
    """Processing should be retried after ``countdown`` seconds (Telegram 429, provider outage)."""

    def __init__(self, countdown: float, reason: str) -> None:
        super().__init__(reason)
        self.countdown = countdown


def update_receive(*, bot_id: int, company_id: int, payload: dict) -> bool:
    """Store a webhook update in the inbox; enqueue its processing on commit.

    Args:
        payload: the update as Telegram sent it (a dict with an integer ``update_id``).

    Returns:
        True if stored now; False if this (bot, update_id) was stored before (redelivery).
    """
    from bots.tasks import process_update_task
    from saas_bot.tasking import enqueue_on_commit

    # One statement in autocommit (one round trip, no BEGIN/COMMIT); when it returns, the row is
    # committed, so the task can be sent at once. Inside a caller's transaction, on commit.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO bots_telegramupdate (company_id, bot_id, update_id, payload, status, attempts, error,
                                             received_at)
            VALUES (%s, %s, %s, %s::jsonb, 'pending', 0, '', now())
            ON CONFLICT (bot_id, update_id) DO NOTHING
            RETURNING id
            """,
            # jsonb cannot hold U+0000; it is replaced so the update is still stored.
            [company_id, bot_id, payload["update_id"], json.dumps(payload).replace("\\u0000", "\\ufffd")],
        )
        row = cursor.fetchone()
    if row:
        enqueue_on_commit(process_update_task, row[0], background=True)
    return row is not None


def _claim(update_pk: int) -> TelegramUpdate | None:
    """Take the update for processing; None if it is done, failed, or being processed elsewhere."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE bots_telegramupdate SET status = 'processing', attempts = attempts + 1, locked_at = now()
            WHERE id = %s AND (status = 'pending'
                               OR (status = 'processing' AND locked_at < now() - make_interval(secs => %s)))
            RETURNING id
            """,
            [update_pk, CLAIM_TIMEOUT_SECONDS],
        )
        if cursor.fetchone() is None:
            return None
    return TelegramUpdate.objects.select_related("bot", "bot__company").get(id=update_pk)


def _finish(update: TelegramUpdate, status: str, error: str = "") -> None:
    TelegramUpdate.objects.filter(id=update.id).update(status=status, error=error[:2000],
                                                       processed_at=timezone.now(), locked_at=None)


def _release(update: TelegramUpdate, error: str) -> None:
    TelegramUpdate.objects.filter(id=update.id).update(status=TelegramUpdate.Status.PENDING, error=error[:2000],
                                                       locked_at=None)


def update_process(*, update_pk: int) -> str:
    """Process one stored update; returns its final status ("done", "ignored", "failed", or "skipped").

    Raises:
        RetryLater: a transient failure (429 with a long retry_after, Telegram or LLM outage); the row
            is back to pending and the caller retries after ``countdown`` seconds.
    """
    update = _claim(update_pk)
    if update is None:
        return "skipped"
    started = time.monotonic()
    if update.attempts > settings.TELEGRAM_INBOX_MAX_ATTEMPTS:
        from billing.quotas import quota_release_message

        # Never answered: the message reserved for it goes back to the company's quota.
        quota_release_message(company=update.bot.company, idempotency_key=f"tg:{update.bot_id}:{update.update_id}")
        _finish(update, TelegramUpdate.Status.FAILED, f"gave up after {update.attempts - 1} attempts: {update.error}")
        return TelegramUpdate.Status.FAILED
    try:
        parsed = Update.de_json(update.payload, None)
    except Exception as exc:  # any shape Telegram may send that PTB cannot read: record, do not retry
        _finish(update, TelegramUpdate.Status.FAILED, f"could not parse update: {type(exc).__name__}: {exc}")
        return TelegramUpdate.Status.FAILED
    bot = update.bot
    try:
        status = _route(bot=bot, update=update, parsed=parsed, started=started)
    except RetryLater as exc:
        _release(update, str(exc))
        raise
    except ProviderUnavailable as exc:
        _release(update, exc.message)
        raise RetryLater(min(60, 2 ** update.attempts), exc.message) from exc
    except (TimedOut, NetworkError) as exc:
        _release(update, f"Telegram unreachable: {exc}")
        raise RetryLater(min(60, 2 ** update.attempts), str(exc)) from exc
    except InvalidToken:
        Bot.objects.filter(id=bot.id).update(status=Bot.Status.TOKEN_REVOKED,
                                             last_error="Telegram rejected the token (401): replace it.")
        _finish(update, TelegramUpdate.Status.FAILED, "bot token revoked (401)")
        return TelegramUpdate.Status.FAILED
    except Exception as exc:
        logger.exception("update %s failed", update.id)
        _finish(update, TelegramUpdate.Status.FAILED, f"{type(exc).__name__}: {exc}")
        return TelegramUpdate.Status.FAILED
    _finish(update, status)
    return status


@dataclass
class _Incoming:
    message: PTBMessage
    text: str
    command: str | None
    command_arg: str


def _addressed_text(bot: Bot, message: PTBMessage) -> _Incoming | None:
    """The text meant for the bot, or None if a group message is not addressed to it.

    In groups the bot answers only when mentioned (@username), replied to, or sent a command
    addressed to it (/cmd@username). Entity offsets are UTF-16 code units; PTB's
    ``parse_entities`` converts them.
    """
    text = message.text or ""
    username = (bot.username or "").lower()
    private = message.chat.type == ChatType.PRIVATE
    entities = message.parse_entities()
    command, command_arg, addressed = None, "", private
    for entity, value in entities.items():
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            name, _, target = value[1:].partition("@")
            if target and target.lower() != username:
                return None  # a command for another bot
            if private or target:
                command, addressed = name.lower(), True
                command_arg = text[len(value):].strip()
        elif entity.type == MessageEntity.MENTION and value[1:].lower() == username:
            addressed = True
            text = text.replace(value, " ")
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and bot.telegram_id and reply.from_user.id == bot.telegram_id:
        addressed = True
    if not addressed:
        return None
    return _Incoming(message=message, text=" ".join(text.split()), command=command, command_arg=command_arg)


def _route(*, bot: Bot, update: TelegramUpdate, parsed: Update, started: float) -> str:
    if parsed.my_chat_member is not None:
        member = parsed.my_chat_member
        chat = chat_upsert(bot=bot, chat_id=member.chat.id, type=member.chat.type,
                           title=member.chat.title or member.chat.full_name or "", username=member.chat.username or "")
        blocked = member.new_chat_member.status in ("kicked", "left")
        Chat.objects.filter(id=chat.id).update(is_blocked=blocked)
        return TelegramUpdate.Status.DONE
    message = parsed.message
    if message is None or message.chat is None:
        return TelegramUpdate.Status.IGNORED  # edited messages, channel posts, callbacks, inline queries...
    if bot.status != Bot.Status.ACTIVE:
        return TelegramUpdate.Status.IGNORED
    chat = chat_upsert(bot=bot, chat_id=message.chat.id, type=message.chat.type,
                       title=message.chat.title or message.chat.full_name or "", username=message.chat.username or "")
    if chat.is_blocked and message.chat.type == ChatType.PRIVATE:
        Chat.objects.filter(id=chat.id).update(is_blocked=False)  # they wrote again, so they unblocked us
        chat.is_blocked = False
    if message.text is None:
        if message.chat.type == ChatType.PRIVATE and not message.new_chat_members and not message.left_chat_member:
            _send(bot, chat, [Part(html=NON_TEXT_REPLY, plain=NON_TEXT_REPLY)], reply_to=message.message_id)
            return TelegramUpdate.Status.DONE
        return TelegramUpdate.Status.IGNORED
    incoming = _addressed_text(bot, message)
    if incoming is None:
        return TelegramUpdate.Status.IGNORED
    if incoming.command == "start":
        if incoming.command_arg:
            Chat.objects.filter(id=chat.id).update(start_param=incoming.command_arg[:64])
        _send(bot, chat, [Part(html=_escape(bot.welcome_text), plain=bot.welcome_text)])
        return TelegramUpdate.Status.DONE
    if incoming.command is not None and (incoming.command == "help" or not incoming.text.replace(
            f"/{incoming.command}", "").strip()):
        _send(bot, chat, [Part(html=_escape(bot.help_text), plain=bot.help_text)])
        return TelegramUpdate.Status.DONE
    question = incoming.text
    if incoming.command is not None:
        question = incoming.command_arg
    if not question.strip():
        _send(bot, chat, [Part(html=_escape(bot.help_text), plain=bot.help_text)])
        return TelegramUpdate.Status.DONE
    _typing(bot, chat)
    result = message_answer(bot=bot, question=question, conversation=conversation_for_chat(chat=chat),
                            idempotency_key=f"tg:{bot.id}:{update.update_id}", update=update,
                            end_user_id=message.from_user.id if message.from_user else None, started=started)
    reply = result.message
    if reply.delivered_at is None:
        _send(bot, chat, format_answer(reply.answer, reply.sources),
              reply_to=message.message_id if message.chat.type != ChatType.PRIVATE else None,
              thread_id=message.message_thread_id if message.is_topic_message else None)
        Message.objects.filter(id=reply.id).update(delivered_at=timezone.now())
    return TelegramUpdate.Status.DONE


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)


def _typing(bot: Bot, chat: Chat) -> None:
    """Best-effort "typing…" while the answer is prepared; failures are not worth a retry."""
    async def call(ptb):
        await ptb.send_chat_action(chat_id=chat.telegram_chat_id, action=ChatAction.TYPING)

    try:
        tg.run_telegram(bot_token(bot), call)
    except Exception:
        logger.debug("sendChatAction failed for chat %s", chat.id, exc_info=True)


def _send(bot: Bot, chat: Chat, parts: list[Part], *, reply_to: int | None = None,
          thread_id: int | None = None) -> list[int]:
    """Send ``parts`` to the chat in order; returns Telegram message ids.

    HTML first; if Telegram rejects the entities (400 "can't parse entities") the plain text is sent.
    429: waits ``retry_after`` inline when short, else raises RetryLater. 403 (blocked, kicked,
    deactivated): the chat is marked blocked and nothing more is sent (not retried).
    """
    if chat.is_blocked:
        return []
    token = bot_token(bot)

    async def call(ptb) -> list[int]:
        import asyncio

        ids: list[int] = []
        for index, part in enumerate(parts):
            attempt = 0
            use_plain = False
            while True:
                try:
                    sent = await ptb.send_message(
                        chat_id=chat.telegram_chat_id,
                        text=part.plain if use_plain else part.html,
                        parse_mode=None if use_plain else ParseMode.HTML,
                        reply_to_message_id=reply_to if index == 0 else None,
                        message_thread_id=thread_id,
                        allow_sending_without_reply=True,
                        disable_web_page_preview=True,
                    )
                    ids.append(sent.message_id)
                    break
                except RetryAfter as exc:
                    wait = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") \
                        else float(exc.retry_after)
                    attempt += 1
                    if wait > RETRY_AFTER_INLINE_MAX or attempt > 3:
                        raise RetryLater(wait, f"Telegram 429: retry after {wait:.0f}s") from exc
                    await asyncio.sleep(wait)
                except BadRequest as exc:
                    if not use_plain and "parse" in str(exc).lower():
                        use_plain = True
                        continue
                    raise
        return ids

    try:
        return tg.run_telegram(token, call)
    except Forbidden as exc:
        Chat.objects.filter(id=chat.id).update(is_blocked=True)
        logger.info("chat %s blocked the bot or is unreachable: %s", chat.id, exc)
        return []


def inbox_sweep(*, stale_seconds: int | None = None) -> int:
    """Re-enqueue updates left pending (broker down) or stuck processing (worker killed).

    Returns:
        How many updates were re-enqueued.
    """
    from bots.tasks import process_update_task
    from saas_bot.tasking import enqueue

    stale = stale_seconds if stale_seconds is not None else settings.TELEGRAM_INBOX_STALE_SECONDS
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT id FROM bots_telegramupdate
            WHERE (status = 'pending' AND received_at < clock_timestamp() - make_interval(secs => %s))
               OR (status = 'processing' AND locked_at < clock_timestamp() - make_interval(secs => %s))
            ORDER BY received_at LIMIT 1000
            """,
            [stale, CLAIM_TIMEOUT_SECONDS],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for update_pk in ids:
        enqueue(process_update_task, update_pk)
    return len(ids)


def updates_retry(*, update_pks: list[int]) -> int:
    """Process updates again (the inbox's "retry" for staff): failed or stuck ones go back to pending,
    their attempts reset, and processing is enqueued after commit. Done and ignored updates are left alone
    (their answer was sent: retrying could answer twice).

    Returns:
        How many updates were queued again.
    """
    from bots.tasks import process_update_task
    from saas_bot.tasking import enqueue_on_commit

    stuck_before = timezone.now() - dt.timedelta(seconds=CLAIM_TIMEOUT_SECONDS)
    with transaction.atomic():
        queue = (TelegramUpdate.objects.select_for_update().filter(id__in=update_pks)
                 .filter(Q(status__in=[TelegramUpdate.Status.FAILED, TelegramUpdate.Status.PENDING])
                         | Q(status=TelegramUpdate.Status.PROCESSING, locked_at__lt=stuck_before)))
        ids = list(queue.values_list("id", flat=True))
        TelegramUpdate.objects.filter(id__in=ids).update(status=TelegramUpdate.Status.PENDING, attempts=0,
                                                         locked_at=None, processed_at=None)
        for update_pk in ids:
            enqueue_on_commit(process_update_task, update_pk, background=True)
    return len(ids)
