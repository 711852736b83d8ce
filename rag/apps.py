from django.apps import AppConfig


class RagConfig(AppConfig):
    name = "rag"
    verbose_name = "Knowledge"

    def ready(self) -> None:
        from django.core import checks
        from django.db.models.signals import post_delete, post_save

        checks.register(_embedding_settings_check, checks.Tags.compatibility)

        from tenants.models import Company

        post_save.connect(_company_knowledge_base, sender=Company, dispatch_uid="rag_company_knowledge_base")
        post_delete.connect(_company_hnsw_index_drop, sender=Company, dispatch_uid="rag_company_hnsw_index_drop")

        # What a company holds against its plan's document limits (billing counts nothing of rag's itself).
        from billing.selectors import holding_counter_register
        from rag.selectors import document_bytes, document_count

        holding_counter_register(limit="max_documents", counter=document_count)
        holding_counter_register(limit="max_storage_bytes", counter=document_bytes)


def _company_knowledge_base(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """A new company's knowledge base starts with the deployment's default embedding model, recorded, so a
    later change of EMBEDDING_DEFAULT_MODEL never changes the model of chunks already written."""
    if created and not raw:
        from rag.knowledge_base import knowledge_base_get

        knowledge_base_get(instance)


def _company_hnsw_index_drop(sender, instance, **kwargs) -> None:
    """A deleted company's partial HNSW index (rag/company_hnsw.py) is dropped once the delete commits:
    DROP INDEX CONCURRENTLY cannot run in the deleting transaction. The beat reconcile would drop it too."""
    from rag.company_hnsw import company_hnsw_indexes
    from rag.tasks import company_hnsw_index_drop_task
    from saas_bot.tasking import enqueue_on_commit

    if instance.id in company_hnsw_indexes():
        enqueue_on_commit(company_hnsw_index_drop_task, instance.id)


def _embedding_settings_check(app_configs, **kwargs):
    """System check (every management command, ``manage.py check``): the embedding settings name things
    that exist, so a typo is one clear line at start, not a traceback in the middle of a command."""
    from django.conf import settings
    from django.core import checks

    from rag.embeddings import LOCAL_MODELS

    errors = []
    if settings.EMBEDDING_BACKEND not in ("local", "openai"):
        errors.append(checks.Error(f"EMBEDDING_BACKEND must be 'local' or 'openai', not {settings.EMBEDDING_BACKEND!r}.",
                                   id="rag.E001"))
    if settings.EMBEDDING_DEFAULT_MODEL not in LOCAL_MODELS:
        errors.append(checks.Error(f"EMBEDDING_DEFAULT_MODEL must be one of {', '.join(LOCAL_MODELS)}, "
                                   f"not {settings.EMBEDDING_DEFAULT_MODEL!r}.", id="rag.E002"))
    return errors
