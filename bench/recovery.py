"""Recovery of Telegram delivery: two worker kills and a broker outage under a steady stream of questions.

Runs ``bench/scenarios/test_recovery_scenario.py`` (the emulator, the webhook on a live server, a private
Redis as broker, two Celery workers, the test process as beat with the production intervals) and records
what it prints in docs/benchmarks.md (section "recovery"). Usage: ``make bench-recovery``
[``RECOVERY_UPDATES=N RECOVERY_RATE=per-second``].
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import time

from _common import REPO, django_setup, log, machine_info, machine_lines, other_load, table, update_docs, utcnow


def main() -> None:
    log("questions through the webhook while a worker is killed, the broker stops, the other worker is killed")
    load_before = other_load()
    started = time.monotonic()
    env = dict(os.environ, CI="true", TEST_DATABASE_NAME=os.environ.get("TEST_DATABASE_NAME", "bench_recovery"))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s",
                             "bench/scenarios/test_recovery_scenario.py"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    summary, outcome = None, ""
    for line in proc.stdout:
        if line.startswith("recovery "):
            summary = ast.literal_eval(line[len("recovery "):].strip())
        elif " passed" in line or " failed" in line or "Error" in line:
            outcome = line.strip()
            print("  " + outcome, flush=True)
    proc.wait()
    elapsed = time.monotonic() - started
    if summary is None:
        raise SystemExit(f"the scenario printed no figures ({outcome or 'no result'}); see the output above")
    django_setup()
    counts = table(["updates", "count"], [
        ["sent to the webhook", summary["sent"]],
        ["acknowledged (200)", summary["acknowledged"]],
        ["stored in the inbox", summary["stored"]],
        ["answered (delivered)", summary["answered"]],
        ["answered exactly once", summary["answered_once"]],
        ["doubled (a part sent twice)", summary["doubled"]],
        ["lost (acknowledged, never answered)", summary["lost"]],
        ["usage events (message) / distinct keys", f"{summary['usage_events']} / {summary['usage_distinct']}"],
    ])
    recovery = table(["event", "updates it held", "those answered after (s)", "updates not yet answered then",
                      "all of those answered after (s)"], [
        [name, held if name != "broker back" else "–", "–" if seconds is None or name == "broker back" else seconds,
         backlog, backlog_seconds]
        for name, (seconds, held, backlog_seconds, backlog) in summary["recovery"].items()])
    body = f"""## Recovery

{summary['sent']} questions posted through the real webhook at a steady rate to one bot (40 chats), two
Celery workers (solo pool) on a private Redis, the test process as beat (inbox sweep every
{summary['sweep']:.0f} s, usage sweep every 60 s), default recovery settings (claim stale after
{summary['claim_stale']} s, heartbeat every quarter of it). Events: worker 1 SIGKILLed while it held an
update (restarted at once); the broker stopped for {summary['outage_seconds']} s and started empty (every
queued task lost); worker 2 SIGKILLed the same way, each while it held an update (its claim, `locked_by`). For each event:
the updates the killed worker held and the seconds from the kill until they were answered (the recovery
time the settings bound: stale time + sweep interval + the answer), then every update not yet answered
at that moment (queued, prefetched by the dead worker, or stored while the broker was down) and the
seconds until the last of them was answered (the backlog drains at the workers' pace meanwhile). Result: {outcome or 'see output'}; {elapsed:.0f} s in all.

{counts}
{recovery}
{machine_lines(machine_info())}
Other load at the start: {load_before}. Measured {utcnow()} (`make bench-recovery`).
"""
    update_docs("recovery", body)
    print(body)


if __name__ == "__main__":
    main()
