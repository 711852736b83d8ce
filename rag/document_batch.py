"""Adding several documents at once with an outcome per item: the one use case behind the API's
``POST /documents`` and the admin's add form (files, a URL, pasted text).

Each item goes through its ``rag.services`` function (``document_add``, ``document_add_url``,
``document_add_text``) on its own: a refused item (unsupported type, empty, too large, unreachable URL,
plan limit...) does not stop the others, and its ``ServiceError`` becomes its outcome, with the code.
All the items of one call are one change batch, so one knowledge-base version (docs/knowledge-base.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Literal

from rag import services
from rag.models import Collection, Document
from saas_bot.errors import ServiceError
from tenants.models import Company

Outcome = Literal["created", "duplicate", "failed"]
CREATED: Outcome = "created"
DUPLICATE: Outcome = "duplicate"
FAILED: Outcome = "failed"


@dataclass(frozen=True)
class DocumentItem:
    """One thing to add. Build it with ``DocumentItem.from_file``, ``.from_url`` or ``.from_text``.

    ``name`` is what the outcome is reported under: the file name, the URL, or the title
    ("pasted text" when there is none).
    """

    kind: Literal["file", "url", "text"]
    name: str
    content: bytes | IO[bytes] | None = None  # file: its bytes, or an upload read when its turn comes
    url: str = ""
    title: str | None = None
    text: str = ""

    @classmethod
    def from_file(cls, name: str | None, content: bytes | IO[bytes]) -> DocumentItem:
        """A file by its name (the extension picks the extractor) and its bytes or a readable upload."""
        return cls(kind="file", name=name or "document", content=content)

    @classmethod
    def from_url(cls, url: str, title: str | None = None) -> DocumentItem:
        """A web page to fetch (``document_add_url``); ``title`` None or "" keeps the page's."""
        return cls(kind="url", name=url, url=url, title=title or None)

    @classmethod
    def from_text(cls, title: str, text: str) -> DocumentItem:
        """Pasted text or Markdown with its title (``document_add_text`` refuses an empty title)."""
        return cls(kind="text", name=(title or "").strip() or "pasted text", title=title or "", text=text)


@dataclass(frozen=True)
class DocumentAddOutcome:
    """What happened to one item: ``created`` (a new document, being indexed), ``duplicate`` (the same
    content is stored already: ``document`` is that one, nothing added) or ``failed`` (``error`` says why,
    with its code; nothing stored for this item)."""

    name: str
    outcome: Outcome
    document: Document | None = None
    error: ServiceError | None = None


@dataclass(frozen=True)
class DocumentBatchResult:
    """The outcomes of one ``documents_add`` call, in the order of its items."""

    outcomes: list[DocumentAddOutcome]

    @property
    def created(self) -> list[Document]:
        return [o.document for o in self.outcomes if o.outcome == CREATED]

    @property
    def duplicates(self) -> list[Document]:
        return [o.document for o in self.outcomes if o.outcome == DUPLICATE]

    @property
    def failed(self) -> list[DocumentAddOutcome]:
        return [o for o in self.outcomes if o.outcome == FAILED]

    @property
    def all_failed(self) -> bool:
        """Every item was refused (True for no items too): nothing was stored."""
        return all(o.outcome == FAILED for o in self.outcomes)

    @property
    def first_error(self) -> ServiceError | None:
        """The first refusal, or None: the error a caller reports when every item failed."""
        return next((o.error for o in self.outcomes if o.error is not None), None)


def documents_add(*, company: Company, items: list[DocumentItem],
                  collection: Collection | None = None) -> DocumentBatchResult:
    """Add ``items`` to ``company`` one by one, each through its service; an item's refusal is its outcome.

    Args:
        items: files, URLs and texts (``DocumentItem``); an upload is read when its turn comes.
        collection: the collection every item goes into (None: none); another company's is refused per
            item (``collection_not_found``).

    Returns:
        One ``DocumentAddOutcome`` per item, in order. Added documents are pending; their ingestion is
        enqueued when the caller's transaction commits (``document_add``). The documents added are one
        ``document_change_batch`` (origin "upload"): one knowledge-base version, live when all are indexed.

    Raises:
        Nothing for an item's ``ServiceError`` (it is the item's outcome: the codes of ``document_add``,
        ``document_add_url`` and ``document_add_text``); anything else (a bug, the database) propagates.
    """
    outcomes = []
    with services.document_change_batch(company=company, origin="upload") as batch:
        for item in items:
            try:
                document, created = _add_one(company, item, collection, batch)
            except ServiceError as exc:
                outcomes.append(DocumentAddOutcome(name=item.name, outcome=FAILED, error=exc))
                continue
            outcomes.append(DocumentAddOutcome(name=item.name, outcome=CREATED if created else DUPLICATE,
                                               document=document))
    return DocumentBatchResult(outcomes=outcomes)


def _add_one(company: Company, item: DocumentItem, collection: Collection | None,
             batch: services.DocumentChangeBatch) -> tuple[Document, bool]:
    if item.kind == "url":
        return services.document_add_url(company=company, url=item.url, title=item.title, collection=collection,
                                         batch=batch)
    if item.kind == "text":
        return services.document_add_text(company=company, title=item.title or "", text=item.text,
                                          collection=collection, batch=batch)
    content = item.content
    data = content if isinstance(content, bytes) else content.read()
    return services.document_add(company=company, file_name=item.name, data=data, collection=collection,
                                 batch=batch)
