"""Website, sitemap and single-URL sources, their pages and sync runs (rag/sources.py; issue 17)."""
from __future__ import annotations

from django.db import models

from rag.models.documents import Collection, Document
from saas_bot.models import CompanyQuerySet


class Source(models.Model):
    """Where a company's documents come from and are kept in sync: a website, a sitemap or one URL.

    A *website* is crawled from ``url`` through same-site links (same scheme, host and port) up to
    ``max_depth`` links away and ``max_pages`` pages; a *sitemap* lists its pages (``sitemap.xml`` or a
    sitemap index, followed up to ``max_pages``); a *single URL* is one page. Path patterns (shell style,
    ``fnmatch``: ``/help/*``) narrow which pages count. Syncing is rag/sources.py (docs/knowledge-base.md).
    """

    class Kind(models.TextChoices):
        WEBSITE = "website", "Website (start URL and same-site links)"
        SITEMAP = "sitemap", "Sitemap (sitemap.xml or a sitemap index)"
        URL = "url", "Single URL"

    class Schedule(models.TextChoices):
        MANUAL = "manual", "Manual"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.WEBSITE)
    url = models.URLField(max_length=2000, help_text="Start URL, sitemap URL or the page's URL.")
    include_patterns = models.TextField(blank=True, help_text="One path pattern a line (e.g. /help/*); empty: all.")
    exclude_patterns = models.TextField(blank=True, help_text="One path pattern a line; a match is skipped.")
    max_pages = models.PositiveIntegerField(default=200, help_text="At most this many pages are kept.")
    max_depth = models.PositiveSmallIntegerField(default=3, help_text="Website: links followed from the start URL.")
    schedule = models.CharField(max_length=8, choices=Schedule.choices, default=Schedule.MANUAL)
    collection = models.ForeignKey(Collection, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="sources", help_text="Pages of this source go into it.")
    change_alert_percent = models.PositiveSmallIntegerField(
        default=20, help_text="Email the company's admins when a run adds, changes or removes more than this "
                              "percent of the pages (a failed run is always reported).")
    last_synced_at = models.DateTimeField(null=True, blank=True, help_text="When the last run finished.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class SourcePage(models.Model):
    """One page of a source as last fetched: its validators, content checksum, links and document."""

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="pages")
    url = models.URLField(max_length=2000)
    document = models.ForeignKey(Document, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    owns_document = models.BooleanField(default=False, help_text="The document was added by this page (removed "
                                                                 "with it).")
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    checksum = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the extracted main content.")
    links = models.JSONField(default=list, blank=True, help_text="Same-site links found on it (a 304 reuses them).")
    depth = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "url"], name="sourcepage_unique_source_url")]

    def __str__(self) -> str:
        return self.url


class SyncRun(models.Model):
    """One sync of a source: what it found (added, changed, removed, failed, unchanged) and its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=10, default="manual", help_text="manual, schedule or command.")
    pages_done = models.PositiveIntegerField(default=0, help_text="Pages fetched so far (progress).")
    pages_total = models.PositiveIntegerField(default=0, help_text="Pages known so far (grows while crawling).")
    added = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    bytes_received = models.BigIntegerField(default=0, help_text="Response bodies, bytes (304s receive none).")
    failures = models.JSONField(default=list, blank=True, help_text="[{url, code, message}] of failed pages.")
    error = models.TextField(blank=True, help_text="Why the run failed as a whole.")
    alerted = models.BooleanField(default=False, help_text="The company's admins were emailed about this run.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["source", "-created_at"], name="syncrun_source_created")]

    def __str__(self) -> str:
        return f"{self.source} run {self.id}"
