"""Operate every bot's webhook: re-register after a domain change (--sync) or report their health (--check)."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from telegram.error import TelegramError

from bots.models import Bot
from bots.services import bot_register_webhook, bot_set_commands, bot_webhook_info
from saas_bot.errors import ServiceError


class Command(BaseCommand):
    help = ("--sync: re-register the webhook (and command menu) of every active bot at PUBLIC_BASE_URL and show "
            "Telegram's getWebhookInfo; --check: show each bot's pending updates and last delivery error.")

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--sync", action="store_true", help="setWebhook + setMyCommands for every active bot.")
        mode.add_argument("--check", action="store_true", help="getWebhookInfo for every active bot.")
        parser.add_argument("--company", help="Only this company's bots (slug).")

    def handle(self, *args, sync: bool, check: bool, company: str | None, **options):
        if sync and not settings.PUBLIC_BASE_URL:
            raise CommandError("Set PUBLIC_BASE_URL (the https origin Telegram can reach) first.")
        bots = Bot.objects.filter(status=Bot.Status.ACTIVE).select_related("company").order_by("company__slug", "id")
        if company:
            bots = bots.filter(company__slug=company)
        problems = 0
        for bot in bots:
            label = f"{bot.company.slug:<16} {str(bot):<32}"
            try:
                if sync:
                    bot_register_webhook(bot=bot)
                    bot_set_commands(bot=bot)
                info = bot_webhook_info(bot=bot)
            except (ServiceError, TelegramError) as exc:
                problems += 1
                self.stdout.write(f"{label} ERROR {getattr(exc, 'message', exc)}")
                continue
            when = info["last_error_date"].isoformat() if info["last_error_date"] else ""
            error = f" last error {when}: {info['last_error_message']}" if info["last_error_message"] else ""
            status = "ok" if info["matches"] and not error else ("MISMATCH" if not info["matches"] else "ERROR")
            if status != "ok":
                problems += 1
            self.stdout.write(f"{label} {status:<8} {info['url'] or '(no webhook)'} "
                              f"pending {info['pending_update_count']}{error}")
        self.stdout.write(f"{bots.count()} bot(s), {problems} with problems.")
