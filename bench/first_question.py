"""The first question after the web app starts, with and without the embedding warm-up (issue 16).

    .venv/bin/python bench/first_question.py [--runs 2] [--no-docs]

In a private database on the same server (dropped at the end): a company with two documents of the demo
help centre, a bot (through the Telegram emulator) and an API key. Then, alternating the two settings
``--runs`` times each: start gunicorn as ``make run`` does (``--config saas_bot/gunicorn_conf.py``, 1
worker, 4 threads) with ``EMBEDDING_WARM_UP`` false or true; measure the seconds from the process start
until ``/healthz`` answers 200, then the first and the second ``POST /api/v1/bots/<id>/ask`` (wall time
of the HTTP request, extractive answers, no broker); stop gunicorn. "ready + first" is what a person who
starts the server and asks at once waits.

Then (issue 15) a platform admin logs in and asks one question in the admin playground
(``/admin/playground/<bot>/``), and the gunicorn worker's memory is read from ``/proc/<pid>/status``
(VmRSS, VmHWM) and ``/proc/<pid>/smaps_rollup`` (Pss), and its mapped libraries are checked for torch
(``libtorch``): the web process embeds questions with onnxruntime (rag/onnx_minilm.py).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (REPO, django_setup, drop_private_database, log, machine_info, machine_lines,  # noqa: E402
                     other_load, percentile, table, update_docs, use_private_database, worktree_note)

DB_NAME = "saas_bot_bench_first_question"
PORT = 8165  # --port
QUESTIONS = ("how do I remove a user who left but keep their files?", "what is the API rate limit?")


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen, float]:
    import httpx

    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "saas_bot.wsgi:application", "--config", "saas_bot/gunicorn_conf.py",
         "--bind", f"127.0.0.1:{PORT}", "--workers", "1", "--threads", "4", "--worker-class", "gthread",
         "--timeout", "120"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.monotonic() - started < 180:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=2).status_code == 200:
                return proc, time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gunicorn did not answer /healthz in 180 s")


def _worker_pid(master: int) -> int:
    """The (single) gunicorn worker's pid: a child of the master."""
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("no gunicorn worker")


def _memory(pid: int) -> dict[str, float]:
    """VmRSS / VmHWM / Pss of ``pid`` in MB, and whether torch's library is mapped into it."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            out["Pss"] = int(line.split()[1]) / 1024
    out["torch"] = float("libtorch" in Path(f"/proc/{pid}/maps").read_text())
    return out


def _playground(base: str, bot_id: int, username: str, password: str, question: str) -> float:
    """Log in to the admin and ask ``question`` in the bot's playground; seconds of the POST."""
    import re

    import httpx

    def token(client: httpx.Client, url: str) -> str:
        page = client.get(url)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if not match:
            raise RuntimeError(f"no CSRF token at {url} ({page.status_code})")
        return match.group(1)

    with httpx.Client(base_url=base, timeout=120, follow_redirects=False) as client:
        login = client.post("/admin/login/", data={"username": username, "password": password,
                                                   "csrfmiddlewaretoken": token(client, "/admin/login/"),
                                                   "next": "/admin/"}, headers={"Referer": base + "/admin/login/"})
        if login.status_code != 302:
            raise RuntimeError(f"admin login answered {login.status_code}")
        url = f"/admin/playground/{bot_id}/"
        csrf = token(client, url)
        t0 = time.monotonic()
        response = client.post(url, data={"question": question, "csrfmiddlewaretoken": csrf},
                               headers={"Referer": base + url})
        seconds = time.monotonic() - t0
        if response.status_code not in (200, 302):
            raise RuntimeError(f"playground answered {response.status_code}")
        return seconds


def main() -> int:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args()
    PORT = args.port

    django_setup()
    info = machine_info()
    load_note = other_load()
    use_private_database(DB_NAME)
    import httpx
    from django.core.management import call_command

    from billing.models import Plan
    from billing.services import subscription_start
    from bots.demo import DEMO_DIR
    from bots.lifecycle import bot_connect
    from saas_bot.testing.telegram_emulator import TelegramEmulator
    from saas_bot.api.models import ApiKey
    from rag.services import document_add, documents_ingest
    from tenants.services import company_create

    emulator = TelegramEmulator().start()
    results: dict[str, list[tuple[float, float, float]]] = {"false": [], "true": []}
    memory: dict[str, list[dict[str, float]]] = {"false": [], "true": []}
    try:
        log("migrating the private database")
        call_command("migrate", verbosity=0)
        company = company_create(name="Bench first question", slug="bench-first")
        subscription_start(company=company, plan=Plan.objects.create(code="bench-first", name="Bench"))
        token = "7100000077:AAFbenchFirstQuestionToken000000000077"
        emulator.add_bot(token, username="bench_first_bot")
        from django.test.utils import override_settings

        with override_settings(TELEGRAM_API_BASE_URL=emulator.base_url):
            bot = bot_connect(company=company, token=token, register_webhook=False)
        docs = [document_add(company=company, file_name=name, data=(DEMO_DIR / "kb" / name).read_bytes(),
                             schedule=False)[0] for name in ("api-and-webhooks.pdf", "team-admin-console.docx")]
        documents_ingest(company=company, documents=docs)
        _, key = ApiKey.objects.create_key(name="bench", company=company)
        from django.contrib.auth import get_user_model

        admin_password = "bench-first-" + os.urandom(8).hex()
        get_user_model().objects.create_superuser("bench-first-admin", "bench@example.com", admin_password)
        env = dict(os.environ, DATABASE_NAME=DB_NAME, TELEGRAM_API_BASE_URL=emulator.base_url,
                   REDIS_URL="", CELERY_BROKER_URL="")
        headers = {"Authorization": f"Api-Key {key}"}
        for run in range(args.runs):
            for warm in ("false", "true"):
                log(f"run {run + 1}/{args.runs}: EMBEDDING_WARM_UP={warm}")
                proc, ready = _serve(dict(env, EMBEDDING_WARM_UP=warm))
                try:
                    asks = []
                    for question in QUESTIONS:
                        t0 = time.monotonic()
                        response = httpx.post(f"http://127.0.0.1:{PORT}/api/v1/bots/{bot.id}/ask",
                                              json={"question": question}, headers=headers, timeout=120)
                        asks.append(time.monotonic() - t0)
                        if response.status_code != 200:
                            raise RuntimeError(f"ask answered {response.status_code}: {response.text[:200]}")
                    results[warm].append((ready, asks[0], asks[1]))
                    playground = _playground(f"http://127.0.0.1:{PORT}", bot.id, "bench-first-admin",
                                             admin_password, "which file formats can I upload?")
                    mem = _memory(_worker_pid(proc.pid))
                    mem["playground"] = playground
                    memory[warm].append(mem)
                    log(f"  ready {ready:.1f} s, first ask {asks[0]:.2f} s, second {asks[1]:.2f} s, playground "
                        f"{playground:.2f} s; worker VmRSS {mem['VmRSS']:.0f} MB (peak {mem['VmHWM']:.0f}, "
                        f"Pss {mem['Pss']:.0f}), torch mapped: {bool(mem['torch'])}")
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=60)
    finally:
        emulator.stop()
        drop_private_database(DB_NAME)

    rows = []
    for warm, label in (("false", "off (model loads on the first question)"), ("true", "on (default)")):
        values = results[warm]
        ready = [v[0] for v in values]
        first = [v[1] for v in values]
        second = [v[2] for v in values]
        rows.append([label, len(values), f"{percentile(ready, 50):.1f}", f"{percentile(first, 50):.2f}",
                     f"{percentile(second, 50):.2f}", f"{percentile([a + b for a, b, _ in values], 50):.1f}"])
    mem_rows = []
    for warm, label in (("false", "off"), ("true", "on (default)")):
        values = memory[warm]
        if values:
            mem_rows.append([label, len(values), f"{percentile([v['playground'] for v in values], 50):.2f}",
                             f"{percentile([v['VmRSS'] for v in values], 50):.0f}",
                             f"{percentile([v['VmHWM'] for v in values], 50):.0f}",
                             f"{percentile([v['Pss'] for v in values], 50):.0f}",
                             "yes" if any(v["torch"] for v in values) else "no"])
    mem_text = ("\nAfter the two API asks and one admin playground question, the gunicorn worker (medians, MB; "
                "target VmRSS <= 200 MB):\n\n"
                + table(["EMBEDDING_WARM_UP", "runs", "playground ask s", "VmRSS MB", "VmHWM (peak) MB", "Pss MB",
                         "libtorch mapped"], mem_rows, align="lrrrrrl"))
    body = (f"## First question after start (`bench/first_question.py`)\n\n{machine_lines(info)}"
            f"Other load at start: {load_note}. The 2 cores are shared with other engineers' work.\n\nCode under test: {worktree_note()}.\n\n"
            "gunicorn as `make run` starts it (`saas_bot/gunicorn_conf.py`, 1 worker, 4 threads, no broker), "
            "two documents, extractive answers; medians of the runs, seconds. \"ready\": process start until "
            "`/healthz` answers; \"first ask\" / \"second ask\": `POST /api/v1/bots/<id>/ask` wall time.\n\n"
            + table(["EMBEDDING_WARM_UP", "runs", "ready s", "first ask s", "second ask s", "ready + first s"], rows,
                    align="lrrrrr") + mem_text)
    print(body)
    if not args.no_docs:
        update_docs("first-question", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
