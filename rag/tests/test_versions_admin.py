"""Versions and golden questions in the admin: list, golden pass/fail, actions, company scoping."""
import pytest
from django.contrib.auth.models import User

from rag.models import GoldenQuestion, KnowledgeBase, KnowledgeBaseVersion
from rag.services import document_add, document_replace_content, documents_ingest
from tenants.models import Membership

pytestmark = pytest.mark.django_db

SUPPORT_BAD = b"<html><body><p>We use cookies. Accept all cookies.</p></body></html>"


def test_golden_question_held_version_and_actions(owner_client, company, demo_kb):
    response = owner_client.post("/admin/rag/goldenquestion/add/", {
        "question": "what are your support hours?", "expected": "contacting-support.html",
        "answer_contains": "08:00\n8 am", "must_refuse": ""}, follow=True)
    assert response.status_code == 200
    golden = GoldenQuestion.objects.get(company=company)
    assert golden.expected == ["contacting-support.html"] and golden.answer_contains == ["08:00", "8 am"]
    live_before = KnowledgeBase.objects.get(company=company).live_version

    support = next(d for d in demo_kb if d.file_name == "contacting-support.html")
    document_replace_content(company=company, document_id=support.id, file_name=support.file_name,
                             data=SUPPORT_BAD, schedule=False)
    documents_ingest(company=company, documents=[support.__class__.objects.get(id=support.id)])
    held = KnowledgeBaseVersion.objects.filter(company=company).first()
    assert held.status == "held"

    listing = owner_client.get("/admin/rag/knowledgebaseversion/").content.decode()
    assert "Held (golden questions failed)" in listing and "0 of 1 passed" in listing
    page = owner_client.get(f"/admin/rag/knowledgebaseversion/{held.id}/change/").content.decode()
    assert "what are your support hours?" in page and "FAIL" in page
    assert "FAILED on version" in owner_client.get("/admin/rag/goldenquestion/").content.decode()

    compare = owner_client.post("/admin/rag/knowledgebaseversion/", {
        "action": "compare_action", "_selected_action": [live_before.id, held.id]}, follow=True)
    assert "Select exactly two" not in compare.content.decode()

    owner_client.post("/admin/rag/knowledgebaseversion/", {"action": "force_action",
                                                           "_selected_action": [held.id]}, follow=True)
    held.refresh_from_db()
    assert held.status == "live"
    two = owner_client.post("/admin/rag/knowledgebaseversion/", {"action": "rollback_action",
                                                                 "_selected_action": [live_before.id, held.id]},
                            follow=True)
    assert "Select exactly one version" in two.content.decode()
    assert KnowledgeBase.objects.get(company=company).live_version == held  # nothing rolled back
    owner_client.post("/admin/rag/knowledgebaseversion/", {"action": "rollback_action",
                                                           "_selected_action": [live_before.id]}, follow=True)
    assert KnowledgeBase.objects.get(company=company).live_version == live_before


def test_threshold_on_the_knowledge_base_page(owner_client, company, demo_kb):
    kb = KnowledgeBase.objects.get(company=company)
    response = owner_client.post(f"/admin/rag/knowledgebase/{kb.id}/change/", {
        "embedding_model": kb.embedding_model, "golden_threshold": "0.8"}, follow=True)
    assert response.status_code == 200
    kb.refresh_from_db()
    assert kb.golden_threshold == 0.8
    refused = owner_client.post(f"/admin/rag/knowledgebase/{kb.id}/change/", {
        "embedding_model": kb.embedding_model, "golden_threshold": "2"})
    page = refused.content.decode()
    assert refused.status_code == 200 and "golden_threshold_invalid" in page  # the form again, with the reason
    assert "was changed successfully" not in page
    kb.refresh_from_db()
    assert kb.golden_threshold == 0.8


def test_another_company_cannot_see_or_act(client, company, make_company):
    document, _ = document_add(company=company, file_name="a.md", data=b"# A\n\nAlpha text here.", schedule=False)
    documents_ingest(company=company, documents=[document])
    version = KnowledgeBaseVersion.objects.get(company=company)
    golden = GoldenQuestion.objects.create(company=company, question="acme secret?", must_refuse=True)
    rival = make_company("rival")
    user = User.objects.create_user("boss@rival.test", "boss@rival.test", "pw-Xy7!long", is_staff=True)
    Membership.objects.create(user=user, company=rival, role=Membership.Role.OWNER)
    client.force_login(user)
    assert "acme secret?" not in client.get("/admin/rag/goldenquestion/").content.decode()
    assert client.get(f"/admin/rag/knowledgebaseversion/{version.id}/change/").status_code == 404
    assert client.get(f"/admin/rag/goldenquestion/{golden.id}/change/").status_code == 404
    client.post("/admin/rag/knowledgebaseversion/", {"action": "discard_action", "_selected_action": [version.id]})
    version.refresh_from_db()
    assert version.status == "live"
