"""The Telegram client: python-telegram-bot's ``Bot``, built from settings.

``TELEGRAM_API_BASE_URL`` points at Telegram (default), a local Bot API server,
or the test emulator (``bots/telegram_emulator.py``). PTB is asynchronous; our
workers are synchronous, so each call runs its own short event loop with a
fresh HTTP client (``run_telegram``).
"""
from __future__ import annotations

import asyncio
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


def build_bot(token: str) -> PTBBot:
    """A PTB ``Bot`` for ``token`` against ``TELEGRAM_API_BASE_URL`` (timeouts in seconds)."""
    base = settings.TELEGRAM_API_BASE_URL
    request = HTTPXRequest(connection_pool_size=8, connect_timeout=5.0, read_timeout=15.0, write_timeout=15.0,
                           pool_timeout=5.0)
    return PTBBot(token=token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", request=request,
                  get_updates_request=HTTPXRequest(connection_pool_size=1))


def run_telegram(token: str, call: Callable[[PTBBot], Awaitable[T]]) -> T:
    """Run ``call(bot)`` in a fresh event loop and close the HTTP client afterwards.

    Raises whatever PTB raises: ``telegram.error.RetryAfter`` (429), ``Forbidden`` (403),
    ``InvalidToken`` (401/404 on the token), ``BadRequest`` (400), ``TimedOut``/``NetworkError``.
    """

    async def main() -> T:
        bot = build_bot(token)
        try:
            return await call(bot)
        finally:
            await bot.request.shutdown()

    return asyncio.run(main())


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
