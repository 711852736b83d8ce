"""API v1 knowledge-base versions and golden questions: list, compare, rollback, hold/force/discard, CRUD."""
from rag.models import GoldenQuestion, KnowledgeBase, KnowledgeBaseVersion
from rag.services import document_add, document_replace_content, documents_ingest

REFUNDS = "# Refunds\n\nRefunds are paid back within five working days to the card that paid.\n"


def upload(company, text, document=None):
    if document is None:
        document, _ = document_add(company=company, file_name="refunds.md", data=text.encode(), schedule=False)
    else:
        document = document_replace_content(company=company, document_id=document.id, file_name="refunds.md",
                                            data=text.encode(), schedule=False)
    return documents_ingest(company=company, documents=[document])[0]


def test_versions_list_compare_and_roll_back(api, company):
    doc = upload(company, REFUNDS)
    upload(company, REFUNDS.replace("five", "ten"), doc)
    listed = api.get("/api/v1/versions").json()
    assert [v["number"] for v in listed["results"]] == [2, 1]
    v2, v1 = listed["results"]
    assert v2["status"] == "live" and v1["status"] == "retired"
    assert v2["changes"] == [{"action": "changed", "document_id": doc.id, "title": "Refunds"}]
    diff = api.get(f"/api/v1/versions/{v1['id']}/compare", {"to": v2["id"]}).json()
    assert diff == {"from": 1, "to": 2, "added": [], "removed": [],
                    "changed": [{"document_id": doc.id, "title": "Refunds"}]}
    assert api.get(f"/api/v1/versions/{v1['id']}/compare").status_code == 400
    # "¹".isdigit() is True but int("¹") raises: the hostile probe got a 500 here.
    for to in ("¹", "٣x", "1 2"):
        assert api.get(f"/api/v1/versions/{v1['id']}/compare", {"to": to}).status_code == 400, to
    rolled = api.post(f"/api/v1/versions/{v1['id']}/rollback")
    assert rolled.status_code == 200 and rolled.json()["status"] == "live"
    assert KnowledgeBase.objects.get(company=company).live_version_id == v1["id"]
    # Only held versions can be forced or discarded.
    refused = api.post(f"/api/v1/versions/{v2['id']}/force")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "version_not_held"


def test_golden_questions_crud_and_a_held_version(api, company, demo_kb):
    created = api.post("/api/v1/golden-questions", {"question": "what are your support hours?",
                                                    "expected": ["contacting-support.html"],
                                                    "answer_contains": ["08:00"]}, format="json")
    assert created.status_code == 201, created.content
    golden = created.json()
    bad = api.post("/api/v1/golden-questions", {"question": "hi?"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "golden_question_invalid"
    assert api.get("/api/v1/golden-questions").json()["count"] == 1

    support = next(d for d in demo_kb if d.file_name == "contacting-support.html")
    document_replace_content(company=company, document_id=support.id, file_name=support.file_name,
                             data=b"<html><body><p>We use cookies. Accept all cookies.</p></body></html>",
                             schedule=False)
    documents_ingest(company=company, documents=[support.__class__.objects.get(id=support.id)])
    held = api.get("/api/v1/versions").json()["results"][0]
    assert held["status"] == "held" and held["golden_passed"] == 0 and held["golden_total"] == 1
    assert held["golden_results"][0]["passed_live"] and not held["golden_results"][0]["passed"]
    # The admin decides the banner is right after all: change the question, check again.
    changed = api.patch(f"/api/v1/golden-questions/{golden['id']}", {"expected": [], "answer_contains": ["cookies"]},
                        format="json")
    assert changed.status_code == 200 and changed.json()["answer_contains"] == ["cookies"]
    assert api.post(f"/api/v1/versions/{held['id']}/recheck").json()["status"] == "live"
    assert api.delete(f"/api/v1/golden-questions/{golden['id']}").status_code == 204
    assert not GoldenQuestion.objects.filter(company=company).exists()


def test_discard_a_held_version(api, company, demo_kb):
    GoldenQuestion.objects.create(company=company, question="what are your support hours?",
                                  answer_contains=["08:00"])
    support = next(d for d in demo_kb if d.file_name == "contacting-support.html")
    document_replace_content(company=company, document_id=support.id, file_name=support.file_name,
                             data=b"<html><body><p>We use cookies.</p></body></html>", schedule=False)
    documents_ingest(company=company, documents=[support.__class__.objects.get(id=support.id)])
    held = KnowledgeBaseVersion.objects.filter(company=company).first()
    assert held.status == "held"
    response = api.post(f"/api/v1/versions/{held.id}/discard")
    assert response.status_code == 200 and response.json()["status"] == "discarded"


def test_another_company_cannot_see_or_act_on_versions(api, company, make_company, make_key, key_client):
    upload(company, REFUNDS)
    version = KnowledgeBaseVersion.objects.get(company=company)
    golden = GoldenQuestion.objects.create(company=company, question="q?", must_refuse=True)
    other = key_client(make_key(make_company("other"))[1])
    assert other.get("/api/v1/versions").json()["count"] == 0
    assert other.get("/api/v1/golden-questions").json()["count"] == 0
    for method, path in (("get", f"/api/v1/versions/{version.id}"), ("post", f"/api/v1/versions/{version.id}/rollback"),
                         ("post", f"/api/v1/versions/{version.id}/discard"),
                         ("get", f"/api/v1/versions/{version.id}/compare?to={version.id}"),
                         ("get", f"/api/v1/golden-questions/{golden.id}"),
                         ("delete", f"/api/v1/golden-questions/{golden.id}")):
        assert getattr(other, method)(path).status_code == 404, path
    assert GoldenQuestion.objects.filter(id=golden.id).exists()


def test_knowledge_base_settings_show_the_live_version_and_change_the_golden_threshold(api, company):
    upload(company, REFUNDS)
    settings_now = api.get("/api/v1/knowledge-base").json()
    assert settings_now["live_version"] == 1 and settings_now["golden_threshold"] is None
    assert settings_now["embedding_model"] and settings_now["versions_kept"] >= 1

    changed = api.patch("/api/v1/knowledge-base", {"golden_threshold": 0.9}, format="json")
    assert changed.status_code == 200 and changed.json()["golden_threshold"] == 0.9
    assert KnowledgeBase.objects.get(company=company).golden_threshold == 0.9
    for bad in (1.5, -0.1, "0.9", True, [0.5]):
        refused = api.patch("/api/v1/knowledge-base", {"golden_threshold": bad}, format="json")
        assert refused.status_code == 400, (bad, refused.content)
        assert refused.json()["error"]["code"] in ("golden_threshold_invalid", "validation_failed"), bad
    assert KnowledgeBase.objects.get(company=company).golden_threshold == 0.9  # nothing changed
    back = api.patch("/api/v1/knowledge-base", {"golden_threshold": None}, format="json")
    assert back.status_code == 200 and back.json()["golden_threshold"] is None


def test_a_deleted_document_leaves_the_list_and_a_rollback_lists_it_again(api, company):
    doc = upload(company, REFUNDS)
    listed = api.get("/api/v1/documents").json()["results"]
    assert [(d["id"], d["answering"]) for d in listed] == [(doc.id, True)]
    assert api.delete(f"/api/v1/documents/{doc.id}").status_code == 204
    assert api.get("/api/v1/documents").json()["count"] == 0
    assert api.get(f"/api/v1/documents/{doc.id}").status_code == 404
    assert api.delete(f"/api/v1/documents/{doc.id}").status_code == 404
    versions = api.get("/api/v1/versions").json()["results"]
    assert [(v["number"], v["origin"], v["removed"], v["status"]) for v in versions][0] == (2, "delete", 1, "live")
    rolled = api.post(f"/api/v1/versions/{versions[1]['id']}/rollback")
    assert rolled.status_code == 200 and "restored" in rolled.json()["note"]
    assert [(d["id"], d["answering"]) for d in api.get("/api/v1/documents").json()["results"]] == [(doc.id, True)]


def test_read_only_knowledge_base_fields_and_loose_golden_types_are_refused(api, company):
    for body in ({"embedding_model": "foo"}, {"versions_kept": 100}, {"golden_threshold": 0.5, "live_version": 3}):
        refused = api.patch("/api/v1/knowledge-base", body, format="json")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "validation_failed", body
    assert KnowledgeBase.objects.get(company=company).golden_threshold is None  # nothing changed
    for body in ({"question": "Hi?", "expected": [1, 2]}, {"question": "Hi?", "must_refuse": "yes"},
                 {"question": 42, "must_refuse": True}):
        refused = api.post("/api/v1/golden-questions", body, format="json")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "validation_failed", body
    assert not GoldenQuestion.objects.exists()
