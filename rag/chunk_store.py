"""The chunk store: writing a document's chunks (vector, tsvector, BM25 postings, corpus statistics) under a
new revision and recording the embedding usage of an indexing (rag/ingestion.py); removing them is
rag/versions.py's cleanup. Benchmarks write synthetic corpora through the same writer.
"""
from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from rag.knowledge_base import knowledge_base_model
from rag.models import Document
from rag.dense import vector_literal
from rag.splitting import ChunkDraft, index_text
from tenants.models import Company


def _index_text(title: str, draft: ChunkDraft) -> str:
    """What is embedded and full-text indexed for a chunk (rag.splitting.index_text)."""
    return index_text(title, draft.section, draft.text)


def _corpus_stat_add(company_id: int, chunks: int, length: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO rag_corpusstat (company_id, chunk_count, total_length) VALUES (%s, %s, %s)
            ON CONFLICT (company_id) DO UPDATE SET
              chunk_count = rag_corpusstat.chunk_count + EXCLUDED.chunk_count,
              total_length = rag_corpusstat.total_length + EXCLUDED.total_length
            """,
            [company_id, chunks, length],
        )


@transaction.atomic
def _document_write_chunks(*, company: Company, document: Document, title: str, drafts: list[ChunkDraft],
                           vectors: list[list[float]], model: str | None = None) -> None:
    from rag.embeddings import embed_texts

    # Lock the document row so two ingestions of the same document cannot interleave.
    Document.objects.select_for_update().filter(id=document.id).first()
    current = knowledge_base_model(company.id, lock=True)
    if model is not None and current != model:  # the company's model switch changed over meanwhile
        vectors = embed_texts([_index_text(title, d) for d in drafts], model=current)
    # A new revision beside the old ones, not live: it answers once a knowledge-base version that lists it
    # goes live (rag/versions.py); its postings are kept under the negated company id until then.
    revision = Document.objects.filter(id=document.id).values_list("revision", flat=True).first() + 1
    config = settings.RAG_TEXT_SEARCH_CONFIG
    with connection.cursor() as cursor:
        # One INSERT per document: Postgres tokenises and stems the index text (the same
        # configuration is used at query time), and each row is written once with its tsvector and
        # its BM25 length (the tsvector's positions give each lexeme's term frequency).
        cursor.execute(
            """
            INSERT INTO rag_chunk (company_id, document_id, ordinal, text, section, page, token_count, embedding,
                                   search_vector, lexeme_count, revision, live)
            SELECT %s, %s, r.ordinal, r.text, r.section, r.page, r.token_count, r.embedding::vector, v.tsv,
                   (SELECT coalesce(sum(coalesce(array_length(t.positions, 1), 1)), 0) FROM unnest(v.tsv) t),
                   %s, false
            FROM unnest(%s::int[], %s::text[], %s::text[], %s::int[], %s::int[], %s::text[], %s::text[])
                 AS r(ordinal, text, section, page, token_count, embedding, index_text)
            CROSS JOIN LATERAL (SELECT to_tsvector(%s::regconfig, r.index_text) AS tsv) v
            """,
            [company.id, document.id, revision,
             list(range(len(drafts))), [d.text for d in drafts], [d.section[:500] for d in drafts],
             [d.page for d in drafts], [d.token_count for d in drafts],
             [vector_literal(v) for v in vectors],
             [_index_text(title, d) for d in drafts], config],
        )
        cursor.execute(
            """
            INSERT INTO rag_chunkterm (chunk_id, term, company_id, tf, dl)
            SELECT c.id, t.lexeme, -c.company_id, coalesce(array_length(t.positions, 1), 1), c.lexeme_count
            FROM rag_chunk c, LATERAL unnest(c.search_vector) t
            WHERE c.document_id = %s AND c.revision = %s
            """,
            [document.id, revision],
        )
        cursor.execute("SELECT count(*) FROM rag_chunk WHERE document_id = %s AND revision = %s",
                       [document.id, revision])
        count = cursor.fetchone()[0]
    indexed_at = timezone.now()
    tokens = sum(d.token_count for d in drafts)
    Document.objects.filter(id=document.id).update(
        status=Document.Status.READY, progress=100, error="", title=title[:300], chunk_count=count,
        token_count=tokens, indexed_at=indexed_at, revision=revision,
    )
    _embedding_usage_record(company=company, document=document, tokens=tokens, at=indexed_at)


def _embedding_usage_record(*, company: Company, document: Document, tokens: int, at) -> None:
    """One ``embedding_tokens`` usage event per indexing of a document (in the indexing transaction).

    Tokens are cl100k counts of the chunk texts (what an OpenAI-compatible endpoint bills; the local
    model costs nothing unless staff price it in ModelPrice). Without a live subscription there is
    no period to charge and nothing is recorded.
    """
    from billing.ledger import usage_enqueue
    from billing.models import UsageEvent
    from billing.services import subscription_get_live
    from saas_bot.errors import NoLiveSubscription

    try:
        period = subscription_get_live(company=company, at=at).current_period_start
    except NoLiveSubscription:
        return
    usage_enqueue(company=company, idempotency_key=f"embed:{document.id}:{at.isoformat()}", period_start=period,
                  kind=UsageEvent.Kind.EMBEDDING_TOKENS, quantity=tokens, model=settings.EMBEDDING_MODEL,
                  channel="ingest", occurred_at=at)
