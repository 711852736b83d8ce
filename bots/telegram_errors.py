"""One mapping from Telegram's error answers to what the product does with them.

python-telegram-bot turns the Bot API's error body (``{"ok": false, "error_code", "description",
"parameters"}``) into exceptions: ``parameters.retry_after`` → ``RetryAfter``, ``parameters.migrate_to_chat_id``
→ ``ChatMigrated`` (whatever the status), 403 → ``Forbidden``, 401/404 → ``InvalidToken``, 400 → ``BadRequest``
(a subclass of ``NetworkError``!), 409 → ``Conflict``, 5xx and transport failures → ``NetworkError`` /
``TimedOut``. :func:`classify` reads those into one :class:`TelegramFailure`, so every caller (sends,
chat actions, webhook and command-menu calls, ``telegram_webhooks``) decides the same way. The
descriptions matched are the real ones (``../shared/data/telegram/errors``); docs/telegram.md has the table.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, \
    TelegramError, TimedOut

# Kinds, and what the product does with each (docs/telegram.md, "Telegram's errors").
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


def retry_after_seconds(exc: RetryAfter) -> float:
    """``exc.retry_after`` in seconds (PTB gives an int or a timedelta depending on its settings)."""
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def classify(exc: BaseException) -> TelegramFailure | None:
    """The :class:`TelegramFailure` for a python-telegram-bot exception; None for anything else.

    Order matters: ``BadRequest`` and ``TimedOut`` are subclasses of ``NetworkError`` in PTB, so a 400 is
    checked before the transient network errors.
    """
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
    if isinstance(exc, (TimedOut, NetworkError)):
        return TelegramFailure(UNAVAILABLE, message, transient=True)
    if isinstance(exc, TelegramError):
        return TelegramFailure(UNAVAILABLE, message, transient=True)
    return None
