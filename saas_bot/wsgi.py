"""The WSGI application served by gunicorn (``make run``, docker-compose) or any WSGI server.

Telegram's webhook POSTs take a fast path that skips Django's middleware (bots.views.webhook_fast_path);
everything else is Django as usual.
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas_bot.settings")
django_application = get_wsgi_application()

from django.conf import settings  # noqa: E402

from bots.views import webhook_fast_path  # noqa: E402  (needs the apps loaded above)

application = (webhook_fast_path(django_application) if settings.TELEGRAM_WEBHOOK_FAST_PATH
               else django_application)
