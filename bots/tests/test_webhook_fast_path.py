"""The webhook's WSGI fast path (saas_bot.wsgi) and the inbox relay (the inbox's outbox to the broker).

Real PostgreSQL and Redis; the end-to-end test runs gunicorn, a Celery worker (whose relay publishes) and the
Telegram emulator, and shows every acknowledged update stored once and answered once.
"""
import base64
import io
import json
import threading

import httpx
import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection

from bots.models import TelegramUpdate, UpdateHandoff
from saas_bot.testing.pytest_plugin import make_update, switch_broker, wait_until

HELP = dict(entities=[{"type": "bot_command", "offset": 0, "length": 5}])


def wsgi_call(path: str, body: bytes | str = b"", *, method: str = "POST", secret: str | None = None,
              content_length: str | None = "auto", chunked: bool = False) -> tuple[int, dict | str]:
    """Call the production WSGI application (saas_bot.wsgi.application) in this process."""
    from saas_bot.wsgi import application

    body = body.encode() if isinstance(body, str) else body
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "testserver", "SERVER_PORT": "80",
               "HTTP_HOST": "testserver", "CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(body),
               "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(), "SERVER_PROTOCOL": "HTTP/1.1"}
    if content_length == "auto":
        environ["CONTENT_LENGTH"] = str(len(body))
    elif content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    if secret is not None:
        environ["HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN"] = secret
    seen = []
    # As Django's test client does: a request that reaches Django must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = application(environ, lambda status, headers, exc_info=None: seen.append((status, headers)))
        data = b"".join(result)
        if hasattr(result, "close"):
            result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    status = int(seen[0][0].split()[0])
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode(errors="replace")


def hook(bot) -> str:
    return f"/telegram/webhook/{bot.public_id}/"


@pytest.mark.django_db
class TestFastPathAnswers:
    """Same answers as the Django view (bots/tests/test_webhook.py), through the fast path."""

    def test_valid_update_is_stored_and_acknowledged(self, bot, django_capture_on_commit_callbacks):
        update = make_update("How long do sharing links last?")
        with django_capture_on_commit_callbacks() as callbacks:
            status, body = wsgi_call(hook(bot), json.dumps(update), secret=bot.webhook_secret)
        assert (status, body) == (200, {"ok": True})
        stored = TelegramUpdate.objects.get(bot=bot, update_id=update["update_id"])
        assert stored.payload == update and stored.status == "pending"
        assert len(callbacks) == 1  # eager mode (no broker): processing is enqueued on commit

    def test_redelivery_is_acknowledged_and_stored_once(self, bot):
        update = make_update("hello")
        for _ in range(3):
            assert wsgi_call(hook(bot), json.dumps(update), secret=bot.webhook_secret)[0] == 200
        assert TelegramUpdate.objects.filter(bot=bot, update_id=update["update_id"]).count() == 1

    def test_without_trailing_slash(self, bot):
        update = make_update("hello")
        assert wsgi_call(hook(bot).rstrip("/"), json.dumps(update), secret=bot.webhook_secret)[0] == 200
        assert TelegramUpdate.objects.filter(bot=bot, update_id=update["update_id"]).exists()

    @pytest.mark.parametrize("secret", [None, "", "wrong"])
    def test_missing_or_wrong_secret_is_403(self, bot, secret):
        status, body = wsgi_call(hook(bot), json.dumps(make_update("hi")), secret=secret)
        assert status == 403 and body["error"]["code"] == "webhook_secret_invalid"
        assert not TelegramUpdate.objects.filter(bot=bot).exists()

    def test_unknown_bot_is_404(self, bot):
        status, body = wsgi_call("/telegram/webhook/no-such-bot/", "{}", secret=bot.webhook_secret)
        assert status == 404 and body["error"]["code"] == "bot_not_found"

    @pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"update_id": "7"}', b'{"update_id": -1}',
                                      b'{"update_id": 1e3}', b'{"update_id": 99999999999999999999}', b"NaN",
                                      b"\xff\xfe", b"[" * 100_000])
    def test_bodies_that_are_not_updates_are_400(self, bot, body):
        status, answer = wsgi_call(hook(bot), body, secret=bot.webhook_secret)
        assert status == 400 and answer["error"]["code"] == "update_invalid"

    def test_missing_content_length_reads_nothing_and_is_400(self, bot):
        status, _ = wsgi_call(hook(bot), json.dumps(make_update("hi")), secret=bot.webhook_secret,
                              content_length=None)
        assert status == 400

    def test_chunked_body_without_content_length_is_read(self, bot):
        update = make_update("chunked")
        status, _ = wsgi_call(hook(bot), json.dumps(update), secret=bot.webhook_secret, content_length=None,
                              chunked=True)
        assert status == 200 and TelegramUpdate.objects.filter(bot=bot, update_id=update["update_id"]).exists()

    @pytest.mark.parametrize("declared", ["2000000", None])
    def test_over_the_limit_is_413(self, bot, settings, declared):
        settings.TELEGRAM_WEBHOOK_MAX_BYTES = 1000
        body = json.dumps(make_update("x" * 2000))
        status, answer = wsgi_call(hook(bot), body, secret=bot.webhook_secret,
                                   content_length=declared or "auto")
        assert status == 413 and answer["error"]["code"] == "update_too_large"

    def test_other_methods_and_paths_go_to_django(self, bot):
        status, body = wsgi_call(hook(bot), method="GET")
        assert status == 405 and body["error"]["code"] == "method_not_allowed"
        assert wsgi_call("/healthz", method="GET")[0] == 200
        assert wsgi_call(hook(bot) + "extra/", "{}", secret=bot.webhook_secret)[0] == 404


@pytest.fixture
def relay_broker(redis_url, settings):
    """Broker mode with the relay on, on the test Redis database (emptied before and after)."""
    import redis

    from saas_bot.celery import app

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    old = (app.conf.broker_url, app.conf.task_always_eager)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.TELEGRAM_INBOX_RELAY = True
    settings.TELEGRAM_RATE_REDIS_URL = redis_url
    app.conf.task_always_eager = False
    switch_broker(redis_url)
    yield client
    app.conf.task_always_eager = old[1]
    switch_broker(old[0])
    client.flushdb()


def queued(client) -> dict[str, list[int]]:
    """{queue list name: update pks of the bots.process_update messages in it} for the answers queue."""
    out = {}
    for name in ["answers"] + [f"answers:{p}" for p in range(1, 10)]:
        pks = [json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0] for raw in client.lrange(name, 0, -1)]
        if pks:
            out[name] = pks
    return out


@pytest.mark.django_db
def test_with_the_relay_the_webhook_stores_a_handoff_row_and_publishes_nothing(bot, relay_broker,
                                                                               django_capture_on_commit_callbacks):
    update = make_update("hello")
    with django_capture_on_commit_callbacks() as callbacks:
        for _ in range(2):  # a redelivery stores nothing more
            assert wsgi_call(hook(bot), json.dumps(update), secret=bot.webhook_secret)[0] == 200
    stored = TelegramUpdate.objects.get(bot=bot, update_id=update["update_id"])
    assert list(UpdateHandoff.objects.values_list("update_pk", "bot_id")) == [(stored.id, bot.id)]
    assert callbacks == [] and queued(relay_broker) == {}


@pytest.mark.django_db
def test_the_relay_publishes_each_stored_update_once_with_fair_priorities(bot, relay_broker, settings,
                                                                          make_company):
    from bots.inbox import inbox_relay_batch
    from bots.models import Bot
    from saas_bot.crypto import encrypt_secret

    settings.TELEGRAM_FAIR_SHARE = 3
    other = Bot.objects.create(company=make_company("other"), name="other", username="other_bot",
                               token_encrypted=encrypt_secret("654321:OTHER"), token_hint="6543…THER")
    busy = [make_update(f"q{i}") for i in range(5)]
    for update in busy:
        assert wsgi_call(hook(bot), json.dumps(update), secret=bot.webhook_secret)[0] == 200
    calm = make_update("calm")
    assert wsgi_call(hook(other), json.dumps(calm), secret=other.webhook_secret)[0] == 200
    busy_pks = list(TelegramUpdate.objects.filter(bot=bot).order_by("id").values_list("id", flat=True))
    calm_pk = TelegramUpdate.objects.get(bot=other).id

    assert inbox_relay_batch(limit=4) == 4  # oldest first, in batches
    assert inbox_relay_batch(limit=4) == 2
    assert inbox_relay_batch() == 0
    assert not UpdateHandoff.objects.exists()
    published = queued(relay_broker)
    # The busy bot's first 3 (its fair share) at normal priority, the rest behind every other bot's.
    assert sorted(published["answers"]) == sorted(busy_pks[:3] + [calm_pk])
    assert sorted(published["answers:6"]) == busy_pks[3:]
    assert sum(len(v) for v in published.values()) == 6


@pytest.mark.django_db(transaction=True)
def test_broker_down_the_relay_keeps_the_rows_and_publishes_them_later(bot, relay_broker, redis_url):
    from bots.inbox import inbox_relay_batch

    update = make_update("while the broker is away")
    assert wsgi_call(hook(bot), json.dumps(update), secret=bot.webhook_secret)[0] == 200
    pk = TelegramUpdate.objects.get(bot=bot, update_id=update["update_id"]).id
    switch_broker("redis://127.0.0.1:1/0")  # nothing listens there
    with pytest.raises(Exception):
        inbox_relay_batch()
    assert list(UpdateHandoff.objects.values_list("update_pk", flat=True)) == [pk]  # rolled back, kept
    switch_broker(redis_url)
    assert inbox_relay_batch() == 1
    assert queued(relay_broker) == {"answers": [pk]}


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_is_logged_once_with_its_traceback_then_briefly(bot, relay_broker, redis_url, caplog,
                                                                         monkeypatch):
    """The relay retries every second: a traceback per retry would flood the worker's log during an outage."""
    import logging

    from bots import inbox

    monkeypatch.setattr(inbox, "RELAY_OUTAGE_REPORT_SECONDS", 1.0)
    update = make_update("relayed after the outage")
    assert wsgi_call(hook(bot), json.dumps(update), secret=bot.webhook_secret)[0] == 200
    pk = TelegramUpdate.objects.get(bot=bot, update_id=update["update_id"]).id
    switch_broker("redis://127.0.0.1:1/0")  # nothing listens there
    stop = threading.Event()
    caplog.set_level(logging.WARNING, logger=inbox.logger.name)
    thread = threading.Thread(target=inbox.inbox_relay_run, kwargs={"stop": stop, "idle_seconds": 0.05})
    thread.start()
    try:
        wait_until(lambda: sum("still failing" in r.getMessage() for r in caplog.records) >= 2, timeout=30)
        switch_broker(redis_url)
        wait_until(lambda: queued(relay_broker) == {"answers": [pk]}, timeout=30)
        wait_until(lambda: any("publishing again" in r.getMessage() for r in caplog.records), timeout=10)
    finally:
        stop.set()
        thread.join(timeout=10)
    relay_records = [r for r in caplog.records if r.name == inbox.logger.name and "relay" in r.getMessage()]
    assert [r.getMessage() for r in relay_records if r.exc_info] == ["inbox relay: publishing failed; retrying every second"]
    retries = [r for r in relay_records if "still failing" in r.getMessage()]
    assert 2 <= len(retries) and all(r.exc_info is None for r in retries)
    assert not UpdateHandoff.objects.filter(update_pk=pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_broken_kept_connection_is_replaced_and_the_update_still_stored(bot):
    """CONN_HEALTH_CHECKS' SELECT 1 is skipped on the fast path: a dead kept connection is retried once."""
    import psycopg

    first, second = make_update("one"), make_update("two")
    assert wsgi_call(hook(bot), json.dumps(first), secret=bot.webhook_secret)[0] == 200
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    status, body = wsgi_call(hook(bot), json.dumps(second), secret=bot.webhook_secret)
    assert (status, body) == (200, {"ok": True})
    assert connection.connection.info.backend_pid != pid
    assert TelegramUpdate.objects.filter(bot=bot, update_id=second["update_id"]).count() == 1


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_every_acknowledged_update_is_stored_and_answered_exactly_once(bot, telegram, redis_url, web_servers,
                                                                       celery_workers):
    """Real gunicorn (the fast path) and a real Celery worker (its relay publishes); redeliveries included."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    base_url = web_servers(redis_url)
    celery_workers(redis_url, pool="threads", concurrency=4)
    chats = list(range(8101, 8131))
    updates = [make_update("/help", chat_id=chat, **HELP) for chat in chats]
    acked = []
    lock = threading.Lock()

    def post(update):
        response = httpx.post(f"{base_url}/telegram/webhook/{bot.public_id}/", json=update, timeout=30,
                              headers={"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret})
        if response.status_code == 200:
            with lock:
                acked.append(update["update_id"])

    threads = [threading.Thread(target=post, args=(u,)) for u in updates + updates[::3]]  # some sent twice
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(acked) == {u["update_id"] for u in updates}
    ids = [u["update_id"] for u in updates]
    wait_until(lambda: TelegramUpdate.objects.filter(bot=bot, update_id__in=ids, status="done").count() == len(ids),
               timeout=120)
    rows = TelegramUpdate.objects.filter(bot=bot, update_id__in=ids)
    assert rows.count() == len(ids)
    assert all(row.attempts == 1 for row in rows)  # claimed once each
    for chat in chats:
        assert len(telegram.sent_messages(chat_id=chat)) == 1  # answered once each
    assert not UpdateHandoff.objects.exists()
