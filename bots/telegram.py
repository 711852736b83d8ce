"""The Telegram client: python-telegram-bot's ``Bot``, built from settings.

``TELEGRAM_API_BASE_URL`` points at Telegram (default), a local Bot API server,
or the test emulator (``bots/telegram_emulator.py``). PTB is asynchronous; our
workers are synchronous, so each thread keeps one event loop and one HTTP client,
and each call runs on them (``run_telegram``).
"""
from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import Any, Awaitable, Callable, TypeVar

from django.conf import settings
from telegram import Bot as PTBBot
from telegram.request import HTTPXRequest

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


def build_bot(token: str, request: HTTPXRequest | None = None) -> PTBBot:
    """A PTB ``Bot`` for ``token`` against ``TELEGRAM_API_BASE_URL`` (timeouts in seconds).

    ``request``: an HTTPXRequest to share (one HTTP client for many bots); a new one by default.
    """
    base = settings.TELEGRAM_API_BASE_URL
    request = request or _new_request()
    return PTBBot(token=token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", request=request,
                  get_updates_request=request)


def _new_request() -> HTTPXRequest:
    return HTTPXRequest(connection_pool_size=8, connect_timeout=5.0, read_timeout=15.0, write_timeout=15.0,
                        pool_timeout=5.0)


class _ThreadClient:
    """Per thread: one event loop (asyncio.Runner), one HTTP client, and a PTB Bot per token (LRU).

    Building an httpx client (its TLS context) costs ~50-100 ms; doing it for every call made each
    answered update spend most of its time there. Loops and clients are not shared between threads.
    """

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
        bot = self.bots.pop(token, None) or build_bot(token, self.request)
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


def run_telegram(token: str, call: Callable[[PTBBot], Awaitable[T]]) -> T:
    """Run ``call(bot)`` on this thread's event loop with its shared HTTP client; returns its result.

    Raises whatever PTB raises: ``telegram.error.RetryAfter`` (429), ``Forbidden`` (403),
    ``InvalidToken`` (401/404 on the token), ``BadRequest`` (400), ``TimedOut``/``NetworkError``.
    """
    client = getattr(_threads, "client", None)
    if client is None:
        client = _threads.client = _ThreadClient()
    return client.runner.run(call(client.bot(token)))


def webhook_url_for(public_id: str) -> str:
    """The URL Telegram posts updates of a bot to: ``PUBLIC_BASE_URL/telegram/webhook/<public id>/``.

    It ends with a slash and is exactly the URL the webhook view answers (no redirect).
    """
    from django.urls import reverse

    return settings.PUBLIC_BASE_URL + reverse("telegram-webhook", kwargs={"public_id": public_id})


def get_me(token: str) -> dict[str, Any]:
    """``getMe``: {"id", "username", "first_name"} of the bot owning ``token``.

    Raises:
        telegram.error.InvalidToken: Telegram rejected the token.
    """
    async def call(bot: PTBBot) -> dict[str, Any]:
        me = await bot.get_me()
        return {"id": me.id, "username": me.username, "first_name": me.first_name}

    return run_telegram(token, call)
