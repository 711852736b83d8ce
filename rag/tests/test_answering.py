"""Answers: extractive and chat model (over HTTP to the stub), sources, refusals, isolation."""
import pytest

from rag.answering import answer_question
from rag.retrieval import chunk_search

pytestmark = pytest.mark.django_db


def test_extractive_answer_cites_the_right_document_and_section(company, demo_kb):
    answer = answer_question(company=company, question="what are your support hours?")
    assert not answer.refused and answer.model == "extractive"
    assert "08:00" in answer.text
    assert answer.sources[0].document == "contacting-support.html" and answer.sources[0].section
    assert answer.prompt_tokens == answer.completion_tokens == 0


def test_pdf_answers_cite_a_page(company, demo_kb):
    answer = answer_question(company=company, question="how many API requests per minute am I allowed?")
    assert answer.sources[0].document == "api-and-webhooks.pdf" and answer.sources[0].page == 2


def test_chat_model_answer_uses_context_and_reports_provider_usage(company, demo_kb, llm):
    answer = answer_question(company=company, question="how long do sharing links stay valid by default?",
                             persona="You are Acme's assistant.")
    assert not answer.refused
    request = llm.requests[-1]
    assert request["model"] == "gpt-4o-mini"
    system, human = request["messages"][0]["content"], request["messages"][-1]["content"]
    assert "You are Acme's assistant." in system and "30 days" in human
    assert answer.prompt_tokens > 100 and answer.completion_tokens > 0 and answer.model.startswith("gpt-4o-mini")
    assert answer.sources


def test_chat_model_not_found_becomes_a_refusal(company, demo_kb, llm):
    llm.respond_with("NOT_FOUND")
    answer = answer_question(company=company, question="how long do sharing links stay valid by default?")
    assert answer.refused and answer.sources == [] and answer.prompt_tokens > 0


def test_chat_model_outage_is_a_provider_error(company, demo_kb, llm):
    from saas_bot.errors import ProviderUnavailable

    llm.fail_next(status=500, times=10)
    with pytest.raises(ProviderUnavailable):
        answer_question(company=company, question="how long do sharing links stay valid by default?")


def test_nothing_relevant_means_refusal(company, demo_kb):
    answer = answer_question(company=company, question="who won the football world cup in 1974?")
    assert answer.refused and "don't know" in answer.text


def test_a_company_never_receives_another_companys_chunks(make_company, company, demo_kb):
    from rag.services import document_add, documents_ingest

    other = make_company("other")
    assert chunk_search(company=other, query="sharing links expire", k=5) == []
    (own,) = documents_ingest(company=other, documents=[document_add(
        company=other, file_name="bananas.md", data=b"# Bananas\n\nSharing links to banana recipes expire.",
        schedule=False)[0]])
    assert {r.document_id for r in chunk_search(company=other, query="sharing links expire", k=5)} == {own.id}
    results = chunk_search(company=company, query="sharing links expire", k=5)
    assert results and all(r.document_id in {d.id for d in demo_kb} for r in results)


def test_a_new_short_question_is_not_answered_with_the_previous_topic(company, demo_kb):
    history = [("how long do sharing links stay valid by default?", "30 days")]
    alone = answer_question(company=company, question="what are your support hours?")
    after = answer_question(company=company, question="what are your support hours?", history=history)
    assert after.sources[0].document == alone.sources[0].document == "contacting-support.html"
    nonsense = answer_question(company=company, question="banana 2*3=6 [docs] _now_!", history=history)
    assert nonsense.refused


def test_a_complete_new_question_after_an_answer_is_not_answered_with_the_previous_topic(company, demo_kb):
    from rag.answering import is_follow_up

    history = [("how many API requests per minute am I allowed?", "120 requests per minute")]
    answer = answer_question(company=company, question="Can I pay for my plan with PayPal?", history=history)
    assert answer.refused or all(s.document != "api-and-webhooks.pdf" for s in answer.sources)
    unrelated = answer_question(company=company, question="Can I pay my gym membership with PayPal?", history=history)
    assert unrelated.refused
    assert is_follow_up("and with a password?") and is_follow_up("can I change it?")
    assert is_follow_up("what about teams?") and not is_follow_up("Can I pay for my plan with PayPal?")
