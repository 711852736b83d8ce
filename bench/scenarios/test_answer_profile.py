"""Where an answered update's CPU goes (run by hand; not part of the suite's paths).

    .venv/bin/python -m pytest -q -s bench/scenarios/test_answer_profile.py

The demo KB in a company, a bot on the Bot API emulator, N updates stored through ``update_receive`` and
answered one by one by ``update_process`` in this process under cProfile (the emulator runs in a thread
of this process, so its CPU is inside the figures: an upper bound). Prints CPU per update, SQL statements
per update, and the top functions by cumulative time.
"""
import cProfile
import io
import os
import pstats
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from saas_bot.testing.loadgen import QUESTIONS
from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder, make_update

UPDATES = int(os.environ.get("PROFILE_UPDATES", "40"))


@pytest.mark.django_db(transaction=True)
def test_answer_profile(telegram, make_company, settings):
    from bots.inbox import update_process, update_receive
    from bots.lifecycle import bot_connect
    from bots.models import TelegramUpdate
    from rag.embeddings import embed_query
    from saas_bot.testing.pytest_plugin import TEST_BOT_ID, TEST_TOKEN

    settings.TELEGRAM_INBOX_RELAY = False
    company = make_company("profileco", max_messages_per_period=100_000)
    ingest_folder(company, DEMO_DIR / "kb")
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username="profile_bot")
    bot = bot_connect(company=company, token=TEST_TOKEN, register_webhook=False)
    embed_query("warm up")
    settings.CELERY_TASK_ALWAYS_EAGER = False  # store only; this test processes them itself
    pks = []
    for n in range(UPDATES + 3):
        update = make_update(QUESTIONS[n % len(QUESTIONS)], chat_id=7_000_000 + n)
        update_receive(bot_id=bot.id, company_id=company.id, payload=update)
        pks.append(TelegramUpdate.objects.get(bot=bot, update_id=update["update_id"]).id)
    for pk in pks[:3]:  # warm-up: first-use imports and caches
        update_process(update_pk=pk)
    profiler = cProfile.Profile()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        profiler.enable()
        for pk in pks[3:]:
            update_process(update_pk=pk)
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = TelegramUpdate.objects.filter(pk__in=pks[3:], status="done").count()
    print(f"\nprofile: {UPDATES} updates ({done} done): CPU {cpu / UPDATES * 1000:.1f} ms, wall "
          f"{wall / UPDATES * 1000:.1f} ms, SQL statements {len(queries) / UPDATES:.1f} per update")
    kinds = {}
    for q in queries.captured_queries:
        key = " ".join(q["sql"].split()[:4])[:90]
        kinds[key] = kinds.get(key, 0) + 1
    for key, count in sorted(kinds.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {count / UPDATES:5.1f}  {key}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
    print(out.getvalue())
