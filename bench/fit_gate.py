"""Fit the refusal gate (rag/relevance.py) on the development question sets; print its cross-validated figures.

    python bench/fit_gate.py --set zulip=bench/data/answers-zulip-dev.jsonl \
        --set djfaq=bench/data/answers-django-faq-dev.jsonl [--set ...] [--write]

Each ``--set SLUG=FILE`` is a company (already ingested) and a question set; the company's embedding model
(its knowledge base's) decides which gate the rows train. Per model: features of every question from the
real retriever (:func:`rag.relevance.gate_features`), label = the row has expected documents. A logistic
regression (scikit-learn, standardised features, balanced classes) is cross-validated leaving one
company (knowledge base) out; the threshold is the highest probability whose cross-validated
false-refusal rate is at most ``--max-false-refusal`` (0.05), and the refusal rate of unanswerable
questions at that threshold is reported. ``--write`` stores the fit on all rows in rag/gate_coefficients.json.
Held-out sets (bench/data/heldout/) must not be given here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas_bot.settings")


def _features(rows, company):
    from rag.language import detect_language, is_cross_lingual
    from rag.relevance import gate_features
    from rag.retrieval import chunk_search

    from rag.language import company_language

    out = []
    for row in rows:
        cross = is_cross_lingual(detect_language(row["question"]), company_language(company.id))
        results = chunk_search(company=company, query=row["question"], k=5, cross_lingual=cross)
        if not results:
            continue
        f = gate_features(results=results, cross_lingual=cross)
        out.append((f, bool(row.get("expected")), row))
    return out


def _matrix(samples, features, neutral):
    import numpy as np

    X = []
    for f, _, _ in samples:
        x = dict(f)
        if x.get("cross_lingual"):
            x.update({k: neutral[k] for k in neutral})
        X.append([x[name] for name in features])
    return np.asarray(X, dtype=float), np.asarray([y for _, y, _ in samples], dtype=int)


def _fit(X, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(scaler.transform(X), y)
    w = model.coef_[0] / scaler.scale_
    b = float(model.intercept_[0] - (model.coef_[0] * scaler.mean_ / scaler.scale_).sum())
    return w, b


def _predict(w, b, X):
    import numpy as np

    return 1 / (1 + np.exp(-(X @ w + b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", required=True, help="SLUG=QUESTION_SET.jsonl (repeatable).")
    parser.add_argument("--max-false-refusal", type=float, default=0.05)
    parser.add_argument("--write", action="store_true", help="Write rag/gate_coefficients.json.")
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np

    from rag.knowledge_base import knowledge_base_model
    from rag.relevance import COEFFICIENTS_FILE, FEATURES, LEXICAL_FEATURES
    from tenants.models import Company

    by_model: dict[str, list[tuple[str, list]]] = defaultdict(list)
    for spec in args.set:
        slug, _, path = spec.partition("=")
        company = Company.objects.get(slug=slug)
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        model = knowledge_base_model(company.id)
        print(f"{slug}: {len(rows)} questions, model {model}", file=sys.stderr, flush=True)
        by_model[model].append((slug, _features(rows, company)))

    stored = json.loads(COEFFICIENTS_FILE.read_text()) if COEFFICIENTS_FILE.exists() else {"models": {}}
    for model, groups in by_model.items():
        every = [s for _, samples in groups for s in samples]
        answerable = [f for f, y, _ in every if y and not f.get("cross_lingual")]
        neutral = {k: round(float(np.mean([f[k] for f in answerable])), 4) for k in LEXICAL_FEATURES}
        # Leave one knowledge base out: probabilities of each company's rows from a fit on the others.
        cv_probs, cv_labels = [], []
        for i, (slug, samples) in enumerate(groups):
            train = [s for j, (_, other) in enumerate(groups) if j != i for s in other]
            if not train or len({y for _, y, _ in train}) < 2:
                continue
            w, b = _fit(*_matrix(train, FEATURES, neutral))
            X, y = _matrix(samples, FEATURES, neutral)
            cv_probs.extend(_predict(w, b, X))
            cv_labels.extend(y)
        cv_probs, cv_labels = np.asarray(cv_probs), np.asarray(cv_labels)
        threshold, refusal, false_refusal = 0.05, None, None
        if len(cv_probs):
            for t in np.arange(0.05, 0.951, 0.01):
                fr = float(np.mean(cv_probs[cv_labels == 1] < t))
                if fr <= args.max_false_refusal:
                    threshold, false_refusal = round(float(t), 2), fr
                    refusal = float(np.mean(cv_probs[cv_labels == 0] < t))
        w, b = _fit(*_matrix(every, FEATURES, neutral))
        print(json.dumps({"model": model, "questions": len(every), "cv_threshold": threshold,
                          "cv_false_refusal_rate": None if false_refusal is None else round(false_refusal, 3),
                          "cv_refusal_rate": None if refusal is None else round(refusal, 3),
                          "weights": {n: round(float(v), 4) for n, v in zip(FEATURES, w)}, "bias": round(b, 4)}))
        stored["models"][model] = {"weights": {n: round(float(v), 4) for n, v in zip(FEATURES, w)},
                                   "bias": round(b, 4), "threshold": threshold, "neutral": neutral,
                                   "cv": {"false_refusal_rate": false_refusal, "refusal_rate": refusal,
                                          "companies": [slug for slug, _ in groups], "questions": len(every)}}
    if args.write:
        stored["note"] = "fitted by bench/fit_gate.py on the development sets (docs/answers.md)"
        COEFFICIENTS_FILE.write_text(json.dumps(stored, indent=1) + "\n")
        print(f"wrote {COEFFICIENTS_FILE}", file=sys.stderr)


if __name__ == "__main__":
    main()
