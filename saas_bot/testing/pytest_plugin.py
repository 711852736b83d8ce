"""Shared pytest fixtures (loaded with ``-p saas_bot.testing.pytest_plugin`` from pyproject.toml).

The far ends are real local HTTP servers: the Telegram Bot API emulator and the
OpenAI-compatible stub. The database is real PostgreSQL with pgvector.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
DEMO_DIR = BASE_DIR / "saas_bot" / "demo"
SHARED_DATA = BASE_DIR.parent / "shared" / "data"
TEST_TOKEN = "7100000001:AAFtestTokenForTheEmulatorOnly0000001"
TEST_BOT_ID = 7100000001
TEST_USERNAME = "acme_test_bot"

_update_ids = itertools.count(800000001)
_message_ids = itertools.count(5001)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a skip with the reason when this clone has nothing beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (tests on shared data run where ../shared exists, as in CI)")
    return SHARED_DATA


@pytest.fixture
def telegram(settings):
    """A running Telegram Bot API emulator; settings point the client at it."""
    from saas_bot.testing.telegram_emulator import TelegramEmulator

    with TelegramEmulator() as emulator:
        settings.TELEGRAM_API_BASE_URL = emulator.base_url
        yield emulator


@pytest.fixture
def llm(settings):
    """A running OpenAI-compatible stub; settings switch answers to ChatOpenAI against it."""
    from saas_bot.testing.llm_stub import OpenAIStub

    with OpenAIStub() as stub:
        settings.OPENAI_API_KEY = "test-key"
        settings.OPENAI_BASE_URL = stub.base_url
        settings.LLM_MODEL = "gpt-4o-mini"
        yield stub


@pytest.fixture
def make_company(db):
    """make_company(slug, **plan_limits) -> a company subscribed to its own plan."""
    from billing.models import Plan
    from billing.services import subscription_start
    from tenants.services import company_create

    def make(slug: str = "acme", **limits: Any):
        plan = Plan.objects.create(code=f"plan-{slug}", name=f"Plan {slug}", **limits)
        company = company_create(name=slug.title(), slug=slug)
        subscription_start(company=company, plan=plan)
        return company

    return make


@pytest.fixture
def company(make_company):
    """Company "acme" on a plan with 1,000 messages per period."""
    return make_company("acme", max_messages_per_period=1000)


@pytest.fixture
def owner_client(client, company):
    """Django's test client logged in as the owner (owner@acme.test) of "acme", a company admin."""
    from django.contrib.auth.models import User

    from tenants.models import Membership

    user = User.objects.create_user("owner@acme.test", "owner@acme.test", "pw-Xy7!long", is_staff=True)
    Membership.objects.create(user=user, company=company, role=Membership.Role.OWNER)
    client.force_login(user)
    return client


@pytest.fixture
def bot(company, telegram):
    """Bot @acme_test_bot of "acme", connected through the emulator (getMe, token encrypted)."""
    from bots.lifecycle import bot_connect

    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username=TEST_USERNAME, first_name="Acme Test")
    return bot_connect(company=company, token=TEST_TOKEN, register_webhook=False)


def ingest_folder(company, folder: Path):
    """Ingest every file of ``folder`` for ``company`` synchronously; returns the documents."""
    from rag.services import document_add, documents_ingest

    docs = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            document, created = document_add(company=company, file_name=path.name, data=path.read_bytes(),
                                             schedule=False)
            docs.append(document)
    return documents_ingest(company=company, documents=docs)


@pytest.fixture
def demo_kb(company):
    """The demo knowledge base (saas_bot/demo/kb) ingested for "acme"."""
    return ingest_folder(company, DEMO_DIR / "kb")


def make_update(text: str | None = None, *, chat_id: int = 5550001, chat_type: str = "private",
                user_id: int = 5550001, update_id: int | None = None, entities: list[dict] | None = None,
                reply_to_bot: bool = False, kind: str = "message", extra: dict | None = None) -> dict:
    """A Telegram Update dict shaped like the Bot API's (private or group message)."""
    chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
    if chat_type == "private":
        chat.update(first_name="Alice", username="alice")
    else:
        chat.update(title="Acme Customers")
    message: dict[str, Any] = {
        "message_id": next(_message_ids), "date": 1767225600, "chat": chat,
        "from": {"id": user_id, "is_bot": False, "first_name": "Alice", "language_code": "en"},
    }
    if text is not None:
        message["text"] = text
    if entities:
        message["entities"] = entities
    if reply_to_bot:
        message["reply_to_message"] = {
            "message_id": 1, "date": 1767225500, "chat": chat, "text": "earlier answer",
            "from": {"id": TEST_BOT_ID, "is_bot": True, "first_name": "Acme Test", "username": TEST_USERNAME}}
    if extra:
        message.update(extra)
    return {"update_id": update_id or next(_update_ids), kind: message}


@pytest.fixture
def redis_url() -> str:
    """A Redis URL for integration tests; skip without Redis, except under CI=true (then fail)."""
    import redis

    url = os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {url} is required under CI=true: {exc}")
        pytest.skip(f"no Redis at {url}: {exc}")
    return url


def record_pending_usage() -> int:
    """Do what the billing worker does after commit: move every outbox row into the ledger.

    Tests inside a rolled-back transaction never reach on-commit hooks, so they call this before
    looking at the ledger. Returns how many events were recorded.
    """
    from billing.ledger import usage_record
    from billing.models import PendingUsage

    return sum(usage_record(idempotency_key=key) for key in
               list(PendingUsage.objects.values_list("idempotency_key", flat=True)))


def wait_until(predicate, timeout: float = 120.0, interval: float = 0.2):
    """Poll ``predicate()`` until it returns something truthy (returned); TimeoutError after ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def switch_broker(url: str) -> None:
    """Point this process's Celery app at ``url`` with fresh connection pools (tests only)."""
    from kombu import pools

    from saas_bot.celery import app

    app.conf.broker_url = url
    pools.reset()  # kombu keeps global producer pools per connection; drop them all
    app._pool = None
    app.amqp._producer_pool = None


def processes_stop(processes: list, *, grace_seconds: float = 20) -> None:
    """Stop the child processes (``subprocess.Popen``) a fixture started, in order: SIGTERM to each one still
    running (a Celery worker finishes its task, gunicorn its requests), SIGKILL if it has not exited within
    ``grace_seconds``."""
    import subprocess

    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                process.kill()


class PrivateRedis:
    """A redis-server of our own on a free port, which a test may stop and start again."""

    def __init__(self, binary: str) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.binary = binary
        self.process = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import subprocess
        import time

        import redis

        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no"], stdout=subprocess.DEVNULL)
        for _ in range(50):
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis():
    """A private Redis (so a test can stop the broker); skip without redis-server unless CI=true."""
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required under CI=true")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def celery_workers(settings):
    """start(broker_url, pool="solo", concurrency=None, queues=None, **env) -> a real Celery worker process
    on the test database.

    ``pool``/``concurrency``/``queues`` are Celery's ``-P``/``-c``/``-Q`` (default: the solo pool consuming
    every queue of settings.CELERY_TASK_QUEUES). The test process sends to the same broker; everything is
    stopped and restored afterwards.
    """
    import subprocess
    import sys

    from django.db import connection

    from saas_bot.celery import app

    old = (app.conf.broker_url, app.conf.task_always_eager)
    processes: list[subprocess.Popen] = []

    def start(broker_url: str, pool: str = "solo", concurrency: int | None = None, queues: str | None = None,
              **extra_env: str) -> subprocess.Popen:
        env = dict(os.environ, REDIS_URL=broker_url, CELERY_BROKER_URL=broker_url,
                   TELEGRAM_API_BASE_URL=settings.TELEGRAM_API_BASE_URL,
                   DATABASE_NAME=connection.settings_dict["NAME"], LOG_LEVEL="WARNING", **extra_env)
        options = (["-c", str(concurrency)] if concurrency else []) + (["-Q", queues] if queues else [])
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "saas_bot", "worker", "-P", pool, *options, "--without-gossip",
             "--without-mingle", "--loglevel=WARNING", "-n", f"test{len(processes)}-{os.getpid()}@%h"],
            cwd=BASE_DIR, env=env)
        processes.append(process)
        app.conf.task_always_eager = False
        settings.CELERY_TASK_ALWAYS_EAGER = False
        switch_broker(broker_url)
        return process

    yield start
    app.conf.task_always_eager = old[1]
    switch_broker(old[0])
    processes_stop(processes)


@pytest.fixture
def web_servers(settings):
    """start(broker_url, **env) -> base URL of a real web process (gunicorn, one gthread worker) on the test
    database, as ``make run`` serves it; each is stopped afterwards.

    It loads no embedding model at start (``EMBEDDING_WARM_UP=false``): it takes webhooks.
    """
    import socket
    import subprocess
    import sys
    import time

    import httpx
    from django.db import connection

    processes: list[subprocess.Popen] = []

    def start(broker_url: str, **extra_env: str) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, REDIS_URL=broker_url, CELERY_BROKER_URL=broker_url,
                   TELEGRAM_API_BASE_URL=settings.TELEGRAM_API_BASE_URL, TELEGRAM_RATE_REDIS_URL=broker_url,
                   DATABASE_NAME=connection.settings_dict["NAME"], LOG_LEVEL="WARNING", EMBEDDING_WARM_UP="false")
        env.update(extra_env)
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "saas_bot.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--threads", "4", "--worker-class", "gthread", "--log-level", "warning"],
            cwd=BASE_DIR, env=env)
        processes.append(process)
        base_url = f"http://127.0.0.1:{port}"
        # Start-up takes seconds on a quiet machine; minutes at load 20 on 2 cores (measured while writing this).
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with code {process.returncode}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=10).status_code == 200:
                    return base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer /healthz with 200 within 240 s")

    yield start
    processes_stop(processes)


@pytest.fixture(autouse=True)
def _fresh_webhook_cache():
    """Each test starts with no cached webhook lookups (ids and secrets differ between tests)."""
    from django.apps import apps

    if not apps.ready:  # a run without Django (-p no:django) has no webhook
        yield
        return
    from bots.ratelimit import local_cells_clear
    from bots.views import webhook_cache_clear

    webhook_cache_clear()
    local_cells_clear()  # flood-limit slots of an earlier test's chats do not delay this one
    yield
    webhook_cache_clear()


# Browser tests (issue 5): Debian's chromium driven by Playwright's Python package. `playwright install`
# (a browser download) is never used; `make test` under CI=true installs chromium with apt-get.
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS_DIR = BASE_DIR / "var" / "screenshots"
DOCS_IMAGES_DIR = BASE_DIR / "docs" / "images"


class BrowserSession:
    """A Playwright ``page`` on the live server; ``shot(name)`` saves a screenshot of the current step.

    Screenshots go to ``var/screenshots/<test>/<NN>-<name>.png`` (test artifacts) and, with
    ``SCREENSHOTS_TO_DOCS=1``, also to ``docs/images/admin-<name>.png`` (the docs' pictures).
    """

    def __init__(self, page, base_url: str, test_name: str, to_docs: bool) -> None:
        self.page = page
        self.base_url = base_url
        self.folder = SCREENSHOTS_DIR / test_name
        self.to_docs = to_docs
        self.steps = 0

    def goto(self, path: str):
        return self.page.goto(self.base_url + path)

    def login(self, username: str, password: str) -> None:
        self.goto("/admin/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("input[type=submit]")
        self.page.wait_for_url(lambda url: "/admin/login/" not in url)

    def shot(self, name: str) -> Path:
        self.steps += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.steps:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if self.to_docs:
            DOCS_IMAGES_DIR.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(DOCS_IMAGES_DIR / f"admin-{name}.png"), full_page=True)
        return path


@pytest.fixture
def browser(live_server, request, monkeypatch):
    """A BrowserSession in headless Chromium (``/usr/bin/chromium``) on pytest-django's ``live_server``.

    Skips with the reason when Chromium or Playwright is absent, except under CI=true (then fails: CI
    installs them). The live server runs in a thread of this process, so eager tasks (ingestion, the
    usage ledger) run inside it and ``settings`` changes (emulator URLs) reach it.

    Request it last: Playwright's sync API runs an event loop in the test's thread, so fixtures that
    call ``asyncio.run`` (``bot``: python-telegram-bot's getMe) must be set up before it.
    """
    import shutil

    ci = os.environ.get("CI") == "true"
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent (Debian's chromium: apt-get install -y chromium; make test does it under CI=true)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            reason = f"Playwright's Python package is not installed ({exc}); run make install"
    if reason:
        if ci:
            pytest.fail(f"browser tests must run under CI=true: {reason}")
        pytest.skip(reason)
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    shutil.rmtree(SCREENSHOTS_DIR / request.node.name, ignore_errors=True)
    with sync_playwright() as playwright:
        # --no-sandbox: CI and this machine run as root, where Chromium's sandbox cannot start.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        session = BrowserSession(page, live_server.url, request.node.name,
                                 to_docs=os.environ.get("SCREENSHOTS_TO_DOCS") == "1")
        try:
            yield session
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                try:  # the page as it was when the test failed, next to the steps
                    session.to_docs = False
                    session.shot("failure")
                except Exception:
                    pass
            # While Playwright's loop runs, Django keeps this thread's connections per asyncio context
            # (asgiref Local): the test's ORM calls opened their own; close it before the database is dropped.
            from django.db import connections

            connections.close_all()
            context.close()
            chromium.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (``item.rep_call``) so fixtures can tell a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
