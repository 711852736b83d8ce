"""The Telegram experience (issue 4): groups and topics, memory, commands, buttons, edits, hostile text, 401.

Every reply goes over HTTP to the Bot API emulator, which parses HTML entities as Telegram does and
answers with Telegram's own error texts.
"""
import datetime as dt
import json

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import UsageEvent
from bots.models import Bot, Chat, Conversation, Message, TelegramUpdate, TelegramUser
from bots.lifecycle import bot_replace_token
from saas_bot.testing.telegram_emulator import parse_html
from bots.inbox import update_process
from saas_bot.testing.pytest_plugin import (SHARED_DATA, TEST_BOT_ID, TEST_TOKEN, TEST_USERNAME, make_update,
                                    record_pending_usage)
from tenants.models import Membership

pytestmark = pytest.mark.django_db

GROUP = -1001234567890


def run(bot, update):
    row = TelegramUpdate.objects.create(company=bot.company, bot=bot, update_id=update["update_id"], payload=update)
    return update_process(update_pk=row.id)


def command(text, **kwargs):
    name = text.split()[0]
    return make_update(text, entities=[{"type": "bot_command", "offset": 0, "length": len(name)}], **kwargs)


def forum_update(text, thread_id, *, mention=True, user_id=42):
    body = f"@{TEST_USERNAME} {text}" if mention else text
    update = make_update(body, chat_id=GROUP, chat_type="supergroup", user_id=user_id,
                         entities=[{"type": "mention", "offset": 0, "length": len(TEST_USERNAME) + 1}]
                         if mention else None,
                         extra={"message_thread_id": thread_id, "is_topic_message": True})
    update["message"]["chat"]["is_forum"] = True
    return update


def test_group_answers_only_when_addressed_and_forum_topics_get_their_own_thread_and_memory(bot, telegram, demo_kb):
    plain = make_update("what are your support hours?", chat_id=GROUP, chat_type="supergroup")
    assert run(bot, plain) == "ignored" and telegram.sent_messages() == []
    replied = make_update("what are your support hours?", chat_id=GROUP, chat_type="supergroup", reply_to_bot=True)
    assert run(bot, replied) == "done"
    (answer,) = telegram.sent_messages()
    assert answer["reply_parameters"]["message_id"] == replied["message"]["message_id"]

    assert run(bot, forum_update("how long do sharing links stay valid by default?", thread_id=77)) == "done"
    in_topic = telegram.sent_messages()[-1]
    assert in_topic["message_thread_id"] == 77 and "30 days" in in_topic["text"]
    typing = telegram.calls("sendChatAction")[-1]["params"]
    assert typing["action"] == "typing" and typing["message_thread_id"] == 77
    chat = Chat.objects.get(telegram_chat_id=GROUP)
    assert chat.is_forum and chat.type == "supergroup"
    topics = Conversation.objects.filter(chat=chat)
    assert sorted(c.thread_id or 0 for c in topics) == [0, 77]  # the group and the topic: two memories
    assert TelegramUser.objects.filter(bot=bot, telegram_user_id=42).exists()


def test_follow_up_uses_the_conversation_memory_and_new_forgets_it(bot, telegram, demo_kb, llm):
    assert run(bot, make_update("how long do sharing links stay valid by default?")) == "done"
    assert run(bot, make_update("and can I change it?")) == "done"
    follow_up_prompt = llm.requests[-1]["messages"][-1]["content"]
    assert "Earlier in this conversation" in follow_up_prompt and "sharing links" in follow_up_prompt
    private = Chat.objects.get(telegram_chat_id=5550001)
    assert Conversation.objects.filter(chat=private).count() == 1

    assert run(bot, command("/new")) == "done"
    assert "new conversation" in telegram.sent_messages()[-1]["text"]
    asked = len(llm.requests)
    run(bot, make_update("what are your support hours?"))
    assert len(llm.requests) == asked + 1
    assert "Earlier in this conversation" not in llm.requests[-1]["messages"][-1]["content"]
    assert Conversation.objects.filter(chat=private).count() == 2
    assert Conversation.objects.filter(chat=private, ended_at__isnull=False).count() == 1
    # Memory never crosses chats: the group's conversation starts empty.
    run(bot, make_update(f"@{TEST_USERNAME} how long do sharing links stay valid by default?", chat_id=GROUP,
                         chat_type="group",
                         entities=[{"type": "mention", "offset": 0, "length": len(TEST_USERNAME) + 1}]))
    assert len(llm.requests) == asked + 2
    assert "Earlier in this conversation" not in llm.requests[-1]["messages"][-1]["content"]


def test_extractive_follow_up_is_answered_from_the_previous_question(bot, telegram, demo_kb):
    run(bot, make_update("how long do sharing links stay valid by default?"))
    run(bot, make_update("and with a password?"))
    follow_up = Message.objects.order_by("-id").first()
    assert follow_up.status == "answered" and follow_up.sources[0]["document"] == "sharing-links.md"


def test_idle_conversation_ends_after_the_bots_idle_time(bot, telegram, demo_kb):
    run(bot, make_update("how long do sharing links stay valid by default?"))
    first = Conversation.objects.get()
    Conversation.objects.filter(id=first.id).update(
        last_message_at=first.last_message_at - dt.timedelta(minutes=bot.conversation_idle_minutes + 1))
    run(bot, make_update("what are your support hours?"))
    first.refresh_from_db()
    assert first.ended_at is not None and Conversation.objects.count() == 2


def test_answer_has_feedback_and_sources_buttons_that_work(bot, telegram, demo_kb):
    run(bot, make_update("what are your support hours?"))
    sent = telegram.sent_messages()[-1]
    buttons = sent["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == ["👍", "👎", "Sources"]
    message = Message.objects.get()
    assert message.telegram_message_ids and message.feedback is None
    answer_id = message.telegram_message_ids[-1]

    down = telegram.make_callback_update(TEST_TOKEN, 5550001, answer_id, buttons[1]["callback_data"])
    assert run(bot, down) == "done"
    message.refresh_from_db()
    assert message.feedback == -1 and message.feedback_at is not None
    answered = telegram.calls("answerCallbackQuery")[-1]
    assert answered["status_code"] == 200 and "Thanks" in answered["params"]["text"]

    sources = telegram.make_callback_update(TEST_TOKEN, 5550001, answer_id, buttons[2]["callback_data"])
    run(bot, sources)
    listing = telegram.sent_messages()[-1]
    text, entities = parse_html(listing["text"])
    assert text.startswith("Sources:") and "Contacting Acme Support" in text and entities
    assert listing["reply_parameters"]["message_id"] == answer_id
    assert telegram.calls("answerCallbackQuery")[-1]["status_code"] == 200

    # A forged press naming another chat's answer changes nothing and is still answered.
    forged = telegram.make_callback_update(TEST_TOKEN, 5550001, answer_id, f"fb:{message.id + 999}:1")
    run(bot, forged)
    message.refresh_from_db()
    assert message.feedback == -1 and "no longer works" in telegram.calls("answerCallbackQuery")[-1]["params"]["text"]
    huge = telegram.make_callback_update(TEST_TOKEN, 5550001, answer_id, "fb:99999999999999999999999:1")
    assert run(bot, huge) == "done"
    assert "no longer works" in telegram.calls("answerCallbackQuery")[-1]["params"]["text"]


def test_sources_command_and_usage_command(make_company, telegram):
    from bots.lifecycle import bot_connect
    from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder

    company = make_company("acme", max_messages_per_period=100, max_messages_per_end_user_per_day=3)
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username=TEST_USERNAME, first_name="Acme Test")
    bot = bot_connect(company=company, token=TEST_TOKEN, register_webhook=False)
    run(bot, command("/sources"))
    assert "not answered anything" in telegram.sent_messages()[-1]["text"]
    ingest_folder(company, DEMO_DIR / "kb")
    run(bot, make_update("what are your support hours?"))
    run(bot, command("/sources"))
    assert "Contacting Acme Support" in telegram.sent_messages()[-1]["text"]
    run(bot, command("/usage"))
    assert "2 of 3 questions left today" in telegram.sent_messages()[-1]["text"]


def test_connecting_a_bot_registers_its_command_menu(company, telegram, django_capture_on_commit_callbacks):
    from bots.lifecycle import bot_connect

    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username=TEST_USERNAME, first_name="Acme Test")
    with django_capture_on_commit_callbacks(execute=True):
        bot_connect(company=company, token=TEST_TOKEN)
    names = [c["command"] for c in telegram.commands(TEST_TOKEN)]
    assert names == ["start", "help", "new", "usage", "sources"]


def test_edited_question_gets_one_polite_note_unless_the_bot_answers_edits(bot, telegram, demo_kb):
    original = make_update("what are your support hours?")
    run(bot, original)
    edit = {"update_id": original["update_id"] + 1000,
            "edited_message": dict(original["message"], text="what are your opening hours?", edit_date=1767225700)}
    assert run(bot, edit) == "done"
    assert "not edits" in telegram.sent_messages()[-1]["text"]
    again = {"update_id": edit["update_id"] + 1, "edited_message": dict(edit["edited_message"], text="hours?")}
    assert run(bot, again) == "ignored"  # one note per message, not one per edit
    Bot.objects.filter(id=bot.id).update(edited_messages=Bot.EditedMessages.ANSWER)
    bot.refresh_from_db()
    third = {"update_id": edit["update_id"] + 2,
             "edited_message": dict(edit["edited_message"], text="what are your support hours, please?")}
    assert run(bot, third) == "done"
    assert "08:00" in telegram.sent_messages()[-1]["text"]
    assert Message.objects.count() == 2


def test_non_text_messages_get_a_short_reply(bot, telegram):
    photo = make_update(None, extra={"photo": [{"file_id": "p1", "file_unique_id": "u1", "width": 90,
                                                "height": 90}]})
    assert run(bot, photo) == "done" and "text questions" in telegram.sent_messages()[-1]["text"]
    sticker_in_group = make_update(None, chat_id=GROUP, chat_type="group", extra={"sticker": {
        "file_id": "s1", "file_unique_id": "s1", "type": "regular", "width": 512, "height": 512,
        "is_animated": False, "is_video": False}})
    assert run(bot, sticker_in_group) == "ignored"
    shared = SHARED_DATA / "telegram" / "updates"
    if shared.exists():
        for name in ("13_message_photo.json", "14_message_voice.json", "12_message_document_pdf.json"):
            update = json.loads((shared / name).read_text())
            assert run(bot, update) in ("done", "ignored")


def test_blocked_chat_gets_nothing_until_it_writes_again(bot, telegram, demo_kb):
    run(bot, make_update("what are your support hours?"))
    blocked = {"update_id": 990001, "my_chat_member": {
        "chat": {"id": 5550001, "type": "private", "first_name": "Alice"},
        "from": {"id": 5550001, "is_bot": False, "first_name": "Alice"}, "date": 1767225600,
        "old_chat_member": {"user": {"id": TEST_BOT_ID, "is_bot": True, "first_name": "Acme"}, "status": "member"},
        "new_chat_member": {"user": {"id": TEST_BOT_ID, "is_bot": True, "first_name": "Acme"}, "status": "kicked",
                            "until_date": 0}}}
    run(bot, blocked)
    assert Chat.objects.get().is_blocked
    before = len(telegram.calls("sendMessage"))
    from bots.delivery import Undeliverable, Where, send
    from bots.formatting import Part

    with pytest.raises(Undeliverable):
        send(bot, Where(chat=Chat.objects.get()), [Part(html="x", plain="x")])
    assert len(telegram.calls("sendMessage")) == before  # not even tried


def test_revoked_token_disables_the_bot_tells_the_admins_and_a_new_token_keeps_history(bot, telegram, demo_kb,
                                                                                      django_user_model):
    owner = django_user_model.objects.create_user("owner", email="owner@acme.test", password="x", is_staff=True)
    Membership.objects.create(user=owner, company=bot.company, role=Membership.Role.OWNER)
    run(bot, make_update("what are your support hours?"))
    telegram.revoke_bot(TEST_TOKEN)
    assert run(bot, make_update("how long do sharing links stay valid by default?")) == "failed"
    bot.refresh_from_db()
    assert bot.status == "token_revoked" and "401" in bot.last_error
    (email,) = mail.outbox
    assert email.to == ["owner@acme.test"] and "revoked" in email.subject
    run(bot, make_update("what are your support hours?"))
    assert len(mail.outbox) == 1  # told once

    new_token = "7100000001:AAFaNewTokenAfterRevokeInBotFather00002"
    telegram.add_bot(new_token, id=TEST_BOT_ID, username=TEST_USERNAME, first_name="Acme Test")
    bot_replace_token(bot=bot, token=new_token)
    bot.refresh_from_db()
    assert bot.status == "active" and bot.token_hint.endswith("0002")
    assert Message.objects.filter(bot=bot).count() >= 1 and Chat.objects.filter(bot=bot).count() == 1
    assert run(bot, make_update("what are your support hours?")) == "done"
    assert telegram.sent_messages(token=new_token)
    other = "7200000002:AAFsomeOtherBotsTokenNotThisOne0000000003"
    telegram.add_bot(other, id=7200000002, username="other_bot", first_name="Other")
    from saas_bot.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as wrong:
        bot_replace_token(bot=bot, token=other)
    assert wrong.value.code == "bot_token_other_bot"


HOSTILE = ("Use <b>bold</b> & <i>tags</i> like <script>alert(1)</script> or a < b > c; "
           "markdown *unclosed _under [link](http://x and `code; emoji 🤖👍🏽 and RTL: "
           "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u200f; entity &amp; literal &lt;")


def test_hostile_text_is_delivered_as_html_without_a_parse_error(bot, telegram, demo_kb, llm):
    llm.respond_with(HOSTILE)
    assert run(bot, make_update("what are your support hours?")) == "done"
    calls = telegram.calls("sendMessage")
    assert [c["status_code"] for c in calls] == [200]  # accepted first time: no plain-text fallback
    assert calls[0]["params"]["parse_mode"] == "HTML"
    text, _ = parse_html(calls[0]["params"]["text"])
    assert HOSTILE in text


def test_a_10000_character_answer_is_split_at_boundaries_with_formatting_intact(bot, telegram, demo_kb, llm,
                                                                                   settings):
    settings.LLM_MAX_COMPLETION_TOKENS = 4000  # the stub, like the API, stops at max_tokens
    sentence = "Sharing links <expire> after 30 days & can be renewed by the owner of the file. "
    paragraphs = ["".join(sentence for _ in range(12)).strip() for _ in range(11)]
    long_answer = "\n\n".join(paragraphs)[:10000]
    assert len(long_answer) >= 9500
    llm.respond_with(long_answer)
    run(bot, make_update("how long do sharing links stay valid by default?"))
    calls = telegram.calls("sendMessage")
    assert len(calls) >= 3 and all(c["status_code"] == 200 for c in calls)
    texts = [parse_html(c["params"]["text"])[0] for c in calls]
    assert all(len(t) <= 4096 for t in texts)
    assert all(t.rstrip().endswith((".", "s")) or "Sources" in t for t in texts)  # sentence boundaries
    body = " ".join(" ".join(t.split()) for t in texts)
    assert " ".join(long_answer.split()) in body
    assert "reply_markup" in calls[-1]["params"] and all("reply_markup" not in c["params"] for c in calls[:-1])


def test_429_on_a_later_part_finishes_the_answer_instead_of_resending(bot, telegram, demo_kb, llm, settings):
    settings.LLM_MAX_COMPLETION_TOKENS = 4000
    llm.respond_with("\n\n".join([f"Paragraph {n} of a long answer. " * 100 for n in range(3)]))
    telegram.fail_next("sendMessage", error_code=429, retry_after=2, after=1)
    assert run(bot, make_update("how long do sharing links stay valid by default?")) == "done"
    calls = telegram.calls("sendMessage")
    assert [c["status_code"] for c in calls[:3]] == [200, 429, 200]
    assert calls[2]["time"] - calls[1]["time"] >= 2  # retry_after honoured
    ok = [c for c in calls if c["status_code"] == 200]
    assert len(ok) >= 3 and len(ok) == len({c["params"]["text"] for c in ok})  # no part twice
    record_pending_usage()
    assert UsageEvent.objects.filter(kind="message").count() == 1


def test_telegram_webhooks_command_syncs_and_checks(bot, telegram, settings, capsys):
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    call_command("telegram_webhooks", "--sync")
    out = capsys.readouterr().out
    assert f"@{TEST_USERNAME}" in out and "https://bots.example.com/telegram/webhook/" in out
    assert telegram.webhook(TEST_TOKEN)["url"].startswith("https://bots.example.com/telegram/webhook/")
    telegram.set_webhook_error(TEST_TOKEN, "Wrong response from the webhook: 502 Bad Gateway")
    with pytest.raises(CommandError):  # a bot with a problem: exit status 1, for monitoring
        call_command("telegram_webhooks", "--check")
    out = capsys.readouterr().out
    assert "502 Bad Gateway" in out and "pending" in out
    settings.PUBLIC_BASE_URL = ""  # the variable unset: said in words, not a bare MISMATCH (new-user trial)
    with pytest.raises(CommandError):
        call_command("telegram_webhooks", "--check")
    out = capsys.readouterr().out
    assert "NO-BASE" in out and "PUBLIC_BASE_URL is not set" in out and "MISMATCH" not in out
