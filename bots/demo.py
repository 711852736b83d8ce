"""The end-to-end demo: a company's bot answering from its documents, over real HTTP.

Steps (each printed): migrate; create the demo's own company "acme-demo" on plan "starter" (its
knowledge base is replaced by the KB folder on each run, so it is never a company you work in); start the
Telegram Bot API emulator; connect the bot (getMe, setWebhook to our URL);
ingest the knowledge base; start the web app (gunicorn) on 127.0.0.1; replay
every update in the updates folder to the real webhook URL with the secret
header, one at a time, waiting until the inbox has processed it; print each
question and what the emulator received; stop everything. At the end the demo bot is
disabled (``deleteWebhook``, status "disabled"), so nothing is left pointing at the
emulator that is gone: ``telegram_webhooks --check`` skips it and the admin shows it as
a disabled bot named "... (demo)". The next run enables it again.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test.utils import override_settings

from bots.models import Bot, TelegramUpdate
from saas_bot.testing.telegram_emulator import TelegramEmulator

DEMO_DIR = Path(__file__).resolve().parent.parent / "saas_bot" / "demo"
DEMO_TOKEN = "7000000001:AAHdemoTokenForTheLocalEmulatorOnly12"
DEMO_BOT_ID = 7000000001
# The shared sample updates (../shared/data/telegram/updates) address @acme_support_bot, id 7000000001.
DEMO_USERNAME = "acme_support_bot"
# The bot's name in the admin says it is the demo's (it talks to the local emulator only).
DEMO_BOT_NAME = "Acme Cloud Support (demo)"
# The demo's own company: each run replaces its documents with the KB folder's, so it must not be a company
# anyone works in (the README's first day uses "acme"; a demo run once deleted its uploads).
DEMO_COMPANY = "acme-demo"


def _port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now. SO_REUSEADDR, as gunicorn and the emulator set
    it: a port whose last connections are in TIME_WAIT (a demo that ended a minute ago) is free; one with a
    listening socket is not (Linux refuses that bind either way)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _describe(update: dict) -> str:
    for kind in ("message", "edited_message", "channel_post", "edited_channel_post"):
        if kind in update:
            msg = update[kind]
            where = msg.get("chat", {}).get("type", "?")
            if "text" in msg:
                return f"[{kind}, {where}] {msg['text']}"
            other = next((k for k in ("photo", "voice", "document", "sticker", "video", "new_chat_members",
                                      "migrate_to_chat_id") if k in msg), "other")
            return f"[{kind}, {where}] <{other}>"
    kind = next((k for k in update if k != "update_id"), "unknown")
    return f"[{kind}]"


def _chat_id(update: dict) -> int | None:
    for kind in ("message", "edited_message", "channel_post", "my_chat_member", "callback_query"):
        if kind in update:
            body = update[kind]
            chat = body.get("chat") or (body.get("message") or {}).get("chat") or {}
            return chat.get("id")
    return None


def run_demo(*, kb: Path, updates: Path, out=print, timeout: float = 120.0, port: int = 0,
             telegram_port: int = 0) -> int:
    """Run the demo; returns the process exit code (0 when every file was indexed and every update file was
    sent, accepted and processed; 1 otherwise, after replaying the updates against the files that were indexed).
    Whatever happens after the demo bot is connected (a failure, Ctrl-C), it is disabled before the
    emulator stops.

    Args:
        port: the web app's port on 127.0.0.1 (0 = a free one).
        telegram_port: the Telegram emulator's port on 127.0.0.1 (0 = a free one).

    Raises:
        FileNotFoundError: ``kb`` or ``updates`` is not a folder, or ``kb`` holds no file.
        ValueError: a port given is in use or not in 1..65535.
    """
    if not kb.is_dir() or not updates.is_dir():
        raise FileNotFoundError(f"KB={kb} and UPDATES={updates} must be folders")
    for name, value in (("PORT", port), ("TELEGRAM_PORT", telegram_port)):
        if value and not 0 < value < 65536:
            raise ValueError(f"{name}={value} is not a port (1-65535)")
        if value and not _port_free(value):
            raise ValueError(f"{name}={value}: 127.0.0.1:{value} is in use; pick another port or leave it unset "
                             f"for a free one")
    if port and port == telegram_port:
        raise ValueError("PORT and TELEGRAM_PORT must differ")
    if not any(p.is_file() for p in kb.rglob("*")):
        # Checked before anything changes: the demo replaces the knowledge base with the folder's files.
        raise FileNotFoundError(f"KB={kb} has no files: nothing would be indexed (the demo's knowledge base "
                                "was left as it was)")
    update_files = sorted(p for p in updates.glob("*.json"))
    out("==> 1/6 Database: migrating (embedded PostgreSQL 16 + pgvector unless DATABASE_URL is set)")
    call_command("migrate", verbosity=0)
    out(f"==> 2/6 Company '{DEMO_COMPANY}' (the demo's own) on plan 'starter'")
    call_command("company_setup", slug=DEMO_COMPANY, name="Acme Cloud Storage (demo)", plan="starter")
    emulator = TelegramEmulator(port=telegram_port).start()
    bot = None
    web = None
    failures = rejected = 0
    ingest_error = ""
    public = f"http://127.0.0.1:{port or _free_port()}"
    try:
        bot, webhook_url = _connect_demo_bot(emulator, public, out)
        company = bot.company
        _reset_demo_state(bot, out)
        out(f"==> 4/6 Ingesting {kb}")
        _sync_knowledge_base(company, kb, out)
        try:
            call_command("ingest", str(kb), company=DEMO_COMPANY)
        except CommandError as exc:
            # Files that could be read are indexed; the replay still shows what the bot answers from them.
            ingest_error = str(exc)
            out(f"    {exc} The replay goes on with the files that were indexed.")
        out(f"==> 5/6 Starting the web app (gunicorn) on {public}")
        env = dict(os.environ, TELEGRAM_API_BASE_URL=emulator.base_url, PUBLIC_BASE_URL=public)
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "saas_bot.wsgi:application", "--bind", public.removeprefix("http://"),
             "--config", str(Path(settings.BASE_DIR) / "saas_bot" / "gunicorn_conf.py"),
             "--workers", "1", "--threads", "4", "--worker-class", "gthread", "--log-level", "warning",
             "--timeout", "120"],
            env=env, cwd=settings.BASE_DIR)
        _wait_http(public, web)
        replay_failures, rejected = _replay(bot, webhook_url, emulator, update_files, updates, timeout, out)
        failures += replay_failures
    finally:
        if web is not None:
            web.send_signal(signal.SIGTERM)
            try:
                web.wait(timeout=15)
            except subprocess.TimeoutExpired:
                web.kill()
        if bot is not None:
            # Also after a failure (ingestion, the web app not starting, Ctrl-C): nothing is left enabled
            # against an emulator that is about to be gone.
            _disable_demo_bot(bot, emulator, out)
        emulator.stop()
    answered = TelegramUpdate.objects.filter(bot=bot, status=TelegramUpdate.Status.DONE).count()
    ignored = TelegramUpdate.objects.filter(bot=bot, status=TelegramUpdate.Status.IGNORED).count()
    out(f"\nDone: {len(update_files)} update files: {answered} handled with a reply or action, {ignored} ignored, "
        f"{failures} failed, {rejected} not sent or refused by the webhook (not JSON, or not an update). The inbox, "
        "messages and usage stay in the database (var/).")
    if ingest_error:
        out(f"Some files of {kb} were not indexed: {ingest_error}")
    return 1 if failures or rejected or ingest_error else 0


def _connect_demo_bot(emulator: TelegramEmulator, public: str, out) -> tuple[Bot, str]:
    """Connect (or re-enable) the demo bot against the emulator and register its webhook under
    ``public`` (the web app's base URL, ``http://127.0.0.1:PORT``); returns (bot, webhook URL)."""
    emulator.add_bot(DEMO_TOKEN, id=DEMO_BOT_ID, username=DEMO_USERNAME, first_name="Acme Cloud Support")
    out(f"==> 3/6 Telegram Bot API emulator on {emulator.base_url}; connecting @{DEMO_USERNAME}")
    with override_settings(TELEGRAM_API_BASE_URL=emulator.base_url, PUBLIC_BASE_URL=public):
        from bots.lifecycle import bot_connect, bot_refresh_identity, bot_replace_token
        from bots.telegram_setup import bot_register_webhook
        from tenants.models import Company

        company = Company.objects.get(slug=DEMO_COMPANY)
        elsewhere = Bot.objects.filter(telegram_id=DEMO_BOT_ID).exclude(company=company).select_related("company")
        for old in elsewhere:
            if old.name != DEMO_BOT_NAME:
                raise ValueError(f"the demo's bot @{DEMO_USERNAME} is connected to company '{old.company.slug}' as "
                                 f"'{old.name}'; disconnect it there first")
            # Earlier demos ran in "acme": their bot (and its demo conversations) move out of the way.
            out(f"    removing the demo bot of an earlier demo from company '{old.company.slug}'")
            old.delete()
        bot = Bot.objects.filter(telegram_id=DEMO_BOT_ID, company=company).first()
        if bot is None:
            bot = bot_connect(company=company, token=DEMO_TOKEN, name=DEMO_BOT_NAME, register_webhook=False)
        elif bot.status != Bot.Status.ACTIVE:
            bot = bot_replace_token(bot=bot, token=DEMO_TOKEN)  # disabled by the last run (or revoked): active again
        else:
            bot_refresh_identity(bot=bot)
        if bot.name != DEMO_BOT_NAME:
            Bot.objects.filter(id=bot.id).update(name=DEMO_BOT_NAME)
        webhook_url = bot_register_webhook(bot=bot)
    out(f"    webhook registered: {webhook_url}")
    return bot, webhook_url


def _replay(bot: Bot, webhook_url: str, emulator: TelegramEmulator, update_files: list[Path], updates: Path,
            timeout: float, out) -> tuple[int, int]:
    """Post each update file to the webhook and print the bot's replies; returns (updates that ended
    failed, files not sent or refused by the webhook: not JSON, or a non-200 answer)."""
    failures = rejected = 0
    out(f"==> 6/6 Replaying {len(update_files)} updates from {updates}")
    token_secret = {"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret}
    with httpx.Client(timeout=10) as client:
        for number, path in enumerate(update_files, start=1):
            try:
                payload = json.loads(path.read_text())
            except ValueError as exc:
                out(f"\n[{number}/{len(update_files)}] {path.name}: not JSON ({exc}); skipped")
                rejected += 1
                continue
            before = len(emulator.sent_messages())
            response = client.post(webhook_url, json=payload, headers=token_secret)
            out(f"\n[{number}/{len(update_files)}] {path.name}  -> webhook HTTP {response.status_code}")
            out(f"  user: {_describe(payload)}")
            if response.status_code != 200 or not isinstance(payload.get("update_id"), int):
                rejected += 1
                continue
            status = _wait_processed(bot.id, payload["update_id"], timeout)
            replies = emulator.sent_messages()[before:]
            if status == TelegramUpdate.Status.FAILED:
                failures += 1
                error = TelegramUpdate.objects.get(bot=bot, update_id=payload["update_id"]).error
                out(f"  FAILED: {error}")
            elif not replies:
                out(f"  bot: (no reply: {status})")
            for reply in replies:
                text = _visible(str(reply.get("text", "")), reply.get("parse_mode"))
                out("  bot: " + text.replace("\n", "\n       "))
    return failures, rejected


def _disable_demo_bot(bot: Bot, emulator: TelegramEmulator, out) -> None:
    """Disable the demo bot while the emulator still answers (``deleteWebhook``), so nothing is left
    registered against an emulator that is gone."""
    from bots.lifecycle import bot_set_status

    with override_settings(TELEGRAM_API_BASE_URL=emulator.base_url):
        bot_set_status(bot=bot, active=False)
    out(f"    @{DEMO_USERNAME} disabled (webhook removed): it only ever talked to the local emulator; "
        f"the next `make demo` enables it again")


def _reset_demo_state(bot: Bot, out) -> None:
    """Forget the demo bot's earlier inbox, chats and conversations, so a replay is answered again.

    Update ids are unique per bot: without this, a second demo would be (rightly) treated as
    Telegram redelivering updates already handled, and nothing would be answered.
    """
    from bots.models import Chat

    deleted = TelegramUpdate.objects.filter(bot=bot).count()
    TelegramUpdate.objects.filter(bot=bot).delete()
    Chat.objects.filter(bot=bot).delete()
    bot.conversations.all().delete()
    if deleted:
        out(f"    cleared {deleted} updates of an earlier demo run")


def _sync_knowledge_base(company, kb: Path, out) -> None:
    """Remove the company's documents whose content is not in ``kb`` (a demo with another KB folder
    replaces the knowledge base instead of adding to it)."""
    import hashlib

    from rag.models import Document
    from rag.services import document_delete

    wanted = {hashlib.sha256(p.read_bytes()).hexdigest() for p in kb.rglob("*") if p.is_file()}
    stale = Document.objects.for_company(company).exclude(checksum__in=wanted)
    names = list(stale.values_list("file_name", flat=True))
    for document_id in list(stale.values_list("id", flat=True)):
        document_delete(company=company, document_id=document_id)
    if names:
        out(f"    removed {len(names)} documents that are not in {kb}")


def _visible(text: str, parse_mode: str | None) -> str:
    """What the end user sees: HTML tags removed and entities decoded (for HTML parse mode)."""
    if (parse_mode or "").upper() != "HTML":
        return text
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _wait_http(base: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web app exited with code {process.returncode}")
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError("the web app did not start in time")


def _wait_processed(bot_id: int, update_id: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = TelegramUpdate.objects.filter(bot_id=bot_id, update_id=update_id).values("status").first()
        if row and row["status"] not in (TelegramUpdate.Status.PENDING, TelegramUpdate.Status.PROCESSING):
            return row["status"]
        time.sleep(0.1)
    return "timeout"
