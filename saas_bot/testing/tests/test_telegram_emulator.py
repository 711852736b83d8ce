"""The Telegram Bot API emulator, driven by a real python-telegram-bot ``Bot`` over HTTP.

No database and no Django: run with ``pytest -p no:django`` or under the project's settings.
"""
from __future__ import annotations

import asyncio
import datetime as dtm
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter
from telegram.request import HTTPXRequest

from saas_bot.testing.telegram_emulator import EmulatorClient, TelegramEmulator, parse_html, utf16_len

TOKEN = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
OTHER_TOKEN = "7000000002:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsbw"
CHAT = 5000000001
T = TypeVar("T")
# python-telegram-bot 22 warns about RetryAfter.retry_after becoming a timedelta when it builds
# the exception itself; that is its migration notice, not something these tests cause.
ignore_ptb_timedelta_notice = pytest.mark.filterwarnings(
    "ignore:.*will be of type `datetime.timedelta`")


@pytest.fixture
def tg() -> Iterator[TelegramEmulator]:
    with TelegramEmulator() as emulator:
        emulator.add_bot(TOKEN, id=7000000001, username="acme_support_bot",
                         first_name="Acme Support")
        yield emulator


# Building an SSL context (loading the CA bundle) is most of a Bot's start-up time; sharing one
# keeps the suite fast without changing how requests are encoded.
_SSL_CONTEXT = ssl.create_default_context()


def make_bot(tg: TelegramEmulator, token: str = TOKEN, *, as_in_project: bool = False) -> Bot:
    """A real python-telegram-bot ``Bot`` aimed at the emulator.

    ``as_in_project``: built exactly as the project builds it (default HTTPXRequest objects).
    """
    urls = {"base_url": f"{tg.base_url}/bot", "base_file_url": f"{tg.base_url}/file/bot"}
    if as_in_project:
        return Bot(token, **urls)
    return Bot(token, **urls,
               request=HTTPXRequest(httpx_kwargs={"verify": _SSL_CONTEXT}),
               get_updates_request=HTTPXRequest(httpx_kwargs={"verify": _SSL_CONTEXT}))


def run(tg: TelegramEmulator, func: Callable[[Bot], Awaitable[T]], token: str = TOKEN, *,
        as_in_project: bool = False) -> T:
    """Run ``func(bot)`` inside ``async with bot`` (which itself calls getMe)."""
    async def main() -> T:
        async with make_bot(tg, token, as_in_project=as_in_project) as bot:
            return await func(bot)
    return asyncio.run(main())


def last_response(tg: TelegramEmulator, method: str) -> dict[str, Any]:
    return tg.calls(method)[-1]["response"]


def seconds(value: int | dtm.timedelta) -> int:
    return int(value.total_seconds()) if isinstance(value, dtm.timedelta) else int(value)


# -- identity and webhooks ------------------------------------------------------------------

def test_get_me_returns_the_registered_bot(tg: TelegramEmulator) -> None:
    me = run(tg, lambda bot: bot.get_me(), as_in_project=True)

    assert (me.id, me.username, me.first_name, me.is_bot) == \
        (7000000001, "acme_support_bot", "Acme Support", True)
    calls = tg.calls("getMe")
    assert len(calls) == 2  # Bot.initialize() calls getMe too
    assert calls[0]["token"] == TOKEN and calls[0]["status_code"] == 200
    assert calls[0]["response"]["result"]["username"] == "acme_support_bot"


def test_set_webhook_with_secret_then_get_webhook_info(tg: TelegramEmulator) -> None:
    url = "https://bots.example.com/tg/webhook/7000000001/"

    async def scenario(bot: Bot) -> tuple[Any, ...]:
        assert await bot.set_webhook(url, secret_token="s3cr3t_T0k-en",
                                     allowed_updates=["message", "callback_query"],
                                     max_connections=10)
        first = await bot.get_webhook_info()
        tg.set_webhook_error(TOKEN, "Wrong response from the webhook: 500 Internal Server Error",
                             date=1767229200)
        second = await bot.get_webhook_info()
        assert await bot.delete_webhook()
        third = await bot.get_webhook_info()
        return first, second, third

    first, second, third = run(tg, scenario)

    assert first.url == url and first.has_custom_certificate is False
    assert first.pending_update_count == 0 and first.max_connections == 10
    assert first.allowed_updates == ("message", "callback_query")
    assert first.last_error_message is None and first.last_error_date is None
    assert tg.webhook(TOKEN) is None  # deleted at the end
    assert second.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert second.last_error_date == dtm.datetime(2026, 1, 1, 1, 0, tzinfo=dtm.timezone.utc)
    assert third.url == ""
    assert last_response(tg, "setWebhook") == {"ok": True, "result": True,
                                                "description": "Webhook was set"}
    assert tg.calls("setWebhook")[0]["params"]["secret_token"] == "s3cr3t_T0k-en"
    assert tg.calls("setWebhook")[0]["params"]["allowed_updates"] == ["message", "callback_query"]


@pytest.mark.parametrize(("secret", "detail"), [
    ("bad secret!", "secret token contains unallowed characters"),
    ("x" * 257, "secret token is too long"),
])
def test_set_webhook_rejects_bad_secret_tokens(tg: TelegramEmulator, secret: str,
                                               detail: str) -> None:
    with pytest.raises(BadRequest) as excinfo:
        run(tg, lambda bot: bot.set_webhook("https://example.com/hook", secret_token=secret))

    assert detail in str(excinfo.value).lower()
    assert last_response(tg, "setWebhook") == {
        "ok": False, "error_code": 400, "description": f"Bad Request: {detail}"}
    assert tg.webhook(TOKEN) is None


def test_secret_token_of_256_allowed_characters_is_accepted(tg: TelegramEmulator) -> None:
    secret = ("Az09_-" * 43)[:256]
    assert run(tg, lambda bot: bot.set_webhook("https://example.com/hook", secret_token=secret))
    assert tg.webhook(TOKEN)["secret_token"] == secret


# -- sendMessage ----------------------------------------------------------------------------

def test_send_html_message_returns_telegram_message(tg: TelegramEmulator) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("👍", callback_data="feedback:up:1"),
                                    InlineKeyboardButton("👎", callback_data="feedback:down:1")]])
    html = 'Hi 👋🏽 <b>bold</b> &amp; <a href="https://example.com/faq?a=1&amp;b=2">FAQ</a>'

    async def scenario(bot: Bot) -> list[Any]:
        first = await bot.send_message(CHAT, html, parse_mode="HTML", reply_markup=markup)
        second = await bot.send_message(CHAT, "second")
        other_chat = await bot.send_message(-1001000000001, "to the group")
        return [first, second, other_chat]

    first, second, other_chat = run(tg, scenario)

    assert first.text == "Hi 👋🏽 bold & FAQ"
    # Offsets in UTF-16 code units: "Hi 👋🏽 " is 3 + 2 + 2 + 1 = 8 units.
    assert [(e.type, e.offset, e.length) for e in first.entities] == \
        [("bold", 8, 4), ("text_link", 15, 3)]
    assert first.entities[1].url == "https://example.com/faq?a=1&b=2"
    assert first.from_user.id == 7000000001 and first.from_user.is_bot
    assert first.chat.id == CHAT and first.chat.type == "private"
    assert first.reply_markup == markup
    assert (first.message_id, second.message_id, other_chat.message_id) == (1, 2, 1)
    assert other_chat.chat.type == "supergroup"

    sent = tg.sent_messages(chat_id=CHAT)
    assert [m["text"] for m in sent] == [html, "second"]
    assert sent[0]["chat_id"] == CHAT and sent[0]["parse_mode"] == "HTML"
    assert sent[0]["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "feedback:down:1"
    assert tg.sent_messages(token=TOKEN, chat_id=str(-1001000000001))[0]["text"] == "to the group"
    # python-telegram-bot posts form-encoded bodies with JSON-encoded objects inside.
    assert tg.calls("sendMessage")[0]["content_type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(("text", "description"), [
    ("1 < 2 is true", 'Bad Request: can\'t parse entities: Unsupported start tag "" at byte '
                      "offset 2"),
    ("<b>bold", 'Bad Request: can\'t parse entities: Can\'t find end tag corresponding to start '
                'tag "b"'),
    ("<b>x <i>y</b></i>", "Bad Request: can't parse entities: Unmatched end tag at byte offset "
                          '9, expected "</i>", found "</b>"'),
    ("<p>para</p>", 'Bad Request: can\'t parse entities: Unsupported start tag "p" at byte '
                    "offset 0"),
    ("<span>x</span>", 'Bad Request: can\'t parse entities: Tag "span" must have class '
                       '"tg-spoiler" at byte offset 0'),
    ("Q&A", "Bad Request: can't parse entities: Unsupported HTML entity at byte offset 1"),
    ("é<b", "Bad Request: can't parse entities: Unclosed start tag at byte offset 2"),
])
def test_html_parse_errors_raise_bad_request(tg: TelegramEmulator, text: str,
                                             description: str) -> None:
    with pytest.raises(BadRequest) as excinfo:
        run(tg, lambda bot: bot.send_message(CHAT, text, parse_mode="HTML"))

    assert "can't parse entities" in str(excinfo.value).lower()
    assert last_response(tg, "sendMessage") == {"ok": False, "error_code": 400,
                                                 "description": description}
    assert tg.sent_messages() == []


def test_html_supports_every_documented_tag() -> None:
    text, entities = parse_html(
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>"
        "<strike>k</strike><del>d</del><span class=\"tg-spoiler\">p</span><tg-spoiler>q"
        "</tg-spoiler><a href=\"https://e.com\">a</a><code>c</code><pre>p</pre>"
        "<blockquote>z</blockquote><tg-emoji emoji-id=\"5368324170671202286\">👍</tg-emoji>"
        "<pre><code class=\"language-python\">x = 1</code></pre>")
    assert text == "bsieunskdpqacpz👍x = 1"  # 👍 is two UTF-16 units: the pre starts at 17
    assert [e["type"] for e in entities] == [
        "bold", "bold", "italic", "italic", "underline", "underline", "strikethrough",
        "strikethrough", "strikethrough", "spoiler", "spoiler", "text_link", "code", "pre",
        "blockquote", "custom_emoji", "pre"]
    assert entities[-1] == {"offset": 17, "length": 5, "type": "pre", "language": "python"}


def test_markdown_v2_reserved_character_is_rejected_like_telegram(tg: TelegramEmulator) -> None:
    with pytest.raises(BadRequest):
        run(tg, lambda bot: bot.send_message(CHAT, "See the docs.", parse_mode="MarkdownV2"))

    assert last_response(tg, "sendMessage")["description"] == (
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with "
        "the preceding '\\'")


def test_markdown_v2_escaped_text_and_entities_are_accepted(tg: TelegramEmulator) -> None:
    message = run(tg, lambda bot: bot.send_message(
        CHAT, r"*Bold* _it_ [docs](https://example.com/a\)b) `x.y` 2\*3\=6\.",
        parse_mode="MarkdownV2"))

    assert message.text == "Bold it docs x.y 2*3=6."
    assert [(e.type, e.offset, e.length) for e in message.entities] == \
        [("bold", 0, 4), ("italic", 5, 2), ("text_link", 8, 4), ("code", 13, 3)]
    assert message.entities[2].url == "https://example.com/a)b"


def test_markdown_v2_unclosed_entity_reports_its_byte_offset(tg: TelegramEmulator) -> None:
    with pytest.raises(BadRequest):
        run(tg, lambda bot: bot.send_message(CHAT, r"Привет *мир", parse_mode="MarkdownV2"))

    # "Привет " is 13 bytes in UTF-8: TDLib reports byte, not character, offsets.
    assert last_response(tg, "sendMessage")["description"] == \
        "Bad Request: can't parse entities: Can't find end of Bold entity at byte offset 13"


@pytest.mark.parametrize(("text", "parse_mode", "ok"), [
    ("a" * 4096, None, True),
    ("a" * 4097, None, False),
    ("<b>" + "a" * 4096 + "</b>", "HTML", True),          # tags do not count
    ("&amp;" * 4096, "HTML", True),                        # an entity is one character
    ("&amp;" * 4097, "HTML", False),
    ("😀" * 2048, None, True),                             # 4096 UTF-16 code units
    ("😀" * 2049, None, False),                            # 2049 code points, 4098 units
])
def test_message_length_is_counted_in_utf16_after_entity_parsing(
        tg: TelegramEmulator, text: str, parse_mode: str | None, ok: bool) -> None:
    send = lambda bot: bot.send_message(CHAT, text, parse_mode=parse_mode)  # noqa: E731
    if ok:
        assert utf16_len(run(tg, send).text) == 4096
        return
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        run(tg, send)
    assert last_response(tg, "sendMessage")["description"] == "Bad Request: message is too long"


@pytest.mark.parametrize("text", ["   ", "<b></b>", "<i> </i>"])
def test_empty_text_after_parsing_is_rejected(tg: TelegramEmulator, text: str) -> None:
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        run(tg, lambda bot: bot.send_message(CHAT, text, parse_mode="HTML"))


def test_oversized_callback_data_is_rejected(tg: TelegramEmulator) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        run(tg, lambda bot: bot.send_message(CHAT, "hi", reply_markup=markup))


# -- failures -------------------------------------------------------------------------------

@ignore_ptb_timedelta_notice
def test_injected_429_raises_retry_after_then_recovers(tg: TelegramEmulator) -> None:
    tg.fail_next("sendMessage", error_code=429, retry_after=7)

    async def scenario(bot: Bot) -> Any:
        with pytest.raises(RetryAfter) as excinfo:
            await bot.send_message(CHAT, "hello")
        assert seconds(excinfo.value.retry_after) == 7
        return await bot.send_message(CHAT, "hello")

    message = run(tg, scenario)

    assert message.text == "hello"
    failed, succeeded = tg.calls("sendMessage")
    assert failed["status_code"] == 429
    assert failed["response"] == {"ok": False, "error_code": 429,
                                  "description": "Too Many Requests: retry after 7",
                                  "parameters": {"retry_after": 7}}
    assert succeeded["status_code"] == 200
    assert len(tg.sent_messages()) == 1


def test_fail_next_can_target_a_chat_and_repeat(tg: TelegramEmulator) -> None:
    tg.fail_next("sendMessage", error_code=500, times=2, chat_id=111)

    async def scenario(bot: Bot) -> list[str]:
        outcomes = []
        for chat_id in (222, 111, 111, 111):
            try:
                await bot.send_message(chat_id, "x")
                outcomes.append("ok")
            except Exception as exc:  # noqa: BLE001 - recording the class under test
                outcomes.append(type(exc).__name__)
        return outcomes

    assert run(tg, scenario) == ["ok", "NetworkError", "NetworkError", "ok"]
    assert [c["response"].get("description") for c in tg.calls("sendMessage")][1] == \
        "Internal Server Error"


def test_blocked_chat_raises_forbidden(tg: TelegramEmulator) -> None:
    tg.block_chat(CHAT)

    async def scenario(bot: Bot) -> None:
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(CHAT, "hello")
        with pytest.raises(Forbidden):
            await bot.send_chat_action(CHAT, "typing")
        assert (await bot.send_message(CHAT + 1, "other user")).text == "other user"

    run(tg, scenario)
    assert last_response(tg, "sendChatAction") == {
        "ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
    tg.unblock_chat(CHAT)
    assert run(tg, lambda bot: bot.send_message(CHAT, "back")).text == "back"


def test_migrated_group_raises_chat_migrated(tg: TelegramEmulator) -> None:
    tg.migrate_chat(-4000000001, -1001000000003)
    with pytest.raises(ChatMigrated) as excinfo:
        run(tg, lambda bot: bot.send_message(-4000000001, "hi"))
    assert excinfo.value.new_chat_id == -1001000000003


def test_revoked_and_unknown_tokens_raise_invalid_token(tg: TelegramEmulator) -> None:
    assert run(tg, lambda bot: bot.get_me()).id == 7000000001
    tg.revoke_bot(TOKEN)

    with pytest.raises(InvalidToken):
        run(tg, lambda bot: bot.get_me())
    with pytest.raises(InvalidToken):
        run(tg, lambda bot: bot.send_message(CHAT, "x"), token=OTHER_TOKEN)
    assert tg.requests[-1]["response"] == {"ok": False, "error_code": 401,
                                           "description": "Unauthorized"}


def test_malformed_token_and_unknown_method_answer_404(tg: TelegramEmulator) -> None:
    not_found = {"ok": False, "error_code": 404, "description": "Not Found"}
    with httpx.Client(base_url=tg.base_url) as http:
        for path in ("/botnot-a-token/getMe", f"/bot{TOKEN}/sendTelepathy", "/favicon.ico"):
            response = http.post(path)
            assert (response.status_code, response.json()) == (404, not_found), path
        unknown = http.post(f"/bot{OTHER_TOKEN}/getMe")
    assert (unknown.status_code, unknown.json()["description"]) == (401, "Unauthorized")


def test_json_query_string_and_case_insensitive_methods_are_accepted(
        tg: TelegramEmulator) -> None:
    as_json = httpx.post(f"{tg.base_url}/bot{TOKEN}/SENDMESSAGE", json={
        "chat_id": CHAT, "text": "*hi*", "parse_mode": "MarkdownV2",
        "reply_markup": json.dumps({"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]})})
    as_query = httpx.get(f"{tg.base_url}/bot{TOKEN}/sendMessage",
                         params={"chat_id": str(CHAT), "text": "from query"})

    assert as_json.json()["result"]["entities"] == [{"offset": 0, "length": 2, "type": "bold"}]
    assert as_query.json()["result"]["text"] == "from query"
    first, second = tg.sent_messages(CHAT)
    assert first["reply_markup"] == {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}
    assert second["chat_id"] == CHAT  # query strings arrive as text; recorded typed
    assert [c["method"] for c in tg.requests] == ["sendMessage", "sendMessage"]


# -- other methods --------------------------------------------------------------------------

def test_send_chat_action(tg: TelegramEmulator) -> None:
    assert run(tg, lambda bot: bot.send_chat_action(CHAT, "typing")) is True
    assert tg.calls("sendChatAction")[0]["params"] == {"chat_id": CHAT, "action": "typing"}
    with pytest.raises(BadRequest, match="(?i)wrong parameter action"):
        run(tg, lambda bot: bot.send_chat_action(CHAT, "dancing"))


def test_set_get_and_delete_my_commands(tg: TelegramEmulator) -> None:
    commands = [BotCommand("start", "Start the bot"), BotCommand("help", "How to ask")]

    async def scenario(bot: Bot) -> tuple[Any, ...]:
        assert await bot.set_my_commands(commands)
        stored = await bot.get_my_commands()
        assert await bot.delete_my_commands()
        return stored, await bot.get_my_commands()

    stored, after_delete = run(tg, scenario)

    assert [(c.command, c.description) for c in stored] == \
        [("start", "Start the bot"), ("help", "How to ask")]
    assert after_delete == ()
    assert tg.calls("setMyCommands")[0]["params"]["commands"][0] == \
        {"command": "start", "description": "Start the bot"}
    with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
        run(tg, lambda bot: bot.set_my_commands([BotCommand("Start-Now", "x")]))


def test_edit_message_text_and_not_modified(tg: TelegramEmulator) -> None:
    async def scenario(bot: Bot) -> Any:
        sent = await bot.send_message(CHAT, "Thinking…")
        edited = await bot.edit_message_text("<b>Answer</b>", chat_id=CHAT,
                                             message_id=sent.message_id, parse_mode="HTML")
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await bot.edit_message_text("<b>Answer</b>", chat_id=CHAT,
                                        message_id=sent.message_id, parse_mode="HTML")
        with pytest.raises(BadRequest, match="(?i)message to edit not found"):
            await bot.edit_message_text("x", chat_id=CHAT, message_id=999)
        return edited

    edited = run(tg, scenario)

    assert edited.text == "Answer" and edited.edit_date is not None
    assert tg.stored_message(TOKEN, CHAT, edited.message_id)["text"] == "Answer"


def test_callback_query_can_be_answered_once(tg: TelegramEmulator) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("👍", callback_data="fb:up")]])
    sent = run(tg, lambda bot: bot.send_message(CHAT, "answer", reply_markup=markup))
    update = tg.make_callback_update(TOKEN, CHAT, sent.message_id, "fb:up")
    query_id = update["callback_query"]["id"]

    async def scenario(bot: Bot) -> None:
        assert await bot.answer_callback_query(query_id, text="Thanks!")
        with pytest.raises(BadRequest, match="(?i)query is too old"):
            await bot.answer_callback_query(query_id)

    run(tg, scenario)
    assert update["callback_query"]["message"]["reply_markup"] == markup.to_dict()


# -- updates delivery -----------------------------------------------------------------------

class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, Any], str | None]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((json.loads(body),
                                    self.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_post_update_delivers_to_webhook_with_secret_and_records_failures(
        tg: TelegramEmulator) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received, _Receiver.status = [], 200
    threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/tg/webhook/"
        run(tg, lambda bot: bot.set_webhook(url, secret_token="hook_secret",
                                            allowed_updates=["message"]))
        update = tg.make_message_update(TOKEN, CHAT, "/start ref42")

        assert tg.post_update(TOKEN, update) == 200
        # Not in allowed_updates: Telegram does not deliver it.
        assert tg.post_update(TOKEN, {"update_id": 1, "edited_message": {}}) is None
        _Receiver.status = 500
        assert tg.post_update(TOKEN, tg.make_message_update(TOKEN, CHAT, "hi")) == 500
        info = run(tg, lambda bot: bot.get_webhook_info())
    finally:
        receiver.shutdown()
        receiver.server_close()

    (delivered, secret), _failed = _Receiver.received
    assert secret == "hook_secret"
    assert delivered["message"]["text"] == "/start ref42"
    assert delivered["message"]["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.pending_update_count == 1


def test_get_updates_without_webhook_and_conflict_with_webhook(tg: TelegramEmulator) -> None:
    update = tg.make_message_update(TOKEN, CHAT, "hello")
    assert tg.post_update(TOKEN, update) is None  # queued: no webhook

    async def scenario(bot: Bot) -> Any:
        updates = await bot.get_updates(timeout=0)
        await bot.set_webhook("https://example.com/hook")
        with pytest.raises(Exception, match="(?i)can't use getupdates method while webhook"):
            await bot.get_updates(timeout=0)
        return updates

    updates = run(tg, scenario)
    assert [u.message.text for u in updates] == ["hello"]


def test_wait_for_messages_sees_messages_sent_from_another_thread(tg: TelegramEmulator) -> None:
    worker = threading.Thread(target=lambda: run(tg, lambda bot: bot.send_message(CHAT, "late")))
    worker.start()
    try:
        assert [m["text"] for m in tg.wait_for_messages(1, timeout=10, chat_id=CHAT)] == ["late"]
    finally:
        worker.join()
    with pytest.raises(TimeoutError, match="saw 1"):
        tg.wait_for_messages(2, timeout=0.2)


# -- control API and CLI --------------------------------------------------------------------

@ignore_ptb_timedelta_notice
def test_http_control_endpoints(tg: TelegramEmulator) -> None:
    control = f"{tg.base_url}/_emulator"
    assert httpx.post(f"{control}/bots", json={"token": OTHER_TOKEN, "id": 7000000002,
                                               "username": "other_bot"}).status_code == 200
    assert run(tg, lambda bot: bot.get_me(), token=OTHER_TOKEN).username == "other_bot"

    httpx.post(f"{control}/fail", json={"method": "sendMessage", "error_code": 429,
                                        "retry_after": 3, "token": OTHER_TOKEN})
    with pytest.raises(RetryAfter):
        run(tg, lambda bot: bot.send_message(CHAT, "x"), token=OTHER_TOKEN)
    assert run(tg, lambda bot: bot.send_message(CHAT, "unaffected")).text == "unaffected"

    httpx.post(f"{control}/block", json={"chat_id": CHAT})
    with pytest.raises(Forbidden):
        run(tg, lambda bot: bot.send_message(CHAT, "x"))

    recorded = httpx.get(f"{control}/requests", params={"method": "sendMessage"}).json()
    assert [r["status_code"] for r in recorded["result"]] == [429, 200, 403]
    assert recorded["result"][0]["response"]["parameters"] == {"retry_after": 3}

    assert httpx.post(f"{control}/reset", json={}).status_code == 200
    assert tg.requests == []
    assert run(tg, lambda bot: bot.send_message(CHAT, "after reset")).text == "after reset"
    assert httpx.post(f"{control}/nope", json={}).status_code == 400


def test_cli_serves_bots_for_another_process() -> None:
    root = Path(__file__).resolve().parents[3]
    process = subprocess.Popen(
        [sys.executable, "-m", "saas_bot.testing.telegram_emulator", "--port", "0",
         "--bot", f"{TOKEN}:7000000001:acme_support_bot"],
        cwd=root, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        base_url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        client = EmulatorClient(base_url)

        async def main() -> Any:
            async with Bot(TOKEN, base_url=f"{base_url}/bot") as bot:
                return await bot.send_message(CHAT, "<i>cli</i>", parse_mode="HTML")

        assert asyncio.run(main()).text == "cli"
        assert [m["text"] for m in client.sent_messages(chat_id=CHAT)] == ["<i>cli</i>"]
        client.fail_next("getMe", error_code=401)
        with pytest.raises(InvalidToken):
            asyncio.run(Bot(TOKEN, base_url=f"{base_url}/bot").get_me())
    finally:
        process.terminate()
        process.wait(timeout=5)
