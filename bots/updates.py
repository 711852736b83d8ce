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
import os
import re
import socket
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from telegram import Message as PTBMessage
from telegram import MessageEntity, Update
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import TelegramError

from bots import telegram as tg
from bots import telegram_errors
from bots.formatting import Part, format_answer, format_sources, format_text
from bots.models import Bot, Chat, Message, TelegramUpdate
from bots.ratelimit import flood_hold, flood_hold_remaining, intake_priority, send_gate, slot_take
from bots.services import (bot_token, bot_token_revoked, chat_migrate, chat_upsert, conversation_end,
                           conversation_for_chat, message_answer, message_delivered, message_feedback_set,
                           message_undeliverable, telegram_user_upsert)
from saas_bot.errors import ProviderUnavailable, ServiceError

logger = logging.getLogger("saas_bot.bots")

NON_TEXT_REPLY = "I can only answer text questions. Please type your question."


def worker_name() -> str:
    """Who holds a claim: ``host:pid`` of this process (read at each claim: prefork children have their own pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_stale_seconds() -> float:
    """A claim not refreshed by its worker's heartbeat for this long belongs to a dead worker (seconds;
    ``TELEGRAM_CLAIM_STALE_SECONDS``)."""
    return float(settings.TELEGRAM_CLAIM_STALE_SECONDS)


class RetryLater(Exception):
    """Processing should be retried after ``countdown`` seconds (Telegram 429, provider outage, flood limit).

    ``flood=True``: our own send limiter or Telegram's 429 deferred the update; that is not a failed attempt.
    ``slot_at``: the send time reserved for it (Unix seconds); the retry runs then and uses it.
    ``telegram_wait``: the wait is Telegram's ``retry_after``: nothing may be sent before it ends.
    """

    def __init__(self, countdown: float, reason: str, *, flood: bool = False, slot_at: float | None = None,
                 telegram_wait: bool = False) -> None:
        super().__init__(reason)
        self.countdown = countdown
        self.flood = flood
        self.slot_at = slot_at
        self.telegram_wait = telegram_wait


class Undeliverable(Exception):
    """The reply can never be delivered: the chat blocked or removed the bot, is gone, or Telegram refused
    the message (400). ``status``: what the update ends as ("done" for a chat that went away, "failed"
    for a refusal, which is a bug of ours)."""

    def __init__(self, reason: str, *, status: str) -> None:
        super().__init__(reason)
        self.status = status


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
                                             received_at, sent_message_ids, locked_by)
            VALUES (%s, %s, %s, %s::jsonb, 'pending', 0, '', now(), '[]'::jsonb, '')
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
    """Take the update for processing; None if it is done, failed, being processed elsewhere, or must wait.

    A pending update whose ``not_before`` (Telegram's 429, a later send slot) is still ahead is left alone: it
    is taken when due. A claim whose heartbeat stopped ``claim_stale_seconds()`` ago (worker killed) can be
    taken over.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE bots_telegramupdate SET status = 'processing', attempts = attempts + 1, locked_at = now(),
                                           not_before = NULL, locked_by = %s
            WHERE id = %s AND ((status = 'pending'
                                AND (not_before IS NULL OR not_before <= clock_timestamp() + interval '1 second'))
                               OR (status = 'processing' AND locked_at < now() - make_interval(secs => %s)))
            RETURNING id
            """,
            [worker_name(), update_pk, claim_stale_seconds()],
        )
        if cursor.fetchone() is None:
            return None
    return TelegramUpdate.objects.select_related("bot", "bot__company").get(id=update_pk)


def _finish(update: TelegramUpdate, status: str, error: str = "") -> None:
    TelegramUpdate.objects.filter(id=update.id).update(status=status, error=error[:2000],
                                                       processed_at=timezone.now(), locked_at=None)


def _release(update: TelegramUpdate, error: str, *, count_attempt: bool = True, wait: float = 0.0,
             slot_at: float | None = None, telegram_wait: bool = False) -> None:
    """Back to pending, with the time it may be processed again (``not_before``) when it must wait.

    A wait for our own send slot is parked until shortly before the slot (the sweep's interval plus a margin),
    so the update is taken in time and then waits the rest as a short countdown; a wait Telegram asked for
    (429) is parked until it ends. The database holds it, so it survives a broker restart.
    """
    changes = dict(status=TelegramUpdate.Status.PENDING, error=error[:2000], locked_at=None, slot_at=slot_at,
                   not_before=None)
    if wait > 0:
        lead = 0.0 if telegram_wait else min(wait, settings.TELEGRAM_INBOX_SWEEP_SECONDS + 5)
        changes["not_before"] = timezone.now() + dt.timedelta(seconds=wait - lead)
    if not count_attempt:
        changes["attempts"] = F("attempts") - 1
    TelegramUpdate.objects.filter(id=update.id).update(**changes)


class _ClaimHeartbeat:
    """While a worker processes an update, refresh ``locked_at`` every ``TELEGRAM_CLAIM_HEARTBEAT_SECONDS``.

    So a long answer (a slow chat model, a flood wait) is never taken over, and a claim whose worker died
    goes stale after ``TELEGRAM_CLAIM_STALE_SECONDS``, not after the longest a task may run. The thread uses
    its own database connection only if it fires (most updates finish first) and closes it; the UPDATE skips
    a row locked by someone else, so it never waits. Only the claim it was started for (same attempt) is
    refreshed.
    """

    def __init__(self, update: TelegramUpdate) -> None:
        self.update_pk, self.attempts = update.id, update.attempts
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "_ClaimHeartbeat":
        interval = settings.TELEGRAM_CLAIM_HEARTBEAT_SECONDS
        if interval > 0:
            self.thread = threading.Thread(target=self._run, args=(interval,), daemon=True,
                                           name=f"claim-heartbeat-{self.update_pk}")
            self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def _run(self, interval: float) -> None:
        from django.db import connections

        try:
            while not self.stop.wait(interval):
                try:
                    with connections["default"].cursor() as cursor:
                        cursor.execute(
                            """
                            UPDATE bots_telegramupdate SET locked_at = now()
                            WHERE id = (SELECT id FROM bots_telegramupdate WHERE id = %s AND status = 'processing'
                                        AND attempts = %s FOR UPDATE SKIP LOCKED)
                            """, [self.update_pk, self.attempts])
                except Exception:  # the database is away for a moment: the next beat tries again
                    logger.warning("claim heartbeat for update %s failed", self.update_pk, exc_info=True)
        finally:
            connections["default"].close()


def _idempotency_key(update: TelegramUpdate) -> str:
    return f"tg:{update.bot_id}:{update.update_id}"


def _give_up(update: TelegramUpdate, reason: str) -> None:
    """Never answered: the answer (if computed) is not billed and its message goes back to the quota."""
    from billing.quotas import quota_release_message

    key = _idempotency_key(update)
    reply = Message.objects.filter(update=update).select_related("company", "conversation").first()
    if reply is not None and reply.delivered_at is None:
        message_undeliverable(message=reply, reason=reason, idempotency_key=key)
    elif reply is None:
        quota_release_message(company=update.bot.company, idempotency_key=key)


def update_process(*, update_pk: int, slot_at: float | None = None) -> str:
    """Process one stored update; returns its final status ("done", "ignored", "failed", or "skipped").

    Telegram's errors are handled as ``bots.telegram_errors`` classifies them (docs/telegram.md).

    Raises:
        RetryLater: a transient failure (a 429 or send slot too far to wait for, Telegram or LLM outage); the
            row is back to pending with ``not_before`` set, and the caller retries after ``countdown``
            seconds (or leaves it to the sweep when that is longer than a task may be scheduled ahead).
    """
    update = _claim(update_pk)
    if update is None:
        return "skipped"
    started = time.monotonic()
    if update.attempts > settings.TELEGRAM_INBOX_MAX_ATTEMPTS:
        reason = f"gave up after {update.attempts - 1} attempts: {update.error}"
        _give_up(update, reason)
        _finish(update, TelegramUpdate.Status.FAILED, reason)
        return TelegramUpdate.Status.FAILED
    try:
        parsed = Update.de_json(update.payload, None)
    except Exception as exc:  # any shape Telegram may send that PTB cannot read: record, do not retry
        _finish(update, TelegramUpdate.Status.FAILED, f"could not parse update: {type(exc).__name__}: {exc}")
        return TelegramUpdate.Status.FAILED
    bot = update.bot
    try:
        with _ClaimHeartbeat(update):
            status = _route(bot=bot, update=update, parsed=parsed, started=started,
                            slot_at=slot_at if slot_at is not None else update.slot_at)
    except RetryLater as exc:
        _release(update, str(exc), count_attempt=not exc.flood, wait=exc.countdown, slot_at=exc.slot_at,
                 telegram_wait=exc.telegram_wait)
        raise
    except ProviderUnavailable as exc:
        wait = min(60, 2 ** update.attempts)
        _release(update, exc.message, wait=wait)
        raise RetryLater(wait, exc.message) from exc
    except Undeliverable as exc:
        _finish(update, exc.status, str(exc))
        return exc.status
    except TelegramError as exc:
        failure = telegram_errors.classify(exc)
        if failure.kind == telegram_errors.TOKEN_REVOKED:
            bot_token_revoked(bot=bot)
            _give_up(update, "bot token revoked (401)")
            _finish(update, TelegramUpdate.Status.FAILED, "bot token revoked (401)")
            return TelegramUpdate.Status.FAILED
        if failure.transient:
            wait = min(60, 2 ** update.attempts)
            _release(update, f"Telegram unreachable: {exc}", wait=wait)
            raise RetryLater(wait, str(exc)) from exc
        logger.warning("update %s: Telegram refused: %s", update.id, exc)
        _give_up(update, f"Telegram refused: {exc}")
        _finish(update, TelegramUpdate.Status.FAILED, f"Telegram refused ({failure.kind}): {exc}")
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
        return _callback(bot, parsed.callback_query, update, slot_at)
    edited = parsed.edited_message
    message = parsed.message or edited
    if message is None or message.chat is None:
        return TelegramUpdate.Status.IGNORED  # channel posts, inline queries, polls...
    if message.migrate_to_chat_id or message.migrate_from_chat_id:
        # The group became a supergroup: Telegram says so in both chats (Bot API, Message.migrate_*_chat_id).
        old_id, new_id = ((message.chat.id, message.migrate_to_chat_id) if message.migrate_to_chat_id
                          else (message.migrate_from_chat_id, message.chat.id))
        chat_migrate(bot=bot, old_chat_id=old_id, new_chat_id=new_id)
        return TelegramUpdate.Status.IGNORED
    chat = chat_upsert(bot=bot, chat_id=message.chat.id, type=message.chat.type,
                       title=message.chat.title or message.chat.full_name or "", username=message.chat.username or "",
                       is_forum=bool(message.chat.is_forum))
    end_user = telegram_user_upsert(bot=bot, user=message.from_user)
    if chat.is_blocked and message.chat.type == ChatType.PRIVATE and edited is None:
        Chat.objects.filter(id=chat.id).update(is_blocked=False)  # they wrote again, so they unblocked us
        chat.is_blocked = False
    private = message.chat.type == ChatType.PRIVATE
    where = _Where(chat=chat, thread_id=message.message_thread_id if message.is_topic_message else None,
                   reply_to=None if private else message.message_id, update=update, slot_at=slot_at)
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
    _slot_reserve(bot, where)
    _typing(bot, where)
    key = _idempotency_key(update)
    result = message_answer(bot=bot, question=question,
                            conversation=conversation_for_chat(chat=chat, thread_id=where.thread_id,
                                                               end_user=end_user),
                            idempotency_key=key, update=update, meter_on_delivery=True,
                            end_user_id=message.from_user.id if message.from_user else None, started=started)
    reply = result.message
    if reply.delivered_at is None and not reply.delivery_error:
        buttons = reply.status in (Message.Status.ANSWERED, Message.Status.NOT_FOUND)
        try:
            ids = _send(bot, where, format_answer(reply.answer, reply.sources), reply_to=where.reply_to,
                        markup=_answer_keyboard(reply) if buttons else None)
        except Undeliverable as exc:
            message_undeliverable(message=reply, reason=str(exc), idempotency_key=key)
            raise
        message_delivered(message=reply, telegram_message_ids=ids, idempotency_key=key)
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
    update: TelegramUpdate | None = None  # the reply's progress (parts sent) is kept on it
    slot_at: float | None = None  # a send time reserved for the next part (Unix seconds)

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


def _callback(bot: Bot, query, update: TelegramUpdate | None = None, slot_at: float | None = None) -> str:
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

    sent_before = update is not None and bool(update.sent_message_ids)  # a resumed reply: the press was answered
    try:
        if not sent_before:
            tg.run_telegram(bot_token(bot), answer)
    except TelegramError as exc:  # best effort: the press is stored anyway
        failure = telegram_errors.classify(exc)
        if failure.kind == telegram_errors.TOKEN_REVOKED:
            raise
        if failure.kind == telegram_errors.FLOOD_WAIT and chat_id is not None:
            flood_hold(bot_id=bot.id, chat_id=chat_id, seconds=failure.retry_after)
        logger.info("answerCallbackQuery for bot %s: %s", bot.id, exc)
    if reply_parts and target is not None:
        chat = target.conversation.chat
        reply_to = (target.telegram_message_ids or [None])[-1]
        _send(bot, _Where(chat=chat, thread_id=target.conversation.thread_id, update=update, slot_at=slot_at),
              reply_parts, reply_to=reply_to)
    return TelegramUpdate.Status.DONE


def _max_wait() -> float:
    # Eager mode (no broker) has nobody to retry later: wait for the slot instead.
    return 60.0 if settings.CELERY_TASK_ALWAYS_EAGER else settings.TELEGRAM_RATE_MAX_WAIT


def _slot_reserve(bot: Bot, where: _Where) -> None:
    """Before answering: reserve the send time of the answer's next message (``where.slot_at``, Unix seconds).

    A time within ``_max_wait()`` is used after the answer is computed. A later one is kept for this update
    and the update goes back to the queue until then (RetryLater with ``slot_at``), before any work is
    done, instead of holding a worker; its retry brings it back in ``where.slot_at``. A kept time more than a
    second in the past (the retry ran late) is given up and a new one is reserved.
    """
    kept = where.slot_at
    if kept is None or kept <= time.time() - 1.0:
        kept = slot_take(bot_id=bot.id, chat_id=where.chat.telegram_chat_id, is_group=where.is_group,
                         max_wait=24 * 3600).at
    wait = kept - time.time()
    if wait > _max_wait():
        raise RetryLater(wait, f"flood limit: next slot in {wait:.1f}s", flood=True, slot_at=kept)
    where.slot_at = kept


def _typing(bot: Bot, where: _Where) -> None:
    """Best-effort "typing…" while the answer is prepared; failures are not worth a retry.

    Not sent while Telegram asked this chat to wait (429); a 429 on it sets that wait for the answer too.
    """
    chat_id = where.chat.telegram_chat_id

    async def call(ptb):
        await ptb.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING, message_thread_id=where.thread_id)

    if flood_hold_remaining(bot_id=bot.id, chat_id=chat_id) > 0:
        return
    try:
        tg.run_telegram(bot_token(bot), call)
    except TelegramError as exc:
        failure = telegram_errors.classify(exc)
        if failure.kind == telegram_errors.FLOOD_WAIT:
            flood_hold(bot_id=bot.id, chat_id=chat_id, seconds=failure.retry_after)
        elif failure.kind == telegram_errors.TOKEN_REVOKED:
            raise
        logger.debug("sendChatAction failed for chat %s: %s", where.chat.id, exc)


def _next_slot(bot: Bot, where: _Where) -> float:
    """The send time of the reply's next part: the one kept for it, else a new reservation (Unix seconds)."""
    kept, where.slot_at = where.slot_at, None
    if kept is not None and kept > time.time() - 1.0:
        return kept
    return slot_take(bot_id=bot.id, chat_id=where.chat.telegram_chat_id, is_group=where.is_group,
                     max_wait=24 * 3600).at


def _send(bot: Bot, where: _Where, parts: list[Part], *, reply_to: int | None = None, markup=None) -> list[int]:
    """Send ``parts`` to the chat (and topic) in order, within the flood limits; returns Telegram message ids.

    Each part takes a send slot (``bots.ratelimit``: per bot, chat and group) and is sent when it comes,
    after the send gate. Nothing sleeps longer than ``TELEGRAM_INLINE_WAIT_MAX_SECONDS`` (or the slot wait,
    ``_max_wait()``): a longer wait raises RetryLater and the reply resumes after the parts already sent
    (kept on ``where.update.sent_message_ids``), so no part is sent twice and none is skipped. ``markup``
    goes on the last part. Telegram's errors (``bots.telegram_errors``):

    - 429: the chat is held for ``retry_after`` (every worker honours it); waited inline when short (3 times
      at most), else RetryLater(telegram_wait=True);
    - group upgraded to a supergroup (``migrate_to_chat_id``): the chat moves (``chat_migrate``) and the part
      is sent to the new id;
    - 400 can't parse entities: the plain text is sent instead;
    - 403 blocked / kicked / deactivated, 400 chat not found: the chat is marked blocked, Undeliverable;
    - any other 400: Undeliverable (failed; Telegram's words kept on the update);
    - 401, 5xx and network errors are raised to the caller (``update_process``).
    """
    update = where.update
    if where.chat.is_blocked:
        raise Undeliverable("the chat blocked the bot or is gone", status=TelegramUpdate.Status.DONE)
    token = bot_token(bot)
    ids: list[int] = list(update.sent_message_ids) if update is not None else []
    inline_max = settings.TELEGRAM_INLINE_WAIT_MAX_SECONDS
    for index in range(len(ids), len(parts)):
        part = parts[index]
        held = flood_hold_remaining(bot_id=bot.id, chat_id=where.chat.telegram_chat_id)
        if held > inline_max:  # Telegram asked this chat (or bot) to wait: not even in eager mode is it slept
            raise RetryLater(held, f"Telegram 429: {held:.0f}s left", flood=True, telegram_wait=True)
        at = _next_slot(bot, where)
        wait = at - time.time()
        if wait > _max_wait():
            raise RetryLater(wait, f"flood limit: part {index + 1} in {wait:.1f}s", flood=True, slot_at=at)
        if wait > 0:
            time.sleep(wait)
        while (late := send_gate(bot_id=bot.id, chat_id=where.chat.telegram_chat_id, is_group=where.is_group)) > 0:
            time.sleep(late)
        use_plain, flood_waits, migrations = False, 0, 0
        while True:
            chat_id = where.chat.telegram_chat_id

            async def call(ptb, text=part.plain if use_plain else part.html, plain=use_plain, chat_id=chat_id):
                return await ptb.send_message(
                    chat_id=chat_id, text=text, parse_mode=None if plain else ParseMode.HTML,
                    reply_to_message_id=reply_to if index == 0 else None, message_thread_id=where.thread_id,
                    allow_sending_without_reply=True, disable_web_page_preview=True,
                    reply_markup=markup if index == len(parts) - 1 else None)

            try:
                sent = tg.run_telegram(token, call)
                break
            except TelegramError as exc:
                failure = telegram_errors.classify(exc)
                if failure.kind == telegram_errors.FLOOD_WAIT:
                    flood_hold(bot_id=bot.id, chat_id=chat_id, seconds=failure.retry_after)
                    flood_waits += 1
                    if failure.retry_after <= inline_max and flood_waits <= 3:
                        time.sleep(failure.retry_after)
                        continue
                    raise RetryLater(failure.retry_after, f"Telegram 429: retry after {failure.retry_after:.0f}s",
                                     flood=True, telegram_wait=True) from exc
                if failure.kind == telegram_errors.CHAT_MIGRATED and migrations < 2:
                    migrations += 1
                    moved = chat_migrate(bot=bot, old_chat_id=chat_id, new_chat_id=failure.migrate_to_chat_id)
                    if moved is not None:
                        where.chat = moved
                    else:
                        where.chat.telegram_chat_id = failure.migrate_to_chat_id
                    continue
                if failure.kind == telegram_errors.ENTITIES and not use_plain:
                    use_plain = True
                    continue
                if failure.kind == telegram_errors.CHAT_UNREACHABLE:
                    Chat.objects.filter(id=where.chat.id).update(is_blocked=True)
                    logger.info("chat %s blocked the bot or is unreachable: %s", where.chat.id, exc)
                    raise Undeliverable(f"chat unreachable: {exc}", status=TelegramUpdate.Status.DONE) from exc
                if failure.kind in (telegram_errors.REJECTED, telegram_errors.ENTITIES):
                    raise Undeliverable(f"Telegram refused the message: {exc}",
                                        status=TelegramUpdate.Status.FAILED) from exc
                raise
        ids.append(sent.message_id)
        if update is not None and len(parts) > 1:
            update.sent_message_ids = list(ids)
            TelegramUpdate.objects.filter(id=update.id).update(sent_message_ids=ids)
    return ids


def inbox_sweep(*, stale_seconds: int | None = None) -> int:
    """Re-enqueue updates left pending (broker down), due after a wait, or whose worker died.

    - pending without a wait: received more than ``stale_seconds`` (``TELEGRAM_INBOX_STALE_SECONDS``) ago;
    - pending with ``not_before`` (Telegram's 429, a later send slot): once it is due, never before;
    - processing: claim not refreshed for ``claim_stale_seconds()`` (its worker stopped beating).

    Runs every ``TELEGRAM_INBOX_SWEEP_SECONDS`` from beat; enqueueing an update twice is harmless (the claim).

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
            WHERE (status = 'pending' AND not_before IS NULL
                   AND received_at < clock_timestamp() - make_interval(secs => %s))
               OR (status = 'pending' AND not_before <= clock_timestamp())
               OR (status = 'processing' AND locked_at < clock_timestamp() - make_interval(secs => %s))
            ORDER BY received_at LIMIT 1000
            """,
            [stale, claim_stale_seconds()],
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

    stuck_before = timezone.now() - dt.timedelta(seconds=claim_stale_seconds())
    with transaction.atomic():
        queue = (TelegramUpdate.objects.select_for_update().filter(id__in=update_pks)
                 .filter(Q(status__in=[TelegramUpdate.Status.FAILED, TelegramUpdate.Status.PENDING])
                         | Q(status=TelegramUpdate.Status.PROCESSING, locked_at__lt=stuck_before)))
        ids = list(queue.values_list("id", flat=True))
        TelegramUpdate.objects.filter(id__in=ids).update(status=TelegramUpdate.Status.PENDING, attempts=0,
                                                         locked_at=None, processed_at=None, not_before=None)
        for update_pk in ids:
            enqueue_on_commit(process_update_task, update_pk, background=True)
    return len(ids)
