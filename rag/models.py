"""Documents, their chunks and the lexical index (BM25 postings)."""
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


class Document(models.Model):
    """An uploaded file (or URL / pasted text) of one company, and its indexing state."""

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

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "checksum"], name="document_unique_company_checksum")
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


class Source(models.Model):
    """Where a company's documents come from and are kept in sync: a website, a sitemap or one URL.

    A *website* is crawled from ``url`` through same-site links (same scheme, host and port) up to
    ``max_depth`` links away and ``max_pages`` pages; a *sitemap* lists its pages (``sitemap.xml`` or a
    sitemap index, followed up to ``max_pages``); a *single URL* is one page. Path patterns (shell style,
    ``fnmatch``: ``/help/*``) narrow which pages count. Syncing is rag/sources.py (docs/knowledge-base.md).
    """

    class Kind(models.TextChoices):
        WEBSITE = "website", "Website (start URL and same-site links)"
        SITEMAP = "sitemap", "Sitemap (sitemap.xml or a sitemap index)"
        URL = "url", "Single URL"

    class Schedule(models.TextChoices):
        MANUAL = "manual", "Manual"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.WEBSITE)
    url = models.URLField(max_length=2000, help_text="Start URL, sitemap URL or the page's URL.")
    include_patterns = models.TextField(blank=True, help_text="One path pattern a line (e.g. /help/*); empty: all.")
    exclude_patterns = models.TextField(blank=True, help_text="One path pattern a line; a match is skipped.")
    max_pages = models.PositiveIntegerField(default=200, help_text="At most this many pages are kept.")
    max_depth = models.PositiveSmallIntegerField(default=3, help_text="Website: links followed from the start URL.")
    schedule = models.CharField(max_length=8, choices=Schedule.choices, default=Schedule.MANUAL)
    collection = models.ForeignKey(Collection, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="sources", help_text="Pages of this source go into it.")
    change_alert_percent = models.PositiveSmallIntegerField(
        default=20, help_text="Email the company's admins when a run adds, changes or removes more than this "
                              "percent of the pages (a failed run is always reported).")
    last_synced_at = models.DateTimeField(null=True, blank=True, help_text="When the last run finished.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class SourcePage(models.Model):
    """One page of a source as last fetched: its validators, content checksum, links and document."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="pages")
    url = models.URLField(max_length=2000)
    document = models.ForeignKey(Document, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    owns_document = models.BooleanField(default=False, help_text="The document was added by this page (removed "
                                                                 "with it).")
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    checksum = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the extracted main content.")
    links = models.JSONField(default=list, blank=True, help_text="Same-site links found on it (a 304 reuses them).")
    depth = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "url"], name="sourcepage_unique_source_url")]

    def __str__(self) -> str:
        return self.url


class SyncRun(models.Model):
    """One sync of a source: what it found (added, changed, removed, failed, unchanged) and its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=10, default="manual", help_text="manual, schedule or command.")
    pages_done = models.PositiveIntegerField(default=0, help_text="Pages fetched so far (progress).")
    pages_total = models.PositiveIntegerField(default=0, help_text="Pages known so far (grows while crawling).")
    added = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    bytes_received = models.BigIntegerField(default=0, help_text="Response bodies, bytes (304s receive none).")
    failures = models.JSONField(default=list, blank=True, help_text="[{url, code, message}] of failed pages.")
    error = models.TextField(blank=True, help_text="Why the run failed as a whole.")
    alerted = models.BooleanField(default=False, help_text="The company's admins were emailed about this run.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["source", "-created_at"], name="syncrun_source_created")]

    def __str__(self) -> str:
        return f"{self.source} run {self.id}"


class KnowledgeBaseVersion(models.Model):
    """One state of a company's knowledge base: which revision of each document answers.

    Every batch of document changes (upload, delete, replace, sync run; rag/services.py) makes one. It is
    *building* until its documents are indexed, then checked against the company's golden questions and
    made *live*, or *held* with the failing questions. rag/versions.py; docs/knowledge-base.md.
    """

    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        HELD = "held", "Held (golden questions failed)"
        LIVE = "live", "Live"
        RETIRED = "retired", "Retired (was live)"
        DISCARDED = "discarded", "Discarded"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField(help_text="1, 2, 3 ... per company.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BUILDING)
    origin = models.CharField(max_length=20, help_text="upload, replace, delete, sync_run, source_delete.")
    origin_id = models.BigIntegerField(null=True, blank=True, help_text="The SyncRun's id for a sync run.")
    changes = models.JSONField(default=list, blank=True,
                               help_text="[{action, document_id, title}]: what this version changed.")
    revisions = models.JSONField(null=True, blank=True,
                                 help_text="{document id: revision} answering in this version (set when built).")
    added = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    golden_results = models.JSONField(default=list, blank=True,
                                      help_text="[{id, question, passed, passed_live, answer, ...}] of the check.")
    golden_passed = models.PositiveIntegerField(null=True, blank=True)
    golden_total = models.PositiveIntegerField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="Why it is held, who forced or discarded it.")
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)
    live_at = models.DateTimeField(null=True, blank=True, help_text="When it last went live.")

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["company", "number"], name="kbversion_unique_company_number")]

    def __str__(self) -> str:
        return f"version {self.number}"


class GoldenQuestion(models.Model):
    """A question a company's bot must always answer right, checked before a new version goes live.

    The fields of an evaluation-set row (bench/data/README.md): ``expected`` file names one of which must
    be cited, ``answer_contains`` strings one of which the answer must contain, or ``must_refuse``.
    Scored by rag/answer_evaluation.py.
    """

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    question = models.TextField()
    expected = models.JSONField(default=list, blank=True, help_text="File names; citing one of them passes.")
    answer_contains = models.JSONField(default=list, blank=True,
                                       help_text="Strings; the answer must contain one (case-insensitive).")
    must_refuse = models.BooleanField(default=False, help_text="The right answer is \"I don't know\".")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.question[:80]

    def as_row(self) -> dict:
        """The question as an evaluation-set row (rag.answer_evaluation.score_row's ``row``)."""
        return {"id": str(self.id), "question": self.question, "expected": list(self.expected or []),
                "answer_contains": list(self.answer_contains or []), "kind": "golden"}
