"""`manage.py eval_answers`: a question set answered on the demo KB as Telegram would answer it, scored."""
import json

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

ROWS = [
    {"id": "team", "question": "how much storage do we get per person on the team plan",
     "expected": ["plans-and-storage.md"], "kind": "paraphrase", "answer_contains": ["2 TB per user"]},
    {"id": "team-wrong", "question": "how much storage do we get per person on the team plan",
     "expected": ["plans-and-storage.md"], "kind": "paraphrase", "answer_contains": ["unlimited storage"]},
    {"id": "pizza", "question": "do you sell pizza", "expected": [], "kind": "unanswerable"},
]


def _write(tmp_path, rows) -> str:
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return str(path)


def test_figures_and_details_on_the_demo_kb(company, demo_kb, tmp_path, capsys):
    details = tmp_path / "details.jsonl"
    call_command("eval_answers", qa=_write(tmp_path, ROWS), company="acme", details=str(details), json=True)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["company"] == "acme" and result["questions"] == 3
    # Two answerable rows, the same answer: correct only where the answer holds the expected words.
    assert result["answer_accuracy"] == 0.5 and result["false_refusal_rate"] == 0.0
    assert result["refusal_rate"] == 1.0  # pizza is refused
    assert result["markup_leak_rate"] == 0.0 and result["latency_ms_p95"] > 0
    lines = [json.loads(line) for line in details.read_text().splitlines()]
    assert [(line["id"], line["correct"], line["refused"]) for line in lines] == [
        ("team", True, False), ("team-wrong", False, False), ("pizza", False, True)]


def test_refusals_come_before_any_answer(company, tmp_path):
    with pytest.raises(CommandError, match="No company"):
        call_command("eval_answers", qa=_write(tmp_path, ROWS), company="nobody")
    bad = [{"question": "q", "expected": ["a.md"], "answer_contains": "2 TB"}]
    with pytest.raises(CommandError, match='row 1: "answer_contains" must be a list'):
        call_command("eval_answers", qa=_write(tmp_path, bad), company="acme")
