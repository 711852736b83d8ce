"""`manage.py ask`: the Telegram pipeline without Telegram."""
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import UsageEvent
from bots.models import Message
from saas_bot.testing.pytest_plugin import record_pending_usage

pytestmark = pytest.mark.django_db


def test_ask_json_shape_and_metering(bot, demo_kb, capsys):
    call_command("ask", "how long do sharing links stay valid by default?", bot=f"@{bot.username}", json=True)
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(payload) == {"answer", "sources", "usage", "refused"}
    assert payload["refused"] is False and "30 days" in payload["answer"]
    source = payload["sources"][0]
    assert set(source) == {"document", "title", "section", "page", "score"}
    assert source["document"] == "sharing-links.md" and isinstance(source["score"], float)
    assert payload["usage"]["model"] == "extractive"
    record_pending_usage()
    assert UsageEvent.objects.filter(channel="cli").count() == 1
    assert Message.objects.get().conversation.channel == "cli"


def test_ask_refuses_unknown_questions(bot, demo_kb, capsys):
    call_command("ask", "what's the weather in Berlin tomorrow?", bot=str(bot.id), json=True)
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["refused"] is True and payload["sources"] == []


@pytest.mark.parametrize("question", ["", "   ", "x" * 4097])
def test_ask_rejects_bad_questions(bot, question):
    with pytest.raises(CommandError, match="question_"):
        call_command("ask", question, bot=str(bot.id))


def test_ask_unknown_bot(db):
    with pytest.raises(CommandError, match="bot_not_found"):
        call_command("ask", "hi", bot="@nobody")
