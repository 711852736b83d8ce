"""Routing: what a stored update asks for, and the reply it gets.

A chat-member change marks the chat blocked or not; a button press is feedback or sources; a message is a
command (/start, /help, /new, /usage, /sources), an edit, something other than text, or a question for the
answer pipeline (``bots.answers``). In groups the bot answers only when addressed. Replies go out through
``bots.delivery``. The update arrives here parsed by the Telegram seam (python-telegram-bot's read-only
``Update``; its ``parse_entities`` turns UTF-16 offsets into text).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing.quotas import end_user_quota_today
from bots.answers import message_answer
from bots.conversations import (chat_migrate, chat_upsert, conversation_end, conversation_for_chat,
                                message_feedback_set, telegram_user_upsert)
from bots.delivery import Where, answer_send, press_acknowledge, send, slot_reserve, typing_show
from bots.formatting import Part, format_sources, format_text
from bots.models import Bot, Chat, Message, TelegramUpdate
from saas_bot.errors import ServiceError

# Telegram's names (Bot API: Chat.type, MessageEntity.type).
PRIVATE = "private"
BOT_COMMAND, MENTION = "bot_command", "mention"


NON_TEXT_REPLY = "I can only answer text questions. Please type your question."


@dataclass
class _Incoming:
    message: Any  # the seam's parsed message (python-telegram-bot's Message)
    text: str
    command: str | None
    command_arg: str


def _addressed_text(bot: Bot, message: Any) -> _Incoming | None:
    """The text meant for the bot, or None if a group message is not addressed to it.

    In groups the bot answers only when mentioned (@username), replied to, or sent a command
    addressed to it (/cmd@username). Entity offsets are UTF-16 code units; PTB's
    ``parse_entities`` converts them.
    """
    text = message.text or ""
    username = (bot.username or "").lower()
    private = message.chat.type == PRIVATE
    entities = message.parse_entities()
    command, command_arg, addressed = None, "", private
    for entity, value in entities.items():
        if entity.type == BOT_COMMAND and entity.offset == 0:
            name, _, target = value[1:].partition("@")
            if target and target.lower() != username:
                return None  # a command for another bot
            if private or target:
                command, addressed = name.lower(), True
                command_arg = text[len(value):].strip()
        elif entity.type == MENTION and value[1:].lower() == username:
            addressed = True
            text = text.replace(value, " ")
    if _replies_to_bot(bot, message):
        addressed = True
    if not addressed:
        return None
    return _Incoming(message=message, text=" ".join(text.split()), command=command, command_arg=command_arg)


def route(*, bot: Bot, update: TelegramUpdate, parsed: Any, started: float,
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
    if chat.is_blocked and message.chat.type == PRIVATE and edited is None:
        Chat.objects.filter(id=chat.id).update(is_blocked=False)  # they wrote again, so they unblocked us
        chat.is_blocked = False
    private = message.chat.type == PRIVATE
    where = Where(chat=chat, thread_id=message.message_thread_id if message.is_topic_message else None,
                   reply_to=None if private else message.message_id, update=update, slot_at=slot_at)
    if message.text is None:
        if edited is None and not message.new_chat_members and not message.left_chat_member and \
                (private or _replies_to_bot(bot, message)):
            send(bot, where, format_text(NON_TEXT_REPLY), reply_to=message.message_id)
            return TelegramUpdate.Status.DONE
        return TelegramUpdate.Status.IGNORED
    incoming = _addressed_text(bot, message)
    if incoming is None:
        return TelegramUpdate.Status.IGNORED
    if edited is not None and bot.edited_messages != Bot.EditedMessages.ANSWER:
        if _edit_already_noted(bot, update, chat_id=message.chat.id, message_id=message.message_id):
            return TelegramUpdate.Status.IGNORED
        send(bot, where, format_text(EDITED_REPLY), reply_to=message.message_id)
        return TelegramUpdate.Status.DONE
    command = incoming.command
    if command == "start":
        if incoming.command_arg:
            Chat.objects.filter(id=chat.id).update(start_param=incoming.command_arg[:64])
        send(bot, where, format_text(bot.welcome_text))
        return TelegramUpdate.Status.DONE
    if command == "new":
        conversation_end(chat=chat, thread_id=where.thread_id)
        send(bot, where, format_text(NEW_CONVERSATION_REPLY))
        return TelegramUpdate.Status.DONE
    if command == "usage":
        text = _usage_text(bot, message.from_user.id if message.from_user else None)
        send(bot, where, format_text(text))
        return TelegramUpdate.Status.DONE
    if command == "sources":
        last = (Message.objects.filter(bot=bot, conversation__chat=chat, conversation__thread_id=where.thread_id)
                .exclude(answer="").order_by("-created_at").first())
        parts = format_sources(last.sources) if last else format_text(NO_ANSWER_YET)
        send(bot, where, parts)
        return TelegramUpdate.Status.DONE
    question = incoming.command_arg if command is not None else incoming.text
    if command == "help" or not question.strip():
        send(bot, where, format_text(bot.help_text))
        return TelegramUpdate.Status.DONE
    slot_reserve(bot, where)
    typing_show(bot, where)
    key = update.answer_key
    result = message_answer(bot=bot, question=question,
                            conversation=conversation_for_chat(chat=chat, thread_id=where.thread_id,
                                                               end_user=end_user),
                            idempotency_key=key, update=update, meter_on_delivery=True,
                            end_user_id=message.from_user.id if message.from_user else None, started=started)
    answer_send(bot, where, result.message, idempotency_key=key)
    return TelegramUpdate.Status.DONE


EDITED_REPLY = "I answer new messages only, not edits. Please send your corrected question as a new message."


NEW_CONVERSATION_REPLY = "OK, a new conversation: I have forgotten what we talked about. What would you like to know?"


NO_ANSWER_YET = "I have not answered anything here yet."


FEEDBACK_THANKS = {1: "Thanks! Glad it helped.", -1: "Thanks for telling us. We will use it to improve."}


def _replies_to_bot(bot: Bot, message: Any) -> bool:
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
    quota = end_user_quota_today(company=bot.company, end_user_id=end_user_id) if end_user_id else None
    if quota is None:
        return "There is no daily limit on your questions. Ask away!"
    return (f"You have {quota['remaining']} of {quota['limit']} questions left today. "
            f"The count starts again at 00:00 UTC.")


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

    if not (update is not None and update.sent_message_ids):  # a resumed reply: the press was answered
        press_acknowledge(bot, query_id=query.id, chat_id=chat_id, notice=notice)
    if reply_parts and target is not None:
        chat = target.conversation.chat
        reply_to = (target.telegram_message_ids or [None])[-1]
        send(bot, Where(chat=chat, thread_id=target.conversation.thread_id, update=update, slot_at=slot_at),
             reply_parts, reply_to=reply_to)
    return TelegramUpdate.Status.DONE

