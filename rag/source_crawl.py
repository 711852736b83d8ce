"""One sync run's crawl (``rag.sources.sync_run_execute`` runs it): discover the pages, compare each with what
the last run stored, change the documents in the run's change batch, index them.

Discovery: a website from its start URL and same-site links breadth first (``max_depth``, ``max_pages``, the
include/exclude patterns, robots.txt), a sitemap (or index) by its listed URLs, a single URL by itself. Each
page (``rag.crawling.page_fetch``, in worker threads) is then *unchanged* (304, or the same checksum),
*changed* (``document_replace_content``), *added* (``document_add``) or *failed* (its document kept); the
stored pages the run did not see are *removed* (``document_delete``). The rules are in ``rag/sources.py``'s
docstring and docs/knowledge-base.md.
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import PurePath
from typing import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from django.utils.text import slugify

from rag import crawling, services
from rag.models import Document, Source, SourcePage, SyncRun
from saas_bot.errors import NotFound, ServiceError, ValidationFailed

RunProgress = Callable[[SyncRun], None]
"""progress(run): called after each page with the run's counters (pages_done of pages_total so far)."""


class SourceCrawl:
    """The work of one run (``SourceCrawl(run, fetcher, progress).carry_out()``); all database writes happen
    in the calling thread, the fetches in a pool of ``SOURCE_HOST_CONCURRENCY`` worker threads."""

    def __init__(self, run: SyncRun, fetcher: crawling.Fetcher, progress: RunProgress | None) -> None:
        self.run, self.source, self.company = run, run.source, run.company
        self.fetcher, self.progress = fetcher, progress
        self.include = crawling.patterns_of(self.source.include_patterns)
        self.exclude = crawling.patterns_of(self.source.exclude_patterns)
        self.stored = {p.url: p for p in SourcePage.objects.filter(source=self.source).select_related("document")}
        self.seen: set[str] = set()  # pages this run keeps (fetched, unchanged or failed)
        self.to_index: list[Document] = []
        self._last_saved = 0.0

    # -- discovery ----------------------------------------------------------------------------------
    def carry_out(self) -> None:
        robots = self.fetcher.robots(self.source.url)
        if robots.unreachable:
            raise ValidationFailed(code="source_robots_unreachable",
                                   message=f"robots.txt could not be read ({robots.unreachable}); nothing was "
                                           "fetched (RFC 9309: an unreachable robots.txt disallows the site).")
        self.robots = robots
        with services.document_change_batch(company=self.company, origin="sync_run",
                                            origin_id=self.run.id) as batch:
            self.batch = batch
            if self.source.kind == Source.Kind.SITEMAP:
                self._crawl(self._sitemap_pages(), follow_links=False)
            elif self.source.kind == Source.Kind.URL:
                self._crawl([self.source.url], follow_links=False, start_required=True)
            else:
                self._crawl([self.source.url], follow_links=True, start_required=True)
            self._remove_unseen()
            self._index()
        self._save(force=True)

    def _wanted(self, url: str) -> bool:
        return crawling.same_site(url, self.source.url) and crawling.path_matches(
            url, include=self.include, exclude=self.exclude)

    def _sitemap_pages(self) -> list[str]:
        pages: list[str] = []
        queue, read = [self.source.url], 0
        while queue and read < crawling.MAX_SITEMAPS and len(pages) < self.source.max_pages:
            url = queue.pop(0)
            read += 1
            fetched = self.fetcher.get(url, max_bytes=crawling.MAX_SITEMAP_BYTES)  # raises: the run fails
            urls, children = crawling.sitemap_parse(fetched.body)
            queue.extend(c for c in children if crawling.same_site(c, self.source.url))
            for page in urls:
                if len(pages) >= self.source.max_pages:
                    break
                if self._wanted(page) and self.robots.allowed(page) and page not in pages:
                    pages.append(page)
        return pages

    def _crawl(self, start: list[str], *, follow_links: bool, start_required: bool = False) -> None:
        """Fetch ``start`` (depth 0) and, for a website, the same-site links breadth first."""
        source = self.source
        queued: set[str] = set()
        budget = source.max_pages
        pending: dict[Future, str] = {}
        workers = max(1, settings.SOURCE_HOST_CONCURRENCY)
        first = start[0] if start else None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"sync-{self.run.id}") as pool:
            def submit(url: str, depth: int) -> None:
                nonlocal budget
                queued.add(url)
                budget -= 1
                stored = self.stored.get(url)
                pending[pool.submit(crawling.page_fetch, self.fetcher, url, depth=depth,
                                    etag=stored.etag if stored else "",
                                    last_modified=stored.last_modified if stored else "",
                                    want_links=follow_links)] = url

            for url in start:
                if budget <= 0:
                    break
                if url == first and start_required and not self.robots.allowed(url):
                    raise ValidationFailed(code="source_robots_disallowed",
                                           message=f"robots.txt does not allow {url} to {self.robots.agent}.")
                submit(url, 0)
            self.run.pages_total = len(queued)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.pop(future)
                    result = future.result()
                    if result.url == first and start_required and result.error_code and (
                            follow_links or not result.gone):
                        # A website whose start page fails is not "every page removed": the run fails.
                        raise ValidationFailed(code=result.error_code, message=result.error)
                    links = self._handle(result, index=(result.url != first or not follow_links
                                                         or self._wanted(result.url)))
                    if follow_links and result.depth < source.max_depth:
                        for link in links:
                            if budget <= 0:
                                break
                            if link in queued or not self._wanted(link) or not self.robots.allowed(link):
                                continue
                            submit(link, result.depth + 1)
                    self.run.pages_done += 1
                    self.run.pages_total = len(queued)
                    self._save()

    # -- one page -----------------------------------------------------------------------------------
    def _handle(self, result: crawling.PageResult, *, index: bool) -> list[str]:
        """Compare one fetched page with the stored one and change documents; returns its links."""
        run, stored = self.run, self.stored.get(result.url)
        now = timezone.now()
        if result.error_code:
            if result.gone:
                return []  # not seen: a stored page is removed with the others the run did not find
            self.seen.add(result.url)
            run.failed += 1
            run.failures = [*run.failures, {"url": result.url, "code": result.error_code,
                                            "message": result.error[:500]}][:200]
            if stored is not None:
                SourcePage.objects.filter(id=stored.id).update(error=result.error[:2000], fetched_at=now)
            return stored.links if stored is not None else []
        if result.final_url and not crawling.same_site(result.final_url, self.source.url):
            self.seen.add(result.url)
            run.failed += 1
            run.failures = [*run.failures, {"url": result.url, "code": "source_redirect_off_site",
                                            "message": f"redirects to {result.final_url}"}][:200]
            return []
        self.seen.add(result.url)
        if result.status == 304:
            if stored is None:  # a server that answers 304 to a request without validators: nothing to keep
                return []
            SourcePage.objects.filter(id=stored.id).update(fetched_at=now, error="")
            if stored.document_id:
                run.unchanged += 1
            return stored.links
        checksum = services._checksum(result.data) if result.data else ""
        page = stored or SourcePage(company=self.company, source=self.source, url=result.url)
        page.etag, page.last_modified, page.links, page.depth = (result.etag, result.last_modified,
                                                                 result.links, result.depth)
        page.fetched_at, page.error = now, ""
        if not index or not result.data:
            # A page kept for its links only (the start page outside the patterns, a list of links).
            if page.owns_document and page.document_id:
                self._remove_document(page)
            page.checksum = checksum
            page.save()
            return result.links
        if stored is not None and stored.document_id and stored.checksum == checksum:
            run.unchanged += 1
            page.save()
            return result.links
        try:
            self._store_content(page, result, checksum)
        except ServiceError as exc:
            run.failed += 1
            run.failures = [*run.failures, {"url": result.url, "code": exc.code, "message": exc.message[:500]}][:200]
            page.error = exc.message[:2000]
        page.save()
        return result.links

    def _file_name(self, result: crawling.PageResult) -> str:
        path = urlsplit(result.url).path
        stem = slugify(PurePath(path).stem or urlsplit(result.url).hostname or "page")[:80] or "page"
        return f"{stem}{result.file_suffix}"

    def _store_content(self, page: SourcePage, result: crawling.PageResult, checksum: str) -> None:
        name = self._file_name(result)
        if page.document_id and page.owns_document:
            try:
                document = services.document_replace_content(
                    company=self.company, document_id=page.document_id, file_name=name, data=result.data,
                    title=result.title or None, schedule=False, batch=self.batch)
            except ServiceError as exc:
                if exc.code != "document_duplicate":
                    raise
                # The new content is another document's: this page now points at it.
                self._remove_document(page)
                page.document_id, page.owns_document = exc.detail["document_id"], False
            else:
                self.to_index.append(document)
            page.checksum = checksum
            self.run.changed += 1
            return
        document, created = services.document_add(
            company=self.company, file_name=name, data=result.data, title=result.title or None, schedule=False,
            collection=self.source.collection, source_url=result.url, batch=self.batch)
        page.document_id, page.owns_document, page.checksum = document.id, created, checksum
        if created:
            self.to_index.append(document)
        if page.pk is not None:
            self.run.changed += 1
        else:
            self.run.added += 1

    def _remove_document(self, page: SourcePage) -> None:
        try:
            services.document_delete(company=self.company, document_id=page.document_id, batch=self.batch)
        except NotFound:
            pass  # deleted by hand meanwhile
        page.document_id, page.owns_document = None, False

    def _remove_unseen(self) -> None:
        for url, page in self.stored.items():
            if url in self.seen:
                continue
            if page.owns_document and page.document_id:
                self._remove_document(page)
                self.run.removed += 1
            elif page.document_id:
                self.run.removed += 1
            page.delete()

    def _index(self) -> None:
        """Index what the run added or changed now, in one embedding pass, so the batch ends indexed."""
        if self.to_index:
            services.documents_ingest(company=self.company, documents=self.to_index)

    def _save(self, *, force: bool = False) -> None:
        now = timezone.now().timestamp()
        if force or now - self._last_saved >= 1.0:
            self._last_saved = now
            SyncRun.objects.filter(id=self.run.id).update(
                pages_done=self.run.pages_done, pages_total=self.run.pages_total, added=self.run.added,
                changed=self.run.changed, removed=self.run.removed, failed=self.run.failed,
                unchanged=self.run.unchanged, failures=self.run.failures,
                bytes_received=self.fetcher.bytes_received)
        if self.progress:
            self.progress(self.run)
