"""Chats, conversations and end users: who a bot talks to, where, and what it remembers.

A chat (private, group, forum) is created on first sight and follows a group's move to a supergroup;
a conversation continues until /new or the bot's idle time (its answered turns are the answer pipeline's
memory, ``bots.answers.conversation_history``); end users are Telegram users of one bot; 👍/👎 are stored
on answers.
"""
from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from bots.models import Bot, Chat, Conversation, Message, TelegramUser
from saas_bot.errors import NotFound, ValidationFailed

logger = logging.getLogger("saas_bot.bots")


def conversation_for_cli(*, bot: Bot) -> Conversation:
    """A fresh conversation for a command-line question."""
    return Conversation.objects.create(company=bot.company, bot=bot, channel=Conversation.Channel.CLI)


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

