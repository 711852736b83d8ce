"""Probe the product as an attacker and a careless client would; figures go to docs/testing.md.

    .venv/bin/python bench/hostile_probe.py [--examples 10000] [--webhook 10000] [--jobs 2] [--no-docs]

On a private database (migrated here), with the Telegram emulator, through Django's whole request stack
in-process (the test client: middleware, DRF, the database; no socket):

1. fuzz: Hypothesis bodies (``saas_bot/tests/hostile_inputs.py``: lone surrogates, NUL, formula starts,
   huge numbers, deep nesting, wrong types, hostile ids and headers) to the webhook and to every API
   operation of the live schema; counts 5xx;
2. hostile URLs: document URLs that name a local canary HTTP server in every address form (IPv4-mapped,
   IPv4-compatible, NAT64, 6to4, decimal and hex IPv4, localhost, a rebinding name) and malformed ones;
   counts requests that reached the canary, and 5xx;
3. cross-company: company A's key on every operation against company B's objects (both auth schemes),
   and A's lists filtered by B's ids; counts answers that show or change B's rows;
4. oversized bodies: declared sizes over the limits, with and without Idempotency-Key, to uploads, JSON
   endpoints and the webhook; counts bytes the server read before refusing.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import REPO, log, table  # noqa: E402

DB_NAME = "bench_hostile_probe"
# The kinds of API object (``/api/v1/<kind>/{id}``) that _fixture() makes one of per company;
# saas_bot/api/tests/test_hostile_probe_fixture.py checks the live schema has no other.
FIXTURE_KINDS = ("bots", "documents", "conversations", "messages", "collections", "sources", "sync-runs",
                 "versions", "golden-questions")
CANARY_PORT = 8141
DOCS = REPO / "docs" / "testing.md"
START, END = "<!-- probe:hostile:start -->", "<!-- probe:hostile:end -->"


class EndlessBody:
    """A wsgi.input that would give any number of bytes; counts what the server read."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        size = 65536 if size is None or size < 0 else min(size, 65536)
        self.read_bytes += size
        return b"a" * size

    def readline(self, size: int = -1) -> bytes:
        return self.read(size if size and size > 0 else 1024)


def _fixture(company_slug: str, token: str, bot_id: int, emulator):
    from billing.models import Plan
    from billing.services import subscription_start
    from bots.models import Conversation, Message
    from bots.lifecycle import bot_connect
    from rag.models import Collection, KnowledgeBaseVersion, Source, SyncRun
    from rag.services import document_add_text
    from rag.golden import golden_question_save
    from saas_bot.api.models import ApiKey
    from tenants.services import company_create

    plan = Plan.objects.create(code=f"probe-{company_slug}", name=company_slug, max_messages_per_period=100000)
    company = company_create(name=company_slug.title(), slug=company_slug)
    subscription_start(company=company, plan=plan)
    emulator.add_bot(token, id=bot_id, username=f"{company_slug}_probe_bot")
    bot = bot_connect(company=company, token=token, register_webhook=False)
    document, _ = document_add_text(company=company, title="Refunds", text="# Refunds\nRefunds take five days.")
    conversation = Conversation.objects.create(company=company, bot=bot, channel="api")
    message = Message.objects.create(company=company, bot=bot, conversation=conversation, question="q?", answer="a.")
    collection = Collection.objects.create(company=company, name="Billing")
    # A source on a name that resolves nowhere (.invalid, RFC 2606): a fuzzed "sync" fails fast, fetches nothing.
    source = Source.objects.create(company=company, name="Help centre", url=f"https://help.{company_slug}.invalid/")
    run = SyncRun.objects.create(company=company, source=source, status=SyncRun.Status.SUCCEEDED)
    golden = golden_question_save(company=company, question="How long do refunds take?",
                                  answer_contains=["five days"])
    version = KnowledgeBaseVersion.objects.filter(company=company).order_by("-id").first()  # the document's
    _, key = ApiKey.objects.create_key(name="probe", company=company)
    ids = {"bots": bot.id, "documents": document.id, "conversations": conversation.id, "messages": message.id,
           "collections": collection.id, "sources": source.id, "sync-runs": run.id,
           "versions": version.id, "golden-questions": golden.id}
    assert set(ids) == set(FIXTURE_KINDS)
    return {"company": company, "bot": bot, "key": key, "ids": ids}


def _check_fixture(operations: list[dict], ids: dict) -> None:
    """Refuse to probe an API whose object kinds the fixture has no object of (a new endpoint needs one here).

    Raises:
        SystemExit: naming the kinds (``/api/v1/<kind>/{id}``) without a fixture object.
    """
    kinds = sorted({op["path"].split("/")[3] for op in operations if "{id}" in op["path"]} - set(ids))
    if kinds:
        raise SystemExit(f"bench/hostile_probe.py: no fixture object for API kinds {kinds}: add one to _fixture()")


def _run_strategy(strategy, examples: int, each) -> int:
    from hypothesis import HealthCheck, Phase, given, settings

    count = [0]

    @given(value=strategy)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(value):
        count[0] += 1
        each(value)

    run()
    return count[0]


def probe_fuzz(a, b, args, shard: tuple[int, int] = (0, 1)) -> list[list]:
    """Fuzz the webhook (shard 0 only) and this shard's API operations (every ``shard[1]``-th of the schema's,
    DELETEs last, starting at ``shard[0]``); one row [target, requests, 5xx, statuses] each."""
    from django.test import Client
    from rest_framework.test import APIClient

    from saas_bot.tests.hostile_inputs import api_operations, api_requests, update_bodies

    rows = []
    # A 500 is counted (and its first request logged), not raised: one finding must not stop an hours-long run.
    web = Client(raise_request_exception=False)
    statuses: collections.Counter = collections.Counter()

    def send_update(body: bytes) -> None:
        response = web.post(f"/telegram/webhook/{a['bot'].public_id}/", data=body, content_type="application/json",
                            HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=a["bot"].webhook_secret)
        if response.status_code >= 500 and not statuses[500]:
            log(f"5xx from the webhook, first body: {body[:500]!r}")
        statuses[response.status_code] += 1

    if shard[0] == 0 and not getattr(args, "only", None):
        started = time.perf_counter()
        sent = _run_strategy(update_bodies(), args.webhook, send_update)
        log(f"webhook: {sent} bodies in {time.perf_counter() - started:.0f} s: {dict(statuses)}")
        rows.append(["webhook `POST /telegram/webhook/<id>/`", sent, sum(v for k, v in statuses.items() if k >= 500),
                     ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))])

    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {a['key']}")
    operations = api_operations(api.get("/api/schema/", {"format": "json"}).json())
    ids = {kind: [str(a["ids"][kind]), str(b["ids"][kind])] for kind in a["ids"]}
    ordered = sorted(operations, key=lambda op: (op["method"] == "DELETE", op["path"], op["method"]))
    if getattr(args, "only", None):  # re-run one operation after a fix: "GET /api/v1/versions/{id}/compare"
        ordered = [op for op in ordered if f"{op['method']} {op['path']}" == args.only]
        if not ordered:
            raise SystemExit(f"--only {args.only!r} names no operation of the schema")
    for operation in ordered[shard[0]::shard[1]]:
        statuses = collections.Counter()

        def send(request, operation=operation, statuses=statuses):
            path = request["path"] + ("?" + urllib.parse.urlencode(request["query"], errors="surrogatepass")
                                      if request["query"] else "")
            response = api.generic(operation["method"], path, data=request["body"],
                                   content_type=request["content_type"], **request["headers"])
            if response.status_code >= 500 and not sum(v for k, v in statuses.items() if k >= 500):
                log(f"5xx from {operation['method']} {operation['path']}, first request: {request!r:.800}")
            statuses[response.status_code] += 1

        started = time.perf_counter()
        sent = _run_strategy(api_requests(operation, ids), args.examples, send)
        label = f"`{operation['method']} {operation['path']}`"
        log(f"{label}: {sent} in {time.perf_counter() - started:.0f} s: {dict(statuses)}")
        rows.append([label, sent, sum(v for k, v in statuses.items() if k >= 500),
                     ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))])
    return rows


def probe_urls(a) -> tuple[list[list], int]:
    from rest_framework.test import APIClient

    from rag import fetching
    from saas_bot.testing.local_http import FixedTextService

    canary = FixedTextService(b"canary: fetched from inside", port=CANARY_PORT).start()
    hits = canary.requests  # every request that reached the canary
    p = CANARY_PORT
    answers = collections.defaultdict(int)
    real_resolver = fetching.system_resolver

    def rebinding(host: str, port: int):
        if host == "rebind.probe.test":  # public at the first look, then the canary
            answers[host] += 1
            return ["93.184.215.14"] if answers[host] % 2 == 1 else ["127.0.0.1"]
        return real_resolver(host, port)

    fetching.system_resolver = rebinding
    fetching.url_fetch.__kwdefaults__["resolver"] = rebinding
    fetching.PinnedTransport.__init__.__kwdefaults__["resolver"] = rebinding
    urls = [f"http://127.0.0.1:{p}/", f"http://localhost:{p}/", f"http://127.1:{p}/", f"http://0.0.0.0:{p}/",
            f"http://2130706433:{p}/", f"http://0x7f000001:{p}/", f"http://0177.0.0.1:{p}/",
            f"http://[::1]:{p}/", f"http://[::]:{p}/", f"http://[::ffff:127.0.0.1]:{p}/",
            f"http://[::ffff:7f00:1]:{p}/", f"http://[::7f00:1]:{p}/", f"http://[64:ff9b::7f00:1]:{p}/",
            f"http://[2002:7f00:1::]:{p}/", f"http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]:{p}/",
            f"http://user:pw@127.0.0.1:{p}/", f"http://127.0.0.1:{p}@example.com/",
            f"http://rebind.probe.test:{p}/"] * 3
    malformed = ["http://[::1", f"http://127.0.0.1:99999/", "http://[::1]x/", "http://", "https://:0/",
                 "javascript:alert(1)", "file:///etc/passwd", "gopher://127.0.0.1:25/", "http://exa mple.com/",
                 "http://\x00/", "http://[fe80::1%25eth0]:80/", "//127.0.0.1/", "http:///127.0.0.1/"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {a['key']}")
    codes: collections.Counter = collections.Counter()
    five = 0
    for url in urls + malformed:
        response = api.post("/api/v1/documents", json.dumps({"url": url}), content_type="application/json")
        five += response.status_code >= 500
        try:
            codes[response.json()["error"]["code"]] += 1
        except Exception:  # noqa: BLE001 - a success has no error
            codes[str(response.status_code)] += 1
    canary.stop()
    rows = [[len(urls), len(malformed), len(hits), five, ", ".join(f"`{k}`: {v}" for k, v in sorted(codes.items()))]]
    return rows, len(hits)


def probe_cross_company(a, b) -> list[list]:
    from rest_framework.test import APIClient

    from bots.models import Bot, Conversation, Message
    from rag.models import Collection, Document
    from saas_bot.tests.hostile_inputs import api_operations

    def snapshot():
        company = b["company"]
        return (list(Bot.objects.filter(company=company).values("id", "name", "status", "persona")),
                list(Document.objects.filter(company=company).values("id", "status", "title")),
                Conversation.objects.filter(company=company).count(), Message.objects.filter(company=company).count(),
                Collection.objects.filter(company=company).count())

    before = snapshot()
    tried = leaked = 0
    for scheme in ("Api-Key", "Bearer"):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"{scheme} {a['key']}")
        operations = api_operations(api.get("/api/schema/", {"format": "json"}).json())
        _check_fixture(operations, b["ids"])
        for operation in operations:
            bodies = [{}, {"question": "What are B's refunds?"}, {"name": "pwned", "status": "disabled"},
                      {"title": "x", "text": "x", "collection": b["ids"]["collections"]},
                      {"collections": [b["ids"]["collections"]]},
                      {"question": "hi", "conversation_id": b["ids"]["conversations"]}]
            kind = operation["path"].split("/")[3]
            # B's object by id; and A's own object (or list) given B's ids in the body or the query.
            paths = [(operation["path"].replace("{id}", str(b["ids"][kind])), True),
                     (operation["path"].replace("{id}", str(a["ids"][kind])), False)] \
                if "{id}" in operation["path"] else [(operation["path"], False)]
            for path, b_object in paths:
                if not b_object and operation["method"] in ("DELETE", "GET") and "{id}" in operation["path"]:
                    continue  # A reading or deleting its own object says nothing about B
                queries = [{}]
                if operation["method"] == "GET" and "{id}" not in operation["path"]:
                    queries += [{"bot": b["ids"]["bots"]}, {"conversation": b["ids"]["conversations"]},
                                {"collection": b["ids"]["collections"]}, {"page_size": 200}]
                for query in queries:
                    for body in (bodies if operation["method"] in ("POST", "PATCH") else [None]):
                        refs = {"collection": "collections", "collections": "collections",
                                "conversation_id": "conversations", "bot": "bots", "conversation": "conversations"}
                        used = {**{k: v for k, v in (body or {}).items() if k in operation["fields"]},
                                **{k: v for k, v in query.items() if k in operation["params"]}}
                        names_b = any(k in refs and str(b["ids"][refs[k]]) in json.dumps(v) for k, v in used.items())
                        if not b_object and not names_b and operation["method"] != "GET":
                            continue  # A writing its own objects with its own data
                        tried += 1
                        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
                        response = api.generic(operation["method"], url,
                                               data=json.dumps(body) if body is not None else "",
                                               content_type="application/json")
                        text = response.content.decode(errors="replace")
                        if (b_object or names_b) and response.status_code < 300 and operation["method"] != "GET":
                            leaked += 1  # a write that used B's object was accepted
                        elif b_object and response.status_code < 300:
                            leaked += 1  # B's object was read
                        elif operation["method"] == "GET" and response.status_code == 200 and kind in b["ids"]:
                            data = response.json()
                            rows = data.get("results", [data]) if isinstance(data, dict) else data
                            leaked += sum(1 for row in rows or [] if isinstance(row, dict)
                                          and str(row.get("id")) == str(b["ids"][kind]))
                        if b["bot"].username in text:
                            leaked += 1
    after = snapshot()
    return [[tried, leaked, "unchanged" if before == after else "CHANGED"]]


def probe_oversized(a) -> list[list]:
    from django.conf import settings
    from django.test import Client
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {a['key']}")
    web = Client()
    big = 262 * 1024 * 1024
    cases = [
        ("`POST /documents` multipart", "/api/v1/documents", "multipart/form-data; boundary=x", big, None, api),
        ("`POST /documents` multipart + Idempotency-Key", "/api/v1/documents", "multipart/form-data; boundary=x", big,
         "probe-1", api),
        ("`POST /documents` JSON + Idempotency-Key", "/api/v1/documents", "application/json", big, "probe-2", api),
        ("`POST /bots/{id}/ask` JSON 10 MB", f"/api/v1/bots/{a['ids']['bots']}/ask", "application/json",
         10 * 1024 * 1024, None, api),
        ("`POST /bots/{id}/ask` JSON 10 MB + Idempotency-Key", f"/api/v1/bots/{a['ids']['bots']}/ask",
         "application/json", 10 * 1024 * 1024, "probe-3", api),
        ("`POST /bots` JSON 10 MB", "/api/v1/bots", "application/json", 10 * 1024 * 1024, None, api),
        ("webhook 2 MB", f"/telegram/webhook/{a['bot'].public_id}/", "application/json", 2 * 1024 * 1024, None, web),
    ]
    rows = []
    for label, path, content_type, size, key, client in cases:
        stream = EndlessBody()
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        if client is web:
            headers["HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN"] = a["bot"].webhook_secret
        response = client.generic("POST", path, data=b"", content_type=content_type, CONTENT_LENGTH=str(size),
                                  **{"wsgi.input": stream}, **headers)
        try:
            message = response.json()["error"]["message"]
        except Exception:  # noqa: BLE001
            message = ""
        names_setting = any(word in message for word in ("settings", "DATA_UPLOAD", "API_UPLOAD"))
        rows.append([label, f"{size:,}", response.status_code, f"{stream.read_bytes:,}",
                     "yes" if names_setting else "no"])
    rows.append(["limits", f"uploads {settings.API_UPLOAD_MAX_BYTES:,}; other API 2,621,440; webhook "
                           f"{settings.TELEGRAM_WEBHOOK_MAX_BYTES:,}", "", "", ""])
    return rows


def _row_order(row: list) -> tuple:
    """API rows as the schema orders operations, DELETEs last (labels are "`METHOD /path`")."""
    method, path = row[0].strip("`").split(" ", 1)
    return (method == "DELETE", path, method)


def _start_shards(args) -> list:
    """Start ``args.jobs - 1`` child processes (shards 1..N-1 of the API fuzz); [(Popen, results path)]."""
    import subprocess
    import tempfile

    children = []
    for index in range(1, args.jobs):
        results = Path(tempfile.mkstemp(prefix=f"hostile-probe-shard{index}-", suffix=".json")[1])
        command = [sys.executable, __file__, "--shard", f"{index}/{args.jobs}", "--results", str(results),
                   "--examples", str(args.examples), "--webhook", "0", "--no-docs"]
        children.append((subprocess.Popen(command), results))
        log(f"shard {index}/{args.jobs} started (pid {children[-1][0].pid})")
    return children


def _shard_rows(children) -> list[list]:
    """Wait for the shards and read their rows.

    Raises:
        RuntimeError: a shard exited non-zero (its rows would be missing from the figures).
    """
    rows: list[list] = []
    for process, results in children:
        code = process.wait()
        if code != 0:
            raise RuntimeError(f"fuzz shard pid {process.pid} exited with {code}")
        rows += json.loads(results.read_text())
        results.unlink()
    return rows


@contextlib.contextmanager
def _companies(db_name: str):
    """The probes' world: private database ``db_name`` (migrated here, dropped afterwards), the Telegram
    emulator, and companies A and B (:func:`_fixture`); yields (a, b)."""
    from django.conf import settings
    from django.core.management import call_command

    from saas_bot.testing.telegram_emulator import TelegramEmulator

    _common.use_private_database(db_name)
    settings.API_THROTTLE_RATE = None
    settings.ALLOWED_HOSTS = ["*"]
    try:
        log(f"migrating the private database {db_name}")
        call_command("migrate", verbosity=0)
        with TelegramEmulator() as emulator:
            settings.TELEGRAM_API_BASE_URL = emulator.base_url
            yield (_fixture("alpha", "7100000901:AAFprobeTokenForTheEmulatorOnly0000901", 7100000901, emulator),
                   _fixture("bravo", "7100000902:AAFprobeTokenForTheEmulatorOnly0000902", 7100000902, emulator))
    finally:
        _common.drop_private_database(db_name)


def _fuzz_shard(args) -> int:
    """A child of ``--jobs``: fuzz shard I of N of the API operations on database ``<DB_NAME>_<I>``, write its
    rows as JSON to ``--results`` (``--only``: print them)."""
    index, count = (int(x) for x in args.shard.split("/"))
    with _companies(f"{DB_NAME}_{index}") as (a, b):
        rows = probe_fuzz(a, b, args, shard=(index, count))
    if args.results:
        Path(args.results).write_text(json.dumps(rows))
    else:  # --only
        for row in rows:
            print(f"{row[0]}: {row[1]:,} requests, {row[2]} answered 5xx ({row[3]})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10000, help="fuzzed requests per API operation")
    parser.add_argument("--webhook", type=int, default=10000, help="fuzzed webhook bodies")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes fuzzing the API side by side (each on its own private database)")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--only", help='fuzz only this API operation ("GET /api/v1/versions/{id}/compare"), '
                                       "no webhook and no other probe; nothing is written to the docs")
    parser.add_argument("--shard", help=argparse.SUPPRESS)  # I/N: a child of --jobs fuzzing its share only
    parser.add_argument("--results", help=argparse.SUPPRESS)  # where a child writes its rows (JSON)
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    _common.django_setup({"DOCUMENT_URL_TIMEOUT_SECONDS": "2", "API_THROTTLE_RATE": "", "LOG_LEVEL": "CRITICAL",
                          "CELERY_BROKER_URL": "", "REDIS_URL": ""})
    import logging

    logging.disable(logging.CRITICAL)  # 10,000s of refused requests would flood the terminal
    if args.shard:
        return _fuzz_shard(args)
    if args.only:
        args.shard, args.results = "0/1", None
        return _fuzz_shard(args)
    info = _common.machine_info()
    load = _common.other_load()
    children = _start_shards(args)
    started = time.perf_counter()
    try:
        with _companies(DB_NAME) as (a, b):
            log("cross-company")
            cross = probe_cross_company(a, b)
            log(f"cross-company: {cross}")
            log("hostile URLs")
            urls, fetched = probe_urls(a)
            log(f"hostile URLs: {urls}")
            log("oversized bodies")
            oversized = probe_oversized(a)
            log(f"oversized: {oversized}")
            log("fuzz")
            fuzz = probe_fuzz(a, b, args, shard=(0, args.jobs))
        fuzz = fuzz[:1] + sorted(fuzz[1:] + _shard_rows(children), key=_row_order)
    finally:
        for process, _ in children:
            if process.poll() is None:
                process.kill()
    minutes = (time.perf_counter() - started) / 60
    api_rows = fuzz[1:]
    body = "\n".join([
        START,
        f"### Hostile probe ({_common.utcnow()[:10]}, `make probe-hostile`, {minutes:.0f} min)",
        "",
        f"Machine: {info.get('cores', '')} cores, {info.get('ram', '')}, Python {info.get('python', '')}, "
        f"PostgreSQL {info.get('postgresql', '')}, commit {info.get('commit', '')}, load average "
        f"{info.get('loadavg', '')}; other load: {load}. In-process through "
        "Django's whole stack (test client), private database, Telegram emulator. "
        f"`bench/hostile_probe.py --examples {args.examples} --webhook {args.webhook}"
        f"{f' --jobs {args.jobs}' if args.jobs > 1 else ''}`"
        f"{f' ({args.jobs} processes, each fuzzing 1 in {args.jobs} of the API operations on its own database)' if args.jobs > 1 else ''}.",
        "",
        f"**Fuzzed inputs**: {sum(r[1] for r in fuzz):,} requests, "
        f"**{sum(r[2] for r in fuzz)} answered 5xx** (webhook {fuzz[0][1]:,}; "
        f"{len(api_rows)} API operations, {min(r[1] for r in api_rows):,} to {max(r[1] for r in api_rows):,} each).",
        "",
        table(["target", "requests", "5xx", "statuses"], fuzz, "lrrl"),
        f"**Hostile URLs**: tried / fetched = {urls[0][0]} / {fetched} (plus {urls[0][1]} malformed).",
        "",
        table(["address forms tried", "malformed", "reached the canary", "5xx", "answers"], urls, "rrrrl"),
        f"**Cross-company**: tried / leaked = {cross[0][0]} / {cross[0][1]}; company B's rows {cross[0][2]}.",
        "",
        "**Oversized bodies** (declared `Content-Length`; bytes the server read before refusing):",
        "",
        table(["request", "declared bytes", "status", "bytes read", "message names a setting"], oversized,
              "lrrrl"),
        END,
    ])
    print(body)
    if not args.no_docs:
        text = DOCS.read_text()
        if START in text:
            text = text[:text.index(START)] + body + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n## Hostile probe\n\n" + body + "\n"
        DOCS.write_text(text)
        log(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
