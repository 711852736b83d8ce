"""Deletes as knowledge-base versions (rag/services.py ``document_delete``, rag/version_actions.py): a delete
goes live with its version, a golden question can hold it, a rollback or a discard brings the document back,
and cleanup removes it for good once no kept version holds it. One call adding several documents is one
version (rag/document_batch.py)."""
import pytest

from rag.document_batch import DocumentItem, documents_add
from rag.models import Chunk, Document, KnowledgeBase, KnowledgeBaseVersion, SourcePage
from rag.retrieval import chunk_search
from rag.services import document_add, document_delete, document_replace_content, documents_ingest
from rag import golden, version_actions
from saas_bot.errors import NotFound

Status = KnowledgeBaseVersion.Status

REFUNDS = ("# Refunds\n\nRefunds are paid back within five working days to the card that paid. "
           "Ask the support desk for a refund of an annual plan.\n")
ICELAND = ("# Shipping to Iceland\n\nParcels to Iceland arrive within nine working days after dispatch. "
           "Delivery to Iceland is tracked and insured.\n")


def add(company, name, text):
    document, created = document_add(company=company, file_name=name, data=text.encode(), schedule=False)
    assert created
    return documents_ingest(company=company, documents=[document])[0]


def texts(company, query):
    return " ".join(r.text for r in chunk_search(company=company, query=query, k=5))


def live(company):
    return KnowledgeBase.objects.get(company=company).live_version


def test_a_delete_is_a_version_and_a_rollback_brings_the_document_back(company):
    add(company, "refunds.md", REFUNDS)
    iceland = add(company, "iceland.md", ICELAND)
    before = live(company)
    assert "nine working days" in texts(company, "parcels to Iceland")

    document_delete(company=company, document_id=iceland.id)
    deleted = live(company)
    assert (deleted.number, deleted.origin, deleted.removed) == (before.number + 1, "delete", 1)
    assert not Document.objects.filter(id=iceland.id).exists()  # gone from the company's documents
    assert Document.all_objects.get(id=iceland.id).deleted_at is not None
    assert "nine working days" not in texts(company, "parcels to Iceland")  # and from the answers
    assert Chunk.objects.filter(document_id=iceland.id, live=False).exists()  # kept for a rollback
    with pytest.raises(NotFound):
        document_delete(company=company, document_id=iceland.id)

    restored = version_actions.version_rollback(company=company, version_id=before.id)
    assert live(company) == before and "1 deleted document(s) restored" in restored.note
    assert Document.objects.get(id=iceland.id).deleted_at is None
    assert "nine working days" in texts(company, "parcels to Iceland")
    compared = version_actions.versions_compare(company=company, from_id=before.id, to_id=deleted.id)
    assert compared["removed"] == [{"document_id": iceland.id, "title": "Shipping to Iceland"}]


def test_a_delete_is_held_by_a_golden_question_and_a_discard_restores_the_document(company, demo_kb):
    support = next(d for d in demo_kb if d.file_name == "contacting-support.html")
    hours = "what are your support hours?"
    golden.golden_question_save(company=company, question=hours, expected=["contacting-support.html"],
                                answer_contains=["08:00"])
    before = live(company)

    document_delete(company=company, document_id=support.id)
    held = KnowledgeBaseVersion.objects.get(company=company, number=before.number + 1)
    assert held.status == Status.HELD and live(company) == before
    assert [r["question"] for r in held.golden_results if not r["passed"] and r["passed_live"]] == [hours]
    assert not Document.objects.filter(id=support.id).exists()
    assert "08:00" in texts(company, hours)  # the live version still answers from it

    version_actions.version_discard(company=company, version_id=held.id)
    held.refresh_from_db()
    assert held.status == Status.DISCARDED and "1 deleted document(s) restored" in held.note
    assert Document.objects.filter(id=support.id).exists() and "08:00" in texts(company, hours)

    document_delete(company=company, document_id=support.id)
    held_again = KnowledgeBaseVersion.objects.filter(company=company).order_by("-number").first()
    assert held_again.status == Status.HELD
    version_actions.version_force(company=company, version_id=held_again.id)
    assert live(company) == held_again and "08:00" not in texts(company, hours)


def test_cleanup_removes_a_deleted_document_once_no_kept_version_holds_it(company, settings,
                                                                          django_capture_on_commit_callbacks):
    settings.RAG_VERSIONS_KEPT = 2
    refunds = add(company, "refunds.md", REFUNDS)
    iceland = add(company, "iceland.md", ICELAND)
    storage, name = iceland.file.storage, iceland.file.name
    document_delete(company=company, document_id=iceland.id)
    assert Document.all_objects.filter(id=iceland.id).exists() and storage.exists(name)

    with django_capture_on_commit_callbacks(execute=True):  # the file is deleted when cleanup commits
        for days in ("six", "seven"):  # two more live versions push the ones holding iceland.md out
            refunds = document_replace_content(company=company, document_id=refunds.id, file_name="refunds.md",
                                               data=REFUNDS.replace("five", days).encode(), schedule=False)
            documents_ingest(company=company, documents=[refunds])
    assert not Document.all_objects.filter(id=iceland.id).exists()
    assert not Chunk.objects.filter(document_id=iceland.id).exists() and not storage.exists(name)


def test_the_same_content_uploaded_after_a_delete_is_a_new_document_and_a_rollback_keeps_one(company):
    first = add(company, "iceland.md", ICELAND)
    v1 = live(company)
    document_delete(company=company, document_id=first.id)
    again = add(company, "iceland-again.md", ICELAND)
    assert again.id != first.id

    rolled = version_actions.version_rollback(company=company, version_id=v1.id)
    # The old row is not restored beside the new one with the same content (the checksum is unique among
    # documents that exist): the new one answers in its place (the fresh-user trial found the content
    # answering nowhere).
    assert list(Document.objects.filter(company=company).values_list("id", flat=True)) == [again.id]
    assert Document.all_objects.get(id=first.id).deleted_at is not None
    assert "nine working days" in texts(company, "parcels to Iceland")
    assert set(rolled.revisions) == {str(again.id)} and "uploaded again" in rolled.note


def test_a_source_page_no_longer_owns_a_document_deleted_by_hand(company):
    from rag.sources import source_create

    page_document = add(company, "iceland.md", ICELAND)
    source = source_create(company=company, name="Help", url="https://help.example.com/")
    page = SourcePage.objects.create(company=company, source=source, url="https://help.example.com/iceland",
                                     document=page_document, owns_document=True)
    document_delete(company=company, document_id=page_document.id)
    page.refresh_from_db()
    assert page.document_id is None and not page.owns_document


def test_several_documents_added_in_one_call_are_one_version(company):
    result = documents_add(company=company, items=[
        DocumentItem.from_file("refunds.md", REFUNDS.encode()),
        DocumentItem.from_text("Shipping to Iceland", ICELAND),
        DocumentItem.from_file("empty.md", b""),  # refused: its outcome, not the batch's end
    ])
    assert [o.outcome for o in result.outcomes] == ["created", "created", "failed"]
    (version,) = KnowledgeBaseVersion.objects.filter(company=company)
    assert (version.origin, version.added) == ("upload", 2)
    assert {c["document_id"] for c in version.changes} == {d.id for d in result.created}
    documents_ingest(company=company, documents=result.created)
    version.refresh_from_db()
    assert version.status == Status.LIVE and KnowledgeBaseVersion.objects.filter(company=company).count() == 1
    assert "nine working days" in texts(company, "parcels to Iceland")


def test_a_deleted_document_no_longer_counts_against_the_plan(make_company):
    from saas_bot.errors import QuotaExceeded

    small = make_company("small", max_documents=1)
    first, _ = document_add(company=small, file_name="a.md", data=REFUNDS.encode(), schedule=False)
    with pytest.raises(QuotaExceeded):
        document_add(company=small, file_name="b.md", data=ICELAND.encode(), schedule=False)
    document_delete(company=small, document_id=first.id)
    second, created = document_add(company=small, file_name="b.md", data=ICELAND.encode(), schedule=False)
    assert created and list(Document.objects.filter(company=small)) == [second]


def test_a_bot_limited_to_a_collection_answers_from_a_document_whose_delete_is_held(company, bot, demo_kb):
    from bots.answers import bot_document_ids
    from rag.models import Collection

    support = next(d for d in demo_kb if d.file_name == "contacting-support.html")
    help_desk = Collection.objects.create(company=company, name="Help desk")
    Document.objects.filter(id=support.id).update(collection=help_desk)
    bot.collections.add(help_desk)
    golden.golden_question_save(company=company, question="what are your support hours?",
                                answer_contains=["08:00"])
    document_delete(company=company, document_id=support.id)
    assert KnowledgeBaseVersion.objects.order_by("-number").first().status == Status.HELD
    scope = bot_document_ids(bot)
    assert scope == [support.id]  # still in the live version: still in the bot's scope
    assert "08:00" in " ".join(r.text for r in chunk_search(company=company, query="support hours", k=3,
                                                            document_ids=scope))


def test_versions_that_change_nothing_do_not_push_a_real_one_out_of_the_rollback_window(company, settings):
    settings.RAG_VERSIONS_KEPT = 2
    refunds = add(company, "refunds.md", REFUNDS)
    v1 = live(company)
    refunds = document_replace_content(company=company, document_id=refunds.id, file_name="refunds.md",
                                       data=REFUNDS.replace("five", "six").encode(), schedule=False)
    documents_ingest(company=company, documents=[refunds])
    for name in ("broken-1.pdf", "broken-2.pdf", "broken-3.pdf"):  # uploads that fail: live, nothing changed
        broken, _ = document_add(company=company, file_name=name, data=b"%PDF-1.4 not a pdf " + name.encode(),
                                 schedule=False)
        assert documents_ingest(company=company, documents=[broken])[0].status == Document.Status.FAILED
    assert live(company).number == v1.number + 4
    version_actions.version_rollback(company=company, version_id=v1.id)  # still restorable
    assert "five working days" in texts(company, "how long do refunds take")


def test_only_one_held_version_can_be_discarded_and_a_rollback_says_why_not(company):
    from saas_bot.errors import ValidationFailed

    document, _ = document_add(company=company, file_name="refunds.md", data=REFUNDS.encode(), schedule=False)
    building = KnowledgeBaseVersion.objects.get(company=company)
    assert building.status == Status.BUILDING
    for action in (version_actions.version_discard, version_actions.version_rollback):
        with pytest.raises(ValidationFailed) as refused:
            action(company=company, version_id=building.id)
        assert "building" in refused.value.message or "indexed" in refused.value.message
    documents_ingest(company=company, documents=[document])
    building.refresh_from_db()
    assert building.status == Status.LIVE and building.changes[0]["title"] == "Refunds"  # the indexed title
