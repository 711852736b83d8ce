"""The "Knowledge" group of the admin index, one module per model: ``documents`` (add several files, a URL
or text; re-index; delete), ``collections``, ``knowledge_base`` (the embedding model and its switch),
``sources`` (sources and their sync runs), ``versions`` (knowledge-base versions, golden questions, the golden
threshold on the knowledge-base page; imported last, it extends that page). Importing the package registers them all (admin autodiscovery
imports ``rag.admin``).
"""
from rag.admin import collections, documents, knowledge_base, sources  # noqa: F401 (registers the admins)
from rag.admin import versions  # noqa: F401,E402 (after knowledge_base: it extends its page)
