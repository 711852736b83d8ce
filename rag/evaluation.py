"""Retrieval evaluation through the product's own ingestion and retriever.

Metrics follow BEIR / TREC conventions: nDCG@10 with graded relevance
(gain = relevance, log2 discount), recall@k, MRR@10. Documents are ranked by
their best chunk's fused score.
"""
from __future__ import annotations

import json
import math
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rag.embeddings import embed_queries
from rag.relevance import is_answerable
from rag.retrieval import chunk_search
from tenants.models import Company


def ndcg_at_k(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG@k of a ranked list of ids against graded judgements {id: relevance}."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    """Share of the relevant ids found in the top ``k``."""
    positives = {d for d, r in relevant.items() if r > 0}
    return len(positives & set(ranked[:k])) / len(positives) if positives else 0.0


def mrr_at_k(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant id in the top ``k`` (0 if none)."""
    for i, doc in enumerate(ranked[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / i
    return 0.0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def load_beir(directory: Path, split: str) -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    """Read a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

    Raises:
        FileNotFoundError: a file is missing.
    """
    corpus = [json.loads(line) for line in (directory / "corpus.jsonl").read_text().splitlines() if line.strip()]
    queries = {}
    for line in (directory / "queries.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate((directory / "qrels" / f"{split}.tsv").read_text().splitlines()):
        parts = line.split("\t")
        if number == 0 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # header row
        if len(parts) >= 3:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return corpus, queries, qrels


@dataclass
class Progress:
    """Callbacks for long runs: ``stage(name, total)`` then ``step(n)``."""

    stage: Callable[[str, int], None] = lambda name, total: None
    step: Callable[[int], None] = lambda n: None


def beir_ingest(*, company: Company, corpus: list[dict], progress: Progress | None = None) -> dict[int, str]:
    """Ingest BEIR documents (text = title + " " + text) through the product's ingestion.

    Returns:
        {Document id: corpus id}.
    """
    from rag.services import document_add, documents_ingest

    progress = progress or Progress()
    documents, mapping = [], {}
    progress.stage("Adding documents", len(corpus))
    for row in corpus:
        text = f"{row.get('title', '')} {row.get('text', '')}".strip()
        document, created = document_add(company=company, file_name=f"{row['_id']}.txt", data=text.encode(),
                                         title=row.get("title") or str(row["_id"]), schedule=False)
        mapping[document.id] = str(row["_id"])
        if created:
            documents.append(document)
        progress.step(1)
    state = {"stage": None, "done": 0}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage != state["stage"]:
            state["stage"], state["done"] = stage, 0
            progress.stage("Extracting" if stage == "extract" else "Embedding chunks", total)
        progress.step(done - state["done"])
        state["done"] = done

    documents_ingest(company=company, documents=documents, progress=on_progress)
    return mapping


def beir_evaluate(*, company: Company, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                  doc_ids: dict[int, str], k: int = 10, progress: Progress | None = None) -> dict:
    """Run every judged query through ``chunk_search`` and score the document ranking.

    Latency is the retriever's time per query (SQL legs + fusion), excluding the query
    embedding, which is reported separately (``embed_ms_mean``, batched).
    """
    progress = progress or Progress()
    ids = [q for q in qrels if q in queries]
    started = time.perf_counter()
    from rag.knowledge_base import knowledge_base_model

    vectors = embed_queries([queries[q] for q in ids], knowledge_base_model(company.id))
    embed_ms = (time.perf_counter() - started) * 1000 / max(len(ids), 1)
    scores = {"ndcg@10": [], "recall@10": [], "recall@100": [], "mrr@10": []}
    latencies = []
    progress.stage("Queries", len(ids))
    for qid, vector in zip(ids, vectors):
        t0 = time.perf_counter()
        chunks = chunk_search(company=company, query=queries[qid], k=150, query_vector=vector, candidates=150)
        latencies.append((time.perf_counter() - t0) * 1000)
        ranked: list[str] = []
        for chunk in chunks:
            doc = doc_ids.get(chunk.document_id)
            if doc is not None and doc not in ranked:
                ranked.append(doc)
        relevant = qrels[qid]
        scores["ndcg@10"].append(ndcg_at_k(ranked, relevant, k))
        scores["recall@10"].append(recall_at_k(ranked, relevant, 10))
        scores["recall@100"].append(recall_at_k(ranked, relevant, 100))
        scores["mrr@10"].append(mrr_at_k(ranked, relevant, 10))
        progress.step(1)
    result = {name: round(statistics.fmean(values), 4) if values else 0.0 for name, values in scores.items()}
    result.update(queries=len(ids), latency_ms_p50=round(percentile(latencies, 50), 2),
                  latency_ms_p95=round(percentile(latencies, 95), 2), embed_ms_mean=round(embed_ms, 2))
    return result


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def qa_evaluate(*, company: Company, rows: list[dict], progress: Progress | None = None) -> dict:
    """Score a question set ({"question", "expected": [file names], "section"?}) against ``company``.

    hit@k: over answerable questions, a top-k chunk comes from an expected file (matching on file
    name). refusal_rate: share of unanswerable questions (expected == []) the refusal gate refuses;
    false_refusal_rate: share of answerable ones it refuses. section_hit@3: over questions with a
    "section", a top-3 chunk from an expected file sits under that section.
    """
    progress = progress or Progress()
    progress.stage("Questions", len(rows))
    hits = {1: 0, 3: 0, 5: 0}
    answerable = unanswerable = refused_unanswerable = refused_answerable = 0
    section_total = section_hits = 0
    per_question = []
    for row in rows:
        chunks = chunk_search(company=company, query=row["question"], k=5)
        refused = not is_answerable(question=row["question"], results=chunks)
        expected = set(row.get("expected") or [])
        files = [c.file_name for c in chunks]
        if expected:
            answerable += 1
            refused_answerable += refused
            for k in hits:
                hits[k] += any(f in expected for f in files[:k])
            if row.get("section"):
                section_total += 1
                section_hits += any(c.file_name in expected and _norm(c.section) == _norm(row["section"])
                                    for c in chunks[:3])
        else:
            unanswerable += 1
            refused_unanswerable += refused
        per_question.append({"id": row.get("id"), "refused": refused, "top": files[:3]})
        progress.step(1)
    result = {f"hit@{k}": round(v / answerable, 4) if answerable else 0.0 for k, v in hits.items()}
    result.update(
        answerable=answerable, unanswerable=unanswerable,
        refusal_rate=round(refused_unanswerable / unanswerable, 4) if unanswerable else None,
        false_refusal_rate=round(refused_answerable / answerable, 4) if answerable else None,
    )
    if section_total:
        result["section_hit@3"] = round(section_hits / section_total, 4)
    return result


def throwaway_slug() -> str:
    """A unique slug for an evaluation company."""
    return f"eval-{uuid.uuid4().hex[:10]}"
