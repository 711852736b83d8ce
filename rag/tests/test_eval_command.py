"""`manage.py eval_retrieval` on a small BEIR folder and on a question set."""
import json

import pytest
from django.core.management import call_command

from rag.evaluation import mrr_at_k, ndcg_at_k, recall_at_k
from saas_bot.testing.pytest_plugin import DEMO_DIR
from tenants.models import Company


def test_metrics_by_hand():
    ranked = ["a", "b", "c"]
    assert ndcg_at_k(ranked, {"a": 1}) == 1.0
    assert round(ndcg_at_k(ranked, {"b": 1}), 4) == round(1 / 1.5849625, 4)
    assert recall_at_k(ranked, {"c": 1, "z": 1}, 10) == 0.5
    assert mrr_at_k(ranked, {"c": 1}) == pytest.approx(1 / 3)


@pytest.mark.django_db
def test_beir_folder_through_the_product(tmp_path, capsys):
    (tmp_path / "qrels").mkdir()
    docs = [("d1", "Refund policy", "Refunds are paid within 14 days of a cancellation."),
            ("d2", "Password reset", "To reset a password open settings and choose reset."),
            ("d3", "Storage quota", "Each user gets two terabytes of storage on the team plan.")]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in docs))
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in
                                                      [("q1", "how do refunds work"), ("q2", "forgot my password")]))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    call_command("eval_retrieval", beir=str(tmp_path), split="test", json=True)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ndcg@10"] == 1.0 and result["recall@10"] == 1.0 and result["mrr@10"] == 1.0
    assert result["queries"] == 2 and result["latency_ms_p95"] > 0
    assert not Company.objects.filter(slug__startswith="eval-").exists()  # throwaway company removed


@pytest.mark.django_db
def test_qa_set_on_the_demo_kb(company, demo_kb, capsys):
    call_command("eval_retrieval", qa=str(DEMO_DIR / "questions.jsonl"), company="acme", json=True)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"hit@1", "hit@3", "hit@5", "refusal_rate", "false_refusal_rate", "section_hit@3"} <= set(result)
    assert result["hit@3"] >= 0.8 and result["refusal_rate"] >= 0.6


@pytest.mark.django_db
@pytest.mark.parametrize("content, message", [
    ('{"question": "ok", "expected": []}\nnot json\n', "2: not JSON"),
    ('{"expected": ["a.md"]}\n', "needs a \"question\""),
    ('{"question": "q", "expected": "a.md"}\n', "must be a list"),
    ("", "no questions"),
])
def test_bad_question_sets_are_clear_errors(company, tmp_path, content, message):
    from django.core.management.base import CommandError

    path = tmp_path / "q.jsonl"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        call_command("eval_retrieval", qa=str(path), company="acme")
