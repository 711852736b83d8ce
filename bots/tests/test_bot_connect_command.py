"""manage.py bot_connect: a bot connected by token from the command line, once, its webhook registered when
PUBLIC_BASE_URL is set; refusals are the services' codes with exit status 1."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from bots.models import Bot
from bots.telegram_setup import bot_token
from saas_bot.testing.pytest_plugin import TEST_TOKEN, TEST_USERNAME

pytestmark = pytest.mark.django_db


def _connect(*args: str) -> str:
    out = StringIO()
    call_command("bot_connect", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def telegram_bot(telegram):
    telegram.add_bot(TEST_TOKEN, id=7100000001, username=TEST_USERNAME, first_name="Acme Test")
    return telegram


def test_connects_once_and_registers_the_webhook_only_with_a_public_url(company, telegram_bot, settings):
    settings.PUBLIC_BASE_URL = ""
    out = _connect("--company", "acme", "--token", TEST_TOKEN, "--name", "Helpdesk")
    bot = Bot.objects.get(company=company)
    assert (bot.username, bot.name, bot_token(bot)) == (TEST_USERNAME, "Helpdesk", TEST_TOKEN)
    assert f"Bot @{TEST_USERNAME} (id {bot.id}) connected to 'acme'." in out
    assert "PUBLIC_BASE_URL is not set: no webhook registered." in out
    assert telegram_bot.webhook(TEST_TOKEN) is None

    # The same token again (with spaces around it): the bot already there is reused and its webhook registered.
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    out = _connect("--company", "acme", "--token", f" {TEST_TOKEN} ")
    assert list(Bot.objects.filter(company=company)) == [bot]
    assert f"Bot @{TEST_USERNAME} (id {bot.id}) was already connected to 'acme'; not connected again." in out
    url = f"https://bots.example.com/telegram/webhook/{bot.public_id}/"
    assert f"Webhook: {url}" in out
    assert telegram_bot.webhook(TEST_TOKEN)["url"] == url


def test_refusals_are_command_errors_with_the_code(company, telegram_bot, make_company):
    with pytest.raises(CommandError, match="company_not_found"):
        _connect("--company", "nobody", "--token", TEST_TOKEN)
    with pytest.raises(CommandError, match="bot_token_invalid"):
        _connect("--company", "acme", "--token", "7100000009:AAFunknownTokenUnknownToken000000009")
    assert not Bot.objects.exists()
    # Another company's bot token is not "the same bot" for this company.
    make_company("globex")
    _connect("--company", "globex", "--token", TEST_TOKEN)
    with pytest.raises(CommandError, match="bot_"):
        _connect("--company", "acme", "--token", TEST_TOKEN)
    assert Bot.objects.filter(company=company).count() == 0
