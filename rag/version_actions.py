"""What staff and company admins do with knowledge-base versions (issue 17, item 3; docs/knowledge-base.md
"Versions"): look one up, roll back to an earlier one, force or discard a held one, check it again, and
compare two. Building and switching are rag/versions.py.
"""
from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from rag.models import Document, KnowledgeBaseVersion
from rag.versions import _candidate, _company_lock, _live_revisions, _switch, versions_advance, versions_cleanup
from saas_bot.errors import NotFound, ValidationFailed

Status = KnowledgeBaseVersion.Status


def version_get(*, company, version_id: int) -> KnowledgeBaseVersion:
    """The company's version ``version_id``. Raises NotFound(code="version_not_found")."""
    version = KnowledgeBaseVersion.objects.for_company(company).filter(id=version_id).first()
    if version is None:
        raise NotFound(code="version_not_found", message="Version not found.")
    return version


def version_rollback(*, company, version_id: int) -> KnowledgeBaseVersion:
    """Make an earlier version live again at once, with exactly the revisions it had (no golden check).

    Documents it held that were deleted since are restored (``_documents_restore``); documents added
    since stay in the company's list, not answering, until a later version makes them live again.

    Raises:
        NotFound(code="version_not_found").
        ValidationFailed(code="version_not_restorable"): it never went live, or its chunks were cleaned up
            (more than ``RAG_VERSIONS_KEPT`` versions ago).
    """
    version = version_get(company=company, version_id=version_id)
    if version.status == Status.LIVE:
        return version
    if version.status != Status.RETIRED or not version.revisions:
        hint = {Status.HELD: "force it to make it live, or discard it to keep the live version",
                Status.BUILDING: "it goes live (or is held) when its documents are indexed",
                Status.DISCARDED: "it was discarded and cannot go live"}.get(version.status, "")
        raise ValidationFailed(code="version_not_restorable",
                               message=f"Version {version.number} was never live" + (f": {hint}." if hint else "."))
    revisions = {int(d): int(r) for d, r in version.revisions.items()}
    with transaction.atomic():
        _company_lock(company.id)
        existing = set(Document.all_objects.filter(company_id=company.id, id__in=list(revisions))
                       .values_list("id", flat=True))
        revisions = {d: r for d, r in revisions.items() if d in existing}  # removed by cleanup: gone for good
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM unnest(%s::bigint[], %s::int[]) t(d, r) WHERE NOT EXISTS "
                "(SELECT 1 FROM rag_chunk c WHERE c.document_id = t.d AND c.revision = t.r)",
                [list(revisions), list(revisions.values())])
            missing = cursor.fetchone()[0]
        if missing:
            raise ValidationFailed(code="version_not_restorable",
                                   message=f"Version {version.number}'s chunks were cleaned up "
                                           f"(only the last {settings.RAG_VERSIONS_KEPT} live versions are kept).")
        restored, replaced = _documents_restore(company.id, list(revisions))
        for old_id, new in replaced.items():  # the same content uploaded again answers in the old one's place
            del revisions[old_id]
            if new.revision and new.status == Document.Status.READY:
                revisions[new.id] = new.revision
        note = f"rolled back on {timezone.now():%Y-%m-%d %H:%M}"
        if restored:
            note += f"; {len(restored)} deleted document(s) restored"
        if replaced:
            note += f"; {len(replaced)} answered by the document(s) uploaded again with the same content"
        version.note = (version.note + "\n" if version.note else "") + note
        _switch(version, revisions)
    return version


def _documents_restore(company_id: int, document_ids: list[int]) -> tuple[list[int], dict[int, Document]]:
    """Undelete the deleted documents among ``document_ids`` (a rollback or a discarded delete).

    Returns:
        (restored ids, {skipped id: the document that replaces it}): a deleted document whose content another
        document of the company now has (the same checksum was uploaded again) stays deleted; that other
        document answers in its place.
    """
    restored, replaced = [], {}
    for document in Document.all_objects.filter(company_id=company_id, id__in=document_ids,
                                                 deleted_at__isnull=False).order_by("id"):
        other = Document.objects.filter(company_id=company_id, checksum=document.checksum).first()
        if other is not None:
            replaced[document.id] = other
            continue
        Document.all_objects.filter(id=document.id).update(deleted_at=None)
        restored.append(document.id)
    return restored, replaced


def version_force(*, company, version_id: int) -> KnowledgeBaseVersion:
    """Make a held version live without the golden check (its changes applied to the live version now).

    Raises:
        NotFound(code="version_not_found"); ValidationFailed(code="version_not_held").
    """
    version = version_get(company=company, version_id=version_id)
    if version.status != Status.HELD:
        raise ValidationFailed(code="version_not_held", message=f"Version {version.number} is not held.")
    with transaction.atomic():
        _company_lock(company.id)
        revisions = _candidate(company.id, version.changes)
        version.note = (version.note + "\n" if version.note else "") + "forced live"
        _switch(version, revisions)
    versions_cleanup(company.id)
    return version


def version_discard(*, company, version_id: int) -> KnowledgeBaseVersion:
    """Drop a held version: it never goes live; its new chunks are cleaned up, and the documents it deleted
    are restored (they never stopped answering). A building version cannot be discarded: its documents are
    still being indexed (discarding it then made each of them a version of its own when it was indexed).

    Raises:
        NotFound(code="version_not_found"); ValidationFailed(code="version_not_held").
    """
    version = version_get(company=company, version_id=version_id)
    if version.status != Status.HELD:
        raise ValidationFailed(code="version_not_held", message=f"Version {version.number} is not held"
                               + (" (it is still building: wait until it is checked)."
                                  if version.status == Status.BUILDING else "."))
    with transaction.atomic():
        _company_lock(company.id)
        removed = [c["document_id"] for c in version.changes if c["action"] == "removed"]
        live = set(_live_revisions(company.id))
        restored, _ = _documents_restore(company.id, [d for d in removed if d in live])
        note = "discarded" + (f"; {len(restored)} deleted document(s) restored" if restored else "")
        KnowledgeBaseVersion.objects.filter(id=version.id).update(
            status=Status.DISCARDED, note=(version.note + "\n" if version.note else "") + note)
    versions_cleanup(company.id)
    version.refresh_from_db()
    return version


def version_recheck(*, company, version_id: int) -> KnowledgeBaseVersion:
    """Check a held version against the golden questions again (after they were fixed) and make it live
    if it passes now.

    Raises:
        NotFound(code="version_not_found"); ValidationFailed(code="version_not_held").
    """
    version = version_get(company=company, version_id=version_id)
    if version.status != Status.HELD:
        raise ValidationFailed(code="version_not_held", message=f"Version {version.number} is not held.")
    KnowledgeBaseVersion.objects.filter(id=version.id).update(status=Status.BUILDING)
    versions_advance(company.id)
    version.refresh_from_db()
    return version


def versions_compare(*, company, from_id: int, to_id: int) -> dict:
    """Documents added, changed (another revision) and removed going from version ``from_id`` to ``to_id``.

    Returns:
        ``{"from": number, "to": number, "added": [{document_id, title}], "changed": [...], "removed": [...]}``.

    Raises:
        NotFound(code="version_not_found"); ValidationFailed(code="version_not_built"): one was never built.
    """
    a = version_get(company=company, version_id=from_id)
    b = version_get(company=company, version_id=to_id)
    if a.revisions is None or b.revisions is None:
        raise ValidationFailed(code="version_not_built", message="Only built versions can be compared.")
    ra = {int(d): r for d, r in a.revisions.items()}
    rb = {int(d): r for d, r in b.revisions.items()}
    titles = dict(Document.all_objects.filter(id__in=set(ra) | set(rb)).values_list("id", "title"))
    known = {c["document_id"]: c.get("title", "") for v in (a, b) for c in v.changes}

    def item(d: int) -> dict:
        return {"document_id": d, "title": titles.get(d) or known.get(d, "")}

    return {"from": a.number, "to": b.number,
            "added": [item(d) for d in sorted(set(rb) - set(ra))],
            "changed": [item(d) for d in sorted(set(ra) & set(rb)) if ra[d] != rb[d]],
            "removed": [item(d) for d in sorted(set(ra) - set(rb))]}
