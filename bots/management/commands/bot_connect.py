"""python manage.py bot_connect --company SLUG --token TOKEN [--name NAME]"""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bots.models import Bot
from bots.lifecycle import bot_connect
from bots.telegram_setup import bot_register_webhook
from saas_bot.errors import ServiceError
from tenants.selectors import company_get_by_slug


class Command(BaseCommand):
    help = ("Connect a Telegram bot by token (checked with getMe, stored encrypted). With PUBLIC_BASE_URL set, "
            "its webhook is registered. An already connected token re-registers the webhook.")

    def add_arguments(self, parser):
        parser.add_argument("--company", required=True)
        parser.add_argument("--token", required=True)
        parser.add_argument("--name", default="")

    def handle(self, *args, company: str, token: str, name: str, **options):
        try:
            tenant = company_get_by_slug(slug=company)
            existing = next((b for b in Bot.objects.for_company(tenant) if _same_token(b, token)), None)
            bot = existing or bot_connect(company=tenant, token=token, name=name, register_webhook=False)
            url = bot_register_webhook(bot=bot) if settings.PUBLIC_BASE_URL else None
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        # Running it again is allowed (it registers the webhook again, e.g. once PUBLIC_BASE_URL is set), but says so.
        self.stdout.write(f"Bot @{bot.username} (id {bot.id}) was already connected to '{tenant.slug}'; not "
                          "connected again." if existing else f"Bot @{bot.username} (id {bot.id}) connected to '{tenant.slug}'.")
        self.stdout.write(f"Webhook: {url}" if url else "PUBLIC_BASE_URL is not set: no webhook registered.")


def _same_token(bot: Bot, token: str) -> bool:
    from bots.telegram_setup import bot_token

    try:
        return bot_token(bot) == token.strip()
    except Exception:
        return False
