"""Metering when the chat model's server reports no token usage: counted with tiktoken, marked as an
estimate, and token quotas still hold (the LLM stub answering without its ``usage`` block)."""
import pytest

from billing.models import UsageEvent
from rag.answering import answer_question
from saas_bot.testing.llm_stub import count_prompt_tokens, count_tokens

pytestmark = pytest.mark.django_db
QUESTION = "how long do sharing links stay valid by default?"


def test_without_provider_usage_tokens_are_counted_and_marked_estimated(company, demo_kb, llm):
    llm.omit_usage()
    answer = answer_question(company=company, question=QUESTION, persona="You are Acme's assistant.")
    assert not answer.refused and answer.tokens_estimated
    request = llm.requests[-1]
    # The stub counts as OpenAI bills (cookbook rule, cl100k): our estimate is that same figure.
    assert answer.prompt_tokens == count_prompt_tokens(request["messages"]) > 100
    assert answer.completion_tokens == count_tokens(answer.text) > 0


def test_provider_usage_is_used_when_reported(company, demo_kb, llm):
    answer = answer_question(company=company, question=QUESTION)
    assert not answer.tokens_estimated and answer.prompt_tokens > 100 and answer.completion_tokens > 0


def test_token_quota_holds_when_the_provider_reports_no_usage(make_company, telegram, llm,
                                                              django_capture_on_commit_callbacks):
    from bots.models import Conversation
    from bots.answers import bot_ask
    from bots.lifecycle import bot_connect
    from rag.services import document_add_text, documents_ingest
    from saas_bot.testing.pytest_plugin import TEST_BOT_ID, TEST_TOKEN

    llm.omit_usage()
    company = make_company("tokens", max_tokens_per_period=200)
    telegram.add_bot(TEST_TOKEN, id=TEST_BOT_ID, username="acme_tokens_bot")
    bot = bot_connect(company=company, token=TEST_TOKEN, register_webhook=False)
    document, _ = document_add_text(company=company, title="Sharing links",
                                    text="# Sharing links\nSharing links expire after 30 days by default.")
    documents_ingest(company=company, documents=[document])
    with django_capture_on_commit_callbacks(execute=True):  # the usage ledger is written after commit
        statuses = [bot_ask(bot=bot, question="when do sharing links expire?", channel=Conversation.Channel.API,
                        idempotency_key=f"quota-{i}").message.status for i in range(4)]
    events = UsageEvent.objects.filter(company=company, kind="llm_tokens")
    assert statuses[0] == "answered" and "limit_reached" in statuses, statuses
    assert events.exists() and all(e.tokens_estimated and e.prompt_tokens > 0 and e.completion_tokens > 0
                                   for e in events)
    used = sum(e.prompt_tokens + e.completion_tokens for e in events)
    assert used >= 200  # the quota was reached with estimated tokens, not stuck at 0
