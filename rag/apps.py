from django.apps import AppConfig


class RagConfig(AppConfig):
    name = "rag"
    verbose_name = "Knowledge"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from tenants.models import Company

        post_save.connect(_company_knowledge_base, sender=Company, dispatch_uid="rag_company_knowledge_base")


def _company_knowledge_base(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """A new company's knowledge base starts with the deployment's default embedding model, recorded, so a
    later change of EMBEDDING_DEFAULT_MODEL never changes the model of chunks already written."""
    if created and not raw:
        from rag.knowledge_base import knowledge_base_get

        knowledge_base_get(instance)
