"""Telegram: the Bot API, the webhook inbox and its recovery, waits after 429, outgoing rate limits (bots/)."""
from saas_bot.settings.base import REDIS_URL, env
from saas_bot.settings.celery_queues import CELERY_VISIBILITY_TIMEOUT

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
