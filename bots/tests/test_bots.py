"""Connecting bots: token checked with getMe, encrypted at rest, webhook registered with a secret."""
import pytest
from django.db import connection

from bots.models import Bot, TelegramUpdate
from bots.lifecycle import bot_connect
from bots.telegram_setup import bot_register_webhook, bot_token
from bots.inbox import inbox_sweep
from saas_bot.errors import QuotaExceeded, ValidationFailed
from saas_bot.testing.pytest_plugin import TEST_TOKEN, make_update

pytestmark = pytest.mark.django_db


def test_token_is_encrypted_at_rest_and_masked(bot):
    with connection.cursor() as cursor:
        cursor.execute("SELECT token_encrypted, token_hint FROM bots_bot WHERE id = %s", [bot.id])
        stored, hint = cursor.fetchone()
    assert TEST_TOKEN not in stored and TEST_TOKEN.split(":")[1] not in stored
    assert bot_token(bot) == TEST_TOKEN
    assert hint.startswith("7100000001:…") and TEST_TOKEN.split(":")[1] not in hint
    assert (bot.username, bot.telegram_id) == ("acme_test_bot", 7100000001)
    assert len(bot.public_id) >= 20 and bot.public_id != str(bot.id)


@pytest.mark.parametrize("token", ["7100000009:AAFunknownTokenUnknownToken000000009", "not a token", ""])
def test_rejected_tokens_create_nothing(company, telegram, token):
    with pytest.raises(ValidationFailed) as caught:
        bot_connect(company=company, token=token)
    assert caught.value.code == "bot_token_invalid"
    assert not Bot.objects.exists()


def test_same_bot_twice_is_refused(bot, company):
    with pytest.raises(ValidationFailed) as caught:
        bot_connect(company=company, token=TEST_TOKEN)
    assert caught.value.code == "bot_already_connected"


def test_bot_limit_of_the_plan(make_company, telegram):
    company = make_company("onebot", max_bots=1)
    telegram.add_bot("7300000001:AAFfirstBotToken0000000000000000001", username="first_bot")
    telegram.add_bot("7300000002:AAFsecondBotToken000000000000000002", username="second_bot")
    bot_connect(company=company, token="7300000001:AAFfirstBotToken0000000000000000001")
    with pytest.raises(QuotaExceeded) as caught:
        bot_connect(company=company, token="7300000002:AAFsecondBotToken000000000000000002")
    assert caught.value.code == "quota_bots"


def test_webhook_registration_sends_url_secret_and_allowed_updates(bot, telegram, settings):
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    url = bot_register_webhook(bot=bot)
    assert url == f"https://bots.example.com/telegram/webhook/{bot.public_id}/"
    (call,) = telegram.calls("setWebhook")
    assert call["params"]["url"] == url and call["params"]["secret_token"] == bot.webhook_secret
    assert "message" in call["params"]["allowed_updates"]


def test_registration_without_public_url_is_a_clear_error(bot, settings):
    settings.PUBLIC_BASE_URL = ""
    with pytest.raises(ValidationFailed) as caught:
        bot_register_webhook(bot=bot)
    assert caught.value.code == "public_base_url_missing"


def test_sweep_processes_updates_left_pending(bot, telegram):
    update = make_update("/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    row = TelegramUpdate.objects.create(company=bot.company, bot=bot, update_id=update["update_id"], payload=update)
    assert inbox_sweep(stale_seconds=3600) == 0  # not stale yet
    assert inbox_sweep(stale_seconds=0) == 1  # broker was down: the sweep sends it (eager here)
    row.refresh_from_db()
    assert row.status == "done" and telegram.sent_messages()
