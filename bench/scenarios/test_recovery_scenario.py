"""The recovery scenario of bench/recovery.py (run by it; not part of the test suite's paths).

Questions arrive through the real webhook at a steady rate for two Celery workers on a private Redis while
one worker is SIGKILLed (and restarted), the broker is stopped and started empty, and the other worker is
SIGKILLed (and restarted). The test process plays beat with the production intervals (inbox sweep every
TELEGRAM_INBOX_SWEEP_SECONDS, usage sweep every 60 s) and the default recovery settings. Prints one
``recovery {...}`` line with the figures.
"""
import os
import signal
import threading
import time

import httpx
import pytest
from django.conf import settings as django_settings
from django.db.models import Count

from saas_bot.testing.loadgen import QUESTIONS
from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder, make_update

UPDATES = int(os.environ.get("RECOVERY_UPDATES", "240"))
RATE = float(os.environ.get("RECOVERY_RATE", "4"))  # updates per second through the webhook
CHATS = 40


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_recovery_scenario(live_server, telegram, make_company, private_redis, celery_workers, settings):
    from billing.ledger import usage_sweep
    from billing.models import UsageEvent
    from bots.models import Message, TelegramUpdate
    from bots.lifecycle import bot_connect
    from bots.inbox import inbox_sweep
    from saas_bot.testing.pytest_plugin import TEST_BOT_ID, TEST_TOKEN, wait_until

    settings.TELEGRAM_RATE_REDIS_URL = private_redis.url
    company = make_company("recoveryco", max_messages_per_period=100_000)
    ingest_folder(company, DEMO_DIR / "kb")
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username="recovery_bot")
    bot = bot_connect(company=company, token=TEST_TOKEN, register_webhook=False)
    workers = [celery_workers(private_redis.url), celery_workers(private_redis.url)]
    stop = threading.Event()
    timeline: list[str] = []

    def beat():
        last_usage = time.monotonic()
        while not stop.wait(django_settings.TELEGRAM_INBOX_SWEEP_SECONDS):
            try:
                inbox_sweep()
                if time.monotonic() - last_usage >= 60:
                    usage_sweep()
                    last_usage = time.monotonic()
            except Exception as exc:  # the broker is down: the next beat tries again
                timeline.append(f"sweep failed: {exc!r}")
        from django.db import connections

        connections.close_all()

    acknowledged, sent_at = [], {}

    def post_all():
        with httpx.Client(timeout=15) as client:
            for n in range(UPDATES):
                update = make_update(QUESTIONS[n % len(QUESTIONS)], chat_id=8000 + n % CHATS, user_id=8000 + n % CHATS)
                sent_at[update["update_id"]] = time.monotonic()
                try:
                    response = client.post(f"{live_server.url}/telegram/webhook/{bot.public_id}/", json=update,
                                           headers={"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret})
                    if response.status_code == 200:
                        acknowledged.append(update["update_id"])
                except httpx.HTTPError:
                    pass
                time.sleep(1 / RATE)
        from django.db import connections

        connections.close_all()

    beat_thread = threading.Thread(target=beat, daemon=True)
    poster = threading.Thread(target=post_all)
    started = time.monotonic()
    beat_thread.start()
    poster.start()
    events = {}

    def claims_of(pid: int):
        return set(TelegramUpdate.objects.filter(status="processing", locked_by__endswith=f":{pid}")
                   .values_list("id", flat=True))

    def unanswered():
        return set(TelegramUpdate.objects.exclude(status__in=["done", "ignored", "failed"]).values_list("id", flat=True))

    def kill(index: int, name: str):
        pid = workers[index].pid
        wait_until(lambda: claims_of(pid), timeout=60, interval=0.02)  # it holds an update: kill it mid-answer
        os.kill(pid, signal.SIGKILL)
        at = time.monotonic()
        workers[index].wait(timeout=10)
        events[name] = (at, claims_of(pid), unanswered())
        workers[index] = celery_workers(private_redis.url)

    time.sleep(10)
    kill(0, "worker 1 killed")
    time.sleep(10)
    private_redis.stop()
    outage_start = time.monotonic()
    time.sleep(15)
    private_redis.start()  # empty: every queued task is gone with it
    pending = unanswered()
    events["broker back"] = (time.monotonic(), pending, pending)
    outage = time.monotonic() - outage_start
    time.sleep(10)
    kill(1, "worker 2 killed")
    poster.join()

    def all_done():
        return TelegramUpdate.objects.exclude(status__in=["done", "ignored", "failed"]).count() == 0

    wait_until(all_done, timeout=600, interval=1)
    done_at = {}
    for pk, processed in TelegramUpdate.objects.values_list("id", "processed_at"):
        done_at[pk] = processed
    def answered_after(at: float, ids: set) -> float | None:
        """Seconds from ``at`` (monotonic) until the last of ``ids`` was answered."""
        if not ids:
            return None
        finished = max(done_at[pk] for pk in ids if done_at.get(pk))
        return finished.timestamp() - (time.time() - (time.monotonic() - at))

    recovery = {name: (answered_after(at, claimed), len(claimed), answered_after(at, backlog), len(backlog))
                for name, (at, claimed, backlog) in events.items()}
    def usage_recorded():
        usage_sweep(older_than_seconds=5)  # what beat's usage sweep does, sooner
        return UsageEvent.objects.filter(kind="message").count() >= Message.objects.filter(
            delivered_at__isnull=False).count()

    wait_until(usage_recorded, timeout=180, interval=2)
    stop.set()
    beat_thread.join(timeout=60)
    ok_sends = [c for c in telegram.calls("sendMessage") if c["status_code"] == 200]
    delivered = Message.objects.filter(bot=bot, delivered_at__isnull=False)
    recorded_ids = sum(len(m.telegram_message_ids) for m in delivered)
    statuses = dict(TelegramUpdate.objects.values_list("status").annotate(n=Count("id")))
    usage = UsageEvent.objects.filter(kind="message")
    summary = {
        "sent": UPDATES, "acknowledged": len(acknowledged), "stored": TelegramUpdate.objects.count(),
        "statuses": statuses, "answered": delivered.count(),
        "answered_once": delivered.count() - (len(ok_sends) - recorded_ids),
        "doubled": len(ok_sends) - recorded_ids, "lost": len(acknowledged) - delivered.count(),
        "usage_events": usage.count(), "usage_distinct": usage.values("idempotency_key").distinct().count(),
        "recovery": {name: [None if v is None else round(v, 1) for v in values] for name, values in recovery.items()},
        "outage_seconds": round(outage, 1), "elapsed": round(time.monotonic() - started, 1),
        "claim_stale": django_settings.TELEGRAM_CLAIM_STALE_SECONDS,
        "sweep": django_settings.TELEGRAM_INBOX_SWEEP_SECONDS, "timeline": timeline[:5],
    }
    print("recovery", summary, flush=True)
    assert summary["lost"] == 0 and summary["usage_events"] == summary["answered"]
