"""Bots in the admin, against the Telegram Bot API emulator: connect by token, webhook health, disable, delete."""
import pytest

from bots.models import Bot, Conversation, Message
from saas_bot.testing.pytest_plugin import TEST_BOT_ID, TEST_TOKEN, TEST_USERNAME

pytestmark = pytest.mark.django_db
OTHER_TOKEN = "7100000002:AAFanotherTokenForTheEmulatorOnly002"


def test_connect_a_bot_by_pasting_its_token(owner_client, company, telegram, settings,
                                            django_capture_on_commit_callbacks):
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username=TEST_USERNAME, first_name="Acme Test")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/admin/bots/bot/add/", {"token": TEST_TOKEN, "name": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    bot = Bot.objects.get()
    assert (bot.company, bot.username, bot.telegram_id, bot.name) == (company, TEST_USERNAME, TEST_BOT_ID, "Acme Test")
    assert TEST_TOKEN not in bot.token_encrypted
    assert [c["command"] for c in telegram.commands(TEST_TOKEN)][:2] == ["start", "help"]
    hook = telegram.webhook(TEST_TOKEN)
    assert hook["url"] == f"https://bots.example.com/telegram/webhook/{bot.public_id}/"
    assert hook["secret_token"] == bot.webhook_secret

    page = owner_client.get(f"/admin/bots/bot/{bot.pk}/change/").content.decode()
    assert TEST_TOKEN not in page and TEST_TOKEN.split(":")[1] not in page
    assert bot.token_hint in page
    assert "Updates waiting at Telegram" in page and "URL matches this server" in page
    assert "Re-register webhook" in page


def test_a_rejected_token_is_a_form_error_and_nothing_is_stored(owner_client, telegram):
    response = owner_client.post("/admin/bots/bot/add/", {"token": OTHER_TOKEN, "name": "Kept"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Telegram rejected this bot token. (bot_token_invalid)" in page
    assert 'value="Kept"' in page  # the form is shown again with what was typed
    assert len(telegram.calls("getMe", token=OTHER_TOKEN)) == 1  # asked once, in the save; not again to show it
    assert not Bot.objects.exists()


def test_the_add_form_validates_without_telegram_or_writes(company, telegram):
    """clean() checks the token's shape only; bot_connect (getMe, the row, the webhook) runs in the admin's save."""
    from bots.admin import BotAddForm

    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username=TEST_USERNAME, first_name="Acme Test")
    form = BotAddForm(data={"token": f"  {TEST_TOKEN} ", "name": "Helper"}, company=company)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["token"] == TEST_TOKEN and form.company == company
    assert telegram.requests == [] and not Bot.objects.exists()
    malformed = BotAddForm(data={"token": "not-a-token"}, company=company)
    assert not malformed.is_valid() and "(bot_token_invalid)" in str(malformed.errors["token"])
    assert telegram.requests == []


def test_the_plan_s_bot_limit_is_shown_on_the_add_form(make_company, client, telegram):
    from django.contrib.auth.models import User

    from tenants.models import Membership

    company = make_company("tiny", max_bots=0)
    user = User.objects.create_user("o@tiny.test", "o@tiny.test", "pw-Xy7!long", is_staff=True)
    Membership.objects.create(user=user, company=company, role=Membership.Role.ADMIN)
    client.force_login(user)
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username=TEST_USERNAME, first_name="Acme Test")
    response = client.post("/admin/bots/bot/add/", {"token": TEST_TOKEN})
    assert response.status_code == 200 and "(quota_bots)" in response.content.decode()
    assert not Bot.objects.exists() and telegram.calls("getMe") == []


def test_webhook_health_shows_the_last_error_and_re_register(owner_client, bot, telegram, settings):
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    response = owner_client.post(f"/admin/bots/bot/{bot.pk}/register-webhook/", follow=True)
    assert "Webhook registered: https://bots.example.com/telegram/webhook/" in response.content.decode()
    telegram.set_webhook_error(TEST_TOKEN, "Wrong response from the webhook: 502 Bad Gateway")
    page = owner_client.get(f"/admin/bots/bot/{bot.pk}/change/").content.decode()
    assert "Wrong response from the webhook: 502 Bad Gateway" in page
    settings.PUBLIC_BASE_URL = ""
    response = owner_client.post(f"/admin/bots/bot/{bot.pk}/register-webhook/", follow=True)
    assert "(public_base_url_missing)" in response.content.decode()
    assert "PUBLIC_BASE_URL" not in response.content.decode()  # an owner cannot set it: the operator does


def test_edit_disable_replace_token_and_delete(owner_client, bot, telegram, settings):
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    owner_client.post(f"/admin/bots/bot/{bot.pk}/register-webhook/")
    data = {"name": "Support", "persona": "Be brief.", "welcome_text": "Hi", "help_text": "Ask", "language": "de",
            "limit_message": "", "max_messages_per_period": "", "edited_messages": "ignore",
            "conversation_idle_minutes": 30, "new_token": OTHER_TOKEN}
    telegram.add_bot(OTHER_TOKEN, id=7100000002, username="someone_else_bot", first_name="Other")
    response = owner_client.post(f"/admin/bots/bot/{bot.pk}/change/", data)
    assert response.status_code == 200
    assert "belongs to @someone_else_bot" in response.content.decode()
    bot.refresh_from_db()
    assert bot.name != "Support"  # the refused token stopped the whole change (bot_update, one transaction)
    assert "was changed successfully" not in response.content.decode()
    data["new_token"] = ""
    assert owner_client.post(f"/admin/bots/bot/{bot.pk}/change/", data).status_code == 302
    bot.refresh_from_db()
    assert (bot.name, bot.language, bot.conversation_idle_minutes) == ("Support", "de", 30)

    owner_client.post("/admin/bots/bot/", {"action": "disable_bots", "_selected_action": [bot.pk]})
    bot.refresh_from_db()
    assert bot.status == Bot.Status.DISABLED and telegram.webhook(TEST_TOKEN) is None

    owner_client.post(f"/admin/bots/bot/{bot.pk}/delete/", {"post": "yes"})
    assert not Bot.objects.exists()



@pytest.mark.parametrize("how", ["delete view", "delete_selected action"])
def test_an_owner_deletes_a_bot_that_has_conversations_and_messages(owner_client, bot, company, how):
    """Found by a new user: "Cannot delete bot ... your account doesn't have permission to delete ... conversation,
    message" (messages are read-only in the admin), while the API deleted the same bot."""
    conversation = Conversation.objects.create(company=company, bot=bot, channel=Conversation.Channel.TELEGRAM)
    Message.objects.create(company=company, bot=bot, conversation=conversation, question="Hi?", answer="Hello.")
    if how == "delete view":
        confirm = owner_client.get(f"/admin/bots/bot/{bot.pk}/delete/").content.decode()
        assert "permission to delete" not in confirm and "Yes, I’m sure" in confirm
        response = owner_client.post(f"/admin/bots/bot/{bot.pk}/delete/", {"post": "yes"})
    else:
        response = owner_client.post("/admin/bots/bot/", {"action": "delete_selected", "_selected_action": [bot.pk],
                                                          "post": "yes"})
    assert response.status_code == 302
    assert not Bot.objects.exists() and not Message.objects.exists()

def test_an_answer_shows_its_sources_readably(owner_client, bot, company):
    conversation = Conversation.objects.create(company=company, bot=bot, channel=Conversation.Channel.TELEGRAM)
    message = Message.objects.create(
        company=company, bot=bot, conversation=conversation, question="How do I reset my password?",
        answer="Use the link.", prompt_tokens=120, completion_tokens=30,
        sources=[{"document": "account.pdf", "title": "Account help", "section": "Passwords", "page": 3,
                  "score": 0.8}])
    page = owner_client.get(f"/admin/bots/message/{message.pk}/change/").content.decode()
    assert "<strong>Account help</strong> <small>(account.pdf)</small> — Passwords, page 3" in page
    assert '"score"' not in page and "{&#x27;document" not in page
    listing = owner_client.get("/admin/bots/message/", {"feedback": "none"})
    assert list(listing.context["cl"].queryset) == [message]
    assert owner_client.post(f"/admin/bots/message/{message.pk}/delete/", {"post": "yes"}).status_code == 403


def test_staff_retry_failed_updates_from_the_inbox(admin_client, owner_client, bot, company,
                                                   django_capture_on_commit_callbacks):
    from bots.models import TelegramUpdate

    failed = TelegramUpdate.objects.create(company=company, bot=bot, update_id=1, payload={"update_id": 1},
                                           status="failed", attempts=8, error="Telegram: Bad Request")
    done = TelegramUpdate.objects.create(company=company, bot=bot, update_id=2, payload={"update_id": 2},
                                         status="done", attempts=1)
    listing = admin_client.get("/admin/bots/telegramupdate/", {"attention": "failed"})
    assert list(listing.context["cl"].queryset) == [failed]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        admin_client.post("/admin/bots/telegramupdate/", {"action": "retry",
                                                          "_selected_action": [failed.pk, done.pk]})
    failed.refresh_from_db(), done.refresh_from_db()
    assert (failed.status, failed.attempts, done.status) == ("pending", 0, "done")
    assert len(callbacks) == 1  # one processing task enqueued after commit
    assert owner_client.get("/admin/bots/telegramupdate/").status_code == 403  # staff only


def test_staff_connect_a_bot_for_a_company(admin_client, company, telegram):
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username=TEST_USERNAME, first_name="Acme Test")
    page = admin_client.get("/admin/bots/bot/add/").content.decode()
    assert 'name="company_choice"' in page
    response = admin_client.post("/admin/bots/bot/add/", {"token": TEST_TOKEN, "name": "Helper",
                                                         "company_choice": company.pk})
    assert response.status_code == 302
    assert Bot.objects.get().company == company
