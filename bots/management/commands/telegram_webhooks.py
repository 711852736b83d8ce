"""Operate every bot's webhook: re-register after a domain change (--sync) or report their health (--check).

Every call honours Telegram's 429: a bot told to wait is retried after its ``retry_after`` while the other
bots go on (calls with one token are spaced by ``TELEGRAM_SYNC_PACE_SECONDS``); a bot still failing at the end
(a wait longer than ``--max-wait``, a refusal, Telegram unreachable three times) is reported and the command
exits with status 1.
"""
from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bots.models import Bot
from bots.telegram_setup import bot_register_webhook, bot_set_commands, bot_webhook_info
from saas_bot.errors import ProviderUnavailable, ServiceError

NETWORK_ATTEMPTS = 3
# Waits longer than this are scheduled (the other bots go on meanwhile), not slept in the call (seconds).
INLINE_WAIT = 0.5


@dataclass
class _Job:
    bot: Bot
    steps: list[str]
    info: dict | None = None
    error: str = ""
    network_failures: int = 0
    waited: float = 0.0
    flood_waits: int = 0
    log: list[str] = field(default_factory=list)


class Command(BaseCommand):
    help = ("--sync: re-register the webhook (and command menu) of every active bot at PUBLIC_BASE_URL and show "
            "Telegram's getWebhookInfo; --check: show each bot's pending updates and last delivery error. "
            "Telegram's 429 is honoured per bot; exits 1 when any bot failed or has a problem.")

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--sync", action="store_true", help="setWebhook + setMyCommands for every active bot.")
        mode.add_argument("--check", action="store_true", help="getWebhookInfo for every active bot.")
        parser.add_argument("--company", help="Only this company's bots (slug).")
        parser.add_argument("--max-wait", type=int, default=None,
                            help="Longest retry_after (seconds) to wait for one bot; longer is a failure "
                                 "(default TELEGRAM_SYNC_MAX_WAIT_SECONDS).")

    def handle(self, *args, sync: bool, check: bool, company: str | None, max_wait: int | None, **options):
        if sync and not settings.PUBLIC_BASE_URL:
            raise CommandError("Set PUBLIC_BASE_URL (the https origin Telegram can reach) first.")
        max_wait = settings.TELEGRAM_SYNC_MAX_WAIT_SECONDS if max_wait is None else max_wait
        bots = Bot.objects.filter(status=Bot.Status.ACTIVE).select_related("company").order_by("company__slug", "id")
        if company:
            bots = bots.filter(company__slug=company)
        steps = ["setWebhook", "setMyCommands", "getWebhookInfo"] if sync else ["getWebhookInfo"]
        jobs = [_Job(bot=bot, steps=list(steps)) for bot in bots]
        self._run(jobs, max_wait=max_wait)
        problems = 0
        for job in jobs:
            label = f"{job.bot.company.slug:<16} {str(job.bot):<32}"
            notes = f" (waited {job.waited:.0f} s for Telegram's 429 x{job.flood_waits})" if job.flood_waits else ""
            if job.error:
                problems += 1
                self.stdout.write(f"{label} FAILED   {job.error}{notes}")
                continue
            info = job.info
            when = info["last_error_date"].isoformat() if info["last_error_date"] else ""
            error = f" last error {when}: {info['last_error_message']}" if info["last_error_message"] else ""
            status = "ok" if info["matches"] and not error else (
                "NO-BASE" if not settings.PUBLIC_BASE_URL else "MISMATCH" if not info["matches"] else "ERROR")
            if status != "ok":
                problems += 1
            self.stdout.write(f"{label} {status:<8} {info['url'] or '(no webhook)'} "
                              f"pending {info['pending_update_count']}{error}{notes}")
        self.stdout.write(f"{len(jobs)} bot(s), {problems} with problems.")
        if check and not settings.PUBLIC_BASE_URL and jobs:
            self.stdout.write("NO-BASE: PUBLIC_BASE_URL is not set, so no webhook can be the one this deployment "
                              "expects; set it (the https origin Telegram can reach), then run --sync.")
        if problems:
            raise CommandError(f"{problems} of {len(jobs)} bot(s) failed or have problems (see above).", returncode=1)

    def _run(self, jobs: list[_Job], *, max_wait: int) -> None:
        """Run every job's steps; bots take turns, each bot's calls at least TELEGRAM_SYNC_PACE_SECONDS apart.

        A 429 puts the bot back in line after its retry_after (the other bots go on meanwhile); a network error
        after 1, 2, 4 s; a refusal, a wait over ``max_wait`` or a third network error ends the bot's job.
        """
        pace = settings.TELEGRAM_SYNC_PACE_SECONDS
        order = itertools.count()
        queue = [(time.monotonic(), next(order), job) for job in jobs]
        heapq.heapify(queue)
        while queue:
            due, _, job = heapq.heappop(queue)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            step = job.steps[0]
            try:
                if step == "setWebhook":
                    bot_register_webhook(bot=job.bot, max_inline_wait=INLINE_WAIT)
                elif step == "setMyCommands":
                    bot_set_commands(bot=job.bot, max_inline_wait=INLINE_WAIT)
                else:
                    job.info = bot_webhook_info(bot=job.bot, max_inline_wait=INLINE_WAIT)
            except ProviderUnavailable as exc:
                if exc.code == "telegram_flood_wait":
                    wait = float((exc.detail or {}).get("retry_after") or 1)
                    if job.waited + wait > max_wait:
                        job.error = f"{step}: Telegram asks to wait {wait:.0f} s, more than --max-wait {max_wait} s"
                        continue
                    job.waited += wait
                    job.flood_waits += 1
                    heapq.heappush(queue, (time.monotonic() + wait, next(order), job))
                    continue
                job.network_failures += 1
                if job.network_failures >= NETWORK_ATTEMPTS:
                    job.error = f"{step}: {exc.message}"
                    continue
                heapq.heappush(queue, (time.monotonic() + 2 ** (job.network_failures - 1), next(order), job))
                continue
            except ServiceError as exc:
                job.error = f"{step}: {exc.message}"
                continue
            job.steps.pop(0)
            if job.steps:
                heapq.heappush(queue, (time.monotonic() + pace, next(order), job))
