"""Usage metering: events recorded per second through a real Celery worker, and the quota check's cost.

    .venv/bin/python bench/usage_ledger.py [--events 2000] [--reservations 2000] [--threads 8] [--no-docs]

In a private database on the same server (dropped at the end):
1. Recording: ``--events`` usage events written to the outbox, each in its own transaction
   (``billing.ledger.usage_enqueue``, as the answer path does), with ``REDIS_URL`` pointing at Redis
   db 13 and a Celery worker (prefork, 2 processes) recording them; events/s from the first commit
   until the outbox is empty, then a drift check (counters == ledger).
2. The quota check on the answer path: ``billing.quotas.quota_reserve`` one at a time (latency
   p50/p95) and from ``--threads`` threads against the same company (throughput under contention,
   since every reservation of a company locks the same row).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (CpuSampler, REPO, django_setup, drop_private_database, log, machine_info, machine_lines,  # noqa: E402
                     other_load, percentile, table, update_docs, use_private_database, worktree_note)

BROKER = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
DB_NAME = "saas_bot_bench_usage"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--reservations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()

    django_setup({"REDIS_URL": BROKER, "CELERY_BROKER_URL": BROKER})
    info = machine_info()
    load_note = other_load()
    use_private_database(DB_NAME)
    import redis
    from django.core.management import call_command
    from django.db import connections, transaction

    from billing.ledger import usage_drift, usage_enqueue
    from billing.models import PendingUsage, Plan, UsageEvent
    from billing.quotas import quota_reserve
    from billing.services import subscription_get_live, subscription_start
    from tenants.services import company_create

    redis.Redis.from_url(BROKER).flushdb()
    worker = None
    try:
        log("migrating the private database")
        call_command("migrate", verbosity=0)
        plan = Plan.objects.create(code="bench", name="Bench")  # unlimited
        company = company_create(name="Bench usage", slug="bench-usage")
        subscription_start(company=company, plan=plan)
        period = subscription_get_live(company=company).current_period_start

        env = dict(os.environ, DATABASE_NAME=DB_NAME, REDIS_URL=BROKER, CELERY_BROKER_URL=BROKER,
                   LOG_LEVEL="WARNING")
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "saas_bot", "worker", "--concurrency", "2",
                                   "--without-gossip", "--without-mingle", "--loglevel=WARNING"], cwd=REPO, env=env)
        time.sleep(6)  # worker start-up
        log(f"recording {args.events} events through the worker")
        cpu = CpuSampler().start()
        started = time.perf_counter()
        for i in range(args.events):
            with transaction.atomic():
                usage_enqueue(company=company, idempotency_key=f"bench:{i}", period_start=period,
                              end_user_id=i % 50, prompt_tokens=0, completion_tokens=0)
            if i and i % 500 == 0:
                log(f"  {i} enqueued, {UsageEvent.objects.count()} recorded")
        enqueued_s = time.perf_counter() - started
        while PendingUsage.objects.exists():
            if time.perf_counter() - started > 600:
                raise TimeoutError("the worker did not drain the outbox in 10 minutes")
            time.sleep(0.1)
        total_s = time.perf_counter() - started
        busy = cpu.stop()["cpu_busy_pct"]
        recorded = UsageEvent.objects.count()
        drift = usage_drift()
        log(f"recorded {recorded} in {total_s:.1f} s ({recorded / total_s:.0f}/s); drift rows: {len(drift)}")

        log(f"quota_reserve x {args.reservations}, one at a time")
        latencies = []
        for i in range(args.reservations):
            t0 = time.perf_counter()
            quota_reserve(company=company, idempotency_key=f"q:{i}", end_user_id=i % 50)
            latencies.append((time.perf_counter() - t0) * 1000)
        log(f"quota_reserve from {args.threads} threads")
        per_thread = args.reservations // args.threads
        barrier = threading.Barrier(args.threads)

        def run(n: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                quota_reserve(company=company, idempotency_key=f"c:{n}:{i}", end_user_id=i % 50)
            connections.close_all()

        threads = [threading.Thread(target=run, args=(n,)) for n in range(args.threads)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent_s = time.perf_counter() - t0
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        redis.Redis.from_url(BROKER).flushdb()
        connections.close_all()
        drop_private_database(DB_NAME)

    rows = [
        ["usage events recorded through the worker (enqueue + record)", f"{recorded}",
         f"{recorded / total_s:.0f}/s", f"enqueue {enqueued_s:.1f} s, drained {total_s:.1f} s, CPU busy {busy:.0f}%"],
        ["counters == ledger after the run", "", "yes" if not drift else f"NO ({len(drift)} rows)", ""],
        ["quota_reserve, sequential", f"{args.reservations}",
         f"p50 {percentile(latencies, 50):.2f} ms, p95 {percentile(latencies, 95):.2f} ms", ""],
        [f"quota_reserve, {args.threads} threads, one company", f"{per_thread * args.threads}",
         f"{per_thread * args.threads / concurrent_s:.0f}/s", "serialised by the company's window lock"],
    ]
    body = ("## Usage metering (`bench/usage_ledger.py`)\n\n" + machine_lines(info) + f"Other load at start: {load_note}\n\n"
            f"Code under test: {worktree_note()}. Private database, Redis db 13, a Celery worker with 2 "
            "processes. Each event is enqueued in its own transaction (outbox row + task on commit) and "
            "recorded by `billing.usage_record` (ledger insert, counters, outbox delete in one "
            "transaction).\n\n" + table(["measure", "n", "result", "notes"], rows, "lrll"))
    print("\n" + body)
    if not args.no_docs:
        update_docs("usage", body)
    return 0 if not drift else 1


if __name__ == "__main__":
    sys.exit(main())
