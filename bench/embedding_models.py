"""Embedding models side by side: chunks per second, tokens read, and question latency (docs/answers.md).

    .venv/bin/python bench/embedding_models.py [--kb ../shared/data/kb/zulip-help/docs] [--rounds 2] [--queries 50]

The knowledge base's files are extracted and split by the product (rag.extraction, rag.splitting); their
index texts are embedded by each local model in turn (rounds alternate the models, so a busy machine hurts
both alike; the per-process memo of all-MiniLM-L6-v2 is emptied before each round), then single questions
(the KB's questions-dev.jsonl) are embedded one at a time. Prints one JSON line per model: chunks/s (best
round), p50/p95 ms per question, and the largest chunk in each model's tokens against its limit.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas_bot.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kb", default=str(ROOT.parent / "shared/data/kb/zulip-help/docs"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()

    import django

    django.setup()
    from rag.embeddings import LOCAL_MODELS, embed_query, embed_texts, embeddings_provider, max_tokens, model_token_count
    from rag.extraction import extract
    from rag.splitting import index_text, split_sections

    texts = []
    for path in sorted(Path(args.kb).iterdir()):
        if not path.is_file():
            continue
        try:
            extracted = extract(file_name=path.name, data=path.read_bytes())
        except Exception as exc:  # an empty or unreadable file: the product refuses it too
            print(f"skip {path.name}: {exc}", file=sys.stderr)
            continue
        for draft in split_sections(extracted.sections, title=extracted.title):
            texts.append(index_text(extracted.title, draft.section, draft.text))
    questions_file = Path(args.kb).parent / "questions-dev.jsonl"
    questions = [json.loads(line)["question"] for line in questions_file.read_text().splitlines() if line.strip()]
    questions = questions[:args.queries]
    print(f"{len(texts)} chunks from {args.kb}; {len(questions)} questions", file=sys.stderr)

    speeds: dict[str, list[float]] = {m: [] for m in LOCAL_MODELS}
    for model in LOCAL_MODELS:  # load every model once before timing
        embed_query("warm up", model)
    for round_number in range(args.rounds):
        for model in LOCAL_MODELS:
            memo = getattr(embeddings_provider(model), "_cache", None)
            if memo is not None:
                memo.clear()
            started = time.perf_counter()
            embed_texts(texts, model=model)
            speeds[model].append(len(texts) / (time.perf_counter() - started))
            print(f"round {round_number + 1} {model}: {speeds[model][-1]:.1f} chunks/s", file=sys.stderr, flush=True)
    for model in LOCAL_MODELS:
        times = []
        for i, question in enumerate(questions):
            started = time.perf_counter()
            embed_query(f"{question} ({i})", model)  # a new text each time: no memo hit
            times.append((time.perf_counter() - started) * 1000)
        longest = max(model_token_count(t, model) for t in texts)
        print(json.dumps({"model": model, "chunks": len(texts), "chunks_per_s": round(max(speeds[model]), 1),
                          "query_ms_p50": round(statistics.median(times), 1),
                          "query_ms_p95": round(statistics.quantiles(times, n=20)[18], 1),
                          "longest_chunk_tokens": longest, "max_tokens": max_tokens(model)}))


if __name__ == "__main__":
    main()
