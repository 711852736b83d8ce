"""Ingestion throughput (documents/s, chunks/s) with the split extract+split / embed / database write.

    .venv/bin/python bench/ingest_speed.py [--scifact-docs 1000] [--kb saas_bot/demo/kb] [--no-docs]

For each data set, in a throwaway company: ``rag.services.document_add(schedule=False)`` for every
file (what ``manage.py ingest`` does), then one ``rag.services.documents_ingest`` call. The stages are
timed from outside through the service's own progress callback: extract+split ends at the last
"extract" callback, embedding at the last "embed" callback (it includes the per-document progress
updates), and the rest is the database write (chunks with vectors into the live HNSW/GIN indexes,
tsvector, BM25 postings, corpus stats, document status). As a cross-check the same texts are then
extracted/split and embedded again outside the service (``rag.extraction.extract``,
``rag.splitting.split_sections``, ``rag.embeddings.embed_texts``) without the database. The
embedding model is loaded (and its cold-load time reported) before any timing. Companies, documents,
chunks and stored files are deleted at the end.

Data sets: the demo knowledge base (saas_bot/demo/kb: PDF, DOCX, HTML, MD, RST, TXT) and the first
``--scifact-docs`` SciFact abstracts (title + abstract as .txt, as ``eval_retrieval`` ingests them).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import REPO, CpuSampler, log, table  # noqa: E402

SCIFACT = Path("/work/shared/data/beir/scifact")


def kb_files(folder: Path) -> list[tuple[str, bytes, str | None]]:
    return [(p.name, p.read_bytes(), None) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")]


def scifact_files(corpus: Path, count: int) -> list[tuple[str, bytes, str | None]]:
    files = []
    with open(corpus / "corpus.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            text = f"{row.get('title', '')} {row.get('text', '')}".strip()
            files.append((f"{row['_id']}.txt", text.encode(), row.get("title") or str(row["_id"])))
            if len(files) >= count:
                break
    return files


def run_dataset(name: str, files: list[tuple[str, bytes, str | None]]) -> dict:
    from django.db import connection

    from rag.embeddings import embed_texts
    from rag.extraction import extract
    from rag.models import Chunk, Document
    from rag.chunk_store import _index_text
    from rag.services import document_add, documents_ingest
    from rag.splitting import split_sections
    from tenants.services import company_create

    company = company_create(name=f"Bench ingest {name} (throwaway)",
                             slug=f"bench-ingest-{uuid.uuid4().hex[:8]}")
    result: dict = {"dataset": name, "files": len(files), "bytes": sum(len(d) for _, d, _ in files)}

    def chunk_table_stats() -> tuple[int, int, int]:
        # Row writes on rag_chunk as PostgreSQL counts them (flushed from this backend first).
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(1.1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                           "WHERE relname = 'rag_chunk'")
            return cursor.fetchone()

    stats_before = chunk_table_stats()
    try:
        cpu = CpuSampler().start()
        t0 = time.perf_counter()
        documents = []
        for file_name, data, title in files:
            document, created = document_add(company=company, file_name=file_name, data=data, title=title,
                                             schedule=False)
            if created:
                documents.append(document)
        t_added = time.perf_counter()
        marks: dict[str, float] = {}
        last_print = [0.0]

        def progress(stage: str, done: int, total: int) -> None:
            now = time.perf_counter()
            marks.setdefault(f"{stage}_first", now)
            marks[f"{stage}_last"] = now
            if now - last_print[0] > 1 or done == total:
                last_print[0] = now
                print(f"\r  {name}: {stage} {done}/{total}   ", end="", flush=True)

        ingested = documents_ingest(company=company, documents=documents, progress=progress)
        t_end = time.perf_counter()
        print()
        load = cpu.stop()
        stats_after = chunk_table_stats()
        result.update(chunk_inserts=stats_after[0] - stats_before[0], chunk_updates=stats_after[1] - stats_before[1],
                      chunk_hot_updates=stats_after[2] - stats_before[2])
        ready = [d for d in ingested if d.status == Document.Status.READY]
        chunks = Chunk.objects.filter(company=company).count()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM rag_chunkterm WHERE company_id = %s", [company.id])
            postings = cursor.fetchone()[0]
        extract_end = marks.get("extract_last", t_added)
        embed_end = marks.get("embed_last", extract_end)
        result.update(
            documents=len(documents), ready=len(ready), failed=len(documents) - len(ready), chunks=chunks,
            tokens=sum(d.token_count for d in ready), postings=postings,
            add_s=t_added - t0, extract_s=extract_end - t_added, embed_s=embed_end - extract_end,
            write_s=t_end - embed_end, ingest_s=t_end - t_added, total_s=t_end - t0, **load,
            failures=[f"{d.file_name}: {d.error}" for d in ingested if d.status != Document.Status.READY][:5],
        )
        log(f"{name}: {len(documents)} documents ({len(ready)} ready), {chunks} chunks in {result['ingest_s']:.1f} s "
            f"(add {result['add_s']:.1f}, extract+split {result['extract_s']:.1f}, embed {result['embed_s']:.1f}, "
            f"write {result['write_s']:.1f}); CPU busy {load['cpu_busy_pct']}%; rag_chunk row writes: "
            f"{result['chunk_inserts']} inserts, {result['chunk_updates']} updates of which "
            f"{result['chunk_hot_updates']} HOT (others wrote a new entry in every index of rag_chunk, HNSW included)")

        # Cross-check outside the service: extract+split and embed the same texts, no database.
        c0 = time.perf_counter()
        texts = []
        by_id = {d.id: d for d in ingested}
        for (file_name, data, title), document in zip(files, documents):
            extracted = extract(file_name=file_name, data=data)
            doc = by_id.get(document.id)
            use_title = doc.title if doc is not None else (title or extracted.title)
            texts += [_index_text(use_title, d) for d in split_sections(extracted.sections, title=use_title)]
        # The local provider memoises vectors per process (LRU by text hash): empty it, or this would
        # time cache hits instead of the model.
        from rag.embeddings import embeddings_provider

        memo = getattr(embeddings_provider(), "_cache", None)
        if hasattr(memo, "clear"):
            memo.clear()
        c1 = time.perf_counter()
        embed_texts(texts)
        c2 = time.perf_counter()
        result.update(alone_extract_s=c1 - c0, alone_embed_s=c2 - c1, alone_texts=len(texts))
        log(f"{name}: alone (no database): extract+split {c1 - c0:.1f} s, embed_texts({len(texts)}) {c2 - c1:.1f} s "
            f"({len(texts) / (c2 - c1):.0f} chunks/s)")
    finally:
        from rag.management.commands.eval_retrieval import _company_purge

        t0 = time.perf_counter()
        _company_purge(company)
        result["purge_s"] = time.perf_counter() - t0
        log(f"cleanup: company {company.slug} with its documents, chunks and files deleted "
            f"in {result['purge_s']:.1f} s")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", default=str(REPO / "saas_bot" / "demo" / "kb"))
    parser.add_argument("--scifact-docs", type=int, default=1000)
    parser.add_argument("--corpus", default=str(SCIFACT))
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if not 0 < args.scifact_docs <= 6000:
        parser.error("--scifact-docs must be in 1..6000")

    _common.django_setup()
    from django.conf import settings
    from django.core.management import call_command

    from rag.embeddings import embed_texts
    from rag.splitting import count_tokens

    info = _common.machine_info()
    code_note = _common.worktree_note()  # at start: the code this process imported
    load_note = _common.other_load()
    log(f"machine: {info}")
    log(f"other load now: {load_note}")
    call_command("migrate", verbosity=0)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t0 = time.perf_counter()
    embed_texts(["warm-up"])
    count_tokens("warm-up")
    model_load_s = time.perf_counter() - t0
    import torch

    log(f"embedding model loaded in {model_load_s:.1f} s (torch threads {torch.get_num_threads()}, "
        f"batch {settings.EMBEDDING_BATCH_SIZE})")
    datasets = [("demo KB", kb_files(Path(args.kb))),
                (f"SciFact {args.scifact_docs} abstracts", scifact_files(Path(args.corpus), args.scifact_docs))]
    results = []
    try:
        for name, files in datasets:
            log(f"--- {name}: {len(files)} files, {sum(len(d) for _, d, _ in files) / 1024:.0f} KiB")
            results.append(run_dataset(name, files))
    except KeyboardInterrupt:
        log("interrupted (cleanup done for the data set in progress)")
        return 130

    def pct(part: float, whole: float) -> str:
        return f"{part:.1f} ({100 * part / whole:.0f}%)" if whole else f"{part:.1f}"

    headers = ["data set", "docs", "chunks", "tokens", "ingest s", "docs/s", "chunks/s", "add s",
               "extract+split s", "embed s", "DB write s", "embed alone (chunks/s)",
               "rag_chunk inserts / updates (HOT)", "CPU busy %", "load1"]
    rows = []
    for r in results:
        rows.append([r["dataset"], f"{r['ready']}/{r['documents']}", r["chunks"], r["tokens"], round(r["ingest_s"], 1),
                     round(r["ready"] / r["ingest_s"], 1), round(r["chunks"] / r["ingest_s"], 1), round(r["add_s"], 1),
                     pct(r["extract_s"], r["ingest_s"]), pct(r["embed_s"], r["ingest_s"]),
                     pct(r["write_s"], r["ingest_s"]),
                     f"{r['alone_embed_s']:.1f} s ({r['alone_texts'] / r['alone_embed_s']:.0f}/s)",
                     f"{r['chunk_inserts']} / {r['chunk_updates']} ({r['chunk_hot_updates']})",
                     r["cpu_busy_pct"], f"{r['load1_start']}->{r['load1_end']}"])
    text = table(headers, rows)
    print()
    print(text)
    failures = [f for r in results for f in r["failures"]]
    if failures:
        print("failed documents:", failures)
    if not args.no_docs:
        body = ("## Ingestion speed (`bench/ingest_speed.py`)\n\n" + _common.machine_lines(info) +
                f"Other load at start: {load_note}.\n\nCode under test: {code_note}.\n\n"
                "One `documents_ingest` call per data set after `document_add(schedule=False)` of every file, in a "
                "throwaway company (what `manage.py ingest` does). Stages from the service's progress callback: "
                "extract+split (in the extraction child process: pypdf / mammoth / lxml / markdown-it / docutils / "
                "text, then the cl100k token splitter), embed "
                f"(all-MiniLM-L6-v2 on CPU, batches of {settings.EMBEDDING_BATCH_SIZE}, torch threads "
                f"{torch.get_num_threads()}; includes the per-document progress writes), DB write (the rest: chunk "
                "rows into the live HNSW and GIN indexes, tsvector, BM25 postings, corpus stats, status). \"ingest "
                "s\" excludes `document_add` (\"add s\": checksum, quota check, file saved). \"embed alone\": "
                "`embed_texts` on the same texts outside the service. Model cold load before timing: "
                f"{model_load_s:.1f} s (not included). \"rag_chunk inserts / updates (HOT)\": row writes PostgreSQL "
                "counted on rag_chunk during the ingest (pg_stat_user_tables); an update that is not HOT writes a "
                "new tuple and a new entry in every index of the table, the HNSW graph included.\n\n" + text +
                ("\nFailed documents: " + "; ".join(failures) + "\n" if failures else ""))
        _common.update_docs("ingest", body)
        log(f"updated {_common.DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
