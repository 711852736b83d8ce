"""The main job over real HTTP: webhook -> inbox -> worker -> answer -> Bot API emulator.

One test runs in the embedded default (no broker: processing in a background thread of the web
process); the integration tests run a real Celery worker against Redis.
"""
import os
import time

import httpx
import pytest

from billing.models import UsageEvent
from bots.models import Message, TelegramUpdate
from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder, make_update, switch_broker, wait_until


def _post(base_url, bot, payload):
    return httpx.post(f"{base_url}/telegram/webhook/{bot.public_id}/", json=payload, timeout=10,
                      headers={"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret})


@pytest.mark.django_db(transaction=True)
def test_eager_default_answers_through_the_live_server(live_server, bot, telegram):
    from saas_bot.tasking import wait_for_background_tasks

    ingest_folder(bot.company, DEMO_DIR / "kb")
    update = make_update("how long do sharing links stay valid by default?", chat_id=6001)
    started = time.monotonic()
    response = _post(live_server.url, bot, update)
    assert response.status_code == 200 and response.json() == {"ok": True}
    wait_for_background_tasks()
    (sent,) = telegram.wait_for_messages(1, timeout=30, chat_id=6001)
    assert "30 days" in sent["text"] and "sharing-links" not in sent["text"]  # titles, not file names
    assert time.monotonic() - started < 60
    assert _post(live_server.url, bot, update).status_code == 200  # redelivery
    wait_for_background_tasks()
    assert len(telegram.sent_messages(chat_id=6001)) == 1
    assert UsageEvent.objects.filter(kind="message").count() == 1


@pytest.fixture
def celery_worker_process(redis_url, telegram, celery_workers):
    """A real Celery worker on Redis (the plugin's ``celery_workers``), after the emulator is up."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return celery_workers(redis_url)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_real_worker_answers_once_despite_redelivery_and_a_broker_outage(live_server, bot, telegram,
                                                                          celery_worker_process):
    from bots.tasks import process_update_task
    from bots.inbox import inbox_sweep

    ingest_folder(bot.company, DEMO_DIR / "kb")
    question = make_update("what are your support hours?", chat_id=6101)
    for _ in range(3):  # Telegram redelivers
        assert _post(live_server.url, bot, question).status_code == 200
    row = TelegramUpdate.objects.get(update_id=question["update_id"])
    for _ in range(3):  # Celery redelivers the task
        process_update_task.delay(row.id)
    telegram.wait_for_messages(1, timeout=120, chat_id=6101)
    wait_until(lambda: TelegramUpdate.objects.filter(id=row.id, status="done").exists(), timeout=90)
    time.sleep(2)  # let the duplicate tasks run out
    assert len(telegram.sent_messages(chat_id=6101)) == 1
    assert UsageEvent.objects.filter(idempotency_key=f"tg:{bot.id}:{question['update_id']}").count() == 1
    assert Message.objects.filter(update=row).count() == 1

    # Broker down: the webhook still acknowledges and stores; the sweep sends it once the broker is back.
    switch_broker("redis://127.0.0.1:1/0")
    help_update = make_update("/help", chat_id=6102, entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    started = time.monotonic()
    assert _post(live_server.url, bot, help_update).status_code == 200
    assert time.monotonic() - started < 10
    stored = TelegramUpdate.objects.get(update_id=help_update["update_id"])
    assert stored.status == "pending"
    switch_broker(os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/15"))
    assert inbox_sweep(stale_seconds=0) >= 1
    telegram.wait_for_messages(1, timeout=60, chat_id=6102)
    wait_until(lambda: TelegramUpdate.objects.filter(id=stored.id, status="done").exists(), timeout=90)
