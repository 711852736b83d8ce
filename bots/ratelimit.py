"""Outgoing-message rate limits shared by every worker: per bot, per chat, per group (Redis, GCRA).

Telegram's limits (Bot API FAQ, "My bot is hitting limits, how do I avoid this?"): about 30 messages
per second per bot, no more than one message per second in a chat, and no more than 20 messages per
minute in a group. Going over them earns 429 "Too Many Requests: retry after N".

Each limit is a generic cell rate algorithm (GCRA) cell with emission interval T and no burst: a
key holds the "theoretical arrival time" (TAT) of the next allowed message. Sending to a chat takes
one slot in each of its cells (bot, chat, and for groups the group cell) in one atomic Lua script:
the message may go at ``s = max(now, TAT_k)`` over its cells, and every TAT becomes ``s + T_k``. A
slot is reserved only when ``s - now`` is at most the caller's ``max_wait``, so a busy bot's tasks
leave the worker (and retry later) instead of queueing in front of other bots' messages. Because
the cells are per bot and per chat, one bot's backlog never delays another bot's messages.

Without ``REDIS_URL`` (the embedded, single-process default) the same algorithm runs in process
memory behind a lock.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings

# KEYS: the cells; ARGV: now (ms), max_wait (ms), then T (ms) for each key, then "1" to reserve.
_GCRA = """
local now = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local reserve = ARGV[3 + #KEYS] == "1"
local start = now
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call("GET", key) or "0")
  if tat > start then start = tat end
end
local wait = start - now
if reserve and wait <= max_wait then
  for i, key in ipairs(KEYS) do
    local interval = tonumber(ARGV[2 + i])
    redis.call("SET", key, start + interval, "PX", wait + interval + 1000)
  end
  return {1, wait}
end
return {0, wait}
"""


@dataclass(frozen=True)
class Slot:
    """The outcome of asking for a send slot: ``granted`` and the wait in seconds (to sleep, or to retry after)."""

    granted: bool
    wait: float


def cells_for(*, bot_id: int, chat_id: int, is_group: bool) -> list[tuple[str, float]]:
    """The (key, emission interval in seconds) cells a message to ``chat_id`` takes.

    Intervals come from ``TELEGRAM_RATE_PER_BOT`` (messages/s), ``TELEGRAM_RATE_PER_CHAT`` (messages/s)
    and ``TELEGRAM_RATE_PER_GROUP_MINUTE`` (messages/min), Telegram's documented limits by default.
    """
    cells = [(f"tg-rate:bot:{bot_id}", 1.0 / settings.TELEGRAM_RATE_PER_BOT),
             (f"tg-rate:chat:{bot_id}:{chat_id}", 1.0 / settings.TELEGRAM_RATE_PER_CHAT)]
    if is_group:
        cells.append((f"tg-rate:group:{bot_id}:{chat_id}", 60.0 / settings.TELEGRAM_RATE_PER_GROUP_MINUTE))
    return cells


class _LocalCells:
    """The GCRA in process memory (no Redis configured)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}

    def take(self, cells: list[tuple[str, float]], max_wait: float, reserve: bool) -> Slot:
        with self._lock:
            now = time.time()
            start = max([now] + [self._tat.get(key, 0.0) for key, _ in cells])
            wait = start - now
            if reserve and wait <= max_wait:
                for key, interval in cells:
                    self._tat[key] = start + interval
                return Slot(True, wait)
            return Slot(False, wait)

    def clear(self) -> None:
        with self._lock:
            self._tat.clear()


_local = _LocalCells()
_redis_client: tuple[str, object] | None = None  # (url, client)
_redis_lock = threading.Lock()


def _redis():
    global _redis_client
    url = settings.TELEGRAM_RATE_REDIS_URL
    if not url:
        return None
    with _redis_lock:
        if _redis_client is None or _redis_client[0] != url:
            import redis

            _redis_client = (url, redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))
        return _redis_client[1]


def slot_take(*, bot_id: int, chat_id: int, is_group: bool, max_wait: float, reserve: bool = True) -> Slot:
    """Ask for the next send slot of a message from ``bot_id`` to ``chat_id``.

    Args:
        max_wait: seconds the caller is willing to sleep; a later slot is not reserved.
        reserve: False only peeks (how long until a slot would be free).

    Returns:
        Slot(granted, wait): if granted, sleep ``wait`` seconds and send; else retry after ``wait``.

    A Redis error does not stop delivery: the in-process cells are used for that call (logged by the caller
    when Telegram answers 429 anyway, which is still honoured).
    """
    cells = cells_for(bot_id=bot_id, chat_id=chat_id, is_group=is_group)
    client = _redis()
    if client is not None:
        try:
            script = client.register_script(_GCRA)
            granted, wait_ms = script(keys=[key for key, _ in cells],
                                      args=[int(time.time() * 1000), int(max_wait * 1000),
                                            *[int(interval * 1000) for _, interval in cells],
                                            "1" if reserve else "0"])
            return Slot(bool(granted), max(0, int(wait_ms)) / 1000)
        except Exception:  # Redis down: degrade to this process's cells rather than stop answering
            pass
    return _local.take(cells, max_wait, reserve)


def local_cells_clear() -> None:
    """Forget the in-process cells (tests)."""
    _local.clear()
