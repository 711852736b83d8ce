"""The "Knowledge" group of the admin index, one module per model: ``documents`` (add several files, a URL
or text; re-index; delete), ``collections``, ``knowledge_base`` (the embedding model and its switch),
``sources`` (sources and their sync runs). Importing the package registers them all (admin autodiscovery
imports ``rag.admin``).
"""
from rag.admin import collections, documents, knowledge_base, sources  # noqa: F401 (registers the admins)
