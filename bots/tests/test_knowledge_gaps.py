"""Knowledge gaps: grouping unanswered / 👎 questions, and answering a group once."""
import pytest

from bots.knowledge_gaps import knowledge_gap_resolve, knowledge_gaps, normalise_question
from bots.models import Conversation, KnowledgeGapResolution, Message
from bots.answers import bot_ask
from rag.models import Document
from saas_bot.errors import NotFound, ValidationFailed
from saas_bot.testing.pytest_plugin import DEMO_DIR

pytestmark = pytest.mark.django_db


def _gap(bot, question, *, status=Message.Status.NOT_FOUND, feedback=None, company=None):
    conversation = Conversation.objects.create(company=company or bot.company, bot=bot)
    return Message.objects.create(company=company or bot.company, bot=bot, conversation=conversation,
                                  question=question, status=status, feedback=feedback,
                                  answer="" if status == Message.Status.NOT_FOUND else "some answer")


def test_normalise_question():
    assert normalise_question("  How do I   cancel?!  ") == "how do i cancel"


def test_similar_questions_are_grouped_most_frequent_first(bot):
    cancel = [_gap(bot, q) for q in ("how do i cancel my subscription", "How do I cancel my subscription??",
                                     "I want to cancel my plan, how?")]
    thumbs = _gap(bot, "cancel subscription", status=Message.Status.ANSWERED,
                  feedback=Message.Feedback.DOWN)
    android = [_gap(bot, q) for q in ("do you have an android app", "Is there an app for Android phones?")]
    _gap(bot, "is there a dark mode")
    _gap(bot, "what are your support hours", status=Message.Status.ANSWERED)  # answered, no 👎: not a gap
    _gap(bot, "what are your support hours", status=Message.Status.ANSWERED, feedback=Message.Feedback.UP)

    groups = knowledge_gaps(company=bot.company)

    assert [g.count for g in groups] == [4, 2, 1]
    first = groups[0]
    assert set(first.message_ids) == {m.id for m in cancel} | {thumbs.id}
    assert (first.not_found, first.thumbs_down) == (3, 1)
    assert normalise_question(first.question) == "how do i cancel my subscription"  # the most frequent wording
    assert first.examples[0].created_at >= first.examples[-1].created_at
    assert set(groups[1].message_ids) == {m.id for m in android}
    assert groups[2].question == "is there a dark mode"


def test_another_companys_gaps_are_not_listed_nor_resolvable(bot, make_company):
    other = make_company("globex")
    foreign = _gap(bot, "is there a dark mode", company=other)  # a row of the other company (tenant check)
    assert knowledge_gaps(company=bot.company) == []
    with pytest.raises(NotFound):
        knowledge_gap_resolve(company=bot.company, message_ids=[foreign.id], question="Dark mode?", answer="No.")
    assert not Document.objects.exists()


@pytest.mark.parametrize("question,answer,code", [("", "Yes.", "gap_question_missing"),
                                                  ("Dark mode?", "  ", "gap_answer_missing"),
                                                  ("Dark mode?", "x" * 20001, "gap_answer_too_long")])
def test_resolve_rejects_bad_input_and_stores_nothing(bot, question, answer, code):
    gap = _gap(bot, "is there a dark mode")
    with pytest.raises(ValidationFailed) as caught:
        knowledge_gap_resolve(company=bot.company, message_ids=[gap.id], question=question, answer=answer)
    assert caught.value.code == code
    assert not Document.objects.exists() and not KnowledgeGapResolution.objects.exists()


def test_an_answered_gap_answers_the_next_such_question(bot, django_capture_on_commit_callbacks):
    from rag.services import document_add, documents_ingest

    path = DEMO_DIR / "kb" / "sharing-links.md"
    document, _ = document_add(company=bot.company, file_name=path.name, data=path.read_bytes(), schedule=False)
    documents_ingest(company=bot.company, documents=[document])
    first = bot_ask(bot=bot, question="Can I pay for my plan with PayPal?").message
    assert first.status == Message.Status.NOT_FOUND
    [group] = knowledge_gaps(company=bot.company)

    with django_capture_on_commit_callbacks(execute=True):  # the Q&A document's ingestion runs on commit
        resolution = knowledge_gap_resolve(
            company=bot.company, message_ids=group.message_ids, question=group.question,
            answer="Yes. PayPal is accepted for every plan: choose PayPal under Billing > Payment method.")

    qa = Document.objects.get(id=resolution.document_id)
    assert qa.status == Document.Status.READY and qa.title == "Can I pay for my plan with PayPal?"
    assert knowledge_gaps(company=bot.company) == []  # the group left the list
    again = bot_ask(bot=bot, question="do you accept paypal payments?").message
    assert again.status == Message.Status.ANSWERED
    assert again.sources[0]["title"] == qa.title and "PayPal is accepted" in again.answer
