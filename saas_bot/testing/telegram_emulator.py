"""A local Telegram Bot API emulator: a real HTTP server for tests, the demo and benchmarks.

The emulator answers ``POST|GET /bot<token>/<method>`` the way ``api.telegram.org`` does, so the
project talks to it through python-telegram-bot unchanged: point ``Bot(base_url=...)`` at
``f"{emulator.base_url}/bot"``. It never imports Django and keeps all state in memory.

Sources of the rules it enforces:

* Telegram Bot API documentation (https://core.telegram.org/bots/api): request encodings
  ("URL query string, application/x-www-form-urlencoded, application/json, multipart/form-data"),
  case-insensitive method names, response object ``{"ok", "result", "description"}``, error object
  ``{"ok": false, "error_code", "description", "parameters"}``, "Formatting options" (the HTML tag
  set, the MarkdownV2 reserved characters), sendMessage text "1-4096 characters after entities
  parsing", setWebhook ``secret_token`` "1-256 characters. Only characters A-Z, a-z, 0-9, _ and -".
* The open-source Bot API server / TDLib entity parsers (``tdlib/telegram-bot-api``,
  ``td/telegram/MessageEntity.cpp``): the exact wording of "can't parse entities" details and
  their byte offsets (offsets into the UTF-8 encoded text), and UTF-16 entity offsets/lengths.
* Error bodies captured from the real API: "Unauthorized" (401, well-formed unknown token),
  "Not Found" (404, malformed token or unknown method), "Forbidden: bot was blocked by the user",
  "Too Many Requests: retry after N" with ``parameters.retry_after``, "message text is empty",
  "message is too long", "secret token contains unallowed characters", ...

Intentional differences from the real service (documented so nobody relies on them):

* Updates are never produced by the emulator on its own; tests build them with
  :meth:`TelegramEmulator.make_message_update` / :meth:`make_callback_update` and deliver them
  with :meth:`TelegramEmulator.post_update` (to the registered webhook, like Telegram, or to the
  ``getUpdates`` queue).
* Automatic entities (urls, mentions, hashtags) are not detected in sent messages.
* ``strict_html_entities=True`` (the default) rejects a bare ``&`` in HTML mode, as the Bot API
  documentation demands ("All <, > and & symbols that are not a part of a tag or an HTML entity
  must be replaced"). The real server is lenient and keeps such a ``&`` literally; pass
  ``strict_html_entities=False`` to model that.
* Any numeric ``chat_id`` is accepted as an existing chat (real Telegram answers "chat not found"
  for chats the bot never met); ``@username`` chat ids must be registered with ``add_chat``.
"""
from __future__ import annotations

import argparse
import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

from saas_bot.testing.local_http import LocalHTTPService
from typing import Any, TypeVar

__all__ = [
    "ApiError",
    "EmulatorClient",
    "TelegramEmulator",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "utf16_len",
]

T = TypeVar("T")

# Real tokens are "<bot id>:<35 url-safe base64 chars>"; tests use shorter secrets, so only the
# shape (digits, colon, url-safe characters) decides between 404 (malformed) and 401 (unknown).
_TOKEN_RE = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,256}$")
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]*$")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")

# Bot API "sendChatAction": the documented action values.
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})

# Bot API getUpdates/setWebhook: without allowed_updates every type is delivered except these.
_OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

MAX_MESSAGE_LENGTH = 4096  # Bot API sendMessage: "1-4096 characters after entities parsing"
MAX_CAPTION_LENGTH = 1024  # Bot API sendDocument: "0-1024 characters after entities parsing"
MAX_CALLBACK_DATA_BYTES = 64  # Bot API InlineKeyboardButton.callback_data: "1-64 bytes"

# Parameters that clients send as JSON-serialised strings in form/multipart bodies (PTB does).
_JSON_FIELDS = frozenset({
    "reply_markup", "allowed_updates", "commands", "scope", "entities", "caption_entities",
    "link_preview_options", "reply_parameters", "media", "results", "options",
})
_INT_FIELDS = frozenset({
    "message_id", "message_thread_id", "max_connections", "cache_time", "offset", "limit",
    "timeout", "reply_to_message_id", "user_id", "from_chat_id",
})
_BOOL_FIELDS = frozenset({
    "disable_notification", "protect_content", "drop_pending_updates", "show_alert",
    "allow_sending_without_reply", "disable_web_page_preview", "has_spoiler",
    "allow_paid_broadcast", "disable_content_type_detection",
})

# Default descriptions for injected failures, worded like the real service's bodies.
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
         "is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

DESC_BLOCKED = "Forbidden: bot was blocked by the user"
DESC_CHAT_NOT_FOUND = "Bad Request: chat not found"
DESC_TEXT_EMPTY = "Bad Request: message text is empty"
DESC_TOO_LONG = "Bad Request: message is too long"
DESC_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
DESC_QUERY_TOO_OLD = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
DESC_WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)


class ApiError(Exception):
    """A Bot API error answer: HTTP status ``error_code`` with body
    ``{"ok": false, "error_code", "description"[, "parameters"]}`` (Bot API "Making requests")."""

    def __init__(self, error_code: int, description: str,
                 parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        """The JSON body Telegram sends for this error."""
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code,
                                "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class _EntityParseError(Exception):
    """A parse_mode failure; the message is the detail after "can't parse entities: "."""


def _bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


# --------------------------------------------------------------------------------------------
# Text formatting (HTML, MarkdownV2, legacy Markdown), ported from TDLib's MessageEntity.cpp.
# All parsers work on UTF-8 bytes because Telegram reports error positions as byte offsets, and
# count entity offsets in UTF-16 code units because that is what the Bot API returns.
# --------------------------------------------------------------------------------------------

def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of every Bot API length and offset
    (Bot API "MessageEntity": "Offset in UTF-16 code units")."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def _utf16_step(byte: int) -> int:
    # A UTF-8 lead byte starts one code point: 4-byte sequences are astral (a surrogate pair).
    if byte & 0xC0 == 0x80:
        return 0
    return 2 if byte >= 0xF0 else 1


def _is_space(byte: int) -> bool:
    # TDLib's is_space() counts NUL as space; our sentinel NUL terminates scans the same way.
    return byte in (0x20, 0x09, 0x0D, 0x0A, 0x00, 0x0B, 0x0C)


def _is_alpha(byte: int) -> bool:
    return 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _is_digit(byte: int) -> bool:
    return 0x30 <= byte <= 0x39


def _decode_html_entity(src: bytes, pos: int) -> tuple[int, int]:
    """(code point, position after the entity) or (0, pos) when ``src[pos:]`` is no entity.

    TDLib rules: numeric ``&#NNN;``/``&#xHH;`` (1..0x10FFFE), named ``&lt; &gt; &amp; &quot;``
    only; the trailing ``;`` is optional."""
    end = pos + 1
    value = 0
    if src[end] == 0x23:  # '#'
        end += 1
        if src[end] == 0x78:  # 'x'
            end += 1
            while chr(src[end]) in "0123456789abcdefABCDEF" and src[end] != 0:
                value = value * 16 + int(chr(src[end]), 16)
                end += 1
        else:
            while _is_digit(src[end]):
                value = value * 10 + src[end] - 0x30
                end += 1
        if value == 0 or value >= 0x10FFFF or end - pos >= 10 or 0xD800 <= value <= 0xDFFF:
            return 0, pos
    else:
        while _is_alpha(src[end]):
            end += 1
        value = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}.get(src[pos + 1:end], 0)
        if value == 0:
            return 0, pos
    if src[end] == 0x3B:  # ';'
        end += 1
    return value, end


_HTML_TAGS = frozenset({
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji",
    "span", "pre", "code", "blockquote",
})
_HTML_SIMPLE_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler",
}


def _link_url(url: str) -> str | None:
    # TDLib's check_link normalises scheme-less links to http:// and drops links it cannot parse.
    url = url.strip()
    if not url or any(ch.isspace() for ch in url):
        return None
    if "://" not in url and not url.startswith(("tg:", "mailto:", "ton:")):
        url = "http://" + url
    return url


def _sorted_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def parse_html(text: str, *, strict_entities: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML into ``(plain text, MessageEntity dicts)``.

    Supported tags (Bot API "HTML style"): b, strong, i, em, u, ins, s, strike, del,
    ``span class="tg-spoiler"``, tg-spoiler, ``a href``, code (``class="language-x"`` inside pre),
    pre, blockquote (``expandable``), ``tg-emoji emoji-id``. Entities: ``&lt; &gt; &amp; &quot;``
    and numeric ones. Offsets/lengths are UTF-16 code units.

    Raises:
        _EntityParseError: with TDLib's detail, e.g. ``Unsupported start tag "foo" at byte offset
            3``, ``Can't find end tag corresponding to start tag "b"``, ``Unmatched end tag at
            byte offset 9, expected "</i>", found "</b>"``; with ``strict_entities`` also
            ``Unsupported HTML entity at byte offset N`` for a bare ``&`` (documented rule, see
            the module docstring).
    """
    src = text.encode("utf-8") + b"\0"
    size = len(src) - 1
    out = bytearray()
    utf16 = 0
    # Each open tag: [name, argument, utf16 offset, output byte offset]
    nested: list[list[Any]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < size:
        c = src[i]
        if c == 0x26:  # '&'
            value, end = _decode_html_entity(src, i)
            if value:
                out += chr(value).encode("utf-8")
                utf16 += 2 if value > 0xFFFF else 1
                i = end
                continue
            if strict_entities:
                raise _EntityParseError(f"Unsupported HTML entity at byte offset {i}")
        if c != 0x3C:  # '<'
            out.append(c)
            utf16 += _utf16_step(c)
            i += 1
            continue

        begin_pos = i
        i += 1
        if src[i] != 0x2F:  # start tag
            tag_begin = i
            while not _is_space(src[i]) and src[i] != 0x3E:
                i += 1
            if src[i] == 0:
                raise _EntityParseError(f"Unclosed start tag at byte offset {begin_pos}")
            tag_name = src[tag_begin:i].decode("utf-8", "replace").lower()
            if tag_name not in _HTML_TAGS:
                raise _EntityParseError(
                    f'Unsupported start tag "{tag_name}" at byte offset {begin_pos}')
            argument = ""
            while src[i] != 0x3E:
                while src[i] != 0 and _is_space(src[i]):
                    i += 1
                if src[i] == 0x3E:
                    break
                attr_begin = i
                while not _is_space(src[i]) and src[i] != 0x3D and src[i] != 0x3E:
                    i += 1
                attr_name = src[attr_begin:i].decode("utf-8", "replace")
                if not attr_name:
                    raise _EntityParseError(
                        f'Empty attribute name in the tag "{tag_name}" at byte offset {begin_pos}')
                while src[i] != 0 and _is_space(src[i]):
                    i += 1
                if src[i] != 0x3D:  # '='
                    # Bot API: <blockquote expandable> is the one valueless attribute.
                    if tag_name == "blockquote" and attr_name == "expandable":
                        argument = "1"
                        continue
                    if src[i] == 0:
                        raise _EntityParseError(f"Unclosed start tag at byte offset {begin_pos}")
                    raise _EntityParseError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag_name}" at byte offset {begin_pos}')
                i += 1
                while src[i] != 0 and _is_space(src[i]):
                    i += 1
                if src[i] == 0:
                    raise _EntityParseError(f"Unclosed start tag at byte offset {begin_pos}")
                value_bytes = bytearray()
                if src[i] not in (0x22, 0x27):
                    token_begin = i
                    while _is_alpha(src[i]) or _is_digit(src[i]) or src[i] in (0x2E, 0x2D):
                        i += 1
                    value_bytes += src[token_begin:i].lower()
                    if not _is_space(src[i]) and src[i] != 0x3E:
                        raise _EntityParseError(
                            f"Unexpected end of name token at byte offset {token_begin}")
                else:
                    quote = src[i]
                    i += 1
                    while src[i] != quote and src[i] != 0:
                        if src[i] == 0x26:
                            value, end = _decode_html_entity(src, i)
                            if value:
                                value_bytes += chr(value).encode("utf-8")
                                i = end
                                continue
                        value_bytes.append(src[i])
                        i += 1
                    if src[i] == quote:
                        i += 1
                if src[i] == 0:
                    raise _EntityParseError(f"Unclosed start tag at byte offset {begin_pos}")
                attr_value = value_bytes.decode("utf-8", "replace")
                if tag_name == "a" and attr_name == "href":
                    argument = attr_value
                elif tag_name == "code" and attr_name == "class" and \
                        attr_value.startswith("language-"):
                    argument = attr_value[len("language-"):]
                elif tag_name == "span" and attr_name == "class" and attr_value.startswith("tg-"):
                    argument = attr_value[len("tg-"):]
                elif tag_name == "tg-emoji" and attr_name == "emoji-id":
                    argument = attr_value
                elif tag_name == "blockquote" and attr_name == "expandable":
                    argument = "1"
            if tag_name == "span" and argument != "spoiler":
                raise _EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin_pos}')
            nested.append([tag_name, argument, utf16, len(out)])
            i += 1  # past '>'
            continue

        # end tag
        if not nested:
            raise _EntityParseError(f"Unexpected end tag at byte offset {begin_pos}")
        while not _is_space(src[i]) and src[i] != 0x3E:
            i += 1
        end_tag_name = src[begin_pos + 2:i].decode("utf-8", "replace").lower()
        while _is_space(src[i]) and src[i] != 0:
            i += 1
        if src[i] != 0x3E:
            raise _EntityParseError(f"Unclosed end tag at byte offset {begin_pos}")
        tag_name, argument, offset, out_begin = nested[-1]
        if end_tag_name and end_tag_name != tag_name:
            raise _EntityParseError(
                f'Unmatched end tag at byte offset {begin_pos}, expected "</{tag_name}>", '
                f'found "</{end_tag_name}>"')
        nested.pop()
        i += 1
        length = utf16 - offset
        if length <= 0:
            continue  # TDLib drops empty entities
        entity: dict[str, Any] | None
        if tag_name in _HTML_SIMPLE_TYPES:
            entity = {"type": _HTML_SIMPLE_TYPES[tag_name]}
        elif tag_name == "span":
            entity = {"type": "spoiler"}
        elif tag_name == "tg-emoji":
            if not argument.isdigit():
                raise _EntityParseError("Invalid custom emoji identifier specified")
            entity = {"type": "custom_emoji", "custom_emoji_id": argument}
        elif tag_name == "a":
            url = _link_url(argument or out[out_begin:].decode("utf-8", "replace"))
            entity = {"type": "text_link", "url": url} if url else None
        elif tag_name == "code":
            entity = {"type": "code"}
            if argument:
                entity["language"] = argument  # consumed by an enclosing <pre>
        elif tag_name == "pre":
            entity = {"type": "pre"}
            # <pre><code class="language-x">...</code></pre> is one pre entity with a language.
            if entities and entities[-1]["type"] == "code" and entities[-1]["offset"] == offset \
                    and entities[-1]["length"] == length:
                inner = entities.pop()
                if inner.get("language"):
                    entity["language"] = inner["language"]
        else:  # blockquote
            entity = {"type": "expandable_blockquote" if argument == "1" else "blockquote"}
        if entity is not None:
            entity = {"offset": offset, "length": length, **entity}
            entities.append(entity)
    if nested:
        raise _EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{nested[-1][0]}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)  # a language is only meaningful on pre
    return out.decode("utf-8", "replace"), _sorted_entities(entities)


# TDLib's MessageEntity::Type names, used verbatim in MarkdownV2 "Can't find end of ..." errors.
_MDV2_TYPE_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "pre_code": "PreCode",
    "text_link": "TextUrl", "custom_emoji": "CustomEmoji", "blockquote": "BlockQuote",
    "expandable_blockquote": "ExpandableBlockQuote",
}
_MDV2_RESERVED = b"_*[]()~`>#+-=|{}.!"


def _reserved_error(byte: int) -> _EntityParseError:
    return _EntityParseError(
        f"Character '{chr(byte)}' is reserved and must be escaped with the preceding '\\'")


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Bot API MarkdownV2 into ``(plain text, MessageEntity dicts)``.

    Bot API "MarkdownV2 style": ``*bold* _italic_ __underline__ ~strike~ ||spoiler||
    [text](url) ![emoji](tg://emoji?id=N) `code` ```lang pre```, ``>`` block quotes at line
    start, ``**>`` expandable ones ending with ``||``; "Any character with code between 1 and
    126 inclusively can be escaped anywhere with a preceding '\\' character"; the characters
    ``_*[]()~`>#+-=|{}.!`` must be escaped outside entities' syntax; inside code/pre only
    ```` ` ```` and ``\\``.

    Raises:
        _EntityParseError: TDLib's detail, e.g. ``Character '.' is reserved and must be escaped
            with the preceding '\\'``, ``Can't find end of Bold entity at byte offset 0``,
            ``Can't find end of a URL at byte offset 12``.
    """
    src = text.encode("utf-8") + b"\0\0\0"
    size = len(src) - 3
    out = bytearray()
    utf16 = 0
    # Each open entity: [type, argument, utf16 offset, source byte offset, output byte offset]
    nested: list[list[Any]] = []
    entities: list[dict[str, Any]] = []
    quote: list[Any] | None = None  # open block quote: [type, utf16 offset, byte offset]
    i = 0
    while i < size:
        c = src[i]
        at_line_start = i == 0 or src[i - 1] == 0x0A
        if at_line_start:
            if quote is not None and c != 0x3E:
                _close_quote(quote, utf16, out, entities)
                quote = None
            if c == 0x3E and quote is None and not nested:
                quote = ["blockquote", utf16, i]
                i += 1
                continue
            if c == 0x3E and quote is not None:
                i += 1
                continue
            if src[i:i + 3] == b"**>" and quote is None and not nested:
                quote = ["expandable_blockquote", utf16, i]
                i += 3
                continue
        if quote is not None and quote[0] == "expandable_blockquote" and c == 0x7C and \
                src[i + 1] == 0x7C and src[i + 2] in (0x0A, 0x00) and not nested:
            # "||" at a line end closes an expandable block quote.
            _close_quote(quote, utf16, out, entities)
            quote = None
            i += 2
            continue
        if c == 0x5C and 0 < src[i + 1] <= 126:  # backslash escape
            i += 1
            out.append(src[i])
            utf16 += 1
            i += 1
            continue
        reserved = _MDV2_RESERVED
        if nested and nested[-1][0] in ("code", "pre", "pre_code"):
            reserved = b"`"
        if c not in reserved or c == 0:
            out.append(c)
            utf16 += _utf16_step(c)
            i += 1
            continue

        is_end = False
        if nested:
            top = nested[-1][0]
            nxt = src[i + 1]
            is_end = (
                (top == "bold" and c == 0x2A)
                or (top == "italic" and c == 0x5F and nxt != 0x5F)
                or (top == "code" and c == 0x60)
                or (top in ("pre", "pre_code") and c == 0x60 and nxt == 0x60 and src[i + 2] == 0x60)
                or (top in ("text_link", "custom_emoji") and c == 0x5D)
                or (top == "underline" and c == 0x5F and nxt == 0x5F)
                or (top == "strikethrough" and c == 0x7E)
                or (top == "spoiler" and c == 0x7C and nxt == 0x7C)
            )
        if not is_end:
            entity_byte_offset = i
            argument = ""
            if c == 0x5F:
                if src[i + 1] == 0x5F:
                    kind = "underline"
                    i += 1
                else:
                    kind = "italic"
            elif c == 0x2A:
                kind = "bold"
            elif c == 0x7E:
                kind = "strikethrough"
            elif c == 0x7C:
                if src[i + 1] != 0x7C:
                    raise _reserved_error(c)
                i += 1
                kind = "spoiler"
            elif c == 0x5B:
                kind = "text_link"
            elif c == 0x60:
                if src[i + 1] == 0x60 and src[i + 2] == 0x60:
                    i += 3
                    kind = "pre"
                    lang_end = i
                    while not _is_space(src[lang_end]) and src[lang_end] != 0x60:
                        lang_end += 1
                    if i != lang_end and lang_end < size and src[lang_end] != 0x60:
                        kind = "pre_code"
                        argument = src[i:lang_end].decode("utf-8", "replace")
                        i = lang_end
                    if src[i] in (0x0A, 0x0D):  # one leading newline belongs to the syntax
                        if src[i + 1] in (0x0A, 0x0D) and src[i] != src[i + 1]:
                            i += 2
                        else:
                            i += 1
                    i -= 1
                else:
                    kind = "code"
            elif c == 0x21 and src[i + 1] == 0x5B:
                i += 1
                kind = "custom_emoji"
            else:
                raise _reserved_error(c)
            nested.append([kind, argument, utf16, entity_byte_offset, len(out)])
            i += 1
            continue

        kind, argument, offset, _byte_offset, out_begin = nested.pop()
        skip = utf16 == offset
        extra: dict[str, Any] = {}
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind in ("pre", "pre_code"):
            i += 2
        elif kind == "text_link":
            if src[i + 1] != 0x28:  # no "(url)": the text itself is the url
                url = out[out_begin:].decode("utf-8", "replace")
            else:
                i += 2
                url_begin = i
                url_bytes = bytearray()
                while i < size and src[i] != 0x29:
                    if src[i] == 0x5C and 0 < src[i + 1] <= 126:
                        url_bytes.append(src[i + 1])
                        i += 2
                        continue
                    url_bytes.append(src[i])
                    i += 1
                if src[i] != 0x29:
                    raise _EntityParseError(f"Can't find end of a URL at byte offset {url_begin}")
                url = url_bytes.decode("utf-8", "replace")
            checked = _link_url(url)
            if checked is None:
                skip = True
            else:
                extra["url"] = checked
        elif kind == "custom_emoji":
            if src[i + 1] != 0x28:
                raise _EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            i += 2
            url_begin = i
            while i < size and src[i] != 0x29:
                i += 1
            if src[i] != 0x29:
                raise _EntityParseError(f"Can't find end of a custom emoji URL at byte offset "
                                        f"{url_begin}")
            url = src[url_begin:i].decode("utf-8", "replace")
            match = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
            if not match:
                raise _EntityParseError("Invalid custom emoji identifier specified")
            extra["custom_emoji_id"] = match.group(1)
        if not skip:
            if kind == "pre_code":
                entities.append({"offset": offset, "length": utf16 - offset, "type": "pre",
                                 "language": argument})
            else:
                entities.append({"offset": offset, "length": utf16 - offset, "type": kind,
                                 **extra})
        i += 1
    if nested:
        kind, _arg, _offset, byte_offset, _out = nested[-1]
        raise _EntityParseError(
            f"Can't find end of {_MDV2_TYPE_NAMES[kind]} entity at byte offset {byte_offset}")
    if quote is not None:
        if quote[0] == "expandable_blockquote":
            quote[0] = "blockquote"  # without the closing "||" TDLib keeps a plain quote
        _close_quote(quote, utf16, out, entities)
    return out.decode("utf-8", "replace"), _sorted_entities(entities)


def _close_quote(quote: list[Any], utf16: int, out: bytearray,
                 entities: list[dict[str, Any]]) -> None:
    # The newline that ends the last quoted line is not part of the quote.
    end = utf16 - (1 if out.endswith(b"\n") else 0)
    if end > quote[1]:
        entities.append({"offset": quote[1], "length": end - quote[1], "type": quote[0]})


def parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse the legacy Bot API ``Markdown`` mode: ``*bold* _italic_ `code` ```pre```
    [text](url)``; only ``_*`[`` can be escaped with ``\\``.

    Raises:
        _EntityParseError: TDLib's ``Can't find end of the entity starting at byte offset N``.
    """
    src = text.encode("utf-8") + b"\0\0\0"
    size = len(src) - 3
    out = bytearray()
    utf16 = 0
    entities: list[dict[str, Any]] = []
    i = 0
    while i < size:
        c = src[i]
        if c == 0x5C and src[i + 1] in b"_*`[":
            out.append(src[i + 1])
            utf16 += 1
            i += 2
            continue
        if c not in b"_*`[":
            out.append(c)
            utf16 += _utf16_step(c)
            i += 1
            continue
        begin_pos = i
        end_char = 0x5D if c == 0x5B else c
        is_pre = False
        language = ""
        i += 1
        if c == 0x60 and src[i] == 0x60 and src[i + 1] == 0x60:
            i += 2
            is_pre = True
            lang_end = i
            while not _is_space(src[lang_end]) and src[lang_end] != 0x60:
                lang_end += 1
            if i != lang_end and lang_end < size and src[lang_end] != 0x60:
                language = src[i:lang_end].decode("utf-8", "replace")
                i = lang_end
            if src[i] in (0x0A, 0x0D):
                if src[i + 1] in (0x0A, 0x0D) and src[i] != src[i + 1]:
                    i += 2
                else:
                    i += 1
        offset = utf16
        content_begin = i
        while i < size and (src[i] != end_char or
                            (is_pre and not (src[i + 1] == 0x60 and src[i + 2] == 0x60))):
            out.append(src[i])
            utf16 += _utf16_step(src[i])
            i += 1
        if i >= size:
            raise _EntityParseError(
                f"Can't find end of the entity starting at byte offset {begin_pos}")
        if utf16 != offset:
            length = utf16 - offset
            if c == 0x5F:
                entities.append({"offset": offset, "length": length, "type": "italic"})
            elif c == 0x2A:
                entities.append({"offset": offset, "length": length, "type": "bold"})
            elif c == 0x5B:
                if src[i + 1] == 0x28:
                    i += 2
                    url_begin = i
                    while i < size and src[i] != 0x29:
                        i += 1
                    url = src[url_begin:i].decode("utf-8", "replace")
                else:
                    url = src[content_begin:i].decode("utf-8", "replace")
                checked = _link_url(url)
                if checked:
                    entities.append({"offset": offset, "length": length, "type": "text_link",
                                     "url": checked})
            elif is_pre:
                entity: dict[str, Any] = {"offset": offset, "length": length, "type": "pre"}
                if language:
                    entity["language"] = language
                entities.append(entity)
            else:
                entities.append({"offset": offset, "length": length, "type": "code"})
        if is_pre:
            i += 2
        i += 1
    return out.decode("utf-8", "replace"), _sorted_entities(entities)


def _format_text(text: str, parse_mode: str | None, entities: Any,
                 strict_html_entities: bool) -> tuple[str, list[dict[str, Any]]]:
    """Apply ``parse_mode`` (case-insensitive, like the Bot API) or explicit ``entities``.

    Raises:
        ApiError: 400 "Bad Request: can't parse entities: <detail>" or
            "Bad Request: unsupported parse_mode".
    """
    mode = (parse_mode or "").strip().lower()
    try:
        if mode == "html":
            return parse_html(text, strict_entities=strict_html_entities)
        if mode == "markdownv2":
            return parse_markdown_v2(text)
        if mode == "markdown":
            return parse_markdown(text)
    except _EntityParseError as exc:
        raise _bad_request(f"can't parse entities: {exc}") from None
    if mode:
        raise _bad_request("unsupported parse_mode")
    if isinstance(entities, list):
        return text, [dict(e) for e in entities if isinstance(e, dict)]
    return text, []


# --------------------------------------------------------------------------------------------
# Request decoding
# --------------------------------------------------------------------------------------------

def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    # The email package parses multipart/form-data correctly (the cgi module is gone in 3.13).
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    params: dict[str, Any] = {}
    if not message.is_multipart():
        return params
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            # Uploaded files are recorded by name and size; their bytes are of no use to tests.
            params[name] = {"filename": filename, "size": len(payload),
                            "content_type": part.get_content_type()}
        else:
            charset = part.get_content_charset() or "utf-8"
            params[name] = payload.decode(charset, "replace")
    return params


def _normalise_params(params: dict[str, Any]) -> dict[str, Any]:
    """Give form/multipart strings the JSON types Telegram reads them as (ints, bools, objects).

    Raises:
        ApiError: 400 "Bad Request: can't parse reply keyboard markup JSON object" for a broken
            ``reply_markup`` (telegram-bot-api wording).
    """
    result: dict[str, Any] = {}
    for key, value in params.items():
        if key in _JSON_FIELDS and isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else None
            except ValueError:
                if key == "reply_markup":
                    raise _bad_request("can't parse reply keyboard markup JSON object") from None
                raise _bad_request(f"can't parse {key} JSON object") from None
        elif key in ("chat_id", "from_chat_id") and isinstance(value, str) and \
                re.fullmatch(r"-?\d{1,20}", value.strip()):
            value = int(value)
        elif key in _INT_FIELDS and isinstance(value, str) and \
                re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        elif key in _BOOL_FIELDS and isinstance(value, str):
            value = value.strip().lower() in ("true", "1")
        result[key] = value
    return result


def _norm_chat_id(chat_id: Any) -> int | str | None:
    if chat_id is None:
        return None
    if isinstance(chat_id, bool):
        return str(chat_id)
    if isinstance(chat_id, int):
        return chat_id
    text = str(chat_id).strip()
    if re.fullmatch(r"-?\d{1,20}", text):
        return int(text)
    return text.lower()


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------

@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    allowed_updates: list[str] | None
    max_connections: int
    ip_address: str | None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class _Bot:
    token: str
    id: int
    username: str
    first_name: str
    revoked: bool = False
    webhook: _Webhook | None = None
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    pending_updates: list[dict[str, Any]] = field(default_factory=list)
    next_update_id: int = 100_000_001

    def user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name,
                "username": self.username}


@dataclass
class _Failure:
    method: str | None  # lower-case method name, None for any method
    error_code: int
    description: str
    parameters: dict[str, Any] | None
    remaining: int
    chat_id: int | str | None
    token: str | None
    skip: int = 0

    def matches(self, token: str, method: str, params: dict[str, Any]) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.token is not None and self.token != token:
            return False
        return self.chat_id is None or _norm_chat_id(params.get("chat_id")) == self.chat_id


@dataclass
class _Block:
    description: str
    token: str | None
    parameters: dict[str, Any] | None = None


class _Ok:
    """A successful answer with the optional ``description`` some methods add."""

    def __init__(self, result: Any, description: str | None = None) -> None:
        self.result = result
        self.description = description


_Handler = Callable[["TelegramEmulator", _Bot, dict[str, Any]], Any]
_METHODS: dict[str, tuple[str, _Handler]] = {}


def _method(name: str) -> Callable[[_Handler], _Handler]:
    def register(func: _Handler) -> _Handler:
        _METHODS[name.lower()] = (name, func)
        return func
    return register


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------

class TelegramEmulator(LocalHTTPService):
    """In-memory Telegram Bot API served over real HTTP on ``host:port`` (0 = a free port).

    Thread-safe; use as ``with TelegramEmulator() as tg: ...`` or ``start()``/``stop()``.
    Point python-telegram-bot at it with ``Bot(token, base_url=f"{tg.base_url}/bot",
    base_file_url=f"{tg.base_url}/file/bot")``.

    Args:
        host: interface to bind.
        port: TCP port, 0 picks a free one (read it back from :attr:`port`).
        strict_html_entities: reject a bare ``&`` in HTML mode (see module docstring).
        require_https_webhook: answer setWebhook with Telegram's "bad webhook: HTTPS url must be
            provided for webhook" for non-https urls; off by default so local demos can use
            ``http://127.0.0.1`` webhooks.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 strict_html_entities: bool = True, require_https_webhook: bool = False) -> None:
        super().__init__(host, port)
        self.handler_class = _RequestHandler
        self.server_attribute, self.thread_name = "emulator", "telegram-emulator"
        self.strict_html_entities = strict_html_entities
        self.require_https_webhook = require_https_webhook
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._bots: dict[str, _Bot] = {}
        self._requests: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._delays: list[_Failure] = []  # delay_next: ``parameters["seconds"]`` before answering
        self._blocked: dict[int | str, list[_Block]] = {}
        self._chats: dict[int | str, dict[str, Any]] = {}
        self._messages: dict[tuple[str, int | str], dict[int, dict[str, Any]]] = {}
        self._message_ids: dict[tuple[str, int | str], itertools.count[int]] = {}
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._callback_ids = itertools.count(4_382_000_000_000_000_001)

    @property
    def base_url(self) -> str:
        """``"http://HOST:PORT"``, the value for the project's ``TELEGRAM_API_BASE_URL``."""
        return f"http://{self.host}:{self.port}"

    # -- bots and chats -------------------------------------------------------------------

    def add_bot(self, token: str, *, id: int | None = None, username: str,
                first_name: str = "Test Bot") -> dict[str, Any]:
        """Register a bot; returns its getMe ``User`` dict. Re-adding a token replaces it (and
        un-revokes it).

        ``id`` defaults to the number before the colon, as in real tokens.

        Raises:
            ValueError: ``token`` does not have a token's shape ("<digits>:<A-Za-z0-9_->"), so
                Telegram would answer 404 for it and the bot could never be reached.
        """
        if not _TOKEN_RE.match(token):
            raise ValueError(f"malformed bot token {token!r}: expected '<digits>:<A-Za-z0-9_->'")
        bot_id = int(token.split(":", 1)[0]) if id is None else int(id)
        with self._lock:
            self._bots[token] = _Bot(token=token, id=bot_id, username=username.lstrip("@"),
                                     first_name=first_name)
            return self._bots[token].user()

    def revoke_bot(self, token: str) -> None:
        """Make every later call with ``token`` answer 401 "Unauthorized", as after
        BotFather's /revoke. Raises ``KeyError`` for an unknown token."""
        with self._lock:
            self._bots[token].revoked = True

    def add_chat(self, chat_id: int | str, *, type: str = "private", **fields: Any) -> None:
        """Describe a chat so messages carry a realistic ``Chat`` object (``title``,
        ``username``, ``first_name``...). A ``"@name"`` chat id is usable only once added."""
        key = _norm_chat_id(chat_id)
        assert key is not None
        with self._lock:
            chat = {"id": chat_id if isinstance(chat_id, int) else fields.pop("id", 0),
                    "type": type, **fields}
            self._chats[key] = chat
            if isinstance(chat["id"], int) and chat["id"]:
                self._chats[chat["id"]] = chat

    def block_chat(self, chat_id: int | str, *, token: str | None = None,
                   description: str = DESC_BLOCKED) -> None:
        """Make sends to ``chat_id`` answer 403 ``description`` (default "Forbidden: bot was
        blocked by the user"; other real ones: "Forbidden: bot was kicked from the supergroup
        chat", "Forbidden: user is deactivated"). ``token=None`` blocks every bot."""
        key = _norm_chat_id(chat_id)
        with self._lock:
            self._blocked.setdefault(key, []).append(_Block(description, token))

    def unblock_chat(self, chat_id: int | str, *, token: str | None = None) -> None:
        """Undo :meth:`block_chat` (for one bot, or every block when ``token`` is None)."""
        key = _norm_chat_id(chat_id)
        with self._lock:
            blocks = [b for b in self._blocked.get(key, []) if token is not None and
                      b.token != token]
            if blocks:
                self._blocked[key] = blocks
            else:
                self._blocked.pop(key, None)

    def migrate_chat(self, chat_id: int, new_chat_id: int) -> None:
        """Make sends to a basic group answer 400 "Bad Request: group chat was upgraded to a
        supergroup chat" with ``parameters.migrate_to_chat_id`` (python-telegram-bot raises
        ``ChatMigrated``)."""
        with self._lock:
            self._blocked.setdefault(_norm_chat_id(chat_id), []).append(_Block(
                "Bad Request: group chat was upgraded to a supergroup chat", None,
                {"migrate_to_chat_id": new_chat_id}))

    def set_webhook_error(self, token: str, message: str, *, date: int | None = None) -> None:
        """Record a delivery failure shown by getWebhookInfo as ``last_error_message`` (e.g.
        "Wrong response from the webhook: 500 Internal Server Error") and ``last_error_date``
        (unix seconds, default now). Raises ``KeyError`` for an unknown token and
        ``RuntimeError`` if the bot has no webhook."""
        with self._lock:
            webhook = self._bots[token].webhook
            if webhook is None:
                raise RuntimeError("bot has no webhook set")
            webhook.last_error_message = message
            webhook.last_error_date = int(time.time()) if date is None else int(date)

    def webhook(self, token: str) -> dict[str, Any] | None:
        """The webhook registered for ``token`` (``url``, ``secret_token``, ``allowed_updates``,
        ``max_connections``...) or None."""
        with self._lock:
            hook = self._bots[token].webhook
            return None if hook is None else dict(hook.__dict__)

    def commands(self, token: str, *, scope: dict[str, Any] | None = None,
                 language_code: str = "") -> list[dict[str, str]]:
        """The command list stored by setMyCommands for ``scope`` (default scope if None)."""
        with self._lock:
            key = (_scope_key(scope), language_code)
            return [dict(c) for c in self._bots[token].commands.get(key, [])]

    # -- failure injection ----------------------------------------------------------------

    def fail_next(self, method: str, *, error_code: int, description: str | None = None,
                  retry_after: int | None = None, times: int = 1,
                  chat_id: int | str | None = None, token: str | None = None,
                  parameters: dict[str, Any] | None = None, after: int = 0) -> None:
        """Answer the next ``times`` matching calls with an error instead of running them.

        Args:
            method: Bot API method name (case-insensitive) or ``"*"`` for any method.
            error_code: HTTP status and ``error_code`` (429, 403, 400, 500...).
            description: body description; defaults to Telegram's wording for the code, for
                429 "Too Many Requests: retry after N".
            retry_after: seconds for ``parameters.retry_after``; 429 defaults to 1 (Telegram
                always sends it with 429, and python-telegram-bot raises ``RetryAfter`` only
                when it is present and non-zero).
            times: how many matching calls fail.
            chat_id, token: only calls with this ``chat_id`` param / bot token match.
            parameters: extra ``ResponseParameters`` (e.g. ``{"migrate_to_chat_id": -100..}``).
            after: let this many matching calls succeed first (e.g. fail the second part of an answer).

        Token checks still come first: an unknown token answers 401 whatever is injected.
        """
        params = dict(parameters or {})
        if error_code == 429:
            retry_after = 1 if retry_after is None else int(retry_after)
        if retry_after is not None:
            params["retry_after"] = int(retry_after)
        if description is None:
            if error_code == 429:
                description = f"Too Many Requests: retry after {params['retry_after']}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(error_code, HTTPStatus(error_code).phrase)
        with self._lock:
            self._failures.append(_Failure(
                method=None if method == "*" else method.lower(), error_code=int(error_code),
                description=description, parameters=params or None, remaining=int(times),
                chat_id=_norm_chat_id(chat_id), token=token, skip=int(after)))

    def delay_next(self, method: str, *, seconds: float, times: int = 1, chat_id: int | str | None = None,
                   token: str | None = None) -> None:
        """Answer the next ``times`` matching calls only after ``seconds`` (a slow Telegram): the call is
        recorded and run when the delay is over; other calls are not held up meanwhile.

        ``method``: Bot API method name (case-insensitive) or ``"*"``; ``chat_id``/``token`` narrow it.
        """
        with self._lock:
            self._delays.append(_Failure(method=None if method == "*" else method.lower(), error_code=0,
                                         description="", parameters={"seconds": float(seconds)},
                                         remaining=int(times), chat_id=_norm_chat_id(chat_id), token=token))

    def _take_delay(self, token: str, method: str, params: dict[str, Any]) -> float:
        with self._lock:
            for delay in self._delays:
                if delay.matches(token, method, params):
                    delay.remaining -= 1
                    if delay.remaining <= 0:
                        self._delays.remove(delay)
                    return float(delay.parameters["seconds"])
        return 0.0

    # -- recorded calls -------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of every Bot API call, oldest first. Each dict: ``token``, ``method``
        (canonical name such as "sendMessage", or as sent when unknown), ``params`` (decoded:
        ints/bools typed, JSON fields such as ``reply_markup`` parsed to objects, uploaded files
        as ``{"filename", "size", "content_type"}``), ``content_type`` (the request's
        encoding), ``http_method``, ``time`` (``time.monotonic()`` seconds), ``status_code``
        and ``response`` (the JSON body sent back)."""
        with self._lock:
            return list(self._requests)

    def calls(self, method: str, *, token: str | None = None) -> list[dict[str, Any]]:
        """Recorded calls of ``method`` (case-insensitive), whatever their status."""
        wanted = method.lower()
        return [r for r in self.requests if r["method"].lower() == wanted and
                (token is None or r["token"] == token)]

    def sent_messages(self, chat_id: int | str | None = None,
                      token: str | None = None) -> list[dict[str, Any]]:
        """``params`` of the successful (HTTP 200) sendMessage calls, optionally for one chat
        and/or bot, oldest first."""
        key = _norm_chat_id(chat_id)
        return [r["params"] for r in self.calls("sendMessage", token=token)
                if r["status_code"] == 200 and
                (key is None or _norm_chat_id(r["params"].get("chat_id")) == key)]

    def stored_message(self, token: str, chat_id: int | str, message_id: int) -> dict[str, Any]:
        """The ``Message`` object as the emulator holds it now (after edits). Raises
        ``KeyError`` if no such bot message exists."""
        with self._lock:
            return dict(self._messages[(token, _norm_chat_id(chat_id))][int(message_id)])

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Block until ``predicate()`` returns a truthy value, re-checking after each recorded
        call; returns that value. Raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s")
                self._changed.wait(min(remaining, 0.25))

    def wait_for_messages(self, n: int, timeout: float = 5.0, *, chat_id: int | str | None = None,
                          token: str | None = None) -> list[dict[str, Any]]:
        """Wait until at least ``n`` messages were sent successfully (optionally to one chat /
        by one bot); returns their params. Raises ``TimeoutError`` with the count seen."""
        try:
            return self.wait_for(
                lambda: (msgs if len(msgs := self.sent_messages(chat_id, token)) >= n else None),
                timeout)
        except TimeoutError:
            seen = len(self.sent_messages(chat_id, token))
            raise TimeoutError(f"expected {n} sent messages within {timeout} s, saw {seen}") \
                from None

    def reset(self, *, bots: bool = False) -> None:
        """Forget recorded calls, injected failures, blocks, chats, messages, webhooks, commands
        and queued updates. Registered bots (and their revocation) stay unless ``bots``."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._delays.clear()
            self._blocked.clear()
            self._chats.clear()
            self._messages.clear()
            self._message_ids.clear()
            self._callback_queries.clear()
            if bots:
                self._bots.clear()
            for bot in self._bots.values():
                bot.webhook = None
                bot.commands.clear()
                bot.pending_updates.clear()
            self._changed.notify_all()

    # -- updates --------------------------------------------------------------------------

    def _next_message_id(self, token: str, chat_key: int | str) -> int:
        counter = self._message_ids.setdefault((token, chat_key), itertools.count(1))
        return next(counter)

    def _next_update_id(self, bot: _Bot) -> int:
        update_id = bot.next_update_id
        bot.next_update_id += 1
        return update_id

    def make_message_update(self, token: str, chat_id: int, text: str, *,
                            user: dict[str, Any] | None = None, chat_type: str | None = None,
                            date: int | None = None) -> dict[str, Any]:
        """Build a realistic ``Update`` with a text ``message`` from a user to the bot.

        ``user`` defaults to ``{"id": chat_id, "is_bot": False, "first_name": "User"}`` for
        private chats. A leading ``/command`` gets its ``bot_command`` entity (UTF-16 units)
        as Telegram adds it. The message id comes from the same per-chat counter as the bot's
        own messages. Raises ``KeyError`` for an unknown token."""
        with self._lock:
            bot = self._bots[token]
            chat = self._chat_object(chat_id)
            if chat_type is not None:
                chat["type"] = chat_type
            sender = dict(user) if user else {
                "id": chat_id if chat_id > 0 else 5_000_000_001, "is_bot": False,
                "first_name": chat.get("first_name", "User")}
            message: dict[str, Any] = {
                "message_id": self._next_message_id(token, _norm_chat_id(chat_id)),
                "from": sender, "chat": chat,
                "date": int(time.time()) if date is None else date, "text": text}
            match = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
            if match:
                message["entities"] = [{"offset": 0, "length": utf16_len(match.group(0)),
                                        "type": "bot_command"}]
            return {"update_id": self._next_update_id(bot), "message": message}

    def make_callback_update(self, token: str, chat_id: int, message_id: int, data: str, *,
                             user: dict[str, Any] | None = None) -> dict[str, Any]:
        """Build a ``callback_query`` Update for a button press on the bot's message
        ``message_id`` (which must have been sent through the emulator). Its id becomes a valid
        ``callback_query_id`` that may be answered once. Raises ``KeyError`` if the message is
        unknown."""
        with self._lock:
            bot = self._bots[token]
            message = self.stored_message(token, chat_id, message_id)
            query_id = str(next(self._callback_ids))
            self._callback_queries[query_id] = False
            sender = dict(user) if user else {"id": chat_id if chat_id > 0 else 5_000_000_001,
                                              "is_bot": False, "first_name": "User"}
            return {"update_id": self._next_update_id(bot), "callback_query": {
                "id": query_id, "from": sender,
                "chat_instance": str(-zlib.crc32(f"{token}/{chat_id}".encode())),
                "message": message, "data": data}}

    def post_update(self, token: str, update: dict[str, Any], *,
                    timeout: float = 10.0) -> int | None:
        """Deliver ``update`` like Telegram: POST it as JSON to the bot's webhook with the
        ``X-Telegram-Bot-Api-Secret-Token`` header (when a secret is set), or queue it for
        getUpdates when no webhook is set.

        Updates whose type is not in the webhook's ``allowed_updates`` are dropped, as by
        Telegram. A non-2xx answer or a connection failure is recorded as the webhook's
        ``last_error_message`` (Telegram's "Wrong response from the webhook: 500 Internal Server
        Error" wording) and counted in ``pending_update_count``; it is not retried.

        Returns:
            The webhook's HTTP status, or None when queued or filtered out.
        Raises:
            KeyError: unknown token.
        """
        with self._lock:
            bot = self._bots[token]
            hook = bot.webhook
            update_type = next((k for k in update if k != "update_id"), "")
            allowed = hook.allowed_updates if hook else None
            if allowed is not None and len(allowed) > 0:
                if update_type not in allowed:
                    return None
            elif update_type in _OPT_IN_UPDATE_TYPES:
                return None
            if hook is None:
                bot.pending_updates.append(update)
                self._changed.notify_all()
                return None
            url, secret = hook.url, hook.secret_token
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        request = urllib.request.Request(url, data=json.dumps(update).encode("utf-8"),
                                         headers=headers, method="POST")
        error: str | None = None
        status: int | None
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = f"Wrong response from the webhook: {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError) as exc:
            status = None
            reason = getattr(exc, "reason", exc)
            error = "Read timeout expired" if isinstance(reason, TimeoutError) else \
                "Connection refused"
        if error is not None:
            with self._lock:
                if bot.webhook is not None:
                    bot.webhook.last_error_message = error
                    bot.webhook.last_error_date = int(time.time())
                bot.pending_updates.append(update)
        return status

    # -- request processing (called by the HTTP handler) ----------------------------------

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)
            self._changed.notify_all()

    def _chat_object(self, chat_id: int | str) -> dict[str, Any]:
        key = _norm_chat_id(chat_id)
        if key in self._chats:
            return dict(self._chats[key])
        if isinstance(key, int):
            if key > 0:
                return {"id": key, "first_name": "User", "type": "private"}
            if key <= -1_000_000_000_000:
                return {"id": key, "title": "Supergroup", "type": "supergroup"}
            return {"id": key, "title": "Group", "type": "group"}
        raise _bad_request("chat not found")

    def _resolve_chat(self, bot: _Bot, params: dict[str, Any]) -> tuple[int | str, dict[str, Any]]:
        """The chat key and Chat object for ``params["chat_id"]``.

        Raises:
            ApiError: 400 "chat_id is empty", 400 "chat not found", 403 when blocked, 400 with
                ``migrate_to_chat_id`` for a migrated group.
        """
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad_request("chat_id is empty")
        key = _norm_chat_id(raw)
        assert key is not None
        chat = self._chat_object(key)
        for block in self._blocked.get(key, []):
            if block.token is None or block.token == bot.token:
                code = 400 if block.parameters else 403
                raise ApiError(code, block.description, block.parameters)
        return (chat["id"] if isinstance(key, str) else key), chat

    def _take_failure(self, token: str, method: str, params: dict[str, Any]) -> ApiError | None:
        with self._lock:
            for failure in self._failures:
                if failure.matches(token, method, params):
                    if failure.skip > 0:
                        failure.skip -= 1
                        continue
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    return ApiError(failure.error_code, failure.description, failure.parameters)
        return None

    def _dispatch(self, token: str, method: str,
                  params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run one Bot API call; returns (HTTP status, JSON body)."""
        with self._lock:
            bot = self._bots.get(token)
            if bot is None or bot.revoked:
                return 401, ApiError(401, "Unauthorized").body()
        entry = _METHODS.get(method.lower())
        if entry is None:
            return 404, ApiError(404, "Not Found").body()
        delay = self._take_delay(token, method.lower(), params)
        if delay > 0:
            time.sleep(delay)  # outside the lock: other calls go on
        failure = self._take_failure(token, method.lower(), params)
        if failure is not None:
            return failure.error_code, failure.body()
        try:
            if method.lower() == "getupdates":
                # Long polling waits for updates without holding the lock for the whole call.
                outcome = entry[1](self, bot, params)
            else:
                with self._lock:
                    outcome = entry[1](self, bot, params)
        except ApiError as exc:
            return exc.error_code, exc.body()
        if isinstance(outcome, _Ok):
            body: dict[str, Any] = {"ok": True, "result": outcome.result}
            if outcome.description:
                body["description"] = outcome.description
            return 200, body
        return 200, {"ok": True, "result": outcome}

    # -- Bot API methods ------------------------------------------------------------------

    @_method("getMe")
    def _get_me(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        return {**bot.user(), "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False,
                "has_main_web_app": False}

    @_method("setWebhook")
    def _set_webhook(self, bot: _Bot, params: dict[str, Any]) -> _Ok:
        url = str(params.get("url") or "").strip()
        if not url:
            return self._delete_webhook(bot, params)
        secret = params.get("secret_token")
        secret = None if secret in (None, "") else str(secret)
        if secret is not None:
            # telegram-bot-api checks the length first, then the alphabet.
            if len(secret) > 256:
                raise _bad_request("secret token is too long")
            if not _SECRET_TOKEN_RE.match(secret):
                raise _bad_request("secret token contains unallowed characters")
        parsed = urllib.parse.urlsplit(url)
        if self.require_https_webhook and parsed.scheme.lower() != "https":
            raise _bad_request("bad webhook: HTTPS url must be provided for webhook")
        if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
            raise _bad_request("bad webhook: Failed to resolve host: Name or service not known")
        allowed = params.get("allowed_updates")
        if allowed is not None and not isinstance(allowed, list):
            raise _bad_request("can't parse allowed_updates JSON object")
        max_connections = params.get("max_connections")
        max_connections = 40 if max_connections in (None, "") else int(max_connections)
        # Telegram clamps max_connections to 1..100 rather than rejecting it.
        max_connections = min(max(max_connections, 1), 100)
        old = bot.webhook
        if allowed is not None:
            allowed_updates: list[str] | None = [str(u) for u in allowed]
        else:
            # Bot API: "If not specified, the previous setting will be used."
            allowed_updates = old.allowed_updates if old is not None else None
        new = _Webhook(url=url, secret_token=secret, allowed_updates=allowed_updates,
                       max_connections=max_connections, ip_address=params.get("ip_address"))
        if params.get("drop_pending_updates"):
            bot.pending_updates.clear()
        settings = ("url", "secret_token", "allowed_updates", "max_connections")
        if old is not None and all(getattr(old, k) == getattr(new, k) for k in settings):
            return _Ok(True, "Webhook is already set")
        bot.webhook = new
        return _Ok(True, "Webhook was set")

    @_method("deleteWebhook")
    def _delete_webhook(self, bot: _Bot, params: dict[str, Any]) -> _Ok:
        if params.get("drop_pending_updates"):
            bot.pending_updates.clear()
        if bot.webhook is None:
            return _Ok(True, "Webhook is already deleted")
        bot.webhook = None
        return _Ok(True, "Webhook was deleted")

    @_method("getWebhookInfo")
    def _get_webhook_info(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        hook = bot.webhook
        if hook is None:
            return {"url": "", "has_custom_certificate": False,
                    "pending_update_count": len(bot.pending_updates)}
        info: dict[str, Any] = {"url": hook.url, "has_custom_certificate": False,
                                "pending_update_count": len(bot.pending_updates)}
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        info["max_connections"] = hook.max_connections
        info["ip_address"] = hook.ip_address or "127.0.0.1"
        if hook.allowed_updates is not None:
            info["allowed_updates"] = hook.allowed_updates
        return info

    @_method("getUpdates")
    def _get_updates(self, bot: _Bot, params: dict[str, Any]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + min(max(int(params.get("timeout") or 0), 0), 50)
        with self._changed:
            if bot.webhook is not None:
                raise ApiError(409, DESC_WEBHOOK_CONFLICT)
            offset = int(params.get("offset") or 0)
            if offset:
                # Bot API: an offset confirms every update with a smaller id.
                bot.pending_updates[:] = [u for u in bot.pending_updates
                                          if u["update_id"] >= offset]
            while not bot.pending_updates and time.monotonic() < deadline:
                self._changed.wait(min(deadline - time.monotonic(), 0.25))
            limit = min(max(int(params.get("limit") or 100), 1), 100)
            return [dict(u) for u in bot.pending_updates[:limit]]

    @_method("sendMessage")
    def _send_message(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        chat_key, chat = self._resolve_chat(bot, params)
        text = params.get("text")
        text = "" if text is None else str(text)
        plain, entities = _format_text(text, params.get("parse_mode"), params.get("entities"),
                                       self.strict_html_entities)
        if not plain.strip():
            raise _bad_request("message text is empty")
        if utf16_len(plain) > MAX_MESSAGE_LENGTH:
            raise _bad_request("message is too long")
        markup = _check_reply_markup(params.get("reply_markup"))
        message: dict[str, Any] = {
            "message_id": self._next_message_id(bot.token, chat_key),
            "from": bot.user(), "chat": chat, "date": int(time.time()), "text": plain}
        if entities:
            message["entities"] = entities
        if params.get("message_thread_id") is not None and chat.get("type") == "supergroup":
            message["message_thread_id"] = params["message_thread_id"]
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup  # only inline keyboards are echoed in the Message
        self._messages.setdefault((bot.token, chat_key), {})[message["message_id"]] = message
        return message

    @_method("sendDocument")
    def _send_document(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        chat_key, chat = self._resolve_chat(bot, params)
        document = params.get("document")
        if document in (None, ""):
            raise _bad_request("there is no document in the request")
        caption, entities = _format_text(str(params.get("caption") or ""), params.get("parse_mode"),
                                         params.get("caption_entities"),
                                         self.strict_html_entities)
        if utf16_len(caption) > MAX_CAPTION_LENGTH:
            raise _bad_request("message caption is too long")
        name = document.get("filename", "file") if isinstance(document, dict) else "file"
        size = document.get("size", 0) if isinstance(document, dict) else 0
        message: dict[str, Any] = {
            "message_id": self._next_message_id(bot.token, chat_key),
            "from": bot.user(), "chat": chat, "date": int(time.time()),
            "document": {"file_id": f"BQACAgIAAxkBAAI{chat_key}_{name}",
                         "file_unique_id": f"AgAD{zlib.crc32(name.encode())}",
                         "file_name": name, "file_size": size}}
        if caption:
            message["caption"] = caption
            if entities:
                message["caption_entities"] = entities
        self._messages.setdefault((bot.token, chat_key), {})[message["message_id"]] = message
        return message

    @_method("sendChatAction")
    def _send_chat_action(self, bot: _Bot, params: dict[str, Any]) -> bool:
        self._resolve_chat(bot, params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    def _stored_for_edit(self, bot: _Bot, params: dict[str, Any],
                         missing: str) -> tuple[int | str, dict[str, Any]] | None:
        if params.get("inline_message_id"):
            return None
        chat_key, _chat = self._resolve_chat(bot, params)
        message_id = params.get("message_id")
        if message_id in (None, ""):
            raise _bad_request("message identifier is not specified")
        stored = self._messages.get((bot.token, chat_key), {}).get(int(message_id))
        if stored is None:
            raise _bad_request(missing)
        return chat_key, stored

    @_method("editMessageText")
    def _edit_message_text(self, bot: _Bot, params: dict[str, Any]) -> Any:
        text = "" if params.get("text") is None else str(params["text"])
        plain, entities = _format_text(text, params.get("parse_mode"), params.get("entities"),
                                       self.strict_html_entities)
        if not plain.strip():
            raise _bad_request("message text is empty")
        if utf16_len(plain) > MAX_MESSAGE_LENGTH:
            raise _bad_request("message is too long")
        markup = _check_reply_markup(params.get("reply_markup"))
        found = self._stored_for_edit(bot, params, "message to edit not found")
        if found is None:
            return True  # inline messages: Bot API returns True
        _chat_key, stored = found
        if "text" not in stored:
            raise _bad_request("there is no text in the message to edit")
        if stored["text"] == plain and stored.get("entities", []) == entities and \
                stored.get("reply_markup") == markup:
            raise ApiError(400, DESC_NOT_MODIFIED)
        stored["text"] = plain
        if entities:
            stored["entities"] = entities
        else:
            stored.pop("entities", None)
        if markup is not None:
            stored["reply_markup"] = markup
        else:
            stored.pop("reply_markup", None)  # Bot API: omitted markup removes the keyboard
        stored["edit_date"] = int(time.time())
        return dict(stored)

    @_method("editMessageReplyMarkup")
    def _edit_message_reply_markup(self, bot: _Bot, params: dict[str, Any]) -> Any:
        markup = _check_reply_markup(params.get("reply_markup"))
        found = self._stored_for_edit(bot, params, "message to edit not found")
        if found is None:
            return True
        _chat_key, stored = found
        if stored.get("reply_markup") == markup:
            raise ApiError(400, DESC_NOT_MODIFIED)
        if markup is None:
            stored.pop("reply_markup", None)
        else:
            stored["reply_markup"] = markup
        stored["edit_date"] = int(time.time())
        return dict(stored)

    @_method("deleteMessage")
    def _delete_message(self, bot: _Bot, params: dict[str, Any]) -> bool:
        found = self._stored_for_edit(bot, params, "message to delete not found")
        if found is None:
            raise _bad_request("message to delete not found")
        chat_key, stored = found
        del self._messages[(bot.token, chat_key)][stored["message_id"]]
        return True

    @_method("answerCallbackQuery")
    def _answer_callback_query(self, bot: _Bot, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if not query_id:
            raise ApiError(400, DESC_QUERY_TOO_OLD)
        # Ids minted by make_callback_update can be answered once; foreign ids (fixtures fed
        # straight to the webhook) are accepted because the emulator cannot know them.
        if self._callback_queries.get(query_id):
            raise ApiError(400, DESC_QUERY_TOO_OLD)
        if query_id in self._callback_queries:
            self._callback_queries[query_id] = True
        return True

    @_method("setMyCommands")
    def _set_my_commands(self, bot: _Bot, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if commands in (None, ""):
            commands = []
        if not isinstance(commands, list):
            raise _bad_request("expected an Array of BotCommand")
        if len(commands) > 100:
            raise _bad_request("BOT_COMMANDS_TOO_MUCH")
        cleaned: list[dict[str, str]] = []
        for item in commands:
            if not isinstance(item, dict):
                raise _bad_request("expected an Object")
            command, description = item.get("command"), item.get("description")
            if not isinstance(command, str):
                raise _bad_request('field "command" must be of type String')
            if not isinstance(description, str):
                raise _bad_request('field "description" must be of type String')
            # Bot API BotCommand: "1-32 characters. Can contain only lowercase English letters,
            # digits and underscores"; description "1-256 characters".
            command = command.lstrip("/")
            if not _COMMAND_RE.match(command):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description.strip()) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": command, "description": description})
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        if cleaned:
            bot.commands[key] = cleaned
        else:
            bot.commands.pop(key, None)
        return True

    @_method("getMyCommands")
    def _get_my_commands(self, bot: _Bot, params: dict[str, Any]) -> list[dict[str, str]]:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        return [dict(c) for c in bot.commands.get(key, [])]

    @_method("deleteMyCommands")
    def _delete_my_commands(self, bot: _Bot, params: dict[str, Any]) -> bool:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        bot.commands.pop(key, None)
        return True


def _scope_key(scope: Any) -> str:
    if not scope:
        return json.dumps({"type": "default"})
    if isinstance(scope, str):
        try:
            scope = json.loads(scope)
        except ValueError:
            raise _bad_request("can't parse BotCommandScope JSON object") from None
    return json.dumps(scope, sort_keys=True)


def _check_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Validate a decoded ``reply_markup``.

    Raises:
        ApiError: 400 "BUTTON_DATA_INVALID" for callback_data over 64 bytes (Bot API
            InlineKeyboardButton: "1-64 bytes"); "can't parse inline keyboard button: Text
            buttons are unallowed in the inline keyboard" for a button without an action.
    """
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad_request("field \"inline_keyboard\" of the InlineKeyboardMarkup should be an "
                           "Array of Arrays")
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise _bad_request("can't parse inline keyboard button: Text buttons are "
                                   "unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= \
                    MAX_CALLBACK_DATA_BYTES:
                raise _bad_request("BUTTON_DATA_INVALID")
            actions = {"url", "callback_data", "web_app", "login_url", "switch_inline_query",
                       "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
                       "copy_text", "callback_game", "pay"}
            if not actions & button.keys():
                raise _bad_request("can't parse inline keyboard button: Text buttons are "
                                   "unallowed in the inline keyboard")
    return markup


# --------------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------------

class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps python-telegram-bot's pooled connections alive; every answer has a length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # would add ~40 ms to every call.
    disable_nagle_algorithm = True
    server_version = "nginx"  # what api.telegram.org announces
    sys_version = ""

    @property
    def emulator(self) -> TelegramEmulator:
        return self.server.emulator  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # test output stays readable; every call is in TelegramEmulator.requests instead

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = bytearray()
            while True:
                size_line = self.rfile.readline().split(b";", 1)[0].strip()
                size = int(size_line or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(chunks)
                chunks += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        body = self._read_body()
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        if path.startswith("/_emulator/"):
            self._control(path[len("/_emulator/"):], split.query, body)
            return
        match = re.fullmatch(r"/bot([^/]*)/([^/]*)", path)
        token, method = (match.group(1), match.group(2)) if match else ("", path)
        content_type = self.headers.get("Content-Type", "")
        canonical = _METHODS.get(method.lower(), (method, None))[0]
        params: dict[str, Any] = {}
        try:
            if match is None or not _TOKEN_RE.match(token):
                # Telegram answers malformed tokens (and foreign paths) before anything else.
                raise ApiError(404, "Not Found")
            raw: dict[str, Any] = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
            mime = content_type.split(";", 1)[0].strip().lower()
            if mime == "application/json" and body.strip():
                try:
                    decoded = json.loads(body)
                except ValueError:
                    raise _bad_request("can't parse JSON object") from None
                if not isinstance(decoded, dict):
                    raise _bad_request("can't parse JSON object")
                raw.update(decoded)
            elif mime == "application/x-www-form-urlencoded":
                raw.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                                  keep_blank_values=True))
            elif mime == "multipart/form-data":
                raw.update(_parse_multipart(content_type, body))
            params = raw
            params = _normalise_params(raw)
            status, response = self.emulator._dispatch(token, canonical, params)
        except ApiError as exc:
            status, response = exc.error_code, exc.body()
        except Exception as exc:  # noqa: BLE001 - answer instead of dropping the connection
            # An emulator bug or an input it cannot coerce: a 500 names it in the test output,
            # where a dropped connection would surface as an opaque NetworkError.
            traceback.print_exc()
            status, response = 500, {"ok": False, "error_code": 500,
                                     "description": f"Internal Server Error: {exc!r}"}
        self.emulator._record({
            "token": token, "method": canonical, "params": params,
            "content_type": content_type.split(";", 1)[0].strip(), "http_method": self.command,
            "time": time.monotonic(), "status_code": status, "response": response})
        self._send_json(status, response)

    def _control(self, action: str, query: str, body: bytes) -> None:
        """The control API for a process that does not hold the emulator object."""
        emulator = self.emulator
        try:
            data = json.loads(body) if body.strip() else {}
            args = dict(urllib.parse.parse_qsl(query))
            if action == "requests" and self.command == "GET":
                result: Any = emulator.requests
                if "method" in args:
                    result = [r for r in result if r["method"].lower() == args["method"].lower()]
                if "token" in args:
                    result = [r for r in result if r["token"] == args["token"]]
            elif action == "messages" and self.command == "GET":
                result = emulator.sent_messages(args.get("chat_id"), args.get("token"))
            elif self.command != "POST":
                raise ValueError(f"unknown control endpoint GET /_emulator/{action}")
            elif action == "bots":
                result = emulator.add_bot(str(data["token"]), id=data.get("id"),
                                          username=str(data["username"]),
                                          first_name=str(data.get("first_name", "Test Bot")))
            elif action == "revoke":
                emulator.revoke_bot(str(data["token"]))
                result = True
            elif action == "fail":
                emulator.fail_next(
                    str(data.get("method", "*")), error_code=int(data["error_code"]),
                    description=data.get("description"), retry_after=data.get("retry_after"),
                    times=int(data.get("times", 1)), chat_id=data.get("chat_id"),
                    token=data.get("token"), parameters=data.get("parameters"))
                result = True
            elif action == "delay":
                emulator.delay_next(str(data.get("method", "*")), seconds=float(data["seconds"]),
                                    times=int(data.get("times", 1)), chat_id=data.get("chat_id"),
                                    token=data.get("token"))
                result = True
            elif action == "block":
                emulator.block_chat(data["chat_id"], token=data.get("token"),
                                    description=data.get("description", DESC_BLOCKED))
                result = True
            elif action == "unblock":
                emulator.unblock_chat(data["chat_id"], token=data.get("token"))
                result = True
            elif action == "webhook_error":
                emulator.set_webhook_error(str(data["token"]), str(data["message"]),
                                           date=data.get("date"))
                result = True
            elif action == "updates":
                result = emulator.post_update(str(data["token"]), data["update"])
            elif action == "reset":
                emulator.reset(bots=bool(data.get("bots", False)))
                result = True
            else:
                raise ValueError(f"unknown control endpoint POST /_emulator/{action}")
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            self._send_json(400, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            return
        self._send_json(200, {"ok": True, "result": result})


class EmulatorClient:
    """Drive a :class:`TelegramEmulator` running in another process through ``/_emulator/*``.

    ``base_url`` is the emulator's ``base_url`` ("http://HOST:PORT"). Every method raises
    ``RuntimeError`` with the server's message when the control call is rejected.
    """

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, http_method: str, action: str, payload: dict[str, Any] | None = None,
              query: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/_emulator/{action}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=http_method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())["result"]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(exc.read().decode("utf-8", "replace")) from None

    def add_bot(self, token: str, *, id: int | None = None, username: str,
                first_name: str = "Test Bot") -> dict[str, Any]:
        """See :meth:`TelegramEmulator.add_bot`."""
        return self._call("POST", "bots", {"token": token, "id": id, "username": username,
                                           "first_name": first_name})

    def revoke_bot(self, token: str) -> None:
        """See :meth:`TelegramEmulator.revoke_bot`."""
        self._call("POST", "revoke", {"token": token})

    def fail_next(self, method: str, *, error_code: int, description: str | None = None,
                  retry_after: int | None = None, times: int = 1,
                  chat_id: int | str | None = None, token: str | None = None) -> None:
        """See :meth:`TelegramEmulator.fail_next`."""
        self._call("POST", "fail", {"method": method, "error_code": error_code,
                                    "description": description, "retry_after": retry_after,
                                    "times": times, "chat_id": chat_id, "token": token})

    def block_chat(self, chat_id: int | str, *, token: str | None = None,
                   description: str = DESC_BLOCKED) -> None:
        """See :meth:`TelegramEmulator.block_chat`."""
        self._call("POST", "block", {"chat_id": chat_id, "token": token,
                                     "description": description})

    def unblock_chat(self, chat_id: int | str, *, token: str | None = None) -> None:
        """See :meth:`TelegramEmulator.unblock_chat`."""
        self._call("POST", "unblock", {"chat_id": chat_id, "token": token})

    def set_webhook_error(self, token: str, message: str) -> None:
        """See :meth:`TelegramEmulator.set_webhook_error`."""
        self._call("POST", "webhook_error", {"token": token, "message": message})

    def post_update(self, token: str, update: dict[str, Any]) -> int | None:
        """See :meth:`TelegramEmulator.post_update`."""
        return self._call("POST", "updates", {"token": token, "update": update})

    def requests(self, method: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
        """See :attr:`TelegramEmulator.requests` (optionally filtered)."""
        return self._call("GET", "requests", query={"method": method, "token": token})

    def sent_messages(self, chat_id: int | str | None = None,
                      token: str | None = None) -> list[dict[str, Any]]:
        """See :meth:`TelegramEmulator.sent_messages`."""
        return self._call("GET", "messages", query={"chat_id": chat_id, "token": token})

    def reset(self, *, bots: bool = False) -> None:
        """See :meth:`TelegramEmulator.reset`."""
        self._call("POST", "reset", {"bots": bots})


def _parse_bot_arg(value: str) -> tuple[str, int, str]:
    # The token itself contains a colon, so split from the right: TOKEN:ID:USERNAME.
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        raise argparse.ArgumentTypeError(f"expected TOKEN:ID:USERNAME, got {value!r}")
    return parts[0], int(parts[1]), parts[2]


def main(argv: Iterable[str] | None = None) -> None:
    """CLI: ``python -m saas_bot.testing.telegram_emulator --port 8081 --bot TOKEN:ID:USERNAME`` (the
    ``--bot`` option repeats); serves until interrupted."""
    parser = argparse.ArgumentParser(description="Local Telegram Bot API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--bot", action="append", default=[], type=_parse_bot_arg,
                        metavar="TOKEN:ID:USERNAME")
    parser.add_argument("--lenient-html", action="store_true",
                        help="accept a bare '&' in HTML like the real server does")
    args = parser.parse_args(list(argv) if argv is not None else None)
    emulator = TelegramEmulator(args.host, args.port,
                                strict_html_entities=not args.lenient_html).start()
    for token, bot_id, username in args.bot:
        emulator.add_bot(token, id=bot_id, username=username)
    print(f"Telegram Bot API emulator on {emulator.base_url} "
          f"({len(args.bot)} bot(s)); control API under /_emulator/", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
