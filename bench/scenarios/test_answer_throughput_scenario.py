"""The scenario of bench/answer_throughput.py (run by it; not part of the test suite's paths).

Questions go through the real webhook (one gunicorn process, the plugin's ``web_servers``) to Celery
workers on a private Redis; answers use the OpenAI-compatible stub, which answers each chat completion
after a fixed delay (its ``delay_next``, what ``POST /_stub/delay`` sets), and are sent to the Bot API
emulator. Every question has its own chat (so Telegram's 1 message/s per chat never binds) and the
questions are spread over ``ANSWER_BOTS`` bots (each stays far below 30 messages/s and the fair share).

For each worker configuration (``ANSWER_CONFIGS``, e.g. ``prefork:2,threads:64``; ``threads:32x2`` is two
processes of 32 threads) and each delay (``ANSWER_DELAYS``, seconds) it posts ``ANSWER_QUESTIONS``
questions (``ANSWER_QUESTIONS_PREFORK`` for a prefork configuration: it answers a question a second) at
``ANSWER_RATE`` per second (open loop), waits for every answer and prints one ``answers {...}`` line:
answers/s (questions / (last answer - first post)), time to reply p50/p95/max (answer at the emulator -
post of its update), the load average and the CPU busy share.
"""
import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder, make_update, wait_until

CONFIGS = os.environ.get("ANSWER_CONFIGS", "prefork:2,threads:64")
DELAYS = [float(x) for x in os.environ.get("ANSWER_DELAYS", "0.5,2").split(",")]
QUESTIONS_N = int(os.environ.get("ANSWER_QUESTIONS", "300"))
QUESTIONS_PREFORK = int(os.environ.get("ANSWER_QUESTIONS_PREFORK", "40"))
RATE = float(os.environ.get("ANSWER_RATE", "25"))
BOTS = int(os.environ.get("ANSWER_BOTS", "10"))
# Questions the demo knowledge base answers with the chat model (not refused by the relevance gate).
QUESTIONS = ["what are your support hours?", "how do I delete my account?",
             "how long do sharing links stay valid by default?"]


def _percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low, high = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _cpu_times():
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_answer_throughput_scenario(telegram, llm, make_company, private_redis, web_servers, celery_workers,
                                    settings):
    from bots.lifecycle import bot_connect

    broker = private_redis.url
    settings.TELEGRAM_RATE_REDIS_URL = broker
    model_env = {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": "gpt-4o-mini",
                 "TELEGRAM_RATE_REDIS_URL": broker}
    company = make_company("answersco", max_messages_per_period=10_000_000)
    ingest_folder(company, DEMO_DIR / "kb")
    bots, tokens = [], []
    for n in range(BOTS):
        token = f"{7500000000 + n}:AAFanswerBenchToken{n:04d}xxxxxxxxxxxxxxx"
        telegram.add_bot(token, id=7500000000 + n, username=f"answers_{n}_bot", first_name=f"Answers {n}")
        bots.append(bot_connect(company=company, token=token, register_webhook=False))
        tokens.append(token)
    web = web_servers(broker, **model_env)
    chat_ids = iter(range(9_500_000, 10**9))
    local = threading.local()

    def post(bot, update):
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = httpx.Client(timeout=30)
        response = c.post(f"{web}/telegram/webhook/{bot.public_id}/", json=update,
                          headers={"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret})
        assert response.status_code == 200, response.text

    def run_phase(n_questions: int, rate: float) -> dict:
        """Post n questions at ``rate``/s, each to its own chat; wait for every answer; figures."""
        telegram.reset()
        chats = {}
        start_cpu = _cpu_times()
        load_start = os.getloadavg()[0]
        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            futures = []
            for i in range(n_questions):
                due = t0 + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                chat = next(chat_ids)
                bot = bots[i % len(bots)]
                update = make_update(QUESTIONS[i % len(QUESTIONS)], chat_id=chat, user_id=chat)
                chats[chat] = time.monotonic()
                futures.append(pool.submit(post, bot, update))
            for future in futures:
                future.result()
        posted = time.monotonic() - t0

        def answered():
            done = {}
            for call in telegram.calls("sendMessage"):
                if call["status_code"] == 200:
                    chat = int(call["params"]["chat_id"])
                    if chat in chats and chat not in done:
                        done[chat] = call["time"]
            return len(done) >= n_questions and done

        done = wait_until(answered, timeout=max(120, n_questions * 3), interval=0.25)
        end_cpu = _cpu_times()
        latencies = [done[chat] - chats[chat] for chat in chats]
        first, last = min(chats.values()), max(done.values())
        sends = [c for c in telegram.calls("sendMessage") if c["status_code"] == 200]
        busy = 1 - (end_cpu[1] - start_cpu[1]) / max(1, end_cpu[0] - start_cpu[0])
        return {"questions": n_questions, "offered_per_s": round(n_questions / max(posted, 1e-9), 1),
                "answers_per_s": round(n_questions / (last - first), 2),
                "p50": round(_percentile(latencies, 50), 2), "p95": round(_percentile(latencies, 95), 2),
                "max": round(max(latencies), 2), "sent": len(sends), "llm_calls": len(llm.requests),
                "load_start": round(load_start, 2), "load_end": round(os.getloadavg()[0], 2),
                "cpu_busy_pct": round(100 * busy, 1)}

    for config in CONFIGS.split(","):
        pool_name, _, size = config.partition(":")
        threads, _, processes = size.partition("x")
        processes = int(processes or 1)
        workers = []
        for _ in range(processes):
            if pool_name == "threads":
                workers.append(celery_workers(broker, pool="threads", concurrency=int(threads),
                                              queues="answers,celery", **model_env))
            else:
                workers.append(celery_workers(broker, pool=pool_name, concurrency=int(threads), **model_env))
        llm.reset()
        # Warm-up: every worker process loads the embedding model on its first question.
        warm = int(threads) * processes if pool_name == "prefork" else 4 * processes
        run_phase(warm, rate=10)
        for delay in DELAYS:
            llm.reset()
            llm.delay_next(delay, times=10**6)
            n = QUESTIONS_PREFORK if pool_name == "prefork" else QUESTIONS_N
            figures = run_phase(n, rate=RATE)
            figures.update(config=config, delay=delay)
            print("answers " + json.dumps(figures), flush=True)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
