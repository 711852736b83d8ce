"""Documents, their chunks and the lexical index (BM25 postings); the knowledge base's settings."""
from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

from saas_bot.models import CompanyQuerySet

EMBEDDING_DIMENSIONS = 384  # all-MiniLM-L6-v2 and multilingual-e5-small (rag/embeddings.py LOCAL_MODELS)


class KnowledgeBase(models.Model):
    """A company's knowledge-base settings: which embedding model its chunks and questions use.

    A change of model is a *switch*: ``next_embedding_model`` is set, a background task fills each
    chunk's ``embedding_next`` and, when every chunk has one, changes over at once (rag/knowledge_base.py).
    Until then answers keep using ``embedding_model``.
    """

    company = models.OneToOneField("tenants.Company", on_delete=models.CASCADE, related_name="knowledge_base")
    embedding_model = models.CharField(max_length=64, help_text="The model the company's chunks are embedded with.")
    next_embedding_model = models.CharField(max_length=64, blank=True,
                                            help_text="The model being switched to (empty: no switch running).")
    switch_done = models.PositiveIntegerField(default=0, help_text="Chunks re-embedded so far in the running switch.")
    switch_total = models.PositiveIntegerField(default=0, help_text="Chunks to re-embed in the running switch.")
    switch_error = models.TextField(blank=True, help_text="Why the last switch stopped, if it did.")
    live_version = models.ForeignKey("KnowledgeBaseVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", help_text="The version bots answer from (rag/versions.py).")
    golden_threshold = models.FloatField(
        null=True, blank=True,
        help_text="Share of golden questions (0-1) a new version must pass to go live. Empty: no golden "
                  "question that passed on the live version may fail on the new one.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        verbose_name = "knowledge base settings"
        verbose_name_plural = "knowledge base settings"

    def __str__(self) -> str:
        return f"Knowledge base of {self.company}"


class Collection(models.Model):
    """A named group of a company's documents; a bot may be limited to some collections."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["company", "name"], name="collection_unique_company_name")]

    def __str__(self) -> str:
        return self.name


class DocumentManager(models.Manager.from_queryset(CompanyQuerySet)):
    """``Document.objects``: the documents that exist for users (not deleted). ``Document.all_objects``
    also has the deleted ones that a knowledge-base version still holds (rag/versions.py)."""

    def get_queryset(self) -> CompanyQuerySet:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Document(models.Model):
    """An uploaded file (or URL / pasted text) of one company, and its indexing state.

    A deleted document keeps its row, file and chunks (``deleted_at`` set) while a knowledge-base version
    worth keeping holds it, so a rollback can bring it back; versions cleanup removes it for good after
    (rag/versions.py, docs/knowledge-base.md "Versions").
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    file_name = models.CharField(max_length=255, help_text="Original file name; answers cite it.")
    file = models.FileField(upload_to="documents/%Y/%m/", blank=True)
    source_url = models.URLField(max_length=2000, blank=True, help_text="The page it was fetched from, if any.")
    collection = models.ForeignKey(Collection, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="documents",
                                   help_text="Optional group; bots can be limited to some collections.")
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the content; same content is indexed once.")
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent, while processing.")
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True,
                                  help_text="Stable code of the last failure (document_too_large_extracted, ...).")
    ingest_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Ingestion runs since it was last queued; a run that never finished counts too.")
    processing_started_at = models.DateTimeField(null=True, blank=True,
                                                 help_text="When the current (or last) ingestion run started.")
    chunk_count = models.PositiveIntegerField(default=0)
    token_count = models.PositiveIntegerField(default=0)
    revision = models.PositiveIntegerField(db_default=0, help_text="The last revision of its chunks written "
                                                                "(each indexing writes a new one; rag/versions.py).")
    created_at = models.DateTimeField(auto_now_add=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="When it was deleted; kept for rollback "
                                                                       "until no kept version holds it.")

    objects = DocumentManager()
    all_objects = CompanyQuerySet.as_manager()

    class Meta:
        base_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(fields=["company", "checksum"], condition=models.Q(deleted_at__isnull=True),
                                    name="document_unique_company_checksum")
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A piece of a document: text, embedding, tsvector, and where it sits (section, page).

    ``company`` is denormalised so every search filters on it first.
    """

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    section = models.CharField(max_length=500, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    embedding_next = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True,
                                 help_text="The embedding by the model being switched to (KnowledgeBase).")
    search_vector = SearchVectorField()
    lexeme_count = models.PositiveIntegerField(default=0, help_text="BM25 document length, in lexemes.")
    revision = models.PositiveIntegerField(db_default=0, help_text="Which indexing of the document wrote it.")
    live = models.BooleanField(db_default=True, help_text="In the live knowledge-base version (searches read "
                                                      "only these; rag/versions.py).")

    objects = CompanyQuerySet.as_manager()

    class Meta:
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
            models.Index(fields=["company", "document"], name="chunk_company_document"),
        ]


class CorpusStat(models.Model):
    """Per company: chunk count and total lexemes, the N and avgdl of BM25. Kept in the ingest transaction."""

    company = models.OneToOneField("tenants.Company", on_delete=models.CASCADE, primary_key=True, related_name="+")
    chunk_count = models.BigIntegerField(default=0)
    total_length = models.BigIntegerField(default=0)


class ChunkTerm(models.Model):
    """A BM25 posting: lexeme ``term`` occurs ``tf`` times in chunk ``chunk_id`` (of length ``dl``).

    Filled from the chunk's tsvector by SQL (Postgres does tokenising and
    stemming); read by the lexical retriever through a covering index on
    (company, term). Rows go away with their chunk (ON DELETE CASCADE in SQL).
    """

    pk = models.CompositePrimaryKey("chunk_id", "term")
    company_id = models.BigIntegerField()
    chunk = models.ForeignKey(Chunk, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    term = models.TextField()
    tf = models.IntegerField()
    dl = models.IntegerField()

    # The lexical retriever reads postings through an expression index created in SQL (migration
    # 0003): (company_id, term, tf / dl DESC) INCLUDE (chunk_id, tf, dl).
