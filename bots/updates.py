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
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from telegram import Message as PTBMessage
from telegram import MessageEntity, Update
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

from bots import telegram as tg
from bots.formatting import Part, format_answer, format_sources, format_text
from bots.models import Bot, Chat, Message, TelegramUpdate
from bots.ratelimit import intake_priority, send_gate, slot_take
from bots.services import (bot_token, bot_token_revoked, chat_upsert, conversation_end, conversation_for_chat,
                           message_answer, message_feedback_set, telegram_user_upsert)
from saas_bot.errors import ProviderUnavailable, ServiceError

logger = logging.getLogger("saas_bot.bots")

NON_TEXT_REPLY = "I can only answer text questions. Please type your question."
# A stale claim (worker killed mid-task) can be taken over after this long (seconds).
CLAIM_TIMEOUT_SECONDS = 300
# Sleep inside the task for a 429 up to this long; longer waits go back to Celery (seconds).
RETRY_AFTER_INLINE_MAX = 5


class RetryLater(Exception):
    """Processing should be retried after ``countdown`` seconds (Telegram 429, provider outage, flood limit).

    ``flood=True``: our own send limiter deferred the update; that is not a failed attempt. ``slot_at``: the
    send time it reserved; the retry runs then and uses it.
    """

    def __init__(self, countdown: float, reason: str, *, flood: bool = False, slot_at: float | None = None) -> None:
        super().__init__(reason)
        self.countdown = countdown
        self.flood = flood
        self.slot_at = slot_at  # a send time reserved for this update (Unix seconds), kept for its retry


# In json.dumps' ASCII output: an escaped backslash (kept), a surrogate pair (kept), or what jsonb refuses:
# U+0000 and a lone surrogate (replaced by U+FFFD). Escaped backslashes are matched first, so "\\\\ud800"
# (a backslash, then the letters "ud800") is left as it is.
_JSONB_REFUSED = re.compile(r"(\\\\)|(\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2})|\\u(?:0000|d[89a-f][0-9a-f]{2})")


def payload_json(payload: dict) -> str:
    """The update as JSON text PostgreSQL's jsonb accepts (RFC 8259 text, ASCII).

    jsonb refuses U+0000 and unpaired UTF-16 surrogates (``"\\ud800"``; Telegram clients produce them when
    a text is cut inside an emoji); both become U+FFFD, so the update is stored and acknowledged instead of
    failing the INSERT (a 500 Telegram would resend for a day). Everything else is kept as it is.
    """
    text = json.dumps(payload, ensure_ascii=True)
    return _JSONB_REFUSED.sub(lambda m: m.group(1) or m.group(2) or "\\ufffd", text)


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
            [company_id, bot_id, payload["update_id"], payload_json(payload)],
        )
        row = cursor.fetchone()
    if row:
        enqueue_on_commit(process_update_task, row[0], background=True, priority=intake_priority(bot_id))
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


def _release(update: TelegramUpdate, error: str, *, count_attempt: bool = True) -> None:
    changes = dict(status=TelegramUpdate.Status.PENDING, error=error[:2000], locked_at=None)
    if not count_attempt:
        changes["attempts"] = F("attempts") - 1
    TelegramUpdate.objects.filter(id=update.id).update(**changes)


def update_process(*, update_pk: int, slot_at: float | None = None) -> str:
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
        status = _route(bot=bot, update=update, parsed=parsed, started=started, slot_at=slot_at)
    except RetryLater as exc:
        _release(update, str(exc), count_attempt=not exc.flood)
        raise
    except ProviderUnavailable as exc:
        _release(update, exc.message)
        raise RetryLater(min(60, 2 ** update.attempts), exc.message) from exc
    except (TimedOut, NetworkError) as exc:
        _release(update, f"Telegram unreachable: {exc}")
        raise RetryLater(min(60, 2 ** update.attempts), str(exc)) from exc
    except InvalidToken:
        bot_token_revoked(bot=bot)
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
    if _replies_to_bot(bot, message):
        addressed = True
    if not addressed:
        return None
    return _Incoming(message=message, text=" ".join(text.split()), command=command, command_arg=command_arg)


def _route(*, bot: Bot, update: TelegramUpdate, parsed: Update, started: float,
           slot_at: float | None = None) -> str:
    if parsed.my_chat_member is not None:
        member = parsed.my_chat_member
        if member.chat is None or member.new_chat_member is None:
            return TelegramUpdate.Status.IGNORED  # a malformed update: nothing to record about a chat
        chat = chat_upsert(bot=bot, chat_id=member.chat.id, type=member.chat.type,
                           title=member.chat.title or member.chat.full_name or "", username=member.chat.username or "",
                           is_forum=bool(member.chat.is_forum))
        blocked = member.new_chat_member.status in ("kicked", "left")
        Chat.objects.filter(id=chat.id).update(is_blocked=blocked)
        return TelegramUpdate.Status.DONE
    if bot.status != Bot.Status.ACTIVE:
        return TelegramUpdate.Status.IGNORED
    if parsed.callback_query is not None:
        return _callback(bot, parsed.callback_query)
    edited = parsed.edited_message
    message = parsed.message or edited
    if message is None or message.chat is None:
        return TelegramUpdate.Status.IGNORED  # channel posts, inline queries, polls...
    chat = chat_upsert(bot=bot, chat_id=message.chat.id, type=message.chat.type,
                       title=message.chat.title or message.chat.full_name or "", username=message.chat.username or "",
                       is_forum=bool(message.chat.is_forum))
    end_user = telegram_user_upsert(bot=bot, user=message.from_user)
    if chat.is_blocked and message.chat.type == ChatType.PRIVATE and edited is None:
        Chat.objects.filter(id=chat.id).update(is_blocked=False)  # they wrote again, so they unblocked us
        chat.is_blocked = False
    private = message.chat.type == ChatType.PRIVATE
    where = _Where(chat=chat, thread_id=message.message_thread_id if message.is_topic_message else None,
                   reply_to=None if private else message.message_id)
    if message.text is None:
        if edited is None and not message.new_chat_members and not message.left_chat_member and \
                (private or _replies_to_bot(bot, message)):
            _send(bot, where, format_text(NON_TEXT_REPLY), reply_to=message.message_id)
            return TelegramUpdate.Status.DONE
        return TelegramUpdate.Status.IGNORED
    incoming = _addressed_text(bot, message)
    if incoming is None:
        return TelegramUpdate.Status.IGNORED
    if edited is not None and bot.edited_messages != Bot.EditedMessages.ANSWER:
        if _edit_already_noted(bot, update, chat_id=message.chat.id, message_id=message.message_id):
            return TelegramUpdate.Status.IGNORED
        _send(bot, where, format_text(EDITED_REPLY), reply_to=message.message_id)
        return TelegramUpdate.Status.DONE
    command = incoming.command
    if command == "start":
        if incoming.command_arg:
            Chat.objects.filter(id=chat.id).update(start_param=incoming.command_arg[:64])
        _send(bot, where, format_text(bot.welcome_text))
        return TelegramUpdate.Status.DONE
    if command == "new":
        conversation_end(chat=chat, thread_id=where.thread_id)
        _send(bot, where, format_text(NEW_CONVERSATION_REPLY))
        return TelegramUpdate.Status.DONE
    if command == "usage":
        text = _usage_text(bot, message.from_user.id if message.from_user else None)
        _send(bot, where, format_text(text))
        return TelegramUpdate.Status.DONE
    if command == "sources":
        last = (Message.objects.filter(bot=bot, conversation__chat=chat, conversation__thread_id=where.thread_id)
                .exclude(answer="").order_by("-created_at").first())
        parts = format_sources(last.sources) if last else format_text(NO_ANSWER_YET)
        _send(bot, where, parts)
        return TelegramUpdate.Status.DONE
    question = incoming.command_arg if command is not None else incoming.text
    if command == "help" or not question.strip():
        _send(bot, where, format_text(bot.help_text))
        return TelegramUpdate.Status.DONE
    first_slot_at = _slot_reserve(bot, where, kept=slot_at)
    _typing(bot, where)
    result = message_answer(bot=bot, question=question,
                            conversation=conversation_for_chat(chat=chat, thread_id=where.thread_id,
                                                               end_user=end_user),
                            idempotency_key=f"tg:{bot.id}:{update.update_id}", update=update,
                            end_user_id=message.from_user.id if message.from_user else None, started=started)
    reply = result.message
    if reply.delivered_at is None:
        buttons = reply.status in (Message.Status.ANSWERED, Message.Status.NOT_FOUND)
        ids = _send(bot, where, format_answer(reply.answer, reply.sources), reply_to=where.reply_to,
                    markup=_answer_keyboard(reply) if buttons else None, first_slot_at=first_slot_at)
        Message.objects.filter(id=reply.id).update(delivered_at=timezone.now(), telegram_message_ids=ids)
    return TelegramUpdate.Status.DONE


EDITED_REPLY = "I answer new messages only, not edits. Please send your corrected question as a new message."
NEW_CONVERSATION_REPLY = "OK, a new conversation: I have forgotten what we talked about. What would you like to know?"
NO_ANSWER_YET = "I have not answered anything here yet."
FEEDBACK_THANKS = {1: "Thanks! Glad it helped.", -1: "Thanks for telling us. We will use it to improve."}


@dataclass
class _Where:
    """Where replies go: the chat, the forum topic (``message_thread_id``) and, in groups, the question."""

    chat: Chat
    thread_id: int | None = None
    reply_to: int | None = None

    @property
    def is_group(self) -> bool:
        return self.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


def _replies_to_bot(bot: Bot, message: PTBMessage) -> bool:
    reply = message.reply_to_message
    return bool(reply is not None and reply.from_user is not None and bot.telegram_id
                and reply.from_user.id == bot.telegram_id)


def _edit_already_noted(bot: Bot, update: TelegramUpdate, *, chat_id: int, message_id: int) -> bool:
    """True if an earlier edit of the same message was already answered with the edit note (once per message)."""
    return (TelegramUpdate.objects.filter(bot=bot, status=TelegramUpdate.Status.DONE,
                                          payload__edited_message__message_id=message_id,
                                          payload__edited_message__chat__id=chat_id)
            .exclude(id=update.id).exists())


def _usage_text(bot: Bot, end_user_id: int | None) -> str:
    from billing.quotas import end_user_quota_today

    quota = end_user_quota_today(company=bot.company, end_user_id=end_user_id) if end_user_id else None
    if quota is None:
        return "There is no daily limit on your questions. Ask away!"
    return (f"You have {quota['remaining']} of {quota['limit']} questions left today. "
            f"The count starts again at 00:00 UTC.")


def _answer_keyboard(reply: Message):
    """👍 / 👎 / Sources under an answer. callback_data (1-64 bytes, Bot API) carries our Message id."""
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    row = [InlineKeyboardButton("👍", callback_data=f"fb:{reply.id}:1"),
           InlineKeyboardButton("👎", callback_data=f"fb:{reply.id}:-1")]
    if reply.sources:
        row.append(InlineKeyboardButton("Sources", callback_data=f"src:{reply.id}"))
    return InlineKeyboardMarkup([row])


def _callback(bot: Bot, query) -> str:
    """A button press under an answer: feedback or sources; always answered with ``answerCallbackQuery``.

    The answered Message must belong to this bot and to the chat the button is in; anything else
    (old, forged or foreign data) gets a short notice and changes nothing.
    """
    data = query.data or ""
    kind, _, rest = data.partition(":")
    chat_id = query.message.chat.id if query.message is not None else None
    notice = "This button no longer works."
    reply_parts: list[Part] = []
    target = None
    try:
        message_id = int(rest.split(":")[0])
        target = (Message.objects.select_related("conversation__chat")
                  .filter(id=message_id, bot=bot, conversation__chat__telegram_chat_id=chat_id).first())
    except ValueError:
        pass
    if target is not None and kind == "fb":
        try:
            value = int(rest.split(":")[1])
            message_feedback_set(bot=bot, message_id=target.id, value=value)
            notice = FEEDBACK_THANKS[value]
        except (IndexError, ValueError, KeyError, ServiceError):
            pass
    elif target is not None and kind == "src":
        notice = ""
        reply_parts = format_sources(target.sources)

    async def answer(ptb):
        await ptb.answer_callback_query(callback_query_id=query.id, text=notice or None)

    try:
        tg.run_telegram(bot_token(bot), answer)
    except BadRequest as exc:  # "query is too old": the press is stored anyway
        logger.info("answerCallbackQuery for bot %s: %s", bot.id, exc)
    if reply_parts and target is not None:
        chat = target.conversation.chat
        reply_to = (target.telegram_message_ids or [None])[-1]
        _send(bot, _Where(chat=chat, thread_id=target.conversation.thread_id), reply_parts, reply_to=reply_to)
    return TelegramUpdate.Status.DONE


def _max_wait() -> float:
    # Eager mode (no broker) has nobody to retry later: wait for the slot instead.
    return 60.0 if settings.CELERY_TASK_ALWAYS_EAGER else settings.TELEGRAM_RATE_MAX_WAIT


def _slot_reserve(bot: Bot, where: _Where, *, kept: float | None = None) -> float:
    """Before answering: reserve the send time of the answer's first message; returns it (Unix seconds).

    A time within ``_max_wait()`` is used after the answer is computed. A later one is kept for this update
    and the update goes back to the queue until then (RetryLater with ``slot_at``), before any work is
    done, instead of holding a worker; its retry brings ``kept`` back. A kept time more than a second in
    the past (the retry ran late) is given up and a new one is reserved.
    """
    if kept is not None and kept > time.time() - 1.0:
        return kept
    slot = slot_take(bot_id=bot.id, chat_id=where.chat.telegram_chat_id, is_group=where.is_group,
                     max_wait=24 * 3600)
    if slot.wait > _max_wait():
        raise RetryLater(slot.wait, f"flood limit: next slot in {slot.wait:.1f}s", flood=True, slot_at=slot.at)
    return slot.at


def _typing(bot: Bot, where: _Where) -> None:
    """Best-effort "typing…" while the answer is prepared; failures are not worth a retry."""
    async def call(ptb):
        await ptb.send_chat_action(chat_id=where.chat.telegram_chat_id, action=ChatAction.TYPING,
                                   message_thread_id=where.thread_id)

    try:
        tg.run_telegram(bot_token(bot), call)
    except Exception:
        logger.debug("sendChatAction failed for chat %s", where.chat.id, exc_info=True)


def _send(bot: Bot, where: _Where, parts: list[Part], *, reply_to: int | None = None, markup=None,
          first_slot_at: float | None = None) -> list[int]:
    """Send ``parts`` to the chat (and topic) in order, within the flood limits; returns Telegram message ids.

    Each message first takes a send slot (``bots.ratelimit``: per bot, chat and group). If the first
    slot is further away than the worker may wait, RetryLater(flood=True) is raised before anything is
    sent; later parts always wait for their slot, so an answer is never half-sent. ``markup`` (the
    inline keyboard) goes on the last part. HTML first; if Telegram rejects the entities (400 "can't
    parse entities") the plain text is sent. 429: waits ``retry_after`` inline when short, else raises
    RetryLater. 403 (blocked, kicked, deactivated): the chat is marked blocked, nothing more is sent.
    ``first_slot_at``: the first message's send time, already reserved (``_slot_reserve``).
    """
    chat = where.chat
    if chat.is_blocked:
        return []
    token = bot_token(bot)

    async def call(ptb) -> list[int]:
        import asyncio

        ids: list[int] = []
        for index, part in enumerate(parts):
            if index == 0 and first_slot_at is not None:
                wait = max(0.0, first_slot_at - time.time())
            else:
                slot = slot_take(bot_id=bot.id, chat_id=chat.telegram_chat_id, is_group=where.is_group,
                                 max_wait=_max_wait() if index == 0 else 600.0)
                if not slot.granted:
                    raise RetryLater(slot.wait, f"flood limit: next slot in {slot.wait:.1f}s", flood=True)
                wait = slot.wait
            if wait > 0:
                await asyncio.sleep(wait)
            while (late := send_gate(bot_id=bot.id, chat_id=chat.telegram_chat_id, is_group=where.is_group)) > 0:
                await asyncio.sleep(late)
            attempt = 0
            use_plain = False
            while True:
                try:
                    sent = await ptb.send_message(
                        chat_id=chat.telegram_chat_id,
                        text=part.plain if use_plain else part.html,
                        parse_mode=None if use_plain else ParseMode.HTML,
                        reply_to_message_id=reply_to if index == 0 else None,
                        message_thread_id=where.thread_id,
                        allow_sending_without_reply=True,
                        disable_web_page_preview=True,
                        reply_markup=markup if index == len(parts) - 1 else None,
                    )
                    ids.append(sent.message_id)
                    break
                except RetryAfter as exc:
                    wait = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") \
                        else float(exc.retry_after)
                    attempt += 1
                    if index > 0 or (wait <= RETRY_AFTER_INLINE_MAX and attempt <= 3):
                        await asyncio.sleep(wait)  # mid-answer: finish it rather than resend the first parts
                        if attempt <= 5:
                            continue
                    raise RetryLater(wait, f"Telegram 429: retry after {wait:.0f}s") from exc
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
