"""Delivery: send slots, the send and its errors, and the settlement of an answer once it is delivered.

Every message to a chat takes a send slot (``bots.ratelimit``: per bot, chat and group) and goes through the
Telegram seam (``bots.telegram``); what Telegram's refusals mean for the reply is decided here (``send``).
A wait longer than a worker may hold is raised as :class:`RetryLater`; a reply that can never arrive as
:class:`Undeliverable`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from bots import telegram as tg
from bots.answers import message_delivered, message_undeliverable
from bots.conversations import chat_migrate
from bots.formatting import Part, format_answer
from bots.models import Bot, Chat, Message, TelegramUpdate
from bots.ratelimit import flood_hold, flood_hold_remaining, send_gate, slot_take
from bots.telegram_setup import bot_token

logger = logging.getLogger("saas_bot.bots")
GROUP_TYPES = ("group", "supergroup")  # Telegram's chat types of groups (Bot API, Chat.type)


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


@dataclass
class Where:
    """Where replies go: the chat, the forum topic (``message_thread_id``) and, in groups, the question."""

    chat: Chat
    thread_id: int | None = None
    reply_to: int | None = None
    update: TelegramUpdate | None = None  # the reply's progress (parts sent) is kept on it
    slot_at: float | None = None  # a send time reserved for the next part (Unix seconds)

    @property
    def is_group(self) -> bool:
        return self.chat.type in GROUP_TYPES


def _answer_buttons(reply: Message) -> list[tuple[str, str]]:
    """👍 / 👎 / Sources under an answer. callback_data (1-64 bytes, Bot API) carries our Message id."""
    row = [("👍", f"fb:{reply.id}:1"), ("👎", f"fb:{reply.id}:-1")]
    if reply.sources:
        row.append(("Sources", f"src:{reply.id}"))
    return row


def _max_wait() -> float:
    # Eager mode (no broker) has nobody to retry later: wait for the slot instead.
    return 60.0 if settings.CELERY_TASK_ALWAYS_EAGER else settings.TELEGRAM_RATE_MAX_WAIT


def slot_reserve(bot: Bot, where: Where) -> None:
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


def typing_show(bot: Bot, where: Where) -> None:
    """Best-effort "typing…" while the answer is prepared; failures are not worth a retry.

    Not sent while Telegram asked this chat to wait (429); a 429 on it sets that wait for the answer too.
    """
    chat_id = where.chat.telegram_chat_id

    if flood_hold_remaining(bot_id=bot.id, chat_id=chat_id) > 0:
        return
    try:
        tg.send_typing(bot_token(bot), chat_id=chat_id, thread_id=where.thread_id)
    except tg.TelegramFailed as exc:
        if exc.kind == tg.FLOOD_WAIT:
            flood_hold(bot_id=bot.id, chat_id=chat_id, seconds=exc.failure.retry_after)
        elif exc.kind == tg.TOKEN_REVOKED:
            raise
        logger.debug("sendChatAction failed for chat %s: %s", where.chat.id, exc)


def _next_slot(bot: Bot, where: Where) -> float:
    """The send time of the reply's next part: the one kept for it, else a new reservation (Unix seconds)."""
    kept, where.slot_at = where.slot_at, None
    if kept is not None and kept > time.time() - 1.0:
        return kept
    return slot_take(bot_id=bot.id, chat_id=where.chat.telegram_chat_id, is_group=where.is_group,
                     max_wait=24 * 3600).at


def send(bot: Bot, where: Where, parts: list[Part], *, reply_to: int | None = None,
         buttons: list[tuple[str, str]] | None = None) -> list[int]:
    """Send ``parts`` to the chat (and topic) in order, within the flood limits; returns Telegram message ids.

    Each part takes a send slot (``bots.ratelimit``: per bot, chat and group) and is sent when it comes,
    after the send gate. Nothing sleeps longer than ``TELEGRAM_INLINE_WAIT_MAX_SECONDS`` (or the slot wait,
    ``_max_wait()``): a longer wait raises RetryLater and the reply resumes after the parts already sent
    (kept on ``where.update.sent_message_ids``), so no part is sent twice and none is skipped. ``buttons``
    go on the last part. Telegram's errors (``bots.telegram.TelegramFailure``):

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
        # A slot reserved before the chat's hold began (a 429 on the typing action or a button's notice while the
        # answer was computed) must still honour it: the hold is within the inline bound here.
        wait = max(wait, held)
        if wait > 0:
            time.sleep(wait)
        while (late := send_gate(bot_id=bot.id, chat_id=where.chat.telegram_chat_id, is_group=where.is_group)) > 0:
            time.sleep(late)
        use_plain, flood_waits, migrations = False, 0, 0
        while True:
            chat_id = where.chat.telegram_chat_id

            try:
                sent_id = tg.send_message(token, chat_id=chat_id, text=part.plain if use_plain else part.html,
                                          html=not use_plain, reply_to=reply_to if index == 0 else None,
                                          thread_id=where.thread_id,
                                          buttons=buttons if index == len(parts) - 1 else None)
                break
            except tg.TelegramFailed as exc:
                failure = exc.failure
                if failure.kind == tg.FLOOD_WAIT:
                    flood_hold(bot_id=bot.id, chat_id=chat_id, seconds=failure.retry_after)
                    flood_waits += 1
                    if failure.retry_after <= inline_max and flood_waits <= 3:
                        time.sleep(failure.retry_after)
                        continue
                    raise RetryLater(failure.retry_after, f"Telegram 429: retry after {failure.retry_after:.0f}s",
                                     flood=True, telegram_wait=True) from exc
                if failure.kind == tg.CHAT_MIGRATED and migrations < 2:
                    migrations += 1
                    moved = chat_migrate(bot=bot, old_chat_id=chat_id, new_chat_id=failure.migrate_to_chat_id)
                    if moved is not None:
                        where.chat = moved
                    else:
                        where.chat.telegram_chat_id = failure.migrate_to_chat_id
                    continue
                if failure.kind == tg.ENTITIES and not use_plain:
                    use_plain = True
                    continue
                if failure.kind == tg.CHAT_UNREACHABLE:
                    Chat.objects.filter(id=where.chat.id).update(is_blocked=True)
                    logger.info("chat %s blocked the bot or is unreachable: %s", where.chat.id, exc)
                    raise Undeliverable(f"chat unreachable: {exc}", status=TelegramUpdate.Status.DONE) from exc
                if failure.kind in (tg.REJECTED, tg.ENTITIES):
                    raise Undeliverable(f"Telegram refused the message: {exc}",
                                        status=TelegramUpdate.Status.FAILED) from exc
                raise
        ids.append(sent_id)
        if update is not None and len(parts) > 1:
            update.sent_message_ids = list(ids)
            TelegramUpdate.objects.filter(id=update.id).update(sent_message_ids=ids)
    return ids



def answer_send(bot: Bot, where: Where, reply: Message, *, idempotency_key: str) -> None:
    """Send an answer (or limit notice) not yet delivered, with 👍/👎/Sources under an answer, and settle it:
    delivered (metered once, ``message_delivered``) or undeliverable (not billed, ``message_undeliverable``).

    Raises:
        Undeliverable, RetryLater and the errors of :func:`send` (the reply resumes where it stopped).
    """
    if reply.delivered_at is not None or reply.delivery_error:
        return
    buttons = _answer_buttons(reply) if reply.status in (Message.Status.ANSWERED, Message.Status.NOT_FOUND) else None
    try:
        ids = send(bot, where, format_answer(reply.answer, reply.sources), reply_to=where.reply_to, buttons=buttons)
    except Undeliverable as exc:
        message_undeliverable(message=reply, reason=str(exc), idempotency_key=idempotency_key)
        raise
    message_delivered(message=reply, telegram_message_ids=ids, idempotency_key=idempotency_key)


def press_acknowledge(bot: Bot, *, query_id: str, chat_id: int | None, notice: str) -> None:
    """``answerCallbackQuery`` for a button press, best effort: the press is stored anyway.

    Telegram's 429 is honoured as for a send: the chat's hold (a 429 on any call to the chat) and a 429 on this
    call are waited inline when they end within ``TELEGRAM_INLINE_WAIT_MAX_SECONDS`` (3 tries at most), then the
    notice is sent. A longer wait is not slept and the notice is not sent (the query would be too old by then; only
    the notice is lost); the chat stays held for ``retry_after``. A revoked token (401) is raised
    (``update_process``).
    """
    inline_max = settings.TELEGRAM_INLINE_WAIT_MAX_SECONDS
    token = bot_token(bot)
    for attempt in range(3):
        held = flood_hold_remaining(bot_id=bot.id, chat_id=chat_id) if chat_id is not None else 0.0
        if held > inline_max:
            logger.info("answerCallbackQuery for bot %s not sent: Telegram asked the chat to wait %.0f s", bot.id, held)
            return
        if held > 0:
            time.sleep(held)
        try:
            tg.answer_callback_query(token, query_id=query_id, text=notice or None)
            return
        except tg.TelegramFailed as exc:
            if exc.kind == tg.TOKEN_REVOKED:
                raise
            if exc.kind != tg.FLOOD_WAIT:
                logger.info("answerCallbackQuery for bot %s: %s", bot.id, exc)
                return
            wait = exc.failure.retry_after
            if chat_id is not None:
                flood_hold(bot_id=bot.id, chat_id=chat_id, seconds=wait)
            if wait > inline_max or attempt == 2:
                logger.info("answerCallbackQuery for bot %s: %s", bot.id, exc)
                return
            if chat_id is None:  # no chat to hold: wait here
                time.sleep(wait)
