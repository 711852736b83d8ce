"""The rag app's models, by job: documents and the index (documents.py), sources (sources.py), versions and
golden questions (versions.py). Import them from ``rag.models``."""
from rag.models.documents import (EMBEDDING_DIMENSIONS, Chunk, ChunkTerm, Collection, CorpusStat,  # noqa: F401
                                  Document, KnowledgeBase)
from rag.models.sources import Source, SourcePage, SyncRun  # noqa: F401
from rag.models.versions import GoldenQuestion, KnowledgeBaseVersion  # noqa: F401
