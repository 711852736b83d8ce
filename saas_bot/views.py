"""The site's front door: ``/`` (where to go next) and ``/healthz`` (is this process ready to serve)."""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from rag.embeddings import embeddings_state
from tenants.access import may_use_admin

logger = logging.getLogger("saas_bot.health")

# Seconds a health probe waits for the broker before calling it down (a load balancer probes every few seconds).
HEALTH_BROKER_TIMEOUT_SECONDS = 1.0


def landing_view(request: HttpRequest) -> HttpResponse:
    """A short page: sign in to the admin (or go to it when signed in), the API docs, the health check."""
    return render(request, "saas_bot/landing.html", {"signed_in": may_use_admin(request.user)})


def _database_check() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, "ok"
    except Exception as exc:  # any failure is "down"; the class names it, the log has the rest
        logger.warning("healthz: database check failed: %s", exc)
        return False, f"error: {type(exc).__name__}"


def _broker_check() -> tuple[bool, str]:
    url = settings.CELERY_BROKER_URL
    if not url:
        return True, "none (tasks run in the web process)"
    try:
        if url.startswith(("redis://", "rediss://", "unix://")):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=HEALTH_BROKER_TIMEOUT_SECONDS,
                                          socket_timeout=HEALTH_BROKER_TIMEOUT_SECONDS)
            try:
                client.ping()
            finally:
                client.close()
        else:
            from kombu import Connection

            with Connection(url, connect_timeout=HEALTH_BROKER_TIMEOUT_SECONDS) as conn:
                conn.ensure_connection(max_retries=1)
        return True, "ok"
    except Exception as exc:
        logger.warning("healthz: broker check failed: %s", exc)
        return False, f"error: {type(exc).__name__}"


def healthz_view(request: HttpRequest) -> JsonResponse:
    """``GET /healthz``: ``{"status": "ok"|"error", "database", "broker", "model", "elapsed_ms"}``.

    503 when the database or the broker does not answer (within ``HEALTH_BROKER_TIMEOUT_SECONDS``);
    ``model`` is reported (``loaded``, ``not_loaded``: it loads on the first question, ``remote``) but does
    not fail the check, since a process without the model still answers, only slower the first time.
    Errors show the exception class only (no hosts or secrets; the log has the message); no login needed (load balancers and uptime checks call it).
    """
    start = time.perf_counter()
    db_ok, db = _database_check()
    broker_ok, broker = _broker_check()
    ok = db_ok and broker_ok
    body = {"status": "ok" if ok else "error", "database": db, "broker": broker, "model": embeddings_state(),
            "elapsed_ms": round((time.perf_counter() - start) * 1000, 1)}
    return JsonResponse(body, status=200 if ok else 503)
