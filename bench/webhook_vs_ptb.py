"""Our webhook against python-telegram-bot's own ``Application.run_webhook``, side by side in one run.

    .venv/bin/python bench/webhook_vs_ptb.py [--rounds 2] [--duration 15] [--connections 16] [--threads 1]
                                             [--ours gunicorn:sync:2] [--env KEY=VALUE ...] [--no-docs]

(``make bench-webhook-ptb``; it installs python-telegram-bot's ``webhooks`` extra, i.e. tornado, first.)

What it does, loopback only:
1. starts the Telegram Bot API emulator (saas_bot.testing.telegram_emulator) in this process, so PTB's
   start-up calls (getMe, setWebhook) have an answer; a throwaway company and bot in our database;
2. alternately, ``--rounds`` times each: (a) python-telegram-bot's ``Application.run_webhook`` (tornado,
   in-memory update queue, no persistence) with one no-op ``TypeHandler``, in its own process;
   (b) our web process as ``make run`` starts it (gunicorn with saas_bot/gunicorn_conf.py, or granian)
   with ``REDIS_URL`` set to a real broker and, when the inbox relay is on (settings.TELEGRAM_INBOX_RELAY),
   ``manage.py inbox_relay`` moving stored updates to the broker (what the answers worker does in
   ``make run``); no Celery worker consumes, so every message stays in Redis and can be counted;
3. drives each with the same generator (wrk, Debian package ``wrk``; one Lua script with unique
   update_ids and the secret header), threads, connections, warm-up and duration, same URL path and
   secret; reports acknowledged updates/s, latency p50/p90/p99/max and errors;
4. for ours, checks that every acknowledged update is stored once (rows of the run's update_id range
   against the 200s; the (bot, update_id) unique key makes "once") and enqueued once (the task messages in
   Redis name each stored update exactly once: their update pks are read back from the queue);
5. records the machine, date, commit, load average and the other heavy processes at the start and during
   each round, and writes docs/benchmarks.md between ``<!-- bench:webhook-ptb:start/end -->``.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import OUT_DIR, REPO, CpuSampler, log, table  # noqa: E402
from webhook_load import (BODY_FMT, ID_SPAN, LUA, QUEUES, THREAD_SPAN, _children, _free_port,  # noqa: E402
                          _purge, _stop, _wait_ready)

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PTB_TOKEN = "123456:BENCH-ptb-dummy-token"

PTB_SERVER = r'''
import sys
from telegram import Update
from telegram.ext import Application, TypeHandler

port, path, secret, base_url = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


async def noop(update, context):
    return None


app = Application.builder().token(sys.argv[5]).base_url(base_url).build()
app.add_handler(TypeHandler(Update, noop))
app.run_webhook(listen="127.0.0.1", port=port, url_path=path.strip("/"), secret_token=secret,
                webhook_url=f"http://127.0.0.1:{port}{path}", bootstrap_retries=0)
'''


def _queued_pks(broker) -> list[int]:
    """The update pk of every process_update message waiting in Redis, all priorities (kombu's JSON envelope;
    the body is base64 of ``[args, kwargs, embed]``)."""
    pks = []
    for name in QUEUES:
        for raw in broker.lrange(name, 0, -1):
            envelope = json.loads(raw)
            body = json.loads(base64.b64decode(envelope["body"]))
            pks.append(int(body[0][0]))
    return pks


def _wrk(port: int, path: str, base: int, threads: int, connections: int, duration: float, lua: Path) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "5s", "-s", str(lua),
           f"http://127.0.0.1:{port}{path}", "--", str(base)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return json.loads(line[len("BENCH_JSON "):])


def _ours_command(spec: str, port: int) -> list[str]:
    """``gunicorn:sync:2``, ``gunicorn:gthread:2:4`` or ``granian:2`` (workers[:threads]) -> argv."""
    kind, *rest = spec.split(":")
    if kind == "gunicorn":
        klass, workers = rest[0], rest[1]
        cmd = [sys.executable, "-m", "gunicorn", "saas_bot.wsgi:application", "--config",
               "saas_bot/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}", "--workers", workers,
               "--worker-class", klass, "--log-level", "warning", "--backlog", "2048"]
        if klass == "gthread":
            cmd += ["--threads", rest[2] if len(rest) > 2 else "4"]
        return cmd
    if kind == "granian":
        workers = rest[0]
        threads = rest[1] if len(rest) > 1 else "1"
        return [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", workers, "--blocking-threads", threads, "--log-level", "warning",
                "--backlog", "2048", "saas_bot.wsgi:application"]
    raise ValueError(f"unknown server spec {spec!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="alternations PTB, ours (each round runs both)")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--ours", default="gunicorn:sync:2",
                        help="our server: gunicorn:sync:W, gunicorn:gthread:W:T or granian:W[:T]")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for our web process and relay")
    parser.add_argument("--label", default="", help="a note on the code or setting under test, for the table")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    extra_env = dict(item.split("=", 1) for item in args.env)

    _common.django_setup({"REDIS_URL": REDIS_URL, **extra_env})
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from bots.models import Bot
    from saas_bot.crypto import encrypt_secret
    from saas_bot.testing.telegram_emulator import TelegramEmulator
    from tenants.services import company_create

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    info = _common.machine_info()
    code_note = _common.worktree_note()
    other_at_start = _common.other_load()
    log(f"machine: {info}; other load: {other_at_start}")
    broker = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    broker.ping()
    call_command("migrate", verbosity=0)
    # Each of ours: "server spec" or "server spec@KEY=VALUE,KEY=VALUE" (settings for that one only).
    ours_specs = []
    for item in args.ours.split(";"):
        spec, _, overrides = item.partition("@")
        spec_env = dict(extra_env, **dict(kv.split("=", 1) for kv in overrides.split(",") if kv))
        relay = spec_env.get("TELEGRAM_INBOX_RELAY", str(settings.TELEGRAM_INBOX_RELAY)).lower() in ("true", "1", "on")
        ours_specs.append((item, spec, spec_env, relay))

    slug = f"bench-ptb-{uuid.uuid4().hex[:8]}"
    company = company_create(name="Bench webhook vs PTB (throwaway)", slug=slug)
    bot = Bot.objects.create(company=company, name="bench", username="bench_ptb_bot", telegram_id=None,
                             token_encrypted=encrypt_secret("123456:BENCH-dummy-token-not-valid"),
                             token_hint="1234…alid")
    path = f"/telegram/webhook/{bot.public_id}/"
    lua = OUT_DIR / f"webhook_ptb_{bot.public_id}.lua"
    lua.write_text(LUA % {"path": path, "secret": bot.webhook_secret, "body_fmt": BODY_FMT.replace("'", "\\'"),
                          "thread_span": THREAD_SPAN})
    ptb_script = OUT_DIR / "ptb_webhook_server.py"
    ptb_script.write_text(PTB_SERVER)

    results: list[dict] = []
    procs: list[subprocess.Popen] = []
    handles: list = []
    emulator = TelegramEmulator().__enter__()
    emulator.add_bot(PTB_TOKEN, username="bench_ptb_bot")
    env = dict(os.environ, REDIS_URL=REDIS_URL, LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="saas_bot.settings",
               EMBEDDING_WARM_UP="false", DATABASE_NAME=connection.settings_dict["NAME"], **extra_env)
    env.pop("CELERY_BROKER_URL", None)
    run_no = 0
    interrupted = False

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        for round_no in range(1, args.rounds + 1):
            for who, (label, spec, spec_env, relay_on) in [("ptb", ("", "", {}, False))] + [
                    ("ours", entry) for entry in ours_specs]:
                run_no += 1
                port = _free_port()
                log_path = OUT_DIR / f"webhook_ptb_{round_no}_{run_no}_{who}.log"
                handle = open(log_path, "w")
                handles.append(handle)
                if who == "ptb":
                    cmd = [sys.executable, str(ptb_script), str(port), path, bot.webhook_secret,
                           f"{emulator.base_url}/bot", PTB_TOKEN]
                    server = subprocess.Popen(cmd, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
                else:
                    server = subprocess.Popen(_ours_command(spec, port), cwd=REPO,
                                              env=dict(env, **spec_env), stdout=handle,
                                              stderr=subprocess.STDOUT)
                procs.append(server)
                relay = None
                if who == "ours" and relay_on:
                    relay = subprocess.Popen([sys.executable, "manage.py", "inbox_relay"], cwd=REPO,
                                             env=dict(env, **spec_env),
                                             stdout=handle, stderr=subprocess.STDOUT)
                    procs.append(relay)
                _wait_ready(port, path, server, timeout=180, status=None)
                _purge(broker)
                warm_base = (2 * run_no - 1) * ID_SPAN
                base = 2 * run_no * ID_SPAN
                if args.warmup:
                    _wrk(port, path, warm_base, args.threads, args.connections, args.warmup, lua)
                other_now = _common.other_load()
                # CPU used during the run by the server (master and workers), the relay and this database's
                # PostgreSQL backends opened since the server started: per acknowledged update, it does not
                # depend on how busy the shared machine is.
                started = _common.proc_start_ticks(server.pid)
                tracked = {"server": [server.pid] + _children(server.pid),
                           "relay": [relay.pid] if relay is not None else [],
                           "db": [b for b in _common.postgres_backends(connection.settings_dict["NAME"])
                                  if _common.proc_start_ticks(b) >= started] if who == "ours" else []}
                cpu_before = {pid: _common.proc_cpu_ms(pid) for pids in tracked.values() for pid in pids}
                cpu = CpuSampler().start()
                result = _wrk(port, path, base, args.threads, args.connections, args.duration, lua)
                load = cpu.stop()
                cpu_ms = {part: sum(max(0.0, _common.proc_cpu_ms(pid) - cpu_before[pid]) for pid in pids)
                          for part, pids in tracked.items()}
                time.sleep(1.0)  # requests cut off by wrk finish; the relay drains
                row = {"server": "python-telegram-bot run_webhook" if who == "ptb" else f"ours `{label}`",
                       "who": who, "round": round_no, "acked": result["ok"],
                       "acks_per_s": round(result["ok"] / (result["duration_us"] / 1e6), 1),
                       "p50_ms": round(result["p50_us"] / 1000, 2), "p90_ms": round(result["p90_us"] / 1000, 2),
                       "p99_ms": round(result["p99_us"] / 1000, 2), "max_ms": round(result["max_us"] / 1000, 1),
                       "non200": result["non200"],
                       "sock_err": result["err_connect"] + result["err_read"] + result["err_write"]
                       + result["err_timeout"], "other": other_now, **load,
                       "cpu_per_ack": {part: round(ms / max(result["ok"], 1), 3) for part, ms in cpu_ms.items()}}
                if who == "ours":
                    # Everything stored (warm-up + run) must be enqueued exactly once.
                    deadline = time.monotonic() + 30
                    while True:
                        with connection.cursor() as cursor:
                            cursor.execute("SELECT id, update_id FROM bots_telegramupdate WHERE bot_id = %s AND "
                                           "update_id >= %s AND update_id < %s",
                                           [bot.id, warm_base, base + ID_SPAN])
                            stored = cursor.fetchall()
                        queued = _queued_pks(broker)
                        if sorted(queued) == sorted(pk for pk, _ in stored) or time.monotonic() > deadline:
                            break
                        time.sleep(0.5)
                    run_rows = sum(1 for _, uid in stored if uid >= base)
                    stored_pks = sorted(pk for pk, _ in stored)
                    row.update(stored=run_rows, stored_minus_acked=run_rows - result["ok"],
                               stored_ok=0 <= run_rows - result["ok"] <= args.connections,
                               queued=len(queued), enqueued_once=sorted(queued) == stored_pks,
                               queued_missing=len(set(stored_pks) - set(queued)),
                               queued_twice=len(queued) - len(set(queued)),
                               queued_foreign=len(set(queued) - set(stored_pks)),
                               tracebacks=log_path.read_text().count("Traceback"))
                    _purge(broker)
                if relay is not None:
                    _stop(relay)
                _stop(server)
                results.append(row)
                log(f"round {round_no} {row['server']}: {row['acks_per_s']} acks/s, p50 {row['p50_ms']} ms, "
                    f"p99 {row['p99_ms']} ms, non-200 {row['non200']}, socket errors {row['sock_err']}"
                    + (f", stored {row['stored']} / acked {row['acked']}, enqueued once: {row['enqueued_once']}"
                       if who == "ours" else "") + f", cpu ms/ack {row['cpu_per_ack']}, cpu busy {load['cpu_busy_pct']}%, load1 {load['load1_end']}")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; cleaning up")
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for handle in handles:
            handle.close()
        emulator.__exit__(None, None, None)
        _purge(broker)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM bots_updatehandoff WHERE bot_id = %s", [bot.id])
            cursor.execute("DELETE FROM bots_telegramupdate WHERE bot_id = %s", [bot.id])
        company.delete()
        lua.unlink(missing_ok=True)

    if not results:
        return 1
    rows = []
    for r in results:
        check = ""
        if r["who"] == "ours":
            check = (f"{'yes' if r['stored_ok'] else 'NO'} ({r['stored']} rows / {r['acked']} acks); "
                     f"enqueued once: {'yes' if r['enqueued_once'] else 'NO'} ({r['queued']} msgs"
                     + ("" if r["enqueued_once"] else f"; {r['queued_missing']} rows never enqueued, "
                        f"{r['queued_twice']} enqueued twice, {r['queued_foreign']} of other rows") + ")")
        c = r["cpu_per_ack"]
        cpu_text = (f"{sum(c.values()):.3f}" if r["who"] == "ptb" else
                    f"{sum(c.values()):.3f} (web {c['server']:.3f} + relay {c['relay']:.3f} + db {c['db']:.3f})")
        rows.append([r["round"], r["server"], r["acks_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"],
                     r["non200"], r["sock_err"], check or "n/a (no storage)", cpu_text, r["cpu_busy_pct"],
                     f"{r['load1_start']}->{r['load1_end']}"])
    text = table(["round", "server", "acks/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "non-200", "sock err",
                  "stored once = acked? enqueued once?", "CPU ms per ack", "CPU busy %", "load1"], rows)

    def mean(who: str, key: str) -> float:
        values = [r[key] for r in results if r["who"] == who]
        return sum(values) / len(values)

    ptb_mean = mean("ptb", "acks_per_s")
    lines = []
    for label, *_ in ours_specs:
        mine = [r for r in results if r["server"] == f"ours `{label}`"]
        ratio = sum(r["acks_per_s"] for r in mine) / len(mine) / ptb_mean
        worst_p99 = max(r["p99_ms"] for r in mine)
        cpu = sum(sum(r["cpu_per_ack"].values()) for r in mine) / len(mine)
        lines.append(f"- ours `{label}` / PTB (mean acks/s over the rounds): **{ratio:.2f}x**; worst p99 {worst_p99} ms; "
                     f"CPU {cpu:.2f} ms per ack. Target >= 1.0x and p99 <= 20 ms: "
                     f"{'met' if ratio >= 1.0 and worst_p99 <= 20 else 'NOT met'}.")
    ptb_cpu = sum(sum(r["cpu_per_ack"].values()) for r in results if r["who"] == "ptb") / len(
        [r for r in results if r["who"] == "ptb"])
    failing = sorted({r["server"] for r in results if r["who"] == "ours" and not (r["stored_ok"] and r["enqueued_once"])})
    verdict = ("\n".join(lines) + f"\n- PTB: {ptb_mean:.0f} acks/s mean, CPU {ptb_cpu:.2f} ms per ack.\n"
               "- Every acknowledged update of ours stored once and enqueued once: "
               + (f"NO for {', '.join(failing)} (see the table); yes for the others." if failing else "yes, in every run."))
    print()
    print(text)
    print(verdict)
    if not args.no_docs and not interrupted:
        others = "; ".join(f"round {r['round']} {r['who']}: {r['other']}" for r in results)
        body = ("## Webhook against python-telegram-bot (`bench/webhook_vs_ptb.py`)\n\n" + _common.machine_lines(info)
                + f"Other load at start: {other_at_start}. During each run: {others}.\n\n"
                f"Code under test: {code_note}. {args.label + ' ' if args.label else ''}"
                "Ours: `saas_bot.wsgi:application` under the server named in the table (`gunicorn:CLASS:WORKERS[:THREADS]` "
                "with saas_bot/gunicorn_conf.py, or `granian:WORKERS`), after `@` the settings changed for that "
                f"row (default: webhook fast path and inbox relay on), `REDIS_URL={REDIS_URL}`; with the relay on, "
                "`manage.py inbox_relay` runs beside it (in `make run` the answers worker runs it); "
                "no Celery worker (messages counted in Redis, then purged). PTB: python-telegram-bot "
                "`Application.run_webhook` (tornado), one no-op `TypeHandler`, in-memory queue, no persistence. "
                f"Generator for both: wrk 4.1 (Debian package), `-t{args.threads} -c{args.connections} "
                f"-d{int(args.duration)}s`, {args.warmup:.0f} s warm-up, the same Lua script (unique update_ids, "
                "right secret header), same path; the servers run alternately, one at a time, on the same 2 "
                "cores as the generator and PostgreSQL. \"stored once = acked\": rows of the run's update_id "
                "range against the 200s (rows may exceed the 200s by the requests in flight when wrk stopped, "
                "never fall short). \"enqueued once\": the update pks named by the task messages in Redis equal "
                "the stored rows' pks (warm-up + run), none twice. \"CPU ms per ack\": CPU time used during the "
                "run by the server's processes (master and workers), the relay and this database's PostgreSQL "
                "backends opened since the server started, per acknowledged update; unlike acks/s it hardly "
                "depends on what else runs on the machine.\n\n" + text + "\n" + verdict + "\n")
        _common.update_docs("webhook-ptb", body)
        log(f"updated {_common.DOCS}")
    return 0 if not interrupted else 130


if __name__ == "__main__":
    sys.exit(main())
