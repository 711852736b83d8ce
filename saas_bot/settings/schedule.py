"""The periodic tasks celery beat sends (django-celery-beat's database scheduler starts from these)."""
from saas_bot.settings.answers import RAG_COMPANY_HNSW_RECONCILE_SECONDS
from saas_bot.settings.telegram import TELEGRAM_INBOX_SWEEP_SECONDS

CELERY_BEAT_SCHEDULE = {
    "bots-inbox-sweep": {"task": "bots.inbox_sweep", "schedule": TELEGRAM_INBOX_SWEEP_SECONDS},
    "billing-usage-sweep": {"task": "billing.usage_sweep", "schedule": 60.0},
    "billing-subscriptions-renew": {"task": "billing.subscriptions_renew", "schedule": 300.0},
    "rag-documents-sweep": {"task": "rag.documents_sweep", "schedule": 300.0},
    # Sources whose daily or weekly sync is due are queued (rag.sources.sources_sync_due).
    # Per-company HNSW indexes built past RAG_COMPANY_HNSW_MIN_CHUNKS and dropped below half of it (rag/company_hnsw.py).
    "rag-company-hnsw-indexes-reconcile": {"task": "rag.company_hnsw_indexes_reconcile",
                                           "schedule": RAG_COMPANY_HNSW_RECONCILE_SECONDS},
    "rag-sources-sync-due": {"task": "rag.sources_sync_due", "schedule": 900.0},
    # Stored Idempotency-Key responses past API_IDEMPOTENCY_HOURS are deleted (saas_bot/api/idempotency.py).
    "api-idempotency-purge": {"task": "api.idempotency_purge", "schedule": 3600.0},
}
