"""A burst of Telegram updates for many bots, and what their delivery looked like (load test and benchmark).

The scenario (``burst_plan``): one "busy" bot receives a large backlog concentrated in a few chats (so
Telegram's one-message-per-second-per-chat limit makes it slow by necessity), and every other bot a few
questions in many chats. The busy bot's updates are posted first, the worst case for a FIFO queue. The
updates go through the real webhook over HTTP; delivery is read back from the Bot API emulator's record
of sendMessage calls and from the inbox.

Used by ``bots/tests/test_delivery_load.py`` (assertions) and ``bench/telegram_delivery.py`` (figures).
"""
from __future__ import annotations

import statistics
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

QUESTIONS = [
    "how long do sharing links stay valid by default?",
    "what are your support hours?",
    "how many API requests per minute am I allowed?",
    "how do I reset my password?",
    "can I get a refund?",
    "how do I delete my account?",
]


@dataclass
class BurstPlan:
    """Which updates go to which bot and chat: ``items`` is [(bot index, chat id, text)] in posting order."""

    items: list[tuple[int, int, str]] = field(default_factory=list)
    busy_bot: int = 0


def burst_plan(*, bots: int, updates: int, busy_share: float = 0.15, busy_chats: int = 6,
               chats_per_bot: int = 12) -> BurstPlan:
    """Spread ``updates`` over ``bots``: bot 0 gets ``busy_share`` of them in ``busy_chats`` chats (posted first),
    the others the rest round-robin over ``chats_per_bot`` private chats each. Chat ids are unique per bot."""
    plan = BurstPlan()
    busy = int(updates * busy_share)
    for n in range(busy):
        plan.items.append((0, 9_000_000 + n % busy_chats, QUESTIONS[n % len(QUESTIONS)]))
    rest = updates - busy
    for n in range(rest):
        bot = 1 + n % (bots - 1)
        chat = 8_000_000 + bot * 1000 + (n // (bots - 1)) % chats_per_bot
        plan.items.append((bot, chat, QUESTIONS[(n + bot) % len(QUESTIONS)]))
    return plan


def post_burst(*, base_url: str, bots: list, tokens: list[str], emulator, plan: BurstPlan, concurrency: int = 16,
               progress=None) -> float:
    """POST every update of ``plan`` to the webhook of its bot; returns the seconds it took.

    Args:
        bots, tokens: Bot rows and their tokens (as the emulator knows them), same order.

    Raises:
        AssertionError: a webhook answered anything but 200.
    """
    payloads = []
    for bot_index, chat_id, text in plan.items:
        payloads.append((bots[bot_index], emulator.make_message_update(tokens[bot_index], chat_id, text)))
    started = time.monotonic()
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(concurrency) as pool:
        def post(item):
            bot, update = item
            response = client.post(f"{base_url}/telegram/webhook/{bot.public_id}/", json=update,
                                   headers={"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret})
            assert response.status_code == 200, response.text
            if progress:
                progress()

        list(pool.map(post, payloads))
    return time.monotonic() - started


@dataclass
class DeliveryReport:
    """Per-bot latency (seconds from the update's arrival to its answer's delivery) and the limits as observed."""

    latency: dict[int, list[float]]
    max_per_chat_in_1s: int
    min_chat_gap: float
    max_per_bot_in_1s: int
    max_per_group_in_60s: int

    def summary(self, busy_bot_id: int) -> dict:
        quiet = [v for bot_id, values in self.latency.items() if bot_id != busy_bot_id for v in values]
        busy = self.latency.get(busy_bot_id, [])
        per_bot_p95 = {bot_id: _pct(values, 95) for bot_id, values in self.latency.items()}
        quiet_p95 = [p for bot_id, p in per_bot_p95.items() if bot_id != busy_bot_id]
        return {
            "busy_p50": _pct(busy, 50), "busy_p95": _pct(busy, 95), "busy_max": max(busy, default=0.0),
            "quiet_p50": _pct(quiet, 50), "quiet_p95": _pct(quiet, 95), "quiet_max": max(quiet, default=0.0),
            "quiet_bot_p95_worst": max(quiet_p95, default=0.0),
            "quiet_bot_p95_median": statistics.median(quiet_p95) if quiet_p95 else 0.0,
            "max_per_chat_in_1s": self.max_per_chat_in_1s, "min_chat_gap": self.min_chat_gap,
            "max_per_bot_in_1s": self.max_per_bot_in_1s, "max_per_group_in_60s": self.max_per_group_in_60s,
        }


def _pct(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


def delivery_report(*, emulator, bots: list, tokens: list[str]) -> DeliveryReport:
    """Read the delivery back: sendMessage times per chat and bot from the emulator, latency from the database."""
    from django.db.models import F

    from bots.models import Message

    by_token = dict(zip(tokens, bots))
    per_chat: dict[tuple[int, int], list[float]] = defaultdict(list)
    per_bot: dict[int, list[float]] = defaultdict(list)
    group_chats: set[tuple[int, int]] = set()
    for call in emulator.calls("sendMessage"):
        if call["status_code"] != 200 or call["token"] not in by_token:
            continue
        bot = by_token[call["token"]]
        chat_id = int(call["params"]["chat_id"])
        per_chat[(bot.id, chat_id)].append(call["time"])
        per_bot[bot.id].append(call["time"])
        if chat_id < 0:
            group_chats.add((bot.id, chat_id))
    gaps = [b - a for times in per_chat.values() for a, b in zip(sorted(times), sorted(times)[1:])]
    latency: dict[int, list[float]] = defaultdict(list)
    rows = (Message.objects.filter(bot__in=bots, delivered_at__isnull=False, update__isnull=False)
            .annotate(received=F("update__received_at")).values_list("bot_id", "received", "delivered_at"))
    for bot_id, received, delivered in rows:
        latency[bot_id].append((delivered - received).total_seconds())
    return DeliveryReport(
        latency=dict(latency),
        max_per_chat_in_1s=max((_max_in_window(t, 1.0) for t in per_chat.values()), default=0),
        min_chat_gap=min(gaps, default=float("inf")),
        max_per_bot_in_1s=max((_max_in_window(t, 1.0) for t in per_bot.values()), default=0),
        max_per_group_in_60s=max((_max_in_window(per_chat[key], 60.0) for key in group_chats), default=0),
    )
