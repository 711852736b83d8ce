"""Knowledge gaps: the questions a company's bots could not answer or that got 👎, grouped, and answering them once.

Reads (``knowledge_gaps``) and the one write (``knowledge_gap_resolve``) of the admin's knowledge-gaps page.
Grouping (docs/admin-insights.md, "Knowledge gaps"): questions are first merged on normalised text
(case, punctuation and spacing ignored), then the distinct texts are embedded with the deployment's
embedding model (``rag.embeddings``: all-MiniLM-L6-v2, unit vectors) and grouped by threshold
("leader") clustering: most frequent text first, each text joins the first group whose leader is at
least ``GAP_SIMILARITY`` cosine similar, else it leads a new group.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from bots.models import KnowledgeGapResolution, Message
from saas_bot.errors import NotFound, ValidationFailed
from tenants.models import Company

# Cosine similarity (all-MiniLM-L6-v2) at which two questions are one gap. Measured on the questions of
# ../shared/data/kb/zulip-help and saas_bot/demo (bench/knowledge_gaps_grouping.py, docs/admin-insights.md).
GAP_SIMILARITY = 0.5
# The most recent gap questions read per page view. It bounds the embedding work (all-MiniLM-L6-v2 on 2 shared
# cores, docs/admin-insights.md): 300 distinct questions took 1.3 s, 500 took 6.4 s under load; vectors are
# cached per process, so the next view embeds only new questions (300 cached: 4 ms).
GAP_MAX_MESSAGES = 300
# Question vectors kept per process (384 float32 each: 5,000 are about 8 MB).
VECTOR_CACHE_SIZE = 5000
_vector_cache: OrderedDict[tuple[str, str], "np.ndarray"] = OrderedDict()
GAP_EXAMPLES = 5
ANSWER_MAX_CHARS = 20000


@dataclass
class GapGroup:
    """One group of similar questions: ``question`` is the most frequent wording."""

    question: str
    count: int
    first_at: dt.datetime
    last_at: dt.datetime
    not_found: int
    thumbs_down: int
    message_ids: list[int]
    examples: list[Message] = field(default_factory=list)


def normalise_question(text: str) -> str:
    """Lower case, accents kept, punctuation dropped, spaces collapsed: ``"How do I X?!"`` -> ``"how do i x"``."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def group_questions(texts: list[str], *, threshold: float = GAP_SIMILARITY) -> list[list[int]]:
    """Group ``texts`` (questions) into lists of their indexes, largest group first.

    Args:
        texts: questions as typed.
        threshold: cosine similarity (unit-length embeddings) for joining a group's leader.

    Raises:
        ProviderUnavailable: a remote embeddings endpoint failed (``rag.embeddings.embed_queries``).
    """
    by_text: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        by_text.setdefault(normalise_question(text), []).append(i)
    distinct = sorted(by_text, key=lambda t: (-len(by_text[t]), by_text[t][0]))
    if not distinct:
        return []
    vectors = _vectors(distinct)
    leaders: list[int] = []
    groups: list[list[int]] = []
    for j in range(len(distinct)):
        if leaders:
            similarities = vectors[leaders] @ vectors[j]
            best = int(similarities.argmax())
            if similarities[best] >= threshold:
                groups[best].extend(by_text[distinct[j]])
                continue
        leaders.append(j)
        groups.append(list(by_text[distinct[j]]))
    return sorted(groups, key=len, reverse=True)


def _vectors(texts: list[str]):
    """Unit-length embeddings of ``texts`` (a float32 array), embedding only those not in the process cache."""
    import numpy as np

    from rag.embeddings import embed_queries  # questions: the query runtime, no torch in the web process

    model = f"{settings.EMBEDDING_BACKEND}:{settings.EMBEDDING_MODEL}"
    missing = [t for t in texts if (model, t) not in _vector_cache]
    if missing:
        fresh = np.asarray(embed_queries(missing), dtype=np.float32)
        fresh /= np.linalg.norm(fresh, axis=1, keepdims=True).clip(min=1e-12)
        for text, vector in zip(missing, fresh):
            _vector_cache[(model, text)] = vector
    for text in texts:
        _vector_cache.move_to_end((model, text))
    out = np.stack([_vector_cache[(model, t)] for t in texts])
    while len(_vector_cache) > VECTOR_CACHE_SIZE:
        _vector_cache.popitem(last=False)
    return out


def gap_messages(*, company: Company):
    """The company's unresolved gap questions: status ``not_found`` or feedback 👎, not yet answered by an admin."""
    return (Message.objects.for_company(company)
            .filter(Q(status=Message.Status.NOT_FOUND) | Q(feedback=Message.Feedback.DOWN))
            .exclude(gap_resolutions__isnull=False))


def knowledge_gaps(*, company: Company, threshold: float = GAP_SIMILARITY,
                   max_messages: int = GAP_MAX_MESSAGES) -> list[GapGroup]:
    """The company's knowledge gaps, similar questions grouped, most frequent first (then most recent).

    Reads the ``max_messages`` most recent unresolved gap questions (``gap_messages``). Each group has
    its most frequent wording, counts (not found / 👎), first and last dates, all message ids and up to
    ``GAP_EXAMPLES`` examples (most recent first, with their bot).

    Raises:
        ProviderUnavailable: a remote embeddings endpoint failed.
    """
    messages = list(gap_messages(company=company).select_related("bot").order_by("-created_at", "-id")[:max_messages])
    groups = []
    for indexes in group_questions([m.question for m in messages], threshold=threshold):
        members = [messages[i] for i in indexes]
        members.sort(key=lambda m: m.created_at, reverse=True)
        top = Counter(normalise_question(m.question) for m in members).most_common(1)[0][0]
        wording = next(m.question.strip() for m in members if normalise_question(m.question) == top)
        groups.append(GapGroup(
            question=wording, count=len(members), first_at=members[-1].created_at, last_at=members[0].created_at,
            not_found=sum(m.status == Message.Status.NOT_FOUND for m in members),
            thumbs_down=sum(m.feedback == Message.Feedback.DOWN for m in members),
            message_ids=sorted(m.id for m in members), examples=members[:GAP_EXAMPLES]))
    groups.sort(key=lambda g: (-g.count, -g.last_at.timestamp()))
    return groups


def knowledge_gap_resolve(*, company: Company, message_ids: list[int], question: str, answer: str,
                          user=None) -> KnowledgeGapResolution:
    """Answer a group of gap questions once: a Q&A document ``"# question\\n\\nanswer"`` is added and indexed
    (``rag.services.document_add_text``, so plan limits apply) and the questions leave the gaps list.

    Args:
        message_ids: ids of the group's messages; ids of other companies are ignored like missing ones.
        question: the document's title and heading (at most 300 characters).
        answer: the answer text (Markdown; at most ``ANSWER_MAX_CHARS`` characters).

    Raises:
        ValidationFailed(code="gap_question_missing" | "gap_answer_missing" | "gap_answer_too_long").
        NotFound(code="gap_not_found"): none of ``message_ids`` is an unresolved gap of this company.
        And what ``document_add_text`` raises (QuotaExceeded for the documents or storage limit, ...).
    """
    from rag.services import document_add_text

    question = " ".join((question or "").split())[:300]
    answer = (answer or "").strip()
    if not question:
        raise ValidationFailed(code="gap_question_missing", message="Give the question the answer is for.")
    if not answer:
        raise ValidationFailed(code="gap_answer_missing", message="Write the answer.")
    if len(answer) > ANSWER_MAX_CHARS:
        raise ValidationFailed(code="gap_answer_too_long",
                               message=f"Answers are limited to {ANSWER_MAX_CHARS} characters.")
    messages = list(gap_messages(company=company).filter(id__in=message_ids))
    if not messages:
        raise NotFound(code="gap_not_found", message="These questions are no longer open (already answered?).")
    with transaction.atomic():
        document, _ = document_add_text(company=company, title=question, text=f"# {question}\n\n{answer}")
        resolution = KnowledgeGapResolution.objects.create(company=company, question=question, answer=answer,
                                                           document=document, created_by=user)
        resolution.messages.set(messages)
    return resolution
