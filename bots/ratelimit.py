"""Outgoing-message rate limits shared by every worker: per bot, per chat, per group (Redis).

Telegram's limits (Bot API FAQ, "My bot is hitting limits, how do I avoid this?"): about 30 messages
per second per bot, no more than one message per second in a chat, and no more than 20 messages per
minute in a group. Going over them earns 429 "Too Many Requests: retry after N".

A message takes a send time ``s`` (in one atomic Lua script, so every worker sees the same schedule):

- chat and group cells are GCRA cells without burst: each holds the earliest time (TAT) its next
  message may go; ``s >= TAT`` and afterwards ``TAT = s + T`` (T = 1 s per chat, 3 s per group);
- the bot has a calendar of slots of 1/30 s (a sorted set of taken slot numbers): ``s`` is the start of
  the first free slot at or after the chat's TAT, so at most 30 of its messages fall in any second,
  whichever chats they go to, and a message scheduled for later in one chat never delays the bot's
  other chats.

The time is reserved only when ``s - now`` is at most the caller's ``max_wait``, so a busy bot's tasks
leave the worker (and retry at ``s``) instead of holding it in front of other bots' messages. Cells are
per bot and per chat: one bot's backlog never delays another bot.

Without ``REDIS_URL`` (the embedded, single-process default) the same algorithm runs in process memory
behind a lock.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings

# KEYS[1] = bot calendar (zset of slot numbers), KEYS[2..] = chat / group cells (TAT in ms).
# ARGV: now_ms, max_wait_ms, reserve ("1"/"0"), bot slot ms, then T ms for each cell.
_SCHEDULE = """
local now = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local reserve = ARGV[3] == "1"
local slot_ms = tonumber(ARGV[4])
local start = now
for i = 2, #KEYS do
  local tat = tonumber(redis.call("GET", KEYS[i]) or "0")
  if tat > start then start = tat end
end
local slot = math.ceil(start / slot_ms)
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", math.floor(now / slot_ms) - 1)
local taken = redis.call("ZRANGEBYSCORE", KEYS[1], slot, "+inf")
for _, member in ipairs(taken) do
  local n = tonumber(member)
  if n == slot then slot = slot + 1 elseif n > slot then break end
end
local at = slot * slot_ms
local wait = at - now
if wait < 0 then wait = 0 end
if reserve and wait <= max_wait then
  redis.call("ZADD", KEYS[1], slot, slot)
  redis.call("PEXPIRE", KEYS[1], math.floor(wait + 60000))
  for i = 2, #KEYS do
    local interval = tonumber(ARGV[3 + i])
    if interval > 0 then  -- a hold (interval 0) is only read: it is set by flood_hold
      redis.call("SET", KEYS[i], at + interval, "PX", math.floor(wait + interval + 1000))
    end
  end
  return {1, wait, at}
end
return {0, wait, at}
"""


@dataclass(frozen=True)
class Slot:
    """The outcome of asking for a send slot.

    ``granted``: reserved; sleep ``wait`` seconds, then send. Otherwise retry after ``wait`` seconds.
    ``at``: the slot's time (Unix seconds).
    """

    granted: bool
    wait: float
    at: float


def cells_for(*, bot_id: int, chat_id: int, is_group: bool) -> tuple[tuple[str, float], list[tuple[str, float]]]:
    """The bot calendar (key, slot length) and the (key, interval) cells a message to ``chat_id`` takes, in seconds.

    From ``TELEGRAM_RATE_PER_BOT`` (messages/s), ``TELEGRAM_RATE_PER_CHAT`` (messages/s) and
    ``TELEGRAM_RATE_PER_GROUP_MINUTE`` (messages/min): Telegram's documented limits by default; chat and
    group intervals get ``TELEGRAM_RATE_GUARD_SECONDS`` added.
    """
    guard = settings.TELEGRAM_RATE_GUARD_SECONDS  # network jitter must not bring two sends under the interval
    # The chat's hold (Telegram's 429 on a call to this chat, see flood_hold) delays its every message.
    cells = [(hold_key(bot_id=bot_id, chat_id=chat_id), 0.0),
             (f"tg-rate:chat:{bot_id}:{chat_id}", 1.0 / settings.TELEGRAM_RATE_PER_CHAT + guard)]
    if is_group:
        cells.append((f"tg-rate:group:{bot_id}:{chat_id}", 60.0 / settings.TELEGRAM_RATE_PER_GROUP_MINUTE + guard))
    return (f"tg-rate:bot:{bot_id}", 1.0 / settings.TELEGRAM_RATE_PER_BOT), cells


class _LocalCells:
    """The same schedule in process memory (no Redis configured)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        self._slots: dict[str, set[int]] = {}
        self._last_sent: dict[str, float] = {}

    def take(self, bot_cell: tuple[str, float], cells: list[tuple[str, float]], max_wait: float,
             reserve: bool) -> Slot:
        key, slot_s = bot_cell
        with self._lock:
            now = time.time()
            if len(self._tat) > 10_000:  # a long-running process: forget chats whose time has passed
                self._tat = {k: t for k, t in self._tat.items() if t > now}
            start = max([now] + [self._tat.get(k, 0.0) for k, _ in cells])
            taken = self._slots.setdefault(key, set())
            oldest = math.floor(now / slot_s) - 1
            for old in [n for n in taken if n < oldest]:
                taken.discard(old)
            slot = math.ceil(start / slot_s)
            while slot in taken:
                slot += 1
            at = slot * slot_s
            wait = max(0.0, at - now)
            if reserve and wait <= max_wait:
                taken.add(slot)
                for k, interval in cells:
                    if interval > 0:  # a hold is only read (flood_hold sets it)
                        self._tat[k] = at + interval
                return Slot(True, wait, at)
            return Slot(False, wait, at)

    def gate(self, cells: list[tuple[str, float]]) -> float:
        """``send_gate`` in process memory: ``cells`` are ("tg-sent:…" key, interval in seconds)."""
        with self._lock:
            now = time.time()
            need = max(self._last_sent.get(key, 0.0) + interval - now for key, interval in cells)
            if need <= 0:
                for key, _ in cells:
                    self._last_sent[key] = now
            return max(0.0, need)

    def hold(self, key: str, until: float) -> None:
        """``flood_hold`` in process memory."""
        with self._lock:
            self._tat[key] = max(self._tat.get(key, 0.0), until)

    def remaining(self, key: str) -> float:
        with self._lock:
            return max(0.0, self._tat.get(key, 0.0) - time.time())

    def clear(self) -> None:
        with self._lock:
            self._tat.clear()
            self._slots.clear()
            self._last_sent.clear()


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
    """Ask for the send time of the next message from ``bot_id`` to ``chat_id``.

    Args:
        max_wait: seconds the caller is willing to sleep; a later time is not reserved.
        reserve: False only peeks (how long until a slot would be free).

    Returns:
        Slot(granted, wait, at).

    A Redis error does not stop delivery: this process's own cells are used for that call, and a 429
    from Telegram is still honoured by the sender.
    """
    bot_cell, cells = cells_for(bot_id=bot_id, chat_id=chat_id, is_group=is_group)
    client = _redis()
    if client is not None:
        try:
            script = client.register_script(_SCHEDULE)
            granted, wait_ms, at_ms = script(
                keys=[bot_cell[0]] + [key for key, _ in cells],
                args=[int(time.time() * 1000), int(max_wait * 1000), "1" if reserve else "0",
                      bot_cell[1] * 1000, *[int(interval * 1000) for _, interval in cells]])
            return Slot(bool(granted), max(0, int(wait_ms)) / 1000, int(at_ms) / 1000)
        except Exception:  # Redis down: degrade to this process's cells rather than stop answering
            pass
    return _local.take(bot_cell, cells, max_wait, reserve)


# KEYS: "last sent" times (ms) of the chat (and group); ARGV: now_ms, then each cell's interval (ms).
_SEND_GATE = """
local now = tonumber(ARGV[1])
local need = 0
for i, key in ipairs(KEYS) do
  local last = tonumber(redis.call("GET", key) or "0")
  local wait = last + tonumber(ARGV[1 + i]) - now
  if wait > need then need = wait end
end
if need <= 0 then
  for i, key in ipairs(KEYS) do
    redis.call("SET", key, now, "PX", math.floor(tonumber(ARGV[1 + i]) + 1000))
  end
end
return math.ceil(need)
"""
def send_gate(*, bot_id: int, chat_id: int, is_group: bool) -> float:
    """Right before a send: 0 (and the send time is recorded) if the chat's (and group's) last message went
    at least one interval ago by the clock, else the seconds to wait and ask again.

    The schedule (``slot_take``) spaces the planned times; this spaces the actual ones, which a slow worker
    can bring closer together (measured: 0.99 s between two messages of one chat without it).
    """
    _, cells = cells_for(bot_id=bot_id, chat_id=chat_id, is_group=is_group)
    cells = [(key, interval) for key, interval in cells if interval > 0]  # the bot's hold spaces nothing
    keys = [key.replace("tg-rate:", "tg-sent:", 1) for key, _ in cells]
    client = _redis()
    if client is not None:
        try:
            script = client.register_script(_SEND_GATE)
            return int(script(keys=keys, args=[int(time.time() * 1000), *[int(i * 1000) for _, i in cells]])) / 1000
        except Exception:  # Redis down: this process's own record
            pass
    return _local.gate(list(zip(keys, (interval for _, interval in cells))))


def hold_key(*, bot_id: int, chat_id: int | None = None) -> str:
    """The cell a Telegram 429 pushes forward: the chat's hold, or the bot's when no chat is named. Holds are
    read by every schedule of the chat (or bot) and written only by :func:`flood_hold`."""
    return f"tg-rate:hold:{bot_id}:{chat_id}" if chat_id is not None else f"tg-rate:hold:{bot_id}"


# KEYS[1] = a cell (time in ms); ARGV: until_ms, ttl_ms. The cell only ever moves forward.
_HOLD = """
local current = tonumber(redis.call("GET", KEYS[1]) or "0")
if tonumber(ARGV[1]) > current then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
end
return 1
"""


def flood_hold(*, bot_id: int, chat_id: int | None = None, seconds: float) -> None:
    """Telegram answered 429 with ``retry_after`` = ``seconds``: nothing more goes to ``chat_id`` (or, when None,
    no more calls to no chat, such as setWebhook, are made for the bot) before now + ``seconds``.

    The send schedule (``slot_take``) starts at or after this time, so every worker honours the wait, not only
    the one that got the 429. Redis errors fall back to this process's cells, as for ``slot_take``.
    """
    key = hold_key(bot_id=bot_id, chat_id=chat_id)
    until = time.time() + max(0.0, seconds)
    client = _redis()
    if client is not None:
        try:
            client.register_script(_HOLD)(keys=[key], args=[int(until * 1000), int(seconds * 1000) + 60_000])
            return
        except Exception:
            pass
    _local.hold(key, until)


def flood_hold_remaining(*, bot_id: int, chat_id: int | None = None) -> float:
    """Seconds until the hold set by :func:`flood_hold` ends (0 when there is none or it passed).

    With ``chat_id`` the chat's hold (calls to the chat), without it the bot's (its calls to no chat: webhook,
    command menu). A 429 on one kind does not hold the other: Telegram limits them separately.
    """
    keys = [hold_key(bot_id=bot_id, chat_id=chat_id)]
    client = _redis()
    if client is not None:
        try:
            values = client.mget(keys)
            return max(0.0, max((int(v) / 1000 if v else 0.0) for v in values) - time.time())
        except Exception:
            pass
    return max(_local.remaining(key) for key in keys)


# Redis priorities: 0 is taken first.
PRIORITY_NORMAL, PRIORITY_FLOODING = 0, 6


def intake_priority(bot_id: int) -> int:
    """The queue priority of a bot's newly received update: normal, or lower when the bot is flooding.

    Counts the bot's updates in the current ``TELEGRAM_FAIR_WINDOW_SECONDS`` window (one INCR on Redis);
    beyond ``TELEGRAM_FAIR_SHARE`` they get ``PRIORITY_FLOODING``, so the workers take every other bot's
    updates first and the flooding bot's backlog never holds them up. Without Redis (eager mode, one
    process) or when Redis fails: normal.
    """
    client = _redis()
    if client is None or settings.CELERY_TASK_ALWAYS_EAGER:
        return PRIORITY_NORMAL
    window = settings.TELEGRAM_FAIR_WINDOW_SECONDS
    key = f"tg-intake:{bot_id}:{int(time.time() // window)}"
    try:
        count = client.incr(key)  # one round trip on the webhook's path (a pipeline cost twice the CPU)
        if count == 1:
            client.expire(key, window * 2)
    except Exception:
        return PRIORITY_NORMAL
    return PRIORITY_FLOODING if count > settings.TELEGRAM_FAIR_SHARE else PRIORITY_NORMAL


def intake_priorities(counts: dict[int, int]) -> dict[int, list[int]]:
    """The queue priorities of a batch of newly received updates, per bot (the inbox relay's batch form of
    :func:`intake_priority`).

    Args:
        counts: {bot id: how many of its updates are in the batch}.

    Returns:
        {bot id: one priority per update, in the batch's order}: ``PRIORITY_NORMAL`` for the bot's first
        ``TELEGRAM_FAIR_SHARE`` updates of the current ``TELEGRAM_FAIR_WINDOW_SECONDS`` window (counted on Redis
        with one INCRBY per bot, all in one pipeline round trip), ``PRIORITY_FLOODING`` beyond. Without Redis
        (eager mode) or when Redis fails: all normal.
    """
    normal = {bot_id: [PRIORITY_NORMAL] * n for bot_id, n in counts.items()}
    client = _redis()
    if client is None or settings.CELERY_TASK_ALWAYS_EAGER or not counts:
        return normal
    window = settings.TELEGRAM_FAIR_WINDOW_SECONDS
    stamp = int(time.time() // window)
    bots = list(counts)
    try:
        pipe = client.pipeline(transaction=False)
        for bot_id in bots:
            key = f"tg-intake:{bot_id}:{stamp}"
            pipe.incrby(key, counts[bot_id])
            pipe.expire(key, window * 2)
        totals = pipe.execute()[0::2]
    except Exception:
        return normal
    share = settings.TELEGRAM_FAIR_SHARE
    out = {}
    for bot_id, total in zip(bots, totals):
        first = int(total) - counts[bot_id] + 1  # this batch holds the bot's updates number first..total
        out[bot_id] = [PRIORITY_FLOODING if number > share else PRIORITY_NORMAL
                       for number in range(first, int(total) + 1)]
    return out


def local_cells_clear() -> None:
    """Forget the in-process cells (tests)."""
    _local.clear()
