"""The Telegram seam: every Bot API call we make, and what Telegram's errors mean, in one module.

Nothing else in the product imports python-telegram-bot (an import contract in pyproject.toml checks it).
Callers get a small typed interface: one function per Bot API method we use, plain values in and out
(tokens, ids, texts, ``(label, callback_data)`` buttons), and one exception, :class:`TelegramFailed`, whose
``failure`` (:class:`TelegramFailure`) says what Telegram's answer means for us (docs/telegram.md, "Telegram's
errors"). ``TELEGRAM_API_BASE_URL`` points at Telegram (default), a local Bot API server, or the emulator of
the tests and the demo.

python-telegram-bot is asynchronous and our workers are synchronous: each thread keeps one event loop and one
HTTP client (building an httpx client costs ~50-100 ms), and every call runs on them.

How PTB reads the Bot API's error body (``{"ok": false, "error_code", "description", "parameters"}``):
``parameters.retry_after`` → ``RetryAfter``, ``parameters.migrate_to_chat_id`` → ``ChatMigrated`` (whatever the
status), 403 → ``Forbidden``, 401/404 → ``InvalidToken``, 400 → ``BadRequest`` (a subclass of ``NetworkError``!),
409 → ``Conflict``, 5xx and transport failures → ``NetworkError`` / ``TimedOut``. :func:`classify` turns those
into one :class:`TelegramFailure`; the descriptions matched are the real ones (``../shared/data/telegram/errors``).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypedDict, TypeVar

from django.conf import settings
from django.urls import reverse
from telegram import Bot as PTBBot
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, \
    TelegramError, TimedOut
from telegram.request import HTTPXRequest

from saas_bot.errors import ProviderUnavailable, ServiceError, ValidationFailed

T = TypeVar("T")

# Telegram Bot API: "Text of the message to be sent, 1-4096 characters after entities parsing".
MESSAGE_MAX_CHARS = 4096
# Allowed update kinds we register; the webhook still accepts and stores any kind.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
# The command menu registered with setMyCommands (name, description: 1-32 and 1-256 characters).
COMMANDS = [
    ("start", "Welcome and what I can do"),
    ("help", "How to ask me questions"),
    ("new", "Start a new conversation"),
    ("usage", "How many questions you have left today"),
    ("sources", "Sources of my last answer"),
]

# What a failure means, and what the product does with each (docs/telegram.md, "Telegram's errors").
FLOOD_WAIT = "flood_wait"            # 429: wait retry_after seconds before any call of this kind again
CHAT_MIGRATED = "chat_migrated"      # 400 + migrate_to_chat_id: the group is a supergroup now; resend there
TOKEN_REVOKED = "token_revoked"      # 401 / 404: the bot's token no longer works
CHAT_UNREACHABLE = "chat_unreachable"  # 403 blocked / kicked / deactivated / can't initiate, 400 chat not found
ENTITIES = "entities"                # 400 can't parse entities: send the plain text instead
NOT_MODIFIED = "not_modified"        # 400 message is not modified: nothing to do, counts as done
QUERY_TOO_OLD = "query_too_old"      # 400 callback query too old: the press is stored, the notice is lost
REJECTED = "rejected"                # any other 400 (too long, empty, bad secret...) and 409: our bug, not retried
UNAVAILABLE = "unavailable"          # 5xx, timeouts, connection errors: transient, retried with backoff

_CHAT_GONE = ("chat not found", "group chat was deactivated", "peer_id_invalid", "bot is not a member")


@dataclass(frozen=True)
class TelegramFailure:
    """What a Telegram error means for us.

    ``kind``: one of the constants above. ``retry_after``: seconds (FLOOD_WAIT only).
    ``migrate_to_chat_id``: the supergroup's id (CHAT_MIGRATED only). ``transient``: trying again later can
    succeed. ``message``: Telegram's description, for logs and the admin.
    """

    kind: str
    message: str
    transient: bool = False
    retry_after: float | None = None
    migrate_to_chat_id: int | None = None


class TelegramFailed(Exception):
    """A Bot API call failed; ``failure`` says what it means. ``str(exc)`` is Telegram's description."""

    def __init__(self, failure: TelegramFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure

    @property
    def kind(self) -> str:
        return self.failure.kind


def retry_after_seconds(exc: RetryAfter) -> float:
    """``exc.retry_after`` in seconds (PTB gives an int or a timedelta depending on its settings)."""
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def classify(exc: BaseException) -> TelegramFailure | None:
    """The :class:`TelegramFailure` for a python-telegram-bot exception (or a TelegramFailed); None otherwise.

    Order matters: ``BadRequest`` and ``TimedOut`` are subclasses of ``NetworkError`` in PTB, so a 400 is
    checked before the transient network errors.
    """
    if isinstance(exc, TelegramFailed):
        return exc.failure
    message = str(exc)
    lowered = message.lower()
    if isinstance(exc, RetryAfter):
        return TelegramFailure(FLOOD_WAIT, message, transient=True, retry_after=retry_after_seconds(exc))
    if isinstance(exc, ChatMigrated):
        return TelegramFailure(CHAT_MIGRATED, message, migrate_to_chat_id=int(exc.new_chat_id))
    if isinstance(exc, InvalidToken):
        return TelegramFailure(TOKEN_REVOKED, message)
    if isinstance(exc, Forbidden):
        return TelegramFailure(CHAT_UNREACHABLE, message)
    if isinstance(exc, BadRequest):
        if "can't parse entities" in lowered or "can't find end" in lowered:
            return TelegramFailure(ENTITIES, message)
        if "message is not modified" in lowered:
            return TelegramFailure(NOT_MODIFIED, message)
        if "query is too old" in lowered or "query id is invalid" in lowered:
            return TelegramFailure(QUERY_TOO_OLD, message)
        if any(text in lowered for text in _CHAT_GONE):
            return TelegramFailure(CHAT_UNREACHABLE, message)
        return TelegramFailure(REJECTED, message)
    if isinstance(exc, Conflict):
        return TelegramFailure(REJECTED, message)
    if isinstance(exc, (TimedOut, NetworkError, TelegramError)):
        return TelegramFailure(UNAVAILABLE, message, transient=True)
    return None


def service_error(exc: TelegramFailed, what: str = "") -> ServiceError:
    """A failed bot-level call (getMe, setWebhook...) as our coded error, for the admin, the API and commands.

    Returns:
        ValidationFailed(code="bot_token_invalid"): 401/404 (InvalidToken).
        ProviderUnavailable(code="telegram_flood_wait"): 429; ``detail={"retry_after": seconds}``.
        ProviderUnavailable(code="telegram_unavailable"): 5xx, timeouts, connection errors.
        ValidationFailed(code="telegram_rejected"): any other refusal (400, 403, 409), with Telegram's words.
    """
    failure, prefix = exc.failure, f"{what}: " if what else ""
    if failure.kind == TOKEN_REVOKED:
        return ValidationFailed(code="bot_token_invalid", message="Telegram rejected this bot token.")
    if failure.kind == FLOOD_WAIT:
        return ProviderUnavailable(code="telegram_flood_wait", detail={"retry_after": failure.retry_after},
                                   message=f"{prefix}Telegram asks to wait {failure.retry_after:.0f} s (429).")
    if failure.transient:
        return ProviderUnavailable(code="telegram_unavailable", message=f"{prefix}Telegram is unreachable: {exc}")
    return ValidationFailed(code="telegram_rejected", message=f"{prefix}Telegram refused: {exc}")


# --- the client: one event loop and one HTTP client per thread ---------------------------------------------

def _new_request() -> HTTPXRequest:
    return HTTPXRequest(connection_pool_size=8, connect_timeout=5.0, read_timeout=15.0, write_timeout=15.0,
                        pool_timeout=5.0)


def _build_bot(token: str, request: HTTPXRequest) -> PTBBot:
    base = settings.TELEGRAM_API_BASE_URL
    return PTBBot(token=token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", request=request,
                  get_updates_request=request)


class _ThreadClient:
    """Per thread: one event loop (asyncio.Runner), one HTTP client, and a PTB Bot per token (LRU)."""

    MAX_BOTS = 256

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.request: HTTPXRequest | None = None
        self.base = ""
        self.bots: OrderedDict[str, PTBBot] = OrderedDict()

    def bot(self, token: str) -> PTBBot:
        base = settings.TELEGRAM_API_BASE_URL
        if base != self.base or self.request is None:  # tests point at a new emulator: start afresh
            self.close()
            self.base, self.request = base, _new_request()
        bot = self.bots.pop(token, None) or _build_bot(token, self.request)
        self.bots[token] = bot
        while len(self.bots) > self.MAX_BOTS:
            self.bots.popitem(last=False)
        return bot

    def close(self) -> None:
        if self.request is not None:
            try:
                self.runner.run(self.request.shutdown())
            except Exception:  # closing a client whose server went away
                pass
        self.request, self.bots = None, OrderedDict()


_threads = threading.local()


def _run(token: str, call: Callable[[PTBBot], Awaitable[T]]) -> T:
    """Run ``call(bot)`` on this thread's loop and client. Raises TelegramFailed for any Telegram error."""
    client = getattr(_threads, "client", None)
    if client is None:
        client = _threads.client = _ThreadClient()
    try:
        return client.runner.run(call(client.bot(token)))
    except TelegramError as exc:
        raise TelegramFailed(classify(exc)) from exc


# --- the Bot API calls (each raises TelegramFailed) ----------------------------------------------------------

class BotIdentity(TypedDict):
    id: int
    username: str | None
    first_name: str


class WebhookInfo(TypedDict):
    url: str
    pending_update_count: int
    last_error_message: str
    last_error_date: dt.datetime | None
    max_connections: int | None
    allowed_updates: list[str]


def get_me(token: str) -> BotIdentity:
    """``getMe``: the id, username and first name of the bot owning ``token``."""
    async def call(bot: PTBBot) -> BotIdentity:
        me = await bot.get_me()
        return {"id": me.id, "username": me.username, "first_name": me.first_name}

    return _run(token, call)


def set_my_commands(token: str, commands: list[tuple[str, str]] = COMMANDS) -> None:
    """``setMyCommands``: the command menu, (name, description) pairs."""
    menu = [BotCommand(name, description) for name, description in commands]

    async def call(bot: PTBBot) -> None:
        await bot.set_my_commands(menu)

    _run(token, call)


def get_webhook_info(token: str) -> WebhookInfo:
    """``getWebhookInfo``: what Telegram has registered for the bot and its last delivery error."""
    async def call(bot: PTBBot) -> WebhookInfo:
        info = await bot.get_webhook_info()
        return {"url": info.url or "", "pending_update_count": info.pending_update_count or 0,
                "last_error_message": info.last_error_message or "", "last_error_date": info.last_error_date,
                "max_connections": info.max_connections, "allowed_updates": list(info.allowed_updates or [])}

    return _run(token, call)


def set_webhook(token: str, *, url: str, secret_token: str, allowed_updates: list[str] = ALLOWED_UPDATES) -> None:
    """``setWebhook`` (pending updates kept by Telegram)."""
    async def call(bot: PTBBot) -> None:
        await bot.set_webhook(url=url, secret_token=secret_token, allowed_updates=allowed_updates,
                              drop_pending_updates=False)

    _run(token, call)


def delete_webhook(token: str) -> None:
    """``deleteWebhook`` (pending updates kept by Telegram)."""
    async def call(bot: PTBBot) -> None:
        await bot.delete_webhook(drop_pending_updates=False)

    _run(token, call)


def send_message(token: str, *, chat_id: int, text: str, html: bool = True, reply_to: int | None = None,
                 thread_id: int | None = None, buttons: list[tuple[str, str]] | None = None) -> int:
    """``sendMessage``; returns Telegram's message id.

    Args:
        html: ``text`` is Telegram HTML (parse_mode HTML); False sends it as plain text.
        reply_to: the message answered (sent even if it was deleted meanwhile).
        thread_id: the forum topic.
        buttons: one row of inline buttons, (label, callback_data of 1-64 bytes).
    """
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in buttons]]) \
        if buttons else None

    async def call(bot: PTBBot) -> int:
        sent = await bot.send_message(chat_id=chat_id, text=text, parse_mode=ParseMode.HTML if html else None,
                                      reply_to_message_id=reply_to, message_thread_id=thread_id,
                                      allow_sending_without_reply=True, disable_web_page_preview=True,
                                      reply_markup=markup)
        return sent.message_id

    return _run(token, call)


def send_typing(token: str, *, chat_id: int, thread_id: int | None = None) -> None:
    """``sendChatAction`` "typing" in the chat (and forum topic)."""
    async def call(bot: PTBBot) -> None:
        await bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING, message_thread_id=thread_id)

    _run(token, call)


def answer_callback_query(token: str, *, query_id: str, text: str | None = None) -> None:
    """``answerCallbackQuery`` for a button press, with an optional notice."""
    async def call(bot: PTBBot) -> None:
        await bot.answer_callback_query(callback_query_id=query_id, text=text)

    _run(token, call)


def parse_update(payload: dict[str, Any]) -> Update:
    """A stored update as PTB's ``Update`` (read-only objects; entity offsets converted by ``parse_entities``).

    Raises:
        whatever PTB raises for a shape it cannot read (callers record it and do not retry).
    """
    return Update.de_json(payload, None)


def webhook_url_for(public_id: str) -> str:
    """The URL Telegram posts updates of a bot to: ``PUBLIC_BASE_URL/telegram/webhook/<public id>/``.

    It ends with a slash and is exactly the URL the webhook view answers (no redirect).
    """
    return settings.PUBLIC_BASE_URL + reverse("telegram-webhook", kwargs={"public_id": public_id})
