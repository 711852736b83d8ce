"""rag.document_batch.documents_add: one outcome per item, refusals coded and isolated; the admin form's
validation stores nothing (the API and the admin giving the same refusal: saas_bot/api/tests/test_documents.py)."""
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from rag.admin.documents import DocumentAddForm
from rag.document_batch import CREATED, DUPLICATE, FAILED, DocumentItem, documents_add
from rag.models import Collection, Document

pytestmark = pytest.mark.django_db


def test_each_item_has_its_outcome_and_a_refusal_does_not_stop_the_others(company):
    collection = Collection.objects.create(company=company, name="Help")
    result = documents_add(company=company, collection=collection, items=[
        DocumentItem.from_file("refunds.md", b"# Refunds\nRefunds take five days."),
        DocumentItem.from_file("setup.exe", b"MZ\x90\x00 not a document"),
        DocumentItem.from_file("again.md", io.BytesIO(b"# Refunds\nRefunds take five days.")),  # same content
        DocumentItem.from_file("empty.txt", b""),
        DocumentItem.from_text("", "text without a title"),
        DocumentItem.from_text("Shipping", "# Shipping\nWe ship in two days."),
    ])
    assert [(o.name, o.outcome) for o in result.outcomes] == [
        ("refunds.md", CREATED), ("setup.exe", FAILED), ("again.md", DUPLICATE), ("empty.txt", FAILED),
        ("pasted text", FAILED), ("Shipping", CREATED)]
    assert [o.error.code for o in result.failed] == ["document_unsupported_type", "document_empty",
                                                     "document_title_missing"]
    assert result.first_error.code == "document_unsupported_type" and not result.all_failed
    assert result.duplicates == [result.created[0]]
    stored = Document.objects.for_company(company)
    assert sorted(stored.values_list("title", flat=True)) == ["Shipping", "refunds"]
    assert {d.collection for d in stored} == {collection}


def test_all_refused_stores_nothing_and_says_why(company):
    result = documents_add(company=company, items=[DocumentItem.from_url("ftp://example.com/a.pdf"),
                                                   DocumentItem.from_file("a.exe", b"MZ")])
    assert result.all_failed and result.created == [] and result.duplicates == []
    assert [o.error.code for o in result.outcomes] == ["document_url_invalid", "document_unsupported_type"]
    assert result.first_error is result.outcomes[0].error
    assert not Document.objects.exists()


def test_the_plan_limit_refuses_the_items_past_it(make_company):
    company = make_company("tiny", max_documents=1)
    result = documents_add(company=company, items=[DocumentItem.from_text("One", "# One\nFirst."),
                                                   DocumentItem.from_text("Two", "# Two\nSecond.")])
    assert [o.outcome for o in result.outcomes] == [CREATED, FAILED]
    assert result.outcomes[1].error.code == "quota_documents"


def test_another_companys_collection_is_refused_per_item(company, make_company):
    other = Collection.objects.create(company=make_company("other"), name="Theirs")
    result = documents_add(company=company, collection=other,
                           items=[DocumentItem.from_file("a.md", b"# A\nText.")])
    assert result.outcomes[0].error.code == "collection_not_found"
    assert not Document.objects.exists()


def test_the_admin_form_validates_without_storing(company):
    form = DocumentAddForm(data={"text_title": "Refunds", "text": "# Refunds\nFive days."},
                           files={"files": [SimpleUploadedFile("a.md", b"# A\nText.")]}, company=company)
    assert form.is_valid(), form.errors
    assert not Document.objects.exists()  # clean() wrote nothing; the admin's save_form adds
    assert [(i.kind, i.name) for i in form.items()] == [("file", "a.md"), ("text", "Refunds")]
    empty = DocumentAddForm(data={}, company=company)
    assert not empty.is_valid() and "Choose files, give a URL, or paste text." in empty.non_field_errors()
