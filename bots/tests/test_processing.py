"""Processing stored updates: routing, replies through the emulator over HTTP, failures."""
import pytest

from billing.models import UsageEvent
from bots.models import Chat, Message, TelegramUpdate
from bots.delivery import RetryLater
from bots.inbox import update_process
from saas_bot.testing.pytest_plugin import TEST_USERNAME, make_update, record_pending_usage

pytestmark = pytest.mark.django_db


def store(bot, update):
    return TelegramUpdate.objects.create(company=bot.company, bot=bot, update_id=update["update_id"], payload=update)


def test_start_sends_welcome_and_keeps_deep_link(bot, telegram):
    update = make_update("/start promo-42", entities=[{"type": "bot_command", "offset": 0, "length": 6}])
    assert update_process(update_pk=store(bot, update).id) == "done"
    (sent,) = telegram.sent_messages()
    assert sent["text"] == bot.welcome_text
    assert Chat.objects.get(bot=bot).start_param == "promo-42"


def test_help_command(bot, telegram):
    update = make_update("/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    update_process(update_pk=store(bot, update).id)
    assert telegram.sent_messages()[0]["text"] == bot.help_text


def test_private_question_is_answered_with_sources_and_metered_once(bot, telegram, demo_kb):
    update = make_update("how long do sharing links stay valid by default?")
    row = store(bot, update)
    assert update_process(update_pk=row.id) == "done"
    sent = telegram.sent_messages()
    assert len(sent) == 1 and sent[0]["parse_mode"] == "HTML"
    assert "30 days" in sent[0]["text"] and "Sources:" in sent[0]["text"]
    assert "sharing" in sent[0]["text"].lower()
    message = Message.objects.get(update=row)
    assert message.status == "answered" and message.sources[0]["document"] == "sharing-links.md"
    assert message.delivered_at is not None
    record_pending_usage()
    assert UsageEvent.objects.filter(idempotency_key=f"tg:{bot.id}:{update['update_id']}").count() == 1
    # A second run of the same update (Celery redelivery) sends nothing and records nothing.
    TelegramUpdate.objects.filter(id=row.id).update(status="pending")
    update_process(update_pk=row.id)
    record_pending_usage()
    assert len(telegram.sent_messages()) == 1
    assert UsageEvent.objects.filter(kind="message").count() == 1 and Message.objects.count() == 1


def test_unanswerable_question_says_it_does_not_know(bot, telegram, demo_kb):
    update_process(update_pk=store(bot, make_update("what is the best pizza topping in naples?")).id)
    text = telegram.sent_messages()[0]["text"]
    assert "don't know" in text and "Sources" not in text
    assert Message.objects.get().status == "not_found"


def test_unparseable_update_is_failed_with_reason_not_retried(bot, telegram):
    row = store(bot, {"update_id": 77, "message": {"message_id": "not-an-int", "chat": "nope"}})
    assert update_process(update_pk=row.id) == "failed"
    row.refresh_from_db()
    assert "could not parse" in row.error and row.attempts == 1
    assert update_process(update_pk=row.id) == "skipped"  # failed rows are not taken again


def test_other_update_kinds_are_ignored_without_error(bot, telegram):
    row = store(bot, {"update_id": 78, "channel_post": {"message_id": 1, "date": 1, "chat": {"id": -100, "type": "channel"},
                                                         "text": "news"}})
    assert update_process(update_pk=row.id) == "ignored"
    assert telegram.sent_messages() == []


def test_group_message_without_mention_is_ignored_and_mention_is_answered(bot, telegram, demo_kb):
    chat = -1001234
    plain = make_update("how long do sharing links stay valid?", chat_id=chat, chat_type="supergroup")
    assert update_process(update_pk=store(bot, plain).id) == "ignored"
    text = f"hey @{TEST_USERNAME} how long do sharing links stay valid?"
    mention = make_update(text, chat_id=chat, chat_type="supergroup",
                          entities=[{"type": "mention", "offset": 4, "length": len(TEST_USERNAME) + 1}])
    assert update_process(update_pk=store(bot, mention).id) == "done"
    sent = telegram.sent_messages(chat_id=chat)
    assert len(sent) == 1 and sent[0]["reply_parameters"]["message_id"] == mention["message"]["message_id"]


def test_reply_to_the_bot_in_a_group_is_answered(bot, telegram, demo_kb):
    update = make_update("and how long for the trash?", chat_id=-1005, chat_type="group", reply_to_bot=True)
    assert update_process(update_pk=store(bot, update).id) == "done"
    assert telegram.sent_messages(chat_id=-1005)


def test_429_retry_after_is_honoured(bot, telegram):
    telegram.fail_next("sendMessage", error_code=429, retry_after=1)
    update = make_update("/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    assert update_process(update_pk=store(bot, update).id) == "done"
    calls = telegram.calls("sendMessage")
    assert [c["status_code"] for c in calls] == [429, 200]
    assert calls[1]["time"] - calls[0]["time"] >= 0.95


def test_long_retry_after_goes_back_to_the_queue(bot, telegram):
    telegram.fail_next("sendMessage", error_code=429, retry_after=30)
    update = make_update("/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    row = store(bot, update)
    with pytest.raises(RetryLater) as caught:
        update_process(update_pk=row.id)
    assert caught.value.countdown == 30
    row.refresh_from_db()
    assert row.status == "pending"


def test_blocked_chat_is_marked_and_not_retried(bot, telegram):
    update = make_update("/help", chat_id=5559, entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    telegram.block_chat(5559)
    assert update_process(update_pk=store(bot, update).id) == "done"
    assert Chat.objects.get(telegram_chat_id=5559).is_blocked
    assert len(telegram.calls("sendMessage")) == 1


def test_my_chat_member_kicked_marks_blocked(bot, telegram):
    payload = {"update_id": 90, "my_chat_member": {
        "chat": {"id": 5560, "type": "private", "first_name": "Al"}, "date": 1,
        "from": {"id": 5560, "is_bot": False, "first_name": "Al"},
        "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True, "first_name": "B"}},
        "new_chat_member": {"status": "kicked", "until_date": 0, "user": {"id": 1, "is_bot": True, "first_name": "B"}}}}
    assert update_process(update_pk=store(bot, payload).id) == "done"
    assert Chat.objects.get(telegram_chat_id=5560).is_blocked


def test_rejected_formatting_falls_back_to_plain_text(bot, telegram, demo_kb):
    telegram.fail_next("sendMessage", error_code=400,
                       description="Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 3")
    update_process(update_pk=store(bot, make_update("how long do sharing links stay valid?")).id)
    calls = telegram.calls("sendMessage")
    assert calls[0]["status_code"] == 400 and calls[1]["status_code"] == 200
    assert "parse_mode" not in calls[1]["params"] and "<b>" not in calls[1]["params"]["text"]


def test_revoked_token_disables_the_bot(bot, telegram):
    telegram.revoke_bot("7100000001:AAFtestTokenForTheEmulatorOnly0000001")
    update = make_update("/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    assert update_process(update_pk=store(bot, update).id) == "failed"
    bot.refresh_from_db()
    assert bot.status == "token_revoked"


def test_photo_in_private_gets_a_text_only_reply(bot, telegram):
    update = make_update(None, extra={"photo": [{"file_id": "a", "file_unique_id": "b", "width": 1, "height": 1}]})
    assert update_process(update_pk=store(bot, update).id) == "done"
    assert "text questions" in telegram.sent_messages()[0]["text"]


def test_shared_real_updates_never_fail(bot, telegram, shared_data):
    """Every captured Update of ../shared/data/telegram/updates is processed without a failure."""
    import json

    for number, path in enumerate(sorted((shared_data / "telegram" / "updates").glob("*.json"))):
        payload = json.loads(path.read_text())
        row = store(bot, payload)
        status = update_process(update_pk=row.id)
        row.refresh_from_db()
        assert status in ("done", "ignored"), (path.name, row.error)
