"""A company's knowledge-base settings: its embedding model, and switching it without downtime.

Switching model (:func:`knowledge_base_model_set`) never leaves a company without answers: the new
model's vectors are written beside the old ones (``Chunk.embedding_next``) by a background task
(:func:`knowledge_base_reembed`); while it runs, questions are embedded and searched with the old
model. When every chunk has its new vector, one transaction copies them over and records the new
model; that transaction takes the knowledge base row ``FOR UPDATE``, and searches read the model under
``FOR SHARE`` (rag/retrieval.py), so no question is embedded with one model and searched against the
other's vectors.
"""
from __future__ import annotations

import logging
from typing import Callable

from django.db import connection, transaction
from django.utils import timezone

from rag.models import Chunk, KnowledgeBase
from saas_bot.errors import ValidationFailed
from saas_bot.tasking import enqueue_on_commit

logger = logging.getLogger(__name__)


def knowledge_base_model(company_id: int, *, lock: bool = False) -> str:
    """The embedding model of the company's chunks and questions (the deployment default when unset).

    Args:
        lock: read the row ``FOR SHARE`` (inside the caller's transaction), so a switch cannot change
            over until the caller's transaction ends.
    """
    from rag.embeddings import default_model

    query = "SELECT embedding_model FROM rag_knowledgebase WHERE company_id = %s" + (" FOR SHARE" if lock else "")
    with connection.cursor() as cursor:
        cursor.execute(query, [company_id])
        row = cursor.fetchone()
    return row[0] if row and row[0] else default_model()


def knowledge_base_get(company) -> KnowledgeBase:
    """The company's KnowledgeBase row (``company`` is a Company or its id), created with the deployment's
    default model if missing."""
    from rag.embeddings import default_model

    kb, _ = KnowledgeBase.objects.get_or_create(company_id=getattr(company, "pk", company),
                                                defaults={"embedding_model": default_model()})
    return kb


def knowledge_base_golden_threshold_set(*, company, threshold: float | None) -> KnowledgeBase:
    """Set the share of golden questions (0 to 1) a new knowledge-base version must pass to go live; None
    restores the default rule (no golden question that passed on the live version may fail on the new one;
    rag/golden.py ``golden_check``, docs/knowledge-base.md "Golden questions").

    Raises:
        ValidationFailed(code="golden_threshold_invalid"): not a finite number between 0 and 1.
    """
    import math

    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold) or not 0 <= threshold <= 1):
        raise ValidationFailed(code="golden_threshold_invalid",
                               message="The golden threshold is a share between 0 and 1 (0.9 = 90 %), or empty.")
    kb = knowledge_base_get(company)
    KnowledgeBase.objects.filter(pk=kb.pk).update(golden_threshold=None if threshold is None else float(threshold))
    kb.refresh_from_db()
    return kb


def knowledge_base_model_set(*, company, model: str, background: bool = True) -> KnowledgeBase:
    """Choose the embedding model of ``company``'s knowledge base.

    A company without chunks changes at once. Otherwise a switch starts: the task
    ``rag.knowledge_base_reembed`` re-embeds every chunk in the background (``background=False`` runs
    it here) and changes over when done; answers use the current model meanwhile. Choosing the model
    already in use cancels a running switch.

    Returns:
        The KnowledgeBase row after the change (``next_embedding_model`` set while a switch runs).

    Raises:
        ValidationFailed(code="embedding_model_unknown"): ``model`` is not one of rag.embeddings.LOCAL_MODELS.
    """
    from rag.embeddings import LOCAL_MODELS

    if model not in LOCAL_MODELS:
        raise ValidationFailed(code="embedding_model_unknown",
                               message=f"Unknown embedding model {model!r}; choose one of {sorted(LOCAL_MODELS)}.")
    with transaction.atomic():
        knowledge_base_get(company)
        kb = KnowledgeBase.objects.select_for_update().get(company_id=company.pk)
        has_chunks = Chunk.objects.filter(company_id=company.pk).exists()
        if model == kb.embedding_model or not has_chunks:
            kb.embedding_model, kb.next_embedding_model = model, ""
            kb.switch_done = kb.switch_total = 0
            kb.switch_error = ""
            kb.save()
            Chunk.objects.filter(company_id=company.pk).exclude(embedding_next=None).update(embedding_next=None)
            return kb
        if kb.next_embedding_model != model:
            Chunk.objects.filter(company_id=company.pk).exclude(embedding_next=None).update(embedding_next=None)
            kb.switch_done = 0
        kb.next_embedding_model, kb.switch_error = model, ""
        kb.switch_total = Chunk.objects.filter(company_id=company.pk).count()
        kb.save()
        if background:
            from rag.tasks import knowledge_base_reembed_task

            enqueue_on_commit(knowledge_base_reembed_task, company.pk)
    if not background:
        return knowledge_base_reembed(company_id=company.pk)
    return kb


def knowledge_base_reembed(*, company_id: int, batch: int = 64,
                           progress: Callable[[int, int], None] | None = None) -> KnowledgeBase:
    """Fill ``embedding_next`` of the company's chunks with the model being switched to, then change over.

    Runs in batches of ``batch`` chunks, each in its own short transaction (so it can be killed and run
    again: it goes on where it stopped). Chunks added meanwhile are embedded too. The change-over
    (vectors copied, model recorded) is one transaction under the knowledge base row's lock.
    ``progress(done, total)`` after each batch. Does nothing when no switch is running.

    Returns:
        The KnowledgeBase row (switched, or as it was).
    """
    from rag.embeddings import embed_texts
    from rag.dense import vector_literal
    from rag.splitting import index_text

    kb = KnowledgeBase.objects.get(company_id=company_id)
    model = kb.next_embedding_model
    if not model:
        return kb

    def pending(limit: int | None) -> list[tuple[int, str]]:
        rows = (Chunk.objects.filter(company_id=company_id, embedding_next=None)
                .select_related("document").order_by("id"))
        if limit:
            rows = rows[:limit]
        return [(c.id, index_text(c.document.title, c.section, c.text)) for c in rows]

    def write(rows: list[tuple[int, str]]) -> None:
        vectors = embed_texts([text for _, text in rows], model=model)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE rag_chunk c SET embedding_next = v.e::vector FROM unnest(%s::bigint[], %s::text[]) AS v(id, e) "
                "WHERE c.id = v.id AND c.company_id = %s",
                [[i for i, _ in rows], [vector_literal(v) for v in vectors], company_id])

    while True:
        rows = pending(batch)
        if not rows:
            break
        write(rows)
        done = Chunk.objects.filter(company_id=company_id).exclude(embedding_next=None).count()
        total = Chunk.objects.filter(company_id=company_id).count()
        still = KnowledgeBase.objects.filter(company_id=company_id, next_embedding_model=model).update(
            switch_done=done, switch_total=total, updated_at=timezone.now())
        if not still:  # the switch was cancelled or redirected meanwhile
            return KnowledgeBase.objects.get(company_id=company_id)
        if progress:
            progress(done, total)
    with transaction.atomic():
        kb = KnowledgeBase.objects.select_for_update().get(company_id=company_id)
        if kb.next_embedding_model != model:
            return kb
        late = pending(None)  # chunks written between the last batch and the lock
        if late:
            write(late)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE rag_chunk SET embedding = embedding_next, embedding_next = NULL "
                           "WHERE company_id = %s", [company_id])
        kb.embedding_model, kb.next_embedding_model = model, ""
        kb.switch_done = kb.switch_total = Chunk.objects.filter(company_id=company_id).count()
        kb.save()
    logger.info("company %s switched to embedding model %s", company_id, model)
    return kb


# A switch whose row has not moved for this long lost its task (a killed worker, a lost message).
SWITCH_STALE_SECONDS = 600


def knowledge_base_switches_sweep(*, now=None) -> int:
    """Queue the re-embedding task again for switches that stopped moving (periodic, with the documents
    sweep). The task goes on where it stopped (chunks with their new vector are skipped).

    Returns:
        How many switches were queued again.
    """
    from datetime import timedelta

    from rag.tasks import knowledge_base_reembed_task

    now = now or timezone.now()
    stale = list(KnowledgeBase.objects.exclude(next_embedding_model="").filter(
        updated_at__lt=now - timedelta(seconds=SWITCH_STALE_SECONDS)).values_list("company_id", flat=True))
    for company_id in stale:
        KnowledgeBase.objects.filter(company_id=company_id).update(updated_at=now)
        enqueue_on_commit(knowledge_base_reembed_task, company_id)
    if stale:
        logger.warning("knowledge base sweep: %d switch(es) queued again", len(stale))
    return len(stale)
