"""Beyond one process (docs/architecture.md, "Scaling out"): two web processes and two answer workers on one
database and one broker lose no update and answer none twice.

Real parts: two gunicorn processes (the plugin's ``web_servers``), two Celery workers with the production
pool (threads, queues ``answers,celery``; the plugin's ``celery_workers``), a private Redis as broker and
flood limiter, the Bot API emulator, the OpenAI-compatible stub answering after 0.3 s, PostgreSQL.
Telegram's redelivery is played by posting a third of the updates a second time to the *other* web process,
while both workers take tasks from the same queue.
"""
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db.models import Count

from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder, make_update, wait_until

UPDATES = 24
BOTS = 3
CHATS = 20
# Questions the demo knowledge base answers with the chat model (none refused by the relevance gate).
QUESTIONS = ["what are your support hours?", "how do I delete my account?",
             "how long do sharing links stay valid by default?"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_web_processes_and_two_workers_lose_nothing_and_answer_once(
        telegram, llm, make_company, private_redis, web_servers, celery_workers, settings):
    from billing.models import UsageEvent
    from bots.models import Message, TelegramUpdate
    from bots.lifecycle import bot_connect

    broker = private_redis.url
    settings.TELEGRAM_RATE_REDIS_URL = broker
    llm.delay_next(0.3, times=10_000)  # every chat completion waits, as a provider does
    model_env = {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": "gpt-4o-mini"}
    # The four processes start while this one ingests the knowledge base.
    workers = [celery_workers(broker, pool="threads", concurrency=8, queues="answers,celery", **model_env)
               for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        starting = [pool.submit(web_servers, broker, **model_env) for _ in range(2)]
        company = make_company("scaleco", max_messages_per_period=100_000)
        ingest_folder(company, DEMO_DIR / "kb")
        bots = []
        for n in range(BOTS):
            token = f"{7400000000 + n}:AAFscaleTestToken{n:04d}xxxxxxxxxxxxxxxxx"
            telegram.add_bot(token, id=7400000000 + n, username=f"scale_{n}_bot", first_name=f"Scale {n}")
            bots.append(bot_connect(company=company, token=token, register_webhook=False))
        webs = [future.result() for future in starting]
    started = time.monotonic()

    updates = []
    for n in range(UPDATES):
        bot = bots[n % BOTS]
        chat = 9_100_000 + (n // BOTS) % CHATS
        updates.append((bot, make_update(QUESTIONS[n % len(QUESTIONS)], chat_id=chat, user_id=chat)))

    def post(job):
        index, web, bot, update = job
        response = httpx.post(f"{web}/telegram/webhook/{bot.public_id}/", json=update, timeout=15,
                              headers={"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret})
        return index, response.status_code

    jobs = [(n, webs[n % 2], bot, update) for n, (bot, update) in enumerate(updates)]
    # Telegram delivers a third of them again, to the other web process, while the first is being processed.
    jobs += [(n, webs[(n + 1) % 2], bot, update) for n, (bot, update) in enumerate(updates) if n % 3 == 0]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, jobs))
    assert all(status == 200 for _, status in statuses), [s for s in statuses if s[1] != 200][:5]

    def finished():
        counts = dict(TelegramUpdate.objects.values_list("status").annotate(n=Count("id")))
        return counts.get("done", 0) == UPDATES and counts

    wait_until(finished, timeout=90, interval=0.5)
    print(f"{UPDATES} updates answered {time.monotonic() - started:.1f} s after the first post")
    time.sleep(1)  # a duplicate still in flight would send now

    stored = TelegramUpdate.objects.all()
    assert stored.count() == UPDATES  # redeliveries stored once (unique bot + update_id)
    assert {(u.bot_id, u.update_id) for u in stored} == {(b.id, u["update_id"]) for b, u in updates}
    sent = [c for c in telegram.calls("sendMessage") if c["status_code"] == 200]
    assert len(sent) == UPDATES  # none lost, none twice
    replies = Message.objects.filter(update__isnull=False)
    assert replies.count() == UPDATES and not replies.filter(delivered_at__isnull=True).exists()
    assert set(replies.values_list("update_id", flat=True)) == set(stored.values_list("id", flat=True))
    # Billed at delivery, once per update (the usage outbox is recorded by the workers' ledger task).
    wait_until(lambda: UsageEvent.objects.filter(kind="message").count() == UPDATES, timeout=30)
    keys = list(UsageEvent.objects.filter(kind="message").values_list("idempotency_key", flat=True))
    assert len(keys) == len(set(keys)) == UPDATES
    # Both workers took part (a claim records its worker as host:pid), and the model was really asked.
    holders = {holder.rsplit(":", 1)[1] for holder in stored.values_list("locked_by", flat=True)}
    assert holders == {str(worker.pid) for worker in workers}
    assert len(llm.requests) == UPDATES
