"""Under a real Celery worker on Redis: long Telegram waits live in the database, not in the broker; a killed
worker's update is answered again within the recovery setting; a live worker's long claim is never taken over;
usage is recorded once, when the answer is delivered."""
import datetime as dt
import os
import signal
import time

import httpx
import pytest
from django.utils import timezone

from billing.models import PendingUsage, QuotaWindow, UsageEvent
from bots.models import Chat, Message, TelegramUpdate
from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder, make_update, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HELP = dict(entities=[{"type": "bot_command", "offset": 0, "length": 5}])


def _post(base_url, bot, payload):
    response = httpx.post(f"{base_url}/telegram/webhook/{bot.public_id}/", json=payload, timeout=10,
                          headers={"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret})
    assert response.status_code == 200
    return TelegramUpdate.objects.get(bot=bot, update_id=payload["update_id"])


@pytest.fixture
def broker(redis_url, telegram):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return client


def _broker_holds_tasks(client) -> int:
    """Task messages the broker still holds: queued (every priority list) or delivered and unacknowledged."""
    from django.conf import settings

    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]  # each queue and its priority lists "name:p"
    queued = sum(client.llen(key) for name in names for key in client.keys(f"{name}*")
                 if client.type(key) == b"list")
    return queued + client.hlen("unacked")


def test_long_429_waits_are_parked_in_the_database_not_in_the_broker(live_server, bot, telegram, broker,
                                                                     celery_workers, redis_url):
    celery_workers(redis_url)
    telegram.fail_next("sendMessage", error_code=429, retry_after=600, chat_id=7001)
    telegram.fail_next("sendMessage", error_code=429, retry_after=86400, chat_id=7002)
    rows = [_post(live_server.url, bot, make_update("/help", chat_id=chat, **HELP)) for chat in (7001, 7002)]
    waits = {}
    for row, wait in zip(rows, (600, 86400)):
        wait_until(lambda: TelegramUpdate.objects.filter(id=row.id, status="pending", not_before__isnull=False)
                   .exists(), timeout=60)
        row.refresh_from_db()
        waits[wait] = (row.not_before - timezone.now()).total_seconds()
        assert wait - 10 < waits[wait] <= wait and row.attempts == 0
    wait_until(lambda: _broker_holds_tasks(broker) == 0, timeout=10)  # no countdown left in Redis
    time.sleep(2)
    from bots.inbox import inbox_sweep

    assert inbox_sweep(stale_seconds=0) == 0  # pending, not due: the sweep leaves them
    assert telegram.sent_messages(chat_id=7001) == [] and telegram.sent_messages(chat_id=7002) == []
    # Time passes (the waits end): the sweep sends each once.
    TelegramUpdate.objects.filter(id__in=[r.id for r in rows]).update(not_before=timezone.now() - dt.timedelta(seconds=1))
    for key in broker.keys("tg-rate:hold:*"):
        broker.delete(key)
    assert inbox_sweep(stale_seconds=0) == 2
    for chat in (7001, 7002):
        telegram.wait_for_messages(1, timeout=60, chat_id=chat)
    wait_until(lambda: TelegramUpdate.objects.filter(id__in=[r.id for r in rows], status="done").count() == 2,
               timeout=30)
    assert len(telegram.sent_messages(chat_id=7001)) == 1 and len(telegram.sent_messages(chat_id=7002)) == 1


def test_a_killed_workers_update_is_answered_within_the_recovery_time_and_billed_once(live_server, bot, telegram,
                                                                                       broker, celery_workers,
                                                                                       redis_url, settings):
    from bots.inbox import inbox_sweep

    stale = 5
    settings.TELEGRAM_CLAIM_STALE_SECONDS = stale
    env = dict(TELEGRAM_CLAIM_STALE_SECONDS=str(stale), TELEGRAM_CLAIM_HEARTBEAT_SECONDS="1")
    ingest_folder(bot.company, DEMO_DIR / "kb")
    worker = celery_workers(redis_url, **env)
    telegram.delay_next("sendChatAction", seconds=12, chat_id=7101)  # the worker is busy with this one
    chats = [7101, 7102, 7103, 7104]
    rows = [_post(live_server.url, bot, make_update("what are your support hours?", chat_id=chat)) for chat in chats]
    wait_until(lambda: telegram.calls("sendChatAction") and TelegramUpdate.objects.filter(
        id=rows[0].id, status="processing").exists(), timeout=60)
    os.kill(worker.pid, signal.SIGKILL)  # mid-batch: one update claimed, the others queued
    killed_at = time.monotonic()
    worker.wait(timeout=10)
    assert not Message.objects.filter(update=rows[0]).exists()
    celery_workers(redis_url, **env)
    # The test is the beat: the sweep every second (production: TELEGRAM_INBOX_SWEEP_SECONDS).
    recovered = None
    while time.monotonic() - killed_at < 90:
        inbox_sweep()
        if TelegramUpdate.objects.filter(id=rows[0].id, status="done").exists():
            recovered = time.monotonic() - killed_at
            break
        time.sleep(1)
    assert recovered is not None and recovered < stale + 30, recovered
    wait_until(lambda: TelegramUpdate.objects.filter(id__in=[r.id for r in rows], status="done").count() == 4,
               timeout=90)
    for chat in chats:
        assert len(telegram.sent_messages(chat_id=chat)) == 1
    keys = [f"tg:{bot.id}:{row.update_id}" for row in rows]
    wait_until(lambda: UsageEvent.objects.filter(idempotency_key__in=keys, kind="message").count() == 4, timeout=60)
    for row in rows:  # usage recorded at delivery: never before it
        message = Message.objects.get(update=row)
        event = UsageEvent.objects.get(idempotency_key=f"tg:{bot.id}:{row.update_id}")
        assert message.delivered_at is not None and event.occurred_at >= message.delivered_at


def test_a_live_workers_long_claim_is_kept_by_its_heartbeat(live_server, bot, telegram, broker, celery_workers,
                                                            redis_url, settings):
    from bots.inbox import inbox_sweep

    settings.TELEGRAM_CLAIM_STALE_SECONDS = 2
    celery_workers(redis_url, TELEGRAM_CLAIM_STALE_SECONDS="2", TELEGRAM_CLAIM_HEARTBEAT_SECONDS="0.5")
    telegram.delay_next("sendMessage", seconds=6, chat_id=7201)  # a slow Telegram: 3 x the stale time
    row = _post(live_server.url, bot, make_update("/help", chat_id=7201, **HELP))
    deadline = time.monotonic() + 60
    while not TelegramUpdate.objects.filter(id=row.id, status="done").exists():
        assert time.monotonic() < deadline
        inbox_sweep()  # would take the update over if its claim went stale
        time.sleep(0.3)
    row.refresh_from_db()
    assert row.attempts == 1 and len(telegram.sent_messages(chat_id=7201)) == 1


def test_a_send_slot_hours_away_is_parked_in_the_database_and_sent_at_its_slot(live_server, bot, telegram, broker,
                                                                               celery_workers, redis_url):
    from bots.inbox import inbox_sweep

    group = -1007301000001
    # A busy group: one message per 12,000 s (3 h 20 min) here, so the second reply's send slot is hours away.
    celery_workers(redis_url, TELEGRAM_RATE_PER_GROUP_MINUTE="0.005")
    command = f"/help@{bot.username}"

    def ask():
        return make_update(command, chat_id=group, chat_type="supergroup",
                           entities=[{"type": "bot_command", "offset": 0, "length": len(command)}])

    _post(live_server.url, bot, ask())
    telegram.wait_for_messages(1, timeout=60, chat_id=group)
    row = _post(live_server.url, bot, ask())
    wait_until(lambda: TelegramUpdate.objects.filter(id=row.id, status="pending", not_before__isnull=False).exists(),
               timeout=60)
    row.refresh_from_db()
    hours_away = row.slot_at - time.time()
    assert 11_900 < hours_away <= 12_001 and row.attempts == 0  # a wait, not a failed attempt
    # Parked until shortly before its slot (the sweep's interval + 5 s), the slot itself kept.
    assert 11_800 < (row.not_before - timezone.now()).total_seconds() < hours_away
    wait_until(lambda: _broker_holds_tasks(broker) == 0, timeout=10)  # no countdown of hours in Redis
    assert inbox_sweep(stale_seconds=0) == 0  # not due: the sweep leaves it
    assert len(telegram.sent_messages(chat_id=group)) == 1
    # Hours pass: the slot is 6 s away and the row is due (the limiter's cells have expired by then).
    slot_in = 6.0
    slot_monotonic = time.monotonic() + slot_in
    TelegramUpdate.objects.filter(id=row.id).update(slot_at=time.time() + slot_in,
                                                    not_before=timezone.now() - dt.timedelta(seconds=1))
    for key in broker.keys(f"tg-rate:*{bot.id}*") + broker.keys(f"tg-sent:*{bot.id}*"):
        broker.delete(key)
    assert inbox_sweep(stale_seconds=0) == 1
    telegram.wait_for_messages(2, timeout=60, chat_id=group)
    wait_until(lambda: TelegramUpdate.objects.filter(id=row.id, status="done").exists(), timeout=30)
    sent = [c for c in telegram.calls("sendMessage") if c["status_code"] == 200]
    assert len(sent) == 2 and sent[1]["time"] >= slot_monotonic - 0.2  # at its kept slot, not before
    row.refresh_from_db()
    assert row.attempts == 1


def test_under_a_worker_a_migrated_group_gets_its_answer_billed_once_and_a_blocked_chat_is_not_billed(
        live_server, bot, telegram, broker, celery_workers, redis_url):
    old_id, new_id, blocked = -4000007302, -1001000007302, 7302
    ingest_folder(bot.company, DEMO_DIR / "kb")
    celery_workers(redis_url)
    telegram.migrate_chat(old_id, new_id)  # the group became a supergroup: 400 with migrate_to_chat_id
    telegram.block_chat(blocked)  # 403 "Forbidden: bot was blocked by the user"
    mention = f"@{bot.username}"
    in_group = _post(live_server.url, bot, make_update(
        f"{mention} what are your support hours?", chat_id=old_id, chat_type="group",
        entities=[{"type": "mention", "offset": 0, "length": len(mention)}]))
    in_blocked = _post(live_server.url, bot, make_update("what are your support hours?", chat_id=blocked,
                                                         user_id=blocked))
    rows = [in_group.id, in_blocked.id]
    wait_until(lambda: TelegramUpdate.objects.filter(id__in=rows, status="done").count() == 2, timeout=120)
    # The group's answer went to the supergroup, once; the chat moved with it.
    assert len(telegram.sent_messages(chat_id=new_id)) == 1 and telegram.sent_messages(chat_id=old_id) == []
    refused = [c for c in telegram.calls("sendMessage") if c["params"]["chat_id"] == old_id]
    assert [c["status_code"] for c in refused] == [400]
    chat = Chat.objects.get(bot=bot, telegram_chat_id=new_id)
    assert chat.previous_chat_id == old_id
    wait_until(lambda: UsageEvent.objects.filter(idempotency_key=in_group.answer_key, kind="message").exists(),
               timeout=60)
    # The blocked chat's answer: not delivered, not billed, its message given back to the quota.
    answer = Message.objects.get(update_id=in_blocked.id)
    assert answer.delivered_at is None and "blocked" in answer.delivery_error
    assert Chat.objects.get(bot=bot, telegram_chat_id=blocked).is_blocked
    assert not PendingUsage.objects.filter(idempotency_key=in_blocked.answer_key).exists()
    assert UsageEvent.objects.filter(kind="message").count() == 1
    window = QuotaWindow.objects.get(company=bot.company, scope="company", subject=0)
    assert window.messages == 1  # the delivered answer only
    assert Message.objects.get(update_id=in_group.id).delivered_at is not None
