"""Limits on the Telegram path: the limit message, at most once a day per end user; exact under load."""
import threading

import pytest
from django.db import connections

from billing.models import UsageEvent
from bots.models import Message, TelegramUpdate
from bots.lifecycle import bot_connect
from bots.inbox import update_process
from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder, make_update, record_pending_usage

TOKEN = "7200000001:AAFlimitsTestToken000000000000000001"


def _bot(make_company, telegram, **limits):
    company = make_company("tiny", **limits)
    telegram.add_bot(TOKEN, username="tiny_bot")
    return bot_connect(company=company, token=TOKEN, register_webhook=False)


def _store(bot, update):
    return TelegramUpdate.objects.create(company=bot.company, bot=bot, update_id=update["update_id"], payload=update)


@pytest.mark.django_db
def test_limit_message_once_a_day_per_end_user_and_nothing_metered(make_company, telegram):
    bot = _bot(make_company, telegram, max_messages_per_period=1, limit_message="Limit reached, sorry!")
    rows = [_store(bot, make_update(text, user_id=11, chat_id=11)) for text in ("first", "second", "third")]
    for row in rows:
        assert update_process(update_pk=row.id) == "done"
    texts = [m["text"] for m in telegram.sent_messages()]
    assert len(texts) == 2 and texts[1] == "Limit reached, sorry!"  # the third message: no second notice
    other = _store(bot, make_update("hello", user_id=12, chat_id=12))
    update_process(update_pk=other.id)
    assert telegram.sent_messages(chat_id=12)[0]["text"] == "Limit reached, sorry!"
    record_pending_usage()
    assert UsageEvent.objects.filter(kind="message").count() == 1
    statuses = list(Message.objects.order_by("id").values_list("status", flat=True))
    assert statuses == ["not_found", "limit_reached", "limit_reached", "limit_reached"]


@pytest.mark.django_db
def test_default_limit_message_speaks_the_bots_language(make_company, telegram):
    bot = _bot(make_company, telegram, max_messages_per_period=0)
    bot.language = "de"
    bot.save()
    update_process(update_pk=_store(bot, make_update("hallo", user_id=21, chat_id=21)).id)
    assert telegram.sent_messages()[0]["text"].startswith("Entschuldigung")


@pytest.mark.django_db(transaction=True)
def test_200_concurrent_messages_against_a_quota_of_50(make_company, telegram):
    bot = _bot(make_company, telegram, max_messages_per_period=50)
    ingest_folder(bot.company, DEMO_DIR / "kb")
    rows = [_store(bot, make_update("how long do sharing links stay valid?", user_id=1000 + i, chat_id=1000 + i))
            for i in range(200)]
    barrier = threading.Barrier(40)

    def worker(part):
        barrier.wait()
        for row in part:
            update_process(update_pk=row.id)
        connections.close_all()

    threads = [threading.Thread(target=worker, args=(rows[i::40],)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stuck = list(TelegramUpdate.objects.exclude(status="done").values_list("status", "error"))
    assert stuck == []
    statuses = list(Message.objects.values_list("status", flat=True))
    assert statuses.count("answered") == 50 and statuses.count("limit_reached") == 150
    assert UsageEvent.objects.filter(kind="message").count() == 50
    sent = telegram.sent_messages()
    assert len(sent) == 200
    assert sum("sorry" in m["text"].lower() and "limit" in m["text"].lower() for m in sent) == 150
