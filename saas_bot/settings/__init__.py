"""Django settings for saas_bot, one module per concern, read in this order.

Every setting comes from the environment through django-environ (``base.env``; a ``.env`` file in the
project root is read when present). The table of variables is in README.md ("Configuration"); app code
never reads ``os.environ``. ``DJANGO_SETTINGS_MODULE=saas_bot.settings`` names this package.

- base: Django's own (environment, secrets, transport security, apps, database, locale, static files,
  cache, logging, e-mail)
- documents: uploads, URL fetching, source crawling, extraction bounds, the ingestion sweep
- celery_queues: the broker, eager mode, queues and routes
- telegram: the Bot API, the inbox and its recovery, 429 waits, outgoing rate limits
- answers: the chat model, embeddings, chunking, retrieval, the refusal gate
- api: the REST API's throttle, idempotency, uploads, OpenAPI schema
- schedule: the periodic tasks of celery beat
"""
from saas_bot.settings.base import *  # noqa: F401,F403
from saas_bot.settings.documents import *  # noqa: F401,F403
from saas_bot.settings.celery_queues import *  # noqa: F401,F403
from saas_bot.settings.telegram import *  # noqa: F401,F403
from saas_bot.settings.answers import *  # noqa: F401,F403
from saas_bot.settings.api import *  # noqa: F401,F403
from saas_bot.settings.schedule import *  # noqa: F401,F403
