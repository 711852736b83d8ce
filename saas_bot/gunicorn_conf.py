"""gunicorn settings hooks for ``make run``, ``make demo`` and docker-compose (``gunicorn -c saas_bot/gunicorn_conf.py``).

- ``when_ready`` (the master, once listening): prints where the site is (landing page, admin, API docs,
  health check), so ``make run`` ends with URLs to open.
- ``post_worker_init`` (each worker, before it takes a request): loads the embedding model when
  ``EMBEDDING_WARM_UP`` is on (default), so the first question answers in about a second instead of
  waiting ~7 s for the model (issue 16). The web process embeds questions itself (playground, API ask,
  eager tasks without a broker) with onnxruntime, not torch (rag/onnx_minilm.py, issue 15); a
  webhook-only web tier may set ``EMBEDDING_WARM_UP=false``.
Binding, workers and threads stay on the command line.
"""
from __future__ import annotations

import logging
import sys

logger = logging.getLogger("saas_bot.gunicorn")


def site_urls(bind: str) -> list[tuple[str, str]]:
    """[(what, URL)] for a gunicorn bind address ``host:port`` (0.0.0.0 and :: shown as 127.0.0.1)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    base = f"http://{host}:{port}"
    return [("Home", f"{base}/"), ("Admin", f"{base}/admin/"), ("API docs", f"{base}/api/docs/"),
            ("Health", f"{base}/healthz")]


def when_ready(server) -> None:
    for bind in server.cfg.bind:
        if bind.startswith("unix:"):
            continue
        lines = [f"  {what:<9} {url}" for what, url in site_urls(bind)]
        host = bind.rpartition(":")[0].strip("[]")
        where = (f"on every network interface ({bind}); from this machine:" if host in ("", "0.0.0.0", "::")
                 else f"on {bind}:")
        print(f"saas_bot is serving {where}\n" + "\n".join(lines), file=sys.stderr, flush=True)


def post_worker_init(worker) -> None:
    from django.conf import settings

    if not getattr(settings, "EMBEDDING_WARM_UP", False):
        return
    from rag.embeddings import embeddings_warm_up

    try:
        seconds = embeddings_warm_up()
    except Exception:  # a broken model must not stop the site: the first question will report it
        logger.exception("embedding warm-up failed; the model loads on the first question instead")
        return
    if seconds:
        logger.info("worker %s: embedding model loaded in %.1f s", worker.pid, seconds)
