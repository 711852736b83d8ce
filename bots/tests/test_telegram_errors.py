"""Every Telegram error the product can meet, with Telegram's real error bodies (../shared/data/telegram/errors)
answered by the emulator over HTTP: what happens to the update, the chat, the answer and its billing."""
import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from billing.models import QuotaWindow, UsageEvent
from bots.models import Chat, Conversation, Message, TelegramUpdate
from bots.telegram import classify
from bots.delivery import RetryLater
from bots.inbox import inbox_sweep, update_process
from saas_bot.testing.pytest_plugin import SHARED_DATA, TEST_TOKEN, TEST_USERNAME, make_update, record_pending_usage

pytestmark = pytest.mark.django_db

ERRORS = SHARED_DATA / "telegram" / "errors"
HELP = dict(entities=[{"type": "bot_command", "offset": 0, "length": 5}])

# error file -> (update status, the chat is marked blocked, a second sendMessage was made)
EXPECTED = {
    "400_cant_parse_entities_reserved_char.json": ("done", False, True),   # plain text instead
    "400_cant_parse_entities_unclosed.json": ("done", False, True),
    "400_chat_not_found.json": ("done", True, False),                      # chat gone: nothing more is sent
    "400_group_upgraded_to_supergroup.json": ("done", False, True),        # sent again to the supergroup
    "400_message_not_modified.json": ("failed", False, False),             # our bug: recorded, not retried
    "400_message_text_empty.json": ("failed", False, False),
    "400_message_too_long.json": ("failed", False, False),
    "400_query_too_old.json": ("failed", False, False),
    "400_setwebhook_secret_token_bad_chars.json": ("failed", False, False),
    "401_unauthorized_bad_token.json": ("failed", False, False),           # bot set to token_revoked
    "403_bot_blocked_by_user.json": ("done", True, False),
    "403_bot_kicked_from_supergroup.json": ("done", True, False),
    "403_cant_initiate_conversation.json": ("done", True, False),
    "403_user_deactivated.json": ("done", True, False),
    "404_not_found_malformed_token.json": ("failed", False, False),
    "409_conflict_getupdates_while_webhook.json": ("failed", False, False),
}


def store(bot, update):
    return TelegramUpdate.objects.create(company=bot.company, bot=bot, update_id=update["update_id"], payload=update)


def inject(telegram, name, method="sendMessage", **extra):
    """Make the emulator answer the next ``method`` call with the stored real error body ``name``."""
    body = json.loads((ERRORS / name).read_text())["body"]
    params = dict(body.get("parameters") or {})
    telegram.fail_next(method, error_code=body["error_code"], description=body["description"],
                       retry_after=params.pop("retry_after", None), parameters=params or None, **extra)
    return body


def company_messages(company):
    return QuotaWindow.objects.get(company=company, scope="company", subject=0).messages


def test_every_stored_error_body_is_covered(shared_data):
    names = {p.name for p in ERRORS.glob("*.json")} - {"getwebhookinfo_with_error.json", "429_too_many_requests.json"}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_reply_meets_each_telegram_error(bot, telegram, shared_data, name):
    status, blocked, resent = EXPECTED[name]
    chat_id = -4000000001 if "upgraded" in name else 5551
    inject(telegram, name)
    row = store(bot, make_update("/help", chat_id=chat_id, chat_type="group" if chat_id < 0 else "private",
                                 **HELP))
    if chat_id < 0:  # in a group /help must be addressed to the bot
        row.payload["message"]["text"] = f"/help@{bot.username}"
        row.payload["message"]["entities"][0]["length"] = len(row.payload["message"]["text"])
        row.save()
    assert update_process(update_pk=row.id) == status
    row.refresh_from_db()
    calls = telegram.calls("sendMessage")
    assert (len(calls) == 2) is resent and calls[0]["status_code"] != 200
    assert Chat.objects.get(bot=bot).is_blocked is blocked
    if status == "failed":
        assert row.error  # Telegram's words are kept for the admin
        assert update_process(update_pk=row.id) == "skipped"  # not retried
    if "upgraded" in name:
        assert calls[1]["params"]["chat_id"] == -1001000000003 and calls[1]["status_code"] == 200
    if name.startswith(("401", "404")):
        bot.refresh_from_db()
        assert bot.status == "token_revoked"


def test_429_parks_the_update_until_retry_after_and_every_worker_honours_it(bot, telegram, shared_data):
    body = inject(telegram, "429_too_many_requests.json")
    row = store(bot, make_update("/help", chat_id=5552, **HELP))
    with pytest.raises(RetryLater) as caught:
        update_process(update_pk=row.id)
    assert caught.value.countdown == body["parameters"]["retry_after"] == 35
    row.refresh_from_db()
    assert row.status == "pending" and row.attempts == 0  # a wait is not a failed attempt
    assert 33 <= (row.not_before - timezone.now()).total_seconds() <= 35
    # Another update for the same chat is held too, before anything is sent.
    other = store(bot, make_update("/help", chat_id=5552, **HELP))
    with pytest.raises(RetryLater):
        update_process(update_pk=other.id)
    assert len(telegram.calls("sendMessage")) == 1
    assert update_process(update_pk=row.id) == "skipped"  # not before its time


@pytest.mark.parametrize("retry_after", [600, 86400])
def test_long_429_is_parked_in_the_database_and_the_sweep_respects_it(bot, telegram, retry_after, settings):
    telegram.fail_next("sendMessage", error_code=429, retry_after=retry_after)
    row = store(bot, make_update("/help", chat_id=5553, **HELP))
    from bots.tasks import process_update_task

    settings.CELERY_TASK_ALWAYS_EAGER = False  # as under a worker: what does the task do with the wait?
    try:
        assert process_update_task.run(row.id) == "parked"  # no Celery countdown beyond the cap
    finally:
        settings.CELERY_TASK_ALWAYS_EAGER = True
    row.refresh_from_db()
    assert row.status == "pending" and row.not_before > timezone.now() + dt.timedelta(seconds=retry_after - 5)
    TelegramUpdate.objects.filter(id=row.id).update(received_at=timezone.now() - dt.timedelta(hours=2))
    assert inbox_sweep(stale_seconds=0) == 0  # pending for long, but not due
    TelegramUpdate.objects.filter(id=row.id).update(not_before=timezone.now() - dt.timedelta(seconds=1))
    from bots.ratelimit import local_cells_clear

    local_cells_clear()  # the process's hold ends with the wait (no time travel for it)
    assert inbox_sweep(stale_seconds=0) == 1  # eager: the sweep runs it now
    row.refresh_from_db()
    assert row.status == "done"
    assert [c["status_code"] for c in telegram.calls("sendMessage")] == [429, 200]


def test_a_long_wait_on_a_later_part_resumes_after_the_sent_parts_and_bills_at_delivery(bot, telegram, demo_kb,
                                                                                         llm, settings):
    settings.LLM_MAX_COMPLETION_TOKENS = 4000
    llm.respond_with("\n\n".join([f"Paragraph {n} of a long answer. " * 100 for n in range(3)]))
    telegram.fail_next("sendMessage", error_code=429, retry_after=600, after=1)
    row = store(bot, make_update("how long do sharing links stay valid by default?", chat_id=5554))
    with pytest.raises(RetryLater):
        update_process(update_pk=row.id)
    row.refresh_from_db()
    message = Message.objects.get(update=row)
    assert len(row.sent_message_ids) == 1 and message.delivered_at is None
    record_pending_usage()
    assert not UsageEvent.objects.filter(kind="message").exists()  # not delivered yet: not billed
    TelegramUpdate.objects.filter(id=row.id).update(not_before=None)
    from bots.ratelimit import local_cells_clear

    local_cells_clear()
    assert update_process(update_pk=row.id) == "done"
    ok = [c["params"]["text"] for c in telegram.calls("sendMessage") if c["status_code"] == 200]
    assert len(ok) >= 3 and len(ok) == len(set(ok))  # every part once, in order
    assert ok[0].startswith("Paragraph 0")
    message.refresh_from_db()
    assert message.delivered_at is not None and len(message.telegram_message_ids) == len(ok)
    record_pending_usage()
    assert UsageEvent.objects.filter(kind="message").count() == 1
    update_process(update_pk=row.id)  # a redelivery bills nothing more
    record_pending_usage()
    assert UsageEvent.objects.filter(kind="message").count() == 1


def test_an_answer_to_a_chat_that_blocked_the_bot_is_not_billed_and_gives_its_message_back(bot, telegram,
                                                                                          demo_kb, shared_data):
    inject(telegram, "403_bot_blocked_by_user.json")
    row = store(bot, make_update("how long do sharing links stay valid by default?", chat_id=5555))
    assert update_process(update_pk=row.id) == "done"
    message = Message.objects.get(update=row)
    assert message.delivered_at is None and "blocked" in message.delivery_error
    record_pending_usage()
    assert not UsageEvent.objects.filter(kind="message").exists()
    assert company_messages(bot.company) == 0  # the reserved message went back
    # A question it answers later is counted once.
    row2 = store(bot, make_update("what are your support hours?", chat_id=5556))
    assert update_process(update_pk=row2.id) == "done"
    record_pending_usage()
    assert UsageEvent.objects.filter(kind="message").count() == 1 and company_messages(bot.company) == 1


def test_telegram_outage_and_5xx_are_retried_later(bot, telegram, settings):
    telegram.fail_next("sendMessage", error_code=502, description="Bad Gateway")
    row = store(bot, make_update("/help", chat_id=5557, **HELP))
    with pytest.raises(RetryLater):
        update_process(update_pk=row.id)
    row.refresh_from_db()
    assert row.status == "pending" and row.attempts == 1
    settings.TELEGRAM_API_BASE_URL = "http://127.0.0.1:1"  # nothing listens: a connection error
    TelegramUpdate.objects.filter(id=row.id).update(not_before=None)
    with pytest.raises(RetryLater):
        update_process(update_pk=row.id)
    row.refresh_from_db()
    assert row.status == "pending" and "unreachable" in row.error


def test_a_group_that_became_a_supergroup_keeps_its_chat_and_conversations(bot, telegram, demo_kb, shared_data):
    old_id, new_id = -4000000001, -1001000000003
    question = make_update(f"@{bot.username} what are your support hours?", chat_id=old_id, chat_type="group",
                           entities=[{"type": "mention", "offset": 0, "length": len(bot.username) + 1}])
    telegram.migrate_chat(old_id, new_id)
    row = store(bot, question)
    assert update_process(update_pk=row.id) == "done"
    sent = telegram.sent_messages()
    assert [m["chat_id"] for m in sent] == [new_id]  # the answer went to the supergroup
    chat = Chat.objects.get(bot=bot)
    assert (chat.telegram_chat_id, chat.previous_chat_id, chat.type) == (new_id, old_id, "supergroup")
    conversation = Conversation.objects.get(chat=chat)
    # Telegram's own notice of the move (the stored real update) changes nothing more.
    notice = json.loads((shared_data / "telegram" / "updates" / "15_group_migrated_to_supergroup.json").read_text())
    assert update_process(update_pk=store(bot, notice).id) == "ignored"
    assert Chat.objects.filter(bot=bot).count() == 1
    # A late update from the old id is recognised: same chat, same conversation, answered in the supergroup.
    late = make_update(f"@{bot.username} and on weekends?", chat_id=old_id, chat_type="group",
                       entities=[{"type": "mention", "offset": 0, "length": len(bot.username) + 1}])
    assert update_process(update_pk=store(bot, late).id) == "done"
    assert telegram.sent_messages()[-1]["chat_id"] == new_id
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_the_migration_notice_first_moves_the_chat_before_any_answer(bot, telegram, shared_data):
    old_id, new_id = -4000000001, -1001000000003
    Chat.objects.create(company=bot.company, bot=bot, telegram_chat_id=old_id, type="group", title="Acme Team")
    notice = json.loads((shared_data / "telegram" / "updates" / "15_group_migrated_to_supergroup.json").read_text())
    assert update_process(update_pk=store(bot, notice).id) == "ignored"
    chat = Chat.objects.get(bot=bot)
    assert chat.telegram_chat_id == new_id and chat.previous_chat_id == old_id


def test_classify_reads_pythons_telegram_bot_exceptions():
    from telegram.error import BadRequest, NetworkError, TimedOut

    assert classify(BadRequest("Bad Request: chat not found")).kind == "chat_unreachable"
    assert classify(BadRequest("Bad Request: message is too long")).transient is False  # BadRequest is a NetworkError
    assert classify(TimedOut()).transient and classify(NetworkError("Bad Gateway")).transient
    assert classify(ValueError("x")) is None


def test_telegram_webhooks_sync_retries_each_bot_after_its_429_and_fails_loudly(company, telegram, settings,
                                                                                 capsys):
    from bots.lifecycle import bot_connect

    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    settings.TELEGRAM_SYNC_PACE_SECONDS = 0.05
    tokens = [f"71000000{n:02d}:AAFtestTokenForTheEmulatorOnly00000{n:02d}" for n in (11, 12, 13)]
    for n, token in enumerate(tokens):
        telegram.add_bot(token, username=f"sync{n}_bot")
        bot_connect(company=company, token=token, register_webhook=False)
    telegram.fail_next("setWebhook", error_code=429, retry_after=1, token=tokens[0])
    telegram.fail_next("setMyCommands", error_code=429, retry_after=2, token=tokens[1])
    telegram.fail_next("setWebhook", error_code=429, retry_after=600, token=tokens[2])
    with pytest.raises(CommandError) as failed:
        call_command("telegram_webhooks", "--sync", "--max-wait", "30")
    assert failed.value.returncode == 1
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if "_bot" in line}
    assert " ok " in lines["@sync0_bot"] and "429" in lines["@sync0_bot"]
    assert " ok " in lines["@sync1_bot"]
    assert "FAILED" in lines["@sync2_bot"] and "600" in lines["@sync2_bot"]
    for token in tokens[:2]:
        assert telegram.webhook(token)["url"].startswith("https://bots.example.com/telegram/webhook/")
        assert [c["status_code"] for c in telegram.calls("setMyCommands", token=token)][-1] == 200
    assert telegram.webhook(tokens[2]) is None
    retried = telegram.calls("setMyCommands", token=tokens[1])
    assert retried[1]["time"] - retried[0]["time"] >= 2  # retry_after honoured
    assert "3 bot(s), 1 with problems." in out


# --- a 429 on every other Bot API call (docs/telegram.md, "Telegram's 429 and long waits: one rule") -------

QUESTION = "what are your support hours?"


def test_a_short_429_on_typing_holds_the_chat_and_the_answer_waits_for_it(bot, telegram, demo_kb):
    # A warm answerer (model loaded) answers well within a second, inside the send slot reserved before typing.
    assert update_process(update_pk=store(bot, make_update(QUESTION, chat_id=5600)).id) == "done"
    telegram.reset()
    telegram.fail_next("sendChatAction", error_code=429, retry_after=2)
    row = store(bot, make_update(QUESTION, chat_id=5601))
    assert update_process(update_pk=row.id) == "done"
    typing, = telegram.calls("sendChatAction")  # best effort: not tried again
    sent, = telegram.calls("sendMessage")
    assert typing["status_code"] == 429 and sent["status_code"] == 200
    assert sent["time"] - typing["time"] >= 2  # the answer honoured the chat's retry_after (within the inline bound)
    record_pending_usage()
    assert UsageEvent.objects.filter(kind="message").count() == 2


def test_a_long_429_on_typing_defers_the_answer_to_the_database(bot, telegram, demo_kb, settings):
    from bots.tasks import process_update_task

    telegram.fail_next("sendChatAction", error_code=429, retry_after=600)
    row = store(bot, make_update(QUESTION, chat_id=5602))
    settings.CELERY_TASK_ALWAYS_EAGER = False  # as under a worker: a 600 s wait is no Celery countdown
    try:
        assert process_update_task.run(row.id) == "parked"
    finally:
        settings.CELERY_TASK_ALWAYS_EAGER = True
    row.refresh_from_db()
    assert row.status == "pending" and row.attempts == 0
    assert 590 <= (row.not_before - timezone.now()).total_seconds() <= 600
    assert telegram.calls("sendMessage") == []  # nothing went to the chat during Telegram's wait
    assert Message.objects.get(update=row).delivered_at is None
    record_pending_usage()
    assert not UsageEvent.objects.filter(kind="message").exists()


@pytest.mark.parametrize("method", ["getWebhookInfo", "deleteWebhook"])
def test_a_short_429_on_a_bot_level_call_is_waited_and_retried(bot, telegram, settings, method):
    from bots.lifecycle import bot_set_status
    from bots.telegram_setup import bot_register_webhook, bot_webhook_info

    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    url = bot_register_webhook(bot=bot)
    telegram.fail_next(method, error_code=429, retry_after=1)
    if method == "getWebhookInfo":
        assert bot_webhook_info(bot=bot)["url"] == url
    else:
        bot_set_status(bot=bot, active=False)
        bot.refresh_from_db()
        assert telegram.webhook(TEST_TOKEN) is None and bot.webhook_url == "" and bot.last_error == ""
    first, second = telegram.calls(method)
    assert (first["status_code"], second["status_code"]) == (429, 200)
    assert second["time"] - first["time"] >= 1  # retry_after honoured before the retry


@pytest.mark.parametrize("method", ["getWebhookInfo", "deleteWebhook"])
def test_a_long_429_on_a_bot_level_call_is_reported_with_the_seconds_left(bot, telegram, settings, method):
    from bots.lifecycle import bot_set_status
    from bots.telegram_setup import bot_delete_webhook, bot_register_webhook, bot_webhook_info
    from saas_bot.errors import ProviderUnavailable

    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    url = bot_register_webhook(bot=bot)
    telegram.fail_next(method, error_code=429, retry_after=600)
    call = (lambda: bot_webhook_info(bot=bot)) if method == "getWebhookInfo" else (lambda: bot_delete_webhook(bot=bot))
    if method == "getWebhookInfo":
        with pytest.raises(ProviderUnavailable) as told:
            call()
        assert told.value.code == "telegram_flood_wait" and told.value.detail["retry_after"] == 600
    else:  # disabling the bot records Telegram's answer for the admin; the webhook stays registered
        bot_set_status(bot=bot, active=False)
        bot.refresh_from_db()
        assert "600" in bot.last_error and "429" in bot.last_error
        assert telegram.webhook(TEST_TOKEN)["url"] == url and bot.webhook_url == url
    # Asked again during the wait: reported with the seconds left, Telegram is not called.
    with pytest.raises(ProviderUnavailable) as again:
        call()
    assert again.value.code == "telegram_flood_wait" and 590 <= again.value.detail["retry_after"] <= 600
    assert [c["status_code"] for c in telegram.calls(method)] == [429]


def test_telegram_webhooks_check_honours_a_429_on_getwebhookinfo(bot, telegram, settings, capsys):
    from bots.telegram_setup import bot_register_webhook

    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    bot_register_webhook(bot=bot)
    telegram.fail_next("getWebhookInfo", error_code=429, retry_after=2)
    call_command("telegram_webhooks", "--check")
    line, = [line for line in capsys.readouterr().out.splitlines() if TEST_USERNAME in line]
    assert " ok " in line and "429" in line
    first, second = telegram.calls("getWebhookInfo")
    assert second["status_code"] == 200 and second["time"] - first["time"] >= 2


def _press(bot, telegram, chat_id, button):
    """Answer a question in ``chat_id``, then press the answer's ``button`` (0 👍, 1 👎); returns the update row."""
    assert update_process(update_pk=store(bot, make_update(QUESTION, chat_id=chat_id)).id) == "done"
    data = telegram.sent_messages(chat_id=chat_id)[-1]["reply_markup"]["inline_keyboard"][0][button]["callback_data"]
    answer = Message.objects.get(conversation__chat__telegram_chat_id=chat_id)
    return store(bot, telegram.make_callback_update(TEST_TOKEN, chat_id, answer.telegram_message_ids[-1], data))


def test_a_short_429_on_a_buttons_notice_is_waited_and_the_notice_sent(bot, telegram, demo_kb):
    press = _press(bot, telegram, 5603, 0)
    telegram.fail_next("answerCallbackQuery", error_code=429, retry_after=2)
    assert update_process(update_pk=press.id) == "done"
    first, second = telegram.calls("answerCallbackQuery")
    assert (first["status_code"], second["status_code"]) == (429, 200) and "Thanks" in second["params"]["text"]
    assert second["time"] - first["time"] >= 2
    assert Message.objects.get(conversation__chat__telegram_chat_id=5603).feedback == 1


def test_a_long_429_on_a_buttons_notice_keeps_the_press_and_holds_the_chat(bot, telegram, demo_kb):
    press = _press(bot, telegram, 5604, 0)
    telegram.fail_next("answerCallbackQuery", error_code=429, retry_after=600)
    assert update_process(update_pk=press.id) == "done"  # the press is stored; only the notice is lost
    answer = Message.objects.get(conversation__chat__telegram_chat_id=5604)
    assert answer.feedback == 1
    # A second press during the wait changes the feedback and does not call Telegram.
    message_id = answer.telegram_message_ids[-1]
    again = store(bot, telegram.make_callback_update(TEST_TOKEN, 5604, message_id, f"fb:{answer.id}:-1"))
    assert update_process(update_pk=again.id) == "done"
    answer.refresh_from_db()
    assert answer.feedback == -1
    assert [c["status_code"] for c in telegram.calls("answerCallbackQuery")] == [429]
    # An answer to that chat waits for Telegram's 600 s too.
    question = store(bot, make_update("how long do sharing links stay valid by default?", chat_id=5604))
    with pytest.raises(RetryLater) as caught:
        update_process(update_pk=question.id)
    assert caught.value.countdown > 590 and len(telegram.sent_messages(chat_id=5604)) == 1


def test_telegram_webhooks_sync_spaces_the_calls_of_each_bot_token_by_the_pace(company, telegram, settings):
    from bots.lifecycle import bot_connect

    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    settings.TELEGRAM_SYNC_PACE_SECONDS = pace = 0.6
    tokens = [f"71000000{n:02d}:AAFtestTokenForTheEmulatorOnly00000{n:02d}" for n in (21, 22, 23)]
    for n, token in enumerate(tokens):
        telegram.add_bot(token, username=f"pace{n}_bot")
        bot_connect(company=company, token=token, register_webhook=False)
    telegram.reset()  # only the command's calls are counted
    call_command("telegram_webhooks", "--sync")
    calls = [c for c in telegram.requests if c["token"] in tokens]
    for token in tokens:
        mine = [c for c in calls if c["token"] == token]
        assert [c["method"] for c in mine] == ["setWebhook", "setMyCommands", "getWebhookInfo"]
        assert all(c["status_code"] == 200 for c in mine)
        gaps = [later["time"] - earlier["time"] for earlier, later in zip(mine, mine[1:])]
        assert min(gaps) >= pace, gaps
        # Paced per token, not one queue: another bot's calls go between two calls of this one.
        between = [c for c in calls if c["token"] != token and mine[0]["time"] < c["time"] < mine[1]["time"]]
        assert between
