"""How well the knowledge-gaps page groups similar questions (bots.knowledge_gaps.group_questions).

    .venv/bin/python bench/knowledge_gaps_grouping.py [--thresholds 0.5,0.55,...]

Question sets written as end users type them (typos, keywords, other languages):
- ``bench/data/gap_questions.jsonl`` (55 questions, 12 intents, written for this benchmark): questions a
  help-centre bot typically cannot answer (Android app, PayPal, refunds, dark mode...), each intent
  as a full question, a paraphrase, keywords, a story, with typos and one Spanish line; the label is
  the intent (one answer serves the group);
- ``../shared/data/kb/zulip-help/questions-dev.jsonl`` (80 questions): two questions are "the same gap"
  when they expect the same article (one Q&A answer would serve both); unanswerable ones are each
  their own gap;
- ``saas_bot/demo/questions.jsonl`` (30 questions): the same article *and* section;
- the first two together, as a real gaps list looks: repeated questions among many distinct ones.

For each threshold: the number of groups found against the true number, and pairwise precision /
recall / F1 (a pair of questions put together is right when both have the same label). "text only"
is grouping on normalised text alone, the floor. No database is needed.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, django_setup, table  # noqa: E402

SETS = {
    "gap questions": (REPO / "bench" / "data" / "gap_questions.jsonl", None),
    "zulip-help": (REPO.parent / "shared" / "data" / "kb" / "zulip-help" / "questions-dev.jsonl", False),
    "demo": (REPO / "saas_bot" / "demo" / "questions.jsonl", True),
}


def _labels(path: Path, with_section: bool) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        texts.append(row["question"])
        if with_section is None:  # a set labelled by intent
            labels.append(row["group"])
            continue
        label = ",".join(sorted(row["expected"])) or f"unanswerable:{row['id']}"
        labels.append(f"{label}#{row.get('section', '')}" if with_section else label)
    return texts, labels


def _pairwise(groups: list[list[int]], labels: list[str]) -> tuple[float, float, float]:
    predicted = {pair for g in groups for pair in itertools.combinations(sorted(g), 2)}
    truth = {(i, j) for i, j in itertools.combinations(range(len(labels)), 2) if labels[i] == labels[j]}
    right = len(predicted & truth)
    precision = right / len(predicted) if predicted else 1.0
    recall = right / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="0.45,0.5,0.55,0.6,0.65,0.7,0.75,0.8")
    args = parser.parse_args()
    django_setup()
    from bots.knowledge_gaps import group_questions, normalise_question

    rows = []
    sets = {}
    for name, (path, with_section) in SETS.items():
        if not path.exists():
            print(f"skipped {name}: {path} is absent")
            continue
        sets[name] = _labels(path, with_section)
    if "zulip-help" in sets:  # repeated questions among many distinct ones, as a real gaps list looks
        gap_texts, gap_labels = sets["gap questions"]
        z_texts, z_labels = sets["zulip-help"]
        sets["gap questions + zulip-help"] = (gap_texts + z_texts, gap_labels + [f"zulip:{x}" for x in z_labels])
    for name, (texts, labels) in sets.items():
        by_text: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            by_text.setdefault(normalise_question(t), []).append(i)
        p, r, f = _pairwise(list(by_text.values()), labels)
        rows.append([name, "text only", len(by_text), len(set(labels)), f"{p:.2f}", f"{r:.2f}", f"{f:.2f}"])
        for threshold in (float(t) for t in args.thresholds.split(",")):
            groups = group_questions(texts, threshold=threshold)
            p, r, f = _pairwise(groups, labels)
            rows.append([name, f"{threshold:.2f}", len(groups), len(set(labels)), f"{p:.2f}", f"{r:.2f}", f"{f:.2f}"])
    print(table(["set", "threshold", "groups", "true groups", "pair precision", "pair recall", "pair F1"], rows))


if __name__ == "__main__":
    main()
