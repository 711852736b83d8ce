"""Telegram delivery under a burst: 50 bots, 2,000 updates, flood limits, per-bot latency.

Runs the scenario of ``bots/tests/test_delivery_load.py`` (its fixtures start the Bot API emulator,
the webhook on a live server, a private Redis and two Celery workers) and records the figures it prints
in docs/benchmarks.md (section "telegram"). Usage: ``make bench-telegram`` [``LOAD_BURST=N``].
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import time

from _common import REPO, django_setup, log, machine_info, machine_lines, other_load, table, update_docs, utcnow


def main() -> None:
    burst = int(os.environ.get("LOAD_BURST", "2000"))
    log(f"burst of {burst} updates for 50 bots through the webhook, two workers (progress every 5 s)")
    load_before = other_load()
    started = time.monotonic()
    env = dict(os.environ, CI="true", LOAD_BURST=str(burst), TEST_DATABASE_NAME="bench_delivery")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s", "-m", "integration",
                             "bots/tests/test_delivery_load.py"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    summary, outcome = None, ""
    for line in proc.stdout:
        if line.startswith("delivery "):
            summary = ast.literal_eval(line[len("delivery "):].strip())
        elif line[:1].isdigit() and "{" in line:
            print("  " + line.rstrip(), flush=True)  # seconds since the burst, inbox by status
        elif " passed" in line or " failed" in line:
            outcome = line.strip()
    proc.wait()
    elapsed = time.monotonic() - started
    if summary is None:
        raise SystemExit(f"the scenario printed no figures ({outcome or 'no result'}); see the output above")
    django_setup()  # machine_info reads the PostgreSQL version through Django
    rows = [
        ["busy bot (15 % of the burst, 6 chats)", f"{summary['busy_p50']:.1f}", f"{summary['busy_p95']:.1f}",
         f"{summary['busy_max']:.1f}"],
        ["the 49 other bots, all updates", f"{summary['quiet_p50']:.1f}", f"{summary['quiet_p95']:.1f}",
         f"{summary['quiet_max']:.1f}"],
        ["the 49 other bots, each bot's p95: median / worst", "", f"{summary['quiet_bot_p95_median']:.1f} / "
         f"{summary['quiet_bot_p95_worst']:.1f}", ""],
    ]
    limits = table(["observed at the emulator", "value", "Telegram's limit"], [
        ["most messages to one chat in any 1 s", summary["max_per_chat_in_1s"], "1"],
        ["smallest gap between two messages to one chat (s)", f"{summary['min_chat_gap']:.2f}", "1"],
        ["most messages from one bot in any 1 s", summary["max_per_bot_in_1s"], "30"],
    ])
    body = f"""## Telegram delivery

{burst} updates in one burst for 50 bots through the real webhook (live server), two Celery workers
(solo pool) on a private Redis, the Bot API emulator recording every sendMessage. One busy bot gets 15 %
of the burst in 6 chats, posted first (so its backlog is ≥ 49 s by the 1 message/s/chat limit); the
other 49 bots share the rest over 12 chats each. Latency = answer delivered − update received, seconds.
The busy bot is over its fair share, so most of its updates are queued at a lower priority and served
after the others: that is the intended order (the others do not wait behind its backlog). With two
solo workers on 2 cores the burst is processing-bound: the others' latency is the time to answer ~1,700
questions, not waiting on the busy bot.
Result: {outcome or 'see output'}; {elapsed:.0f} s in all including start-up.

{table(["bots", "p50 (s)", "p95 (s)", "max (s)"], rows)}
{limits}
{machine_lines(machine_info())}
Other load at the start: {load_before}. Measured {utcnow()} (`make bench-telegram`).
"""
    update_docs("telegram", body)
    print(body)


if __name__ == "__main__":
    main()
