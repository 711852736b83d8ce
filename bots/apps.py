from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "bots"
    verbose_name = "Bots and conversations"

    def ready(self) -> None:
        from django.core import checks

        checks.register(_public_base_url_check, checks.Tags.compatibility)

        from billing.selectors import holding_counter_register
        from bots.selectors import bot_count

        holding_counter_register(limit="max_bots", counter=bot_count)


def _public_base_url_check(app_configs, **kwargs):
    """System check: ``PUBLIC_BASE_URL`` is empty or an absolute http(s) URL with a host. Without a scheme
    ("bots.example.com") the mistake surfaced only at ``setWebhook`` as "failed to resolve host"."""
    from urllib.parse import urlsplit

    from django.conf import settings
    from django.core import checks

    value = settings.PUBLIC_BASE_URL
    if not value:
        return []
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        return [checks.Error(f"PUBLIC_BASE_URL={value!r} is not an absolute URL such as https://bots.example.com",
                             hint="Telegram posts updates to PUBLIC_BASE_URL/telegram/webhook/<id>/; give the "
                                  "scheme and host (https in production).", id="bots.E001")]
    return []
