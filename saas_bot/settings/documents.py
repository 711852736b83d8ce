"""Documents and sources: upload size, fetching URLs, crawling sources, extraction bounds, the ingestion
sweep (rag/)."""
from saas_bot.settings.base import env

# Uploads over this size are refused by the ingestion service (bytes).
DOCUMENT_MAX_BYTES = env.int("DOCUMENT_MAX_BYTES", default=20 * 1024 * 1024)
DOCUMENT_URL_TIMEOUT_SECONDS = env.float("DOCUMENT_URL_TIMEOUT_SECONDS", default=20.0)
# Documents from URLs: private, loopback and link-local hosts are refused (SSRF) unless this is on.
DOCUMENT_URL_ALLOW_PRIVATE = env.bool("DOCUMENT_URL_ALLOW_PRIVATE", default=False)
# Knowledge-base sources (rag/sources.py, docs/knowledge-base.md): every request sends this User-Agent (robots.txt
# groups match its first word), at most SOURCE_HOST_CONCURRENCY requests at once and SOURCE_HOST_RATE_PER_SECOND
# a second to one host (a robots.txt Crawl-delay slows it further, up to SOURCE_MAX_CRAWL_DELAY_SECONDS).
SOURCE_USER_AGENT = env("SOURCE_USER_AGENT", default="saas_bot-sync/1.0 (knowledge base sync; respects robots.txt)")
SOURCE_FETCH_TIMEOUT_SECONDS = env.float("SOURCE_FETCH_TIMEOUT_SECONDS", default=15.0)
SOURCE_HOST_CONCURRENCY = env.int("SOURCE_HOST_CONCURRENCY", default=4)
SOURCE_HOST_RATE_PER_SECOND = env.float("SOURCE_HOST_RATE_PER_SECOND", default=20.0)
SOURCE_MAX_CRAWL_DELAY_SECONDS = env.float("SOURCE_MAX_CRAWL_DELAY_SECONDS", default=10.0)
SOURCE_MAX_PAGES_LIMIT = env.int("SOURCE_MAX_PAGES_LIMIT", default=5000)  # the most a source may ask for
# Extraction bounds (rag/extraction, docs/retrieval.md "Bounds"): a document past one is failed with a code.
DOCUMENT_MAX_EXTRACTED_CHARS = env.int("DOCUMENT_MAX_EXTRACTED_CHARS", default=5_000_000)
DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS = env.int("DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS", default=50_000_000)
DOCUMENT_MAX_INFLATED_BYTES = env.int("DOCUMENT_MAX_INFLATED_BYTES", default=64 * 1024 * 1024)
DOCUMENT_MAX_PDF_PAGES = env.int("DOCUMENT_MAX_PDF_PAGES", default=2_000)
DOCUMENT_MAX_PDF_CONTENT_BYTES = env.int("DOCUMENT_MAX_PDF_CONTENT_BYTES", default=16 * 1024 * 1024)
DOCUMENT_MAX_DOCX_PARAGRAPHS = env.int("DOCUMENT_MAX_DOCX_PARAGRAPHS", default=100_000)
DOCUMENT_MAX_INCLUDE_BYTES = env.int("DOCUMENT_MAX_INCLUDE_BYTES", default=1024 * 1024)
# The extraction child process (rag/extraction/sandbox.py): limits per document and its lifetime.
DOCUMENT_EXTRACTION_CPU_SECONDS = env.int("DOCUMENT_EXTRACTION_CPU_SECONDS", default=20)
DOCUMENT_EXTRACTION_WALL_SECONDS = env.float("DOCUMENT_EXTRACTION_WALL_SECONDS", default=45.0)
DOCUMENT_EXTRACTION_MEMORY_MB = env.int("DOCUMENT_EXTRACTION_MEMORY_MB", default=512)
DOCUMENT_EXTRACTION_MAX_DOCUMENTS = env.int("DOCUMENT_EXTRACTION_MAX_DOCUMENTS", default=500)
# Resident memory (MB) a child may keep after a document; above it the child is replaced, as Celery's
# worker_max_memory_per_child does (CPython keeps a big document's heap after it is freed).
DOCUMENT_EXTRACTION_RECYCLE_MB = env.int("DOCUMENT_EXTRACTION_RECYCLE_MB", default=160)
# Ingestion runs of one document that never finish (a worker killed) before it is failed, and the age of
# a "processing" document the sweep treats as abandoned (longer than the task's time limit, 1800 s).
DOCUMENT_INGEST_MAX_ATTEMPTS = env.int("DOCUMENT_INGEST_MAX_ATTEMPTS", default=3)
DOCUMENT_PROCESSING_STALE_SECONDS = env.int("DOCUMENT_PROCESSING_STALE_SECONDS", default=2400)
