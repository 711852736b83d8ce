"""python manage.py ask --bot BOT "question" [--json]: the Telegram pipeline without Telegram."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from billing.models import UsageCounter
from bots.models import Message
from bots.selectors import bot_find
from bots.answers import bot_ask
from saas_bot.errors import ServiceError


class Command(BaseCommand):
    help = "Ask a bot a question through the same pipeline as a Telegram message and print the answer."

    def add_arguments(self, parser):
        parser.add_argument("--bot", required=True, help="Bot id, @username or public id.")
        parser.add_argument("question")
        parser.add_argument("--json", action="store_true",
                            help='One JSON object: {"answer", "sources", "usage", "refused"}.')

    def handle(self, *args, bot: str, question: str, **options):
        try:
            bot_obj = bot_find(ref=bot)
            result = bot_ask(bot=bot_obj, question=question)
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        message = result.message
        counter = (UsageCounter.objects.for_company(bot_obj.company).order_by("-period_start")
                   .values("messages", "tokens").first() or {"messages": 0, "tokens": 0})
        payload = {
            "answer": message.answer,
            "sources": [{"document": s["document"], "title": s["title"], "section": s.get("section"),
                         "page": s.get("page"), "score": s.get("score")} for s in message.sources],
            "usage": {"prompt_tokens": message.prompt_tokens, "completion_tokens": message.completion_tokens,
                      "model": message.model, "latency_ms": message.latency_ms, "status": message.status,
                      "period_messages": counter["messages"], "period_tokens": counter["tokens"]},
            "refused": message.status != Message.Status.ANSWERED,
        }
        if options["json"]:
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
            return
        self.stdout.write(message.answer)
        if payload["sources"]:
            self.stdout.write("\nSources:")
            for i, s in enumerate(payload["sources"], start=1):
                where = " — ".join(x for x in (s["section"], f"p. {s['page']}" if s["page"] else None) if x)
                self.stdout.write(f"  {i}. {s['title']} ({s['document']})" + (f" — {where}" if where else ""))
        self.stdout.write(self.style.NOTICE(
            f"\n[{message.status}; {message.latency_ms} ms; model {message.model}; "
            f"tokens {message.prompt_tokens}+{message.completion_tokens}]"))
