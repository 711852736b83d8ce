"""The main job over real HTTP: webhook -> inbox -> worker -> answer -> Bot API emulator.

One test runs in the embedded default (no broker: processing in a background thread of the web
process); the integration tests run a real Celery worker against Redis.
"""
import os
import subprocess
import sys
import time

import httpx
import pytest
from django.db import connection

from billing.models import UsageEvent
from bots.models import Message, TelegramUpdate
from saas_bot.pytest_plugin import BASE_DIR, DEMO_DIR, ingest_folder, make_update


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
def celery_worker_process(redis_url, telegram, settings):
    """A real Celery worker (solo pool) on Redis, using the test database; the test process sends to Redis."""
    from saas_bot.celery import app

    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = dict(os.environ, REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url,
               TELEGRAM_API_BASE_URL=telegram.base_url, DATABASE_NAME=connection.settings_dict["NAME"],
               LOG_LEVEL="WARNING")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "saas_bot", "worker", "-P", "solo", "--without-gossip",
         "--without-mingle", "--loglevel=WARNING"], cwd=BASE_DIR, env=env)
    old = {k: app.conf[k] for k in ("broker_url", "task_always_eager")}
    app.conf.task_always_eager = False
    _switch_broker(app, redis_url)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        yield worker
    finally:
        app.conf.task_always_eager = old["task_always_eager"]
        _switch_broker(app, old["broker_url"])
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def _switch_broker(app, url):
    """Point the test process's Celery app at ``url`` with fresh connection pools."""
    from kombu import pools

    app.conf.broker_url = url
    pools.reset()  # kombu keeps global producer pools per connection; drop them all
    app._pool = None
    app.amqp._producer_pool = None


def _wait(predicate, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError("condition not met in time")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_real_worker_answers_once_despite_redelivery_and_a_broker_outage(live_server, bot, telegram,
                                                                          celery_worker_process):
    from bots.tasks import process_update_task
    from bots.updates import inbox_sweep
    from saas_bot.celery import app

    ingest_folder(bot.company, DEMO_DIR / "kb")
    question = make_update("what are your support hours?", chat_id=6101)
    for _ in range(3):  # Telegram redelivers
        assert _post(live_server.url, bot, question).status_code == 200
    row = TelegramUpdate.objects.get(update_id=question["update_id"])
    for _ in range(3):  # Celery redelivers the task
        process_update_task.delay(row.id)
    telegram.wait_for_messages(1, timeout=120, chat_id=6101)
    _wait(lambda: TelegramUpdate.objects.filter(id=row.id, status="done").exists())
    time.sleep(2)  # let the duplicate tasks run out
    assert len(telegram.sent_messages(chat_id=6101)) == 1
    assert UsageEvent.objects.filter(idempotency_key=f"tg:{bot.id}:{question['update_id']}").count() == 1
    assert Message.objects.filter(update=row).count() == 1

    # Broker down: the webhook still acknowledges and stores; the sweep sends it once the broker is back.
    _switch_broker(app, "redis://127.0.0.1:1/0")
    help_update = make_update("/help", chat_id=6102, entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    started = time.monotonic()
    assert _post(live_server.url, bot, help_update).status_code == 200
    assert time.monotonic() - started < 10
    stored = TelegramUpdate.objects.get(update_id=help_update["update_id"])
    assert stored.status == "pending"
    _switch_broker(app, os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/15"))
    assert inbox_sweep(stale_seconds=0) >= 1
    telegram.wait_for_messages(1, timeout=60, chat_id=6102)
    _wait(lambda: TelegramUpdate.objects.filter(id=stored.id, status="done").exists())
