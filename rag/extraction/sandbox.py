"""Extraction in a bounded child process, reused across documents (parent side).

Why a child: a hostile file (decompression bomb, a page of millions of nested ``div``s, a PDF whose
pages share one huge content stream) must not take a web or Celery worker's memory or hold it for
minutes, and with no broker (eager mode) extraction would otherwise run inside the web process. The
child (``rag.extraction.worker``) runs with an address-space limit (``DOCUMENT_EXTRACTION_MEMORY_MB``)
and a CPU-time allowance per document (``DOCUMENT_EXTRACTION_CPU_SECONDS``); the parent also waits at
most ``DOCUMENT_EXTRACTION_WALL_SECONDS`` for an answer and kills the child past it.

Why ``subprocess`` and not ``multiprocessing``/a process pool: Celery's prefork children are daemonic
and may not start ``multiprocessing`` children ("daemonic processes are not allowed to have
children"), and a pool breaks as a whole when one worker dies. One child per process, started on
first use (about 0.3 s of imports), answers one document at a time (a lock serialises threads);
measured overhead per document: docs/benchmarks.md ("Hostile documents"). It is replaced after a
crash, a limit, ``DOCUMENT_EXTRACTION_MAX_DOCUMENTS`` documents, in a forked process, or when it keeps
more than ``DOCUMENT_EXTRACTION_RECYCLE_MB`` resident after a document (CPython does not give a big
document's heap back: a child that read a 6 MB PDF stayed at 344 MB, and the next page it read counted
on top of that).
"""
from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping

from rag.extraction import base
from rag.extraction.base import Bounds, DocumentOverLimit, Extracted, UnreadableDocument, require_supported
from rag.extraction.worker import BOOTSTRAP, read_frame, write_frame

logger = logging.getLogger("saas_bot.rag.extraction")
REPO = Path(__file__).resolve().parent.parent.parent


class _Child:
    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.documents = 0
        self.pid_owner = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOTSTRAP, str(REPO), str(memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, cwd=str(REPO), close_fds=True)
        ready = self._read(timeout=60.0)
        if ready is None or not ready[0].get("ready"):
            self.kill()
            raise RuntimeError("the extraction process did not start")

    def _read(self, timeout: float) -> tuple[dict, list[bytes]] | None:
        """One frame, or None when the child died or ``timeout`` seconds passed without one."""
        stdout = self.process.stdout
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            return None
        try:
            return read_frame(stdout)
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mb(self) -> float:
        """Resident memory of the child in MB (Linux ``/proc/<pid>/statm``); 0.0 when it cannot be read."""
        try:
            resident_pages = int(Path(f"/proc/{self.process.pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return 0.0
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


_lock = threading.Lock()
_child: _Child | None = None


def _forget_after_fork() -> None:
    # A forked process (Celery prefork, gunicorn) must not talk to its parent's child: it starts its own.
    global _child, _lock
    _child = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _settings() -> dict:
    from django.conf import settings

    return {"memory_mb": settings.DOCUMENT_EXTRACTION_MEMORY_MB, "cpu_seconds": settings.DOCUMENT_EXTRACTION_CPU_SECONDS,
            "wall_seconds": settings.DOCUMENT_EXTRACTION_WALL_SECONDS,
            "max_documents": settings.DOCUMENT_EXTRACTION_MAX_DOCUMENTS,
            "recycle_mb": settings.DOCUMENT_EXTRACTION_RECYCLE_MB}


def bounds_from_settings(*, max_chars: int | None = None) -> Bounds:
    """The ``Bounds`` the settings give (``DOCUMENT_MAX_*``); ``max_chars`` lowers the character bound
    (what is left of an upload's allowance)."""
    from django.conf import settings

    chars = settings.DOCUMENT_MAX_EXTRACTED_CHARS if max_chars is None else min(
        max_chars, settings.DOCUMENT_MAX_EXTRACTED_CHARS)
    return Bounds(max_chars=max(chars, 0), max_inflated_bytes=settings.DOCUMENT_MAX_INFLATED_BYTES,
                  max_pdf_pages=settings.DOCUMENT_MAX_PDF_PAGES,
                  max_pdf_content_bytes=settings.DOCUMENT_MAX_PDF_CONTENT_BYTES,
                  max_docx_paragraphs=settings.DOCUMENT_MAX_DOCX_PARAGRAPHS,
                  max_include_bytes=settings.DOCUMENT_MAX_INCLUDE_BYTES)


def extract_bounded(*, file_name: str, data: bytes, includes: Mapping[str, bytes] | None = None,
                    bounds: Bounds | None = None) -> Extracted:
    """``rag.extraction.extract`` in the bounded child process; same arguments, result and errors.

    Raises, besides ``extract``'s own:
        DocumentOverLimit(code="document_extraction_timeout"): the document used its CPU allowance
            (``DOCUMENT_EXTRACTION_CPU_SECONDS``) or the parent waited ``DOCUMENT_EXTRACTION_WALL_SECONDS``.
        DocumentOverLimit(code="document_extraction_memory"): it needed more than
            ``DOCUMENT_EXTRACTION_MEMORY_MB`` of address space.
        UnreadableDocument(code="document_extraction_crashed"): the child died otherwise on this file.
    """
    global _child
    require_supported(file_name)
    limits = _settings()
    bounds = bounds or bounds_from_settings()
    names = list((includes or {}).keys())
    header = {"file_name": file_name, "bounds": bounds.to_dict(), "cpu_seconds": limits["cpu_seconds"],
              "includes": names}
    blobs = [data] + [bytes(includes[name]) for name in names]
    with _lock:
        if _child is not None and (_child.pid_owner != os.getpid() or not _child.alive()
                                   or _child.documents >= limits["max_documents"]
                                   or _child.memory_mb != limits["memory_mb"]):
            if _child.pid_owner == os.getpid():
                _child.kill()
            _child = None
        if _child is None:
            _child = _Child(limits["memory_mb"])
        child = _child
        child.documents += 1
        started = time.monotonic()
        try:
            write_frame(child.process.stdin, header, blobs)
            answer = child._read(timeout=limits["wall_seconds"])
        except (BrokenPipeError, OSError):
            answer = None
        if answer is None:
            waited = time.monotonic() - started
            child.kill()
            _child = None
            raise _death(file_name, child.process.returncode, waited, limits)
        result, _ = answer
        if ((not result["ok"] and result["error"]["code"] == "document_extraction_memory")
                or child.rss_mb() > limits["recycle_mb"]):
            child.kill()  # its heap is fragmented or kept past use; the next document gets a fresh one
            _child = None
    if result["ok"]:
        return Extracted.from_dict(result["result"])
    error = result["error"]
    if error["code"] == "document_extraction_memory":
        raise _memory_error(file_name, limits)
    kind = getattr(base, error["kind"], None)
    if not (isinstance(kind, type) and issubclass(kind, base.ValidationFailed)):
        kind = UnreadableDocument
    raise kind(code=error["code"], message=error["message"])


def _memory_error(file_name: str, limits: dict) -> DocumentOverLimit:
    return DocumentOverLimit(
        code="document_extraction_memory",
        message=f"'{file_name}' needs more than {limits['memory_mb']} MB of memory to read"
                "; it was stopped.")


def _death(file_name: str, returncode: int | None, waited: float, limits: dict) -> Exception:
    """The coded error for a child that gave no answer (killed by a limit, crashed, or too slow)."""
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL) or returncode is None or waited >= limits["wall_seconds"]:
        if returncode == -signal.SIGKILL and waited < limits["wall_seconds"] * 0.5 and waited < limits["cpu_seconds"]:
            # Killed early by someone else (the kernel's OOM killer): a memory problem, not time.
            logger.warning("extraction child killed (SIGKILL) after %.1f s on %s", waited, file_name)
            return _memory_error(file_name, limits)
        logger.warning("extraction of %s stopped after %.1f s (exit %s)", file_name, waited, returncode)
        return DocumentOverLimit(
            code="document_extraction_timeout",
            message=f"'{file_name}' took longer to read than allowed ({limits['cpu_seconds']} s of CPU); "
                    "it was stopped.")
    logger.error("extraction child died with exit status %s on %s", returncode, file_name)
    return UnreadableDocument(code="document_extraction_crashed",
                              message=f"'{file_name}' could not be read: the reader crashed on it "
                                      f"(exit status {returncode}).")


def shutdown() -> None:
    """Stop this process's extraction child (tests, benchmarks); the next extraction starts a new one."""
    global _child
    with _lock:
        if _child is not None and _child.pid_owner == os.getpid():
            _child.kill()
        _child = None


def child_pid() -> int | None:
    """The current child's process id (benchmarks read its memory), or None."""
    return _child.process.pid if _child is not None and _child.alive() else None
